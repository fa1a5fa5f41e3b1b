// What the auth service (server/auth) and its clients (auth-client.ts) agree on: operation names,
// the bodies' codec, the login proof, and the service-signed token claims.
//
// Login never sends a password or anything that logs in by itself: the client runs scrypt over
// the password with the user's salt (src/session/login-keys.ts), derives a signing key from it, and
// signs LOGIN_LABEL over (the connection's session id = handshake transcript hash, a fresh
// challenge of the service, the email). The service holds only that key's public half. A captured
// proof is useless elsewhere: it names one connection's transcript and one challenge.
import { Packr } from 'msgpackr';
import { domainHash, keyFingerprint, signMessage, verifySignature } from '../crypto/index.js';
import { NetError } from './errors.js';

export type AuthOp =
  | 'info' | 'create-user' | 'salt' | 'login' | 'query' | 'user-details'
  | 'group-create' | 'group-details' | 'group-add' | 'group-remove' | 'gather' | 'chain-roots';

export const AUTH_OPS: readonly AuthOp[] = [
  'info', 'create-user', 'salt', 'login', 'query', 'user-details', 'group-create', 'group-details', 'group-add', 'group-remove', 'gather',
  'chain-roots',
];

/** Group roles, strongest first. A member of a role also holds the keys of every weaker one. */
export const ROLES = ['owner', 'delegate', 'contributor', 'observer'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && (ROLES as readonly string[]).includes(x);
}

/** Roles whose keys a member of `r` holds: r and every weaker role. */
export function rolesHeldBy(r: Role): Role[] {
  return ROLES.slice(ROLES.indexOf(r)) as Role[];
}

/** Who may add or remove a member of `target`: owners manage owners and delegates, delegates
 *  (and owners) manage contributors and observers. */
