// Token files: a versioned, serialized session with issue and expiry times, written with mode 0600,
// optionally sealed under a passphrase (scrypt + XChaCha20-Poly1305), optionally signed by an
// issuer (the auth service). Layout:
//   u8 TOKEN_FORMAT (1) || msgpack { m: 'atefs-token', e: 0 plain | 1 sealed, k?: scrypt params+salt,
//                                    d: inner (plain) | sealed inner, c?: check (plain), s?: [issuerPk, sig] }
//   inner = msgpack { i: issuedAt, x: expiresAt | null, p: [principal...] }
// A plain token carries a domain hash of `inner` so corruption and naive edits are detected; its
// holder has the raw keys anyway, so its expiry is advisory against the holder. A sealed token
// authenticates everything under the passphrase-derived key.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import {
  DecryptError,
  type ScryptParams,
  PRODUCTION_SCRYPT,
  type SigningKeyPair,
  constantTimeEqual,
  decodeScryptParams,
  deriveKeyFromPassword,
  domainHash,
  encodeScryptParams,
  randomBytes,
  signMessage,
  verifySignature,
  xchachaOpen,
  xchachaSeal,
} from '../crypto/index.js';
import { publicKeyId } from '../chain/ids.js';
import { BadPassphrase, PassphraseRequired, TokenExpired, TokenInvalid } from './errors.js';
import { type Principal, type PrincipalKind, principalFromSecrets } from './identity.js';
import { Session } from './session.js';

export const TOKEN_FORMAT = 1;
const MAGIC = 'atefs-token';
const packr = new Packr({ useRecords: false });
const SEAL_AAD = Buffer.from('atefs/token/sealed/v1', 'utf8');

export interface Token {
  session: Session;
  issuedAt: number;
  /** null: never expires (the local identity file). */
  expiresAt: number | null;
  /** publicKeyId of the issuer, when the token is signed. */
  issuer: string | null;
  /** The auth service's signed claims (src/net/auth-protocol.ts encodeSignedClaims), if any. */
  claims: Buffer | null;
}

export interface EncodeTokenOptions {
  /** Lifetime in ms; null = no expiry. */
  ttlMs: number | null;
  passphrase?: string;
  scrypt?: ScryptParams;
  issuer?: SigningKeyPair;
  now?: () => number;
  /** The auth service's signed claims to carry (opaque here; the service verifies them). */
  claims?: Buffer;
  /** Absolute expiry (ms since the epoch), instead of now + ttlMs (the claims' expiry). */
  expiresAt?: number;
}

export interface DecodeTokenOptions {
  passphrase?: string;
  now?: () => number;
  /** When given, the token must be signed by one of these issuers (publicKeyIds). */
  trustedIssuers?: string[];
  /** Accept an expired token (for inspection commands). */
  allowExpired?: boolean;
}

function encodePrincipal(p: Principal): Record<string, unknown> {
  const o: Record<string, unknown> = { k: p.kind, n: p.name };
  if (p.purpose !== undefined) o.p = p.purpose;
  if (p.signing) o.s = p.signing.secretKey;
  if (p.kem) o.m = p.kem.secretKey;
  if (p.readKey) o.r = p.readKey;
  return o;
}

function decodePrincipal(v: unknown): Principal {
  if (typeof v !== 'object' || v === null) throw new TokenInvalid('token: bad principal');
  const o = v as Record<string, unknown>;
  const kind = o.k;
  if (kind !== 'user' && kind !== 'group-role') throw new TokenInvalid('token: bad principal kind');
  if (typeof o.n !== 'string') throw new TokenInvalid('token: bad principal name');
  const buf = (x: unknown): Buffer | undefined => {
    if (x === undefined) return undefined;
    if (!(x instanceof Uint8Array)) throw new TokenInvalid('token: bad key');
    return Buffer.from(x);
  };
  try {
    const s: Parameters<typeof principalFromSecrets>[0] = { kind: kind as PrincipalKind, name: o.n };
    if (typeof o.p === 'string') s.purpose = o.p;
    const sg = buf(o.s);
    const km = buf(o.m);
    const rk = buf(o.r);
    if (sg) s.signingSecret = sg;
    if (km) s.kemSecret = km;
    if (rk) s.readKey = rk;
    return principalFromSecrets(s);
  } catch (e) {
    if (e instanceof TokenInvalid) throw e;
    throw new TokenInvalid(`token: bad key material (${(e as Error).message})`);
  }
}

function issuerMessage(inner: Buffer): Buffer {
  return domainHash('atefs/token/issuer-signature/v1', inner);
}

export async function encodeToken(session: Session, o: EncodeTokenOptions): Promise<Buffer> {
  const now = (o.now ?? Date.now)();
  const inner = packr.pack({
    i: now,
    x: o.expiresAt ?? (o.ttlMs === null ? null : now + o.ttlMs),
    p: session.principals.map(encodePrincipal),
    ...(o.claims ? { a: o.claims } : {}),
  });
  const outer: Record<string, unknown> = { m: MAGIC, e: 0 };
  if (o.issuer) outer.s = [o.issuer.publicKey, signMessage(o.issuer.secretKey, issuerMessage(inner))];
  if (o.passphrase !== undefined) {
    const salt = randomBytes(16);
    const params = o.scrypt ?? PRODUCTION_SCRYPT;
    const kdf = encodeScryptParams(params, salt);
    const key = await deriveKeyFromPassword(o.passphrase, salt, params);
    outer.e = 1;
    outer.k = kdf;
    outer.d = xchachaSeal(key, inner, Buffer.concat([SEAL_AAD, kdf]));
    key.fill(0);
  } else {
    outer.d = inner;
    outer.c = domainHash('atefs/token/check/v1', inner);
  }
  const body = packr.pack(outer);
  return Buffer.concat([Buffer.from([TOKEN_FORMAT]), body]);
}

