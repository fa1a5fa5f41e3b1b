// Token files and the local identity: mode 0600 (dir 0700), expiry, passphrase, tampering, issuer.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TEST_SCRYPT, generateSigningKeyPair } from '../../src/crypto/index.js';
import { publicKeyId } from '../../src/chain/index.js';
import {
  BadPassphrase,
  PassphraseRequired,
  Session,
  TokenExpired,
  TokenInvalid,
  createGroupRole,
  createIdentity,
  defaultConfigDir,
  loadOrCreateLocalIdentity,
  readTokenFile,
  writeTokenFile,
} from '../../src/session/index.js';

let tmp: string;
const T = 1_800_000_000_000;
const user = createIdentity('alice@example.org');
const role = createGroupRole('acme', 'observer', { write: false });
const session = Session.of(user, role);

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atefs-session-'));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const mode = async (p: string) => (await fsp.stat(p)).mode & 0o777;

describe('token files', () => {
  test('round trip, mode 0600 even under a permissive umask', async () => {
    const file = path.join(tmp, 'plain.token');
    const old = process.umask(0o000);
    try {
      await writeTokenFile(file, session, { ttlMs: 3600_000, now: () => T });
    } finally {
      process.umask(old);
    }
    expect(await mode(file)).toBe(0o600);
    const tok = await readTokenFile(file, { now: () => T + 1000 });
    expect(tok.issuedAt).toBe(T);
    expect(tok.expiresAt).toBe(T + 3600_000);
    expect(tok.session.user!.name).toBe('alice@example.org');
    expect(tok.session.writeKeyIds()).toEqual(session.writeKeyIds());
    expect(tok.session.roles()).toHaveLength(1);
    expect(tok.session.roles()[0]).toMatchObject({ name: 'acme', purpose: 'observer' });
    expect(tok.session.roles()[0]!.signing).toBeUndefined();
    expect(tok.session.readKey(session.chainReaders()[0]!.id)!.equals(user.readKey)).toBe(true);
    expect(tok.session.kemSecretKey(publicKeyId(role.kem!.publicKey))!.equals(role.kem!.secretKey)).toBe(true);
  });

  test('an expired token is refused with TokenExpired', async () => {
    const file = path.join(tmp, 'short.token');
    await writeTokenFile(file, session, { ttlMs: 60_000, now: () => T });
    await expect(readTokenFile(file, { now: () => T + 60_000 })).rejects.toBeInstanceOf(TokenExpired);
    await expect(readTokenFile(file, { now: () => T + 59_999 })).resolves.toBeDefined();
    await expect(readTokenFile(file, { now: () => T + 120_000, allowExpired: true })).resolves.toBeDefined();
  });

  test('passphrase: right one opens, wrong one is BadPassphrase, none is PassphraseRequired; no key bytes in clear', async () => {
    const file = path.join(tmp, 'sealed.token');
    await writeTokenFile(file, session, { ttlMs: 3600_000, passphrase: 'correct horse', scrypt: TEST_SCRYPT, now: () => T });
    expect(await mode(file)).toBe(0o600);
    const raw = await fsp.readFile(file);
    expect(raw.includes(user.readKey)).toBe(false);
    expect(raw.includes(user.signing.secretKey.subarray(2))).toBe(false);
    expect(raw.includes(Buffer.from('alice@example.org'))).toBe(false);
    const tok = await readTokenFile(file, { passphrase: 'correct horse', now: () => T });
    expect(tok.session.user!.readKey.equals(user.readKey)).toBe(true);
    await expect(readTokenFile(file, { passphrase: 'wrong horse', now: () => T })).rejects.toBeInstanceOf(BadPassphrase);
    await expect(readTokenFile(file, { now: () => T })).rejects.toBeInstanceOf(PassphraseRequired);
    // Expiry is inside the sealed part: checked after opening.
    await expect(readTokenFile(file, { passphrase: 'correct horse', now: () => T + 3600_000 })).rejects.toBeInstanceOf(TokenExpired);
  });

  test('a tampered file is refused', async () => {
    const plain = path.join(tmp, 'tamper-plain.token');
    await writeTokenFile(plain, session, { ttlMs: 3600_000, now: () => T });
    const raw = await fsp.readFile(plain);
    // Every single-byte change of the plain token is detected.
    for (const at of [1, 20, Math.floor(raw.length / 2), raw.length - 40, raw.length - 1]) {
      const t = Buffer.from(raw);
      t[at]! ^= 0x04;
      await fsp.writeFile(plain, t);
      await expect(readTokenFile(plain, { now: () => T }), `byte ${at}`).rejects.toBeInstanceOf(TokenInvalid);
    }
    await fsp.writeFile(plain, Buffer.from('not a token'));
    await expect(readTokenFile(plain)).rejects.toBeInstanceOf(TokenInvalid);

    const sealed = path.join(tmp, 'tamper-sealed.token');
    await writeTokenFile(sealed, session, { ttlMs: 3600_000, passphrase: 'pw', scrypt: TEST_SCRYPT, now: () => T });
    const s = await fsp.readFile(sealed);
    s[s.length - 5]! ^= 0x01;
    await fsp.writeFile(sealed, s);
    const err = await readTokenFile(sealed, { passphrase: 'pw', now: () => T }).catch((e) => e);
    expect(err).toBeInstanceOf(BadPassphrase);
  });

  test('issuer signature: verified, and required when trusted issuers are given', async () => {
    const issuer = generateSigningKeyPair();
    const other = generateSigningKeyPair();
    const file = path.join(tmp, 'issued.token');
    await writeTokenFile(file, session, { ttlMs: 3600_000, issuer, now: () => T });
    const tok = await readTokenFile(file, { now: () => T, trustedIssuers: [publicKeyId(issuer.publicKey)] });
    expect(tok.issuer).toBe(publicKeyId(issuer.publicKey));
    await expect(readTokenFile(file, { now: () => T, trustedIssuers: [publicKeyId(other.publicKey)] })).rejects.toBeInstanceOf(TokenInvalid);
    const unsigned = path.join(tmp, 'unsigned.token');
    await writeTokenFile(unsigned, session, { ttlMs: 3600_000, now: () => T });
    await expect(readTokenFile(unsigned, { now: () => T, trustedIssuers: [publicKeyId(issuer.publicKey)] })).rejects.toBeInstanceOf(TokenInvalid);
  });
});