export function managerRolesOf(target: Role): Role[] {
  return target === 'owner' || target === 'delegate' ? ['owner'] : ['owner', 'delegate'];
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function packBody(x: unknown): Buffer {
  return packr.pack(x);
}

export function unpackBody<T = Record<string, unknown>>(b: Buffer): T {
  const v = packr.unpack(b) as unknown;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new NetError('auth body is not a map');
  return v as T;
}

/** A refusal of the auth service, as the client sees it: one line, with a code scripts can test. */
export class AuthRefused extends NetError {
  override name = 'AuthRefused';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The one answer for an unknown email and a wrong password (and a wrong TOTP code). */
export const LOGIN_FAILED = 'login failed: wrong email or password';

const LOGIN_LABEL = 'atefs/auth/login-proof/v1';
const CLAIMS_LABEL = 'atefs/auth/token-claims/v1';

export function loginMessage(sessionId: Buffer, challenge: Buffer, email: string): Buffer {
  return domainHash(LOGIN_LABEL, sessionId, challenge, Buffer.from(email, 'utf8'));
}

export function signLogin(loginSecret: Buffer, sessionId: Buffer, challenge: Buffer, email: string): Buffer {
  return signMessage(loginSecret, loginMessage(sessionId, challenge, email));
}

/** Claims of a token, signed by the service. Roles are 'group:role' strings. */
export interface Claims {
  email: string;
  uid: number;
  gids: number[];
  roles: string[];
  /** ms since the epoch */
  issuedAt: number;
  expiresAt: number;
  /** Fingerprint of the service key that signed. */
  issuer: string;
  /** What the token is for ('atedb'). */
  audience: string;
  /** Elevated: the login gave a valid TOTP code. */
  sudo: boolean;
  /** Fingerprint of the user's signing key (the identity a connection proves in its handshake). */
  key: string;
}

/** A claims blob as stored in a token file and sent back to the service. */
export interface SignedClaims {
  claims: Buffer;
  sig: Buffer;
  servicePk: Buffer;
}

export function signClaims(c: Claims, service: { publicKey: Buffer; secretKey: Buffer }): SignedClaims {
  const claims = packr.pack({ ...c });
  return { claims, sig: signMessage(service.secretKey, domainHash(CLAIMS_LABEL, claims)), servicePk: service.publicKey };
}

/** Why claims are refused (one line each): tampered, another service's, expired. */
export class ClaimsRefused extends NetError {
  override name = 'ClaimsRefused';
  constructor(readonly code: 'tampered' | 'foreign-issuer' | 'expired' | 'malformed', message: string) {
    super(message);
  }
}

/**
 * Verifies claims: the signature, then (when `trusted` is given) that the signer is that service,
 * then the expiry. Returns the decoded claims.
 */
export function verifyClaims(s: SignedClaims, o: { trusted?: Buffer; now?: number; allowExpired?: boolean } = {}): Claims {
  let ok = false;
  try {
    ok = verifySignature(s.servicePk, domainHash(CLAIMS_LABEL, s.claims), s.sig);
  } catch {
    ok = false;
  }
  if (!ok) throw new ClaimsRefused('tampered', 'token refused: its claims do not verify (tampered with)');
  if (o.trusted && !o.trusted.equals(Buffer.from(s.servicePk))) {
    throw new ClaimsRefused('foreign-issuer', `token refused: issued by another service (${keyFingerprint(s.servicePk)}, this one is ${keyFingerprint(o.trusted)})`);
  }
  let c: Claims;
  try {
    c = packr.unpack(s.claims) as Claims;
  } catch {
    throw new ClaimsRefused('malformed', 'token refused: claims do not decode');
  }
  if (typeof c !== 'object' || c === null || typeof c.email !== 'string' || !Number.isSafeInteger(c.uid) || typeof c.expiresAt !== 'number') {
    throw new ClaimsRefused('malformed', 'token refused: claims are malformed');
  }
  if (!o.allowExpired && (o.now ?? Date.now()) >= c.expiresAt) throw new ClaimsRefused('expired', `token refused: expired at ${new Date(c.expiresAt).toISOString()}`);
  return c;
}

export function encodeSignedClaims(s: SignedClaims): Buffer {
  return packr.pack({ c: s.claims, s: s.sig, k: s.servicePk });
}

export function decodeSignedClaims(b: Uint8Array): SignedClaims {
  let v: Record<string, unknown>;
  try {
    v = packr.unpack(Buffer.from(b)) as Record<string, unknown>;
  } catch {
    throw new ClaimsRefused('malformed', 'token refused: claims do not decode');
  }
  const isB = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
  if (!v || !isB(v.c) || !isB(v.s) || !isB(v.k)) throw new ClaimsRefused('malformed', 'token refused: claims are malformed');
  return { claims: Buffer.from(v.c), sig: Buffer.from(v.s), servicePk: Buffer.from(v.k) };
}

/** Email as the service accepts it: letters, digits, ".", "_", "-" before one "@" (so that
 *  `<domain>/<local>/<db>` is a chain name), a dotted domain,
 *  lower-cased (so Alice@X.org and alice@x.org are one account). */
export function normalizeEmail(email: string): string | null {
  const e = email.trim().toLowerCase();
  if (e.length > 254) return null;
  if (!/^[a-z0-9._-]{1,64}@[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})+$/.test(e)) return null;
  if (e.startsWith('.') || e.includes('..')) return null;
  return e;
}

/** Group names: also the first part of a group chain's name. */
export function isGroupName(name: string): boolean {
  return /^[a-z0-9][a-z0-9_-]{0,62}$/.test(name);
}

/** The personal-chain prefix of an email: `<domain>/<local>`. */
export function personalPrefix(email: string): string {
  const [local, domain] = email.split('@') as [string, string];
  return `${domain}/${local}`;
}

/**
 * What the auth service says about a chain name under `--policy auth` ('chain-roots'): the public
 * keys a chain of that name may be rooted at, or why no chain of that name may be created.
 *   personal: `<domain>/<local>/<db>`; `keys` is that user's signing key (the genesis must name it
 *             as its one root key);
 *   group:    `<group>/<db>`; `keys` are the owner and delegate signing keys of the current
 *             generation (every root key of the genesis must be one of them).
 * Public keys only: anyone may ask.
 */
export type ChainRoots =
  | { kind: 'personal'; chain: string; email: string; keys: Buffer[] }
  | { kind: 'group'; chain: string; group: string; keys: Buffer[] }
  | { kind: 'refused'; chain: string; reason: string };

export function encodeChainRoots(r: ChainRoots): Record<string, unknown> {
  return { ...r };
}

/** A 'chain-roots' answer as received (checked field by field: it decides who creates chains). */
export function decodeChainRoots(b: Record<string, unknown>, chain: string): ChainRoots {
  const bad = (why: string) => new NetError(`the auth service's chain-roots answer is malformed: ${why}`);
  if (b.chain !== chain) throw bad(`it names chain '${String(b.chain)}', not '${chain}'`);
  const keys = (): Buffer[] => {
    if (!Array.isArray(b.keys) || !b.keys.every((k) => k instanceof Uint8Array)) throw bad('keys');
    return (b.keys as Uint8Array[]).map((k) => Buffer.from(k));
  };
  switch (b.kind) {
    case 'personal':
      if (typeof b.email !== 'string') throw bad('email');
      return { kind: 'personal', chain, email: b.email, keys: keys() };
    case 'group':
      if (typeof b.group !== 'string') throw bad('group');
      return { kind: 'group', chain, group: b.group, keys: keys() };
    case 'refused':
      if (typeof b.reason !== 'string') throw bad('reason');
      return { kind: 'refused', chain, reason: b.reason };
    default:
      throw bad(`kind '${String(b.kind)}'`);
  }
}