export async function decodeToken(bytes: Buffer, o: DecodeTokenOptions = {}): Promise<Token> {
  if (bytes.length < 2 || bytes[0] !== TOKEN_FORMAT) throw new TokenInvalid('not an atefs token (or an unknown version)');
  let outer: Record<string, unknown>;
  try {
    outer = packr.unpack(bytes.subarray(1)) as Record<string, unknown>;
  } catch {
    throw new TokenInvalid('token does not decode');
  }
  if (typeof outer !== 'object' || outer === null || outer.m !== MAGIC || !(outer.d instanceof Uint8Array)) {
    throw new TokenInvalid('not an atefs token');
  }
  let inner: Buffer;
  if (outer.e === 1) {
    if (o.passphrase === undefined) throw new PassphraseRequired('the token is sealed under a passphrase');
    if (!(outer.k instanceof Uint8Array)) throw new TokenInvalid('token: missing KDF parameters');
    let params;
    try {
      params = decodeScryptParams(outer.k);
    } catch (e) {
      throw new TokenInvalid(`token: bad KDF parameters (${(e as Error).message})`);
    }
    const key = await deriveKeyFromPassword(o.passphrase, params.salt, params.params);
    try {
      inner = xchachaOpen(key, outer.d, Buffer.concat([SEAL_AAD, outer.k]));
    } catch (e) {
      if (e instanceof DecryptError) throw new BadPassphrase('wrong passphrase (or the token was tampered with)');
      throw new TokenInvalid(`token: ${(e as Error).message}`);
    } finally {
      key.fill(0);
    }
  } else if (outer.e === 0) {
    inner = Buffer.from(outer.d);
    const c = outer.c;
    if (!(c instanceof Uint8Array) || !constantTimeEqual(c, domainHash('atefs/token/check/v1', inner))) {
      throw new TokenInvalid('token integrity check failed (corrupted or edited)');
    }
  } else {
    throw new TokenInvalid('token: unknown protection mode');
  }
  let issuer: string | null = null;
  if (outer.s !== undefined) {
    const s = outer.s as unknown[];
    if (!Array.isArray(s) || !(s[0] instanceof Uint8Array) || !(s[1] instanceof Uint8Array)) throw new TokenInvalid('token: bad issuer signature');
    let ok = false;
    try {
      ok = verifySignature(s[0], issuerMessage(inner), s[1]);
    } catch {
      ok = false;
    }
    if (!ok) throw new TokenInvalid('token: issuer signature does not verify');
    issuer = publicKeyId(s[0]);
  }
  if (o.trustedIssuers && (!issuer || !o.trustedIssuers.includes(issuer))) {
    throw new TokenInvalid('token is not signed by a trusted issuer');
  }
  let body: Record<string, unknown>;
  try {
    body = packr.unpack(inner) as Record<string, unknown>;
  } catch {
    throw new TokenInvalid('token body does not decode');
  }
  const issuedAt = body.i;
  const expiresAt = body.x;
  if (typeof issuedAt !== 'number' || (expiresAt !== null && typeof expiresAt !== 'number') || !Array.isArray(body.p)) {
    throw new TokenInvalid('token body is malformed');
  }
  if (expiresAt !== null && !o.allowExpired && (o.now ?? Date.now)() >= expiresAt) throw new TokenExpired(expiresAt);
  if (body.a !== undefined && !(body.a instanceof Uint8Array)) throw new TokenInvalid('token claims are malformed');
  const claims = body.a instanceof Uint8Array ? Buffer.from(body.a) : null;
  return { session: new Session(body.p.map(decodePrincipal)), issuedAt, expiresAt, issuer, claims };
}

/**
 * Writes a file readable by its owner only: created with mode 0600 (and chmod'ed, since the
 * umask or an existing file may have other bits), written to a temp file and renamed into place.
 */
export async function writeSecretFile(file: string, data: Uint8Array): Promise<void> {
  const tmp = await writeSyncedSecretTemp(file, data);
  try {
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes `data` to a fresh temporary file beside `file` (mode 0600 whatever the umask, fsynced) and
 * returns its path; the caller publishes it (rename to replace, link to create only if absent).
 */
export async function writeSyncedSecretTemp(file: string, data: Uint8Array): Promise<string> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await fsp.writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
    await fsp.chmod(tmp, 0o600);
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  return tmp;
}

export async function writeTokenFile(file: string, session: Session, o: EncodeTokenOptions): Promise<void> {
  await writeSecretFile(file, await encodeToken(session, o));
}

export async function readTokenFile(file: string, o: DecodeTokenOptions = {}): Promise<Token> {
  return decodeToken(await fsp.readFile(file), o);
}