describe('local identity', () => {
  test('created on first use (dir 0700, file 0600), then loaded', async () => {
    const dir = path.join(tmp, 'xdg', 'atefs');
    const first = await loadOrCreateLocalIdentity(dir);
    expect(first.created).toBe(true);
    expect(await mode(dir)).toBe(0o700);
    expect(await mode(first.file)).toBe(0o600);
    const again = await loadOrCreateLocalIdentity(dir);
    expect(again.created).toBe(false);
    expect(again.identity.signing.publicKey.equals(first.identity.signing.publicKey)).toBe(true);
    expect(again.identity.readKey.equals(first.identity.readKey)).toBe(true);
    // Loose permissions are tightened.
    await fsp.chmod(first.file, 0o644);
    await loadOrCreateLocalIdentity(dir);
    expect(await mode(first.file)).toBe(0o600);
  });

  test('two concurrent first uses end with one identity', async () => {
    const dir = path.join(tmp, 'race', 'atefs');
    const [a, b] = await Promise.all([loadOrCreateLocalIdentity(dir), loadOrCreateLocalIdentity(dir)]);
    expect(a.identity.signing.publicKey.equals(b.identity.signing.publicKey)).toBe(true);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
    expect((await fsp.readdir(dir)).sort()).toEqual(['identity.token']);
  });

  test('default directory follows XDG_CONFIG_HOME', () => {
    expect(defaultConfigDir({ XDG_CONFIG_HOME: '/x/cfg' })).toBe('/x/cfg/atefs');
    expect(defaultConfigDir({})).toBe(path.join(os.homedir(), '.config', 'atefs'));
    expect(defaultConfigDir({ XDG_CONFIG_HOME: 'relative' })).toBe(path.join(os.homedir(), '.config', 'atefs'));
  });
});
