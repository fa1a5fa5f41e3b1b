// The auth service of a real `atedb solo --policy auth` (library level): users, logins, tokens,
// lockout, TOTP for sudo, chain roots, and what the service stores.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openChain } from '../../src/api/index.js';
import {
  AuthClient, LOGIN_FAILED, createUser, decodeSignedClaims, encodeSignedClaims, login, signClaims, userDetails, type Claims,
} from '../../src/net/index.js';
import { Session, TokenExpired, createIdentity, readTokenFile, writeTokenFile } from '../../src/session/index.js';
import { decodeScryptParams, generateSigningKeyPair, keyFingerprint } from '../../src/crypto/index.js';
import { HEADER_LEN } from '../../src/crypto/algorithms.js';
import { encodeValue } from '../../src/api/index.js';
import { deriveLoginKeys, loadOrCreateLocalIdentity } from '../../src/session/index.js';
import { AuthStore } from '../../server/auth/store.js';
import { totpCode } from '../../server/auth/totp.js';
import { authRefusal as refusal, startSolo, tempDir } from './atedb/harness.js';

const AUTH_ARGS = ['--policy', 'auth', '--auth-kdf', 'test', '--login-max-failures', '3', '--login-lockout', '1500'];

describe('auth service', () => {
  it('create-user, login, token, personal chain; wrong password = unknown user; lockout; expiry; tamper; foreign issuer; chain roots', async () => {
    const solo = await startSolo({ args: AUTH_ARGS });
    const url = `tcp://127.0.0.1:${solo.port}`;
    const config = await tempDir('auth-config-');
    const kh = { knownHosts: join(config, 'known_hosts') };

    const a = await createUser(url, 'Alice@Example.org', 'correct horse', kh);
    expect(a.email).toBe('alice@example.org');
    expect(a.uid).toBeGreaterThanOrEqual(1000);
    const b = await createUser(url, 'bob@example.org', 'battery staple', kh);
    expect(b.uid).toBe(a.uid + 1);
    expect((await refusal(createUser(url, 'alice@example.org', 'x', kh))).message).toMatch(/already exists/);
    expect((await refusal(createUser(url, 'not an email', 'x', kh))).code).toBe('invalid-email');

    // Login gives the user's keys (opened here) and service-signed claims.
    const la = await login(url, 'alice@example.org', 'correct horse', { ...kh, ttlMs: 60_000 });
    expect(la.decoded.uid).toBe(a.uid);
    expect(la.decoded.key).toBe(a.fingerprint);
    expect(la.session.user!.name).toBe('alice@example.org');
    const tokenFile = join(config, 'token');
    await writeTokenFile(tokenFile, la.session, { ttlMs: null, expiresAt: la.decoded.expiresAt, claims: la.claims });
    expect((await fsp.stat(tokenFile)).mode & 0o777).toBe(0o600);
    const details = await userDetails(url, { session: la.session, claims: la.claims }, kh);
    expect(details.uid).toBe(a.uid);

    // The token opens (and creates) alice's personal chain; bob cannot create one of hers.
    const tok = await readTokenFile(tokenFile);
    const chain = await openChain(`${url}/example.org/alice/docs`, { session: tok.session, dir: await tempDir('auth-a-'), configDir: config });
    const k = await chain.transact((tx) => tx.store({ hello: 'world' }));
    expect(chain.load<{ hello: string }>(k).value.hello).toBe('world');
    await chain.close();
    const lb = await login(url, 'bob@example.org', 'battery staple', kh);
    await expect(openChain(`${url}/example.org/alice/bobs`, { session: lb.session, dir: await tempDir('auth-b-'), configDir: config }))
      .rejects.toThrow(/must be rooted at alice@example.org's signing key/);
    await expect(openChain(`${url}/nogroup/docs`, { session: lb.session, dir: await tempDir('auth-b-'), configDir: config }))
      .rejects.toThrow(/group 'nogroup', which does not exist/);
    await expect(openChain(`${url}/loose`, { session: lb.session, dir: await tempDir('auth-b-'), configDir: config }))
      .rejects.toThrow(/under the auth policy/);

    // Wrong password and unknown user: the same answer.
    const wrong = await refusal(login(url, 'bob@example.org', 'wrong', kh));
    const unknown = await refusal(login(url, 'nobody@example.org', 'wrong', kh));
    expect(wrong.message).toBe(LOGIN_FAILED);
    expect(unknown.message).toBe(LOGIN_FAILED);
    expect(wrong.code).toBe(unknown.code);
    // Lockout after 3 failures in a row (counted for unknown accounts too): even the right
    // password is refused until it ends, then it works.
    await refusal(login(url, 'bob@example.org', 'wrong', kh));
    await refusal(login(url, 'bob@example.org', 'wrong', kh));
    const locked = await refusal(login(url, 'bob@example.org', 'battery staple', kh));
    expect(locked.code).toBe('locked');
    expect(locked.message).toMatch(/too many failed logins/);
    for (let i = 0; i < 2; i++) await refusal(login(url, 'nobody@example.org', 'wrong', kh));
    expect((await refusal(login(url, 'nobody@example.org', 'wrong', kh))).code).toBe('locked');
    await new Promise((r) => setTimeout(r, 1700));
    const lb2 = await login(url, 'bob@example.org', 'battery staple', kh);
    expect(lb2.decoded.email).toBe('bob@example.org');

    // Expired token: refused when read, and by the service.
    const short = await login(url, 'alice@example.org', 'correct horse', { ...kh, ttlMs: 1 });
    const shortFile = join(config, 'short');
    await writeTokenFile(shortFile, short.session, { ttlMs: null, expiresAt: short.decoded.expiresAt, claims: short.claims });
    await new Promise((r) => setTimeout(r, 20));
    await expect(readTokenFile(shortFile)).rejects.toBeInstanceOf(TokenExpired);
    const exp = await refusal(userDetails(url, { session: short.session, claims: short.claims }, kh));
    expect(exp.code).toBe('token-expired');
    expect(exp.message).toMatch(/token refused: expired/);

    // Tampered claims (uid changed after signing) and claims of another service.
    const s = decodeSignedClaims(la.claims);
    const forged = Buffer.from(s.claims);
    forged[forged.indexOf(Buffer.from('uid')) + 4] ^= 1;
    const tampered = await refusal(userDetails(url, { session: la.session, claims: encodeSignedClaims({ ...s, claims: forged }) }, kh));
    expect(tampered.message).toMatch(/tampered/);
    const other = generateSigningKeyPair();
    const claims: Claims = { ...la.decoded, issuer: keyFingerprint(other.publicKey) };
    const foreign = await refusal(userDetails(url, { session: la.session, claims: encodeSignedClaims(signClaims(claims, other)) }, kh));
    expect(foreign.message).toMatch(/issued by another service/);
    // Claims of alice shown on a connection that proved another key.
    const stolen = await refusal(userDetails(url, { session: Session.of(createIdentity('mallory')), claims: la.claims }, kh));
    expect(stolen.message).toMatch(/did not prove the token's user key/);

    // TOTP: sudo needs a valid, unused code; users without TOTP get no sudo token.
    const t = await createUser(url, 'carol@example.org', 'pw carol', { ...kh, totp: true });
    expect(t.totpSecret).toMatch(/^[A-Z2-7]+$/);
    expect(t.totpUrl).toMatch(/^otpauth:\/\/totp\//);
    expect((await refusal(login(url, 'carol@example.org', 'pw carol', { ...kh, sudo: true, code: '000000' }))).code).toBe('wrong-code');
    const code = totpCode(t.totpSecret!, 'carol@example.org');
    const sudo = await login(url, 'carol@example.org', 'pw carol', { ...kh, sudo: true, code });
    expect(sudo.decoded.sudo).toBe(true);
    expect(sudo.decoded.expiresAt - sudo.decoded.issuedAt).toBeLessThanOrEqual(12 * 3_600_000);
    expect((await refusal(login(url, 'carol@example.org', 'pw carol', { ...kh, sudo: true, code }))).message).toMatch(/already used/);
    expect((await refusal(login(url, 'bob@example.org', 'battery staple', { ...kh, sudo: true, code: '123456' }))).code).toBe('no-totp');

    // Per address: failures on many accounts from one address lock the address (12 = 4 x 3 here),
    // then even another account's right password is refused from it until the lock ends.
    let attempts = 0;
    for (; attempts < 12; attempts++) {
      if ((await refusal(login(url, `guess${attempts}@example.org`, 'guess', kh))).code === 'locked') break;
    }
    expect(attempts).toBeLessThan(12);
    expect((await refusal(login(url, 'alice@example.org', 'correct horse', kh))).code).toBe('locked');
    await new Promise((r) => setTimeout(r, 1700));
    expect((await login(url, 'alice@example.org', 'correct horse', kh)).decoded.email).toBe('alice@example.org');

    // A raw client: login without asking for the salt first (no challenge) is refused.
    const raw = await AuthClient.connect(url, kh);
    expect((await refusal(raw.request('login', { email: 'alice@example.org', proof: Buffer.alloc(10) }))).code).toBe('no-challenge');
    // The salt of an unknown email looks like a user's: same parameters, stable across asks.
    const known = await raw.request<{ kdf: Uint8Array }>('salt', { email: 'alice@example.org' });
    const u1 = await raw.request<{ kdf: Uint8Array }>('salt', { email: 'ghost@example.org' });
    const u2 = await raw.request<{ kdf: Uint8Array }>('salt', { email: 'ghost@example.org' });
    expect(Buffer.from(u1.kdf).equals(Buffer.from(u2.kdf))).toBe(true);
    expect(decodeScryptParams(Buffer.from(u1.kdf)).params).toEqual(decodeScryptParams(Buffer.from(known.kdf)).params);
    expect(u1.kdf.length).toBe(known.kdf.length);
    raw.close();

    // What the service stores (its state chain, its key file) holds no password, no login key or
    // key-encryption key, no unwrapped user key: scan every file for the secrets this test knows.
    await solo.kill('SIGTERM');
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await fsp.readdir(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else files.push(p);
      }
    };
    await walk(solo.dataDir);
    expect(files.some((f) => f.includes(join('auth', 'state')))).toBe(true);
    const user = la.session.user!;
    const secrets: Array<[string, Buffer]> = [
      ['password', Buffer.from('correct horse')],
      ['signing secret', user.signing.secretKey.subarray(HEADER_LEN)],
      ['KEM secret', user.kem.secretKey.subarray(HEADER_LEN)],
      ['read key', user.readKey],
    ];
    // Open the state as the service does (its key from its directory) and look at alice's record.
    const id = await loadOrCreateLocalIdentity(join(solo.dataDir, 'auth'));
    expect(id.created).toBe(false);
    const store = await AuthStore.open(join(solo.dataDir, 'auth'), id.session, (pk) => keyFingerprint(pk));
    const rec = store.users.get('alice@example.org')!;
    await store.close();
    const { params, salt } = decodeScryptParams(rec.kdf);
    const lk = await deriveLoginKeys('correct horse', salt, params);
    secrets.push(['login secret', lk.login.secretKey.subarray(HEADER_LEN)], ['key-encryption key', lk.kek]);
    // The verifier is the login key's public half, and nothing else in the record is secret.
    expect(rec.loginPk.equals(lk.login.publicKey)).toBe(true);
    expect(Object.keys(rec).sort()).toEqual(['createdAt', 'email', 'kdf', 'kemPk', 'keyring', 'loginPk', 'signPk', 'totp', 'totpLastStep', 'uid']);
    const recordBytes = encodeValue(rec);
    for (const [what, secret] of secrets) expect(recordBytes.includes(secret), `${what} in the user record`).toBe(false);
    for (const f of files) {
      const data = await fsp.readFile(f);
      for (const [what, secret] of secrets) expect(data.includes(secret), `${what} found in ${f}`).toBe(false);
    }

    // A restart keeps users and the uid counter: alice logs in, a new user gets the next uid.
    const again = await startSolo({ dataDir: solo.dataDir, args: AUTH_ARGS });
    const url2 = `tcp://127.0.0.1:${again.port}`;
    expect((await login(url2, 'alice@example.org', 'correct horse', kh)).decoded.uid).toBe(a.uid);
    expect((await createUser(url2, 'dave@example.org', 'dave password', kh)).uid).toBe(a.uid + 3);
    await again.kill('SIGTERM');
  });

  it('atedb auth: the service alone, hosting no chains; atedb solo --no-auth answers no auth requests', async () => {
    const alone = await startSolo({ command: 'auth', args: ['--auth-kdf', 'test', '--max-new-users', '1'] });
    const url = `tcp://127.0.0.1:${alone.port}`;
    const config = await tempDir('auth-alone-');
    const kh = { knownHosts: join(config, 'known_hosts') };
    await createUser(url, 'erin@example.org', 'erin password', kh);
    expect((await refusal(createUser(url, 'frank@example.org', 'frank password', kh))).message).toMatch(/^too many accounts created from this address: try again in \d+ s$/);
    const l = await login(url, 'erin@example.org', 'erin password', kh);
    await expect(openChain(`${url}/example.org/erin/docs`, { session: l.session, dir: await tempDir('auth-alone-c-'), configDir: config }))
      .rejects.toThrow(/runs the auth service only/);
    await alone.kill('SIGTERM');
    const bare = await startSolo({ args: ['--no-auth'] });
    const r = await refusal(createUser(`tcp://127.0.0.1:${bare.port}`, 'x@example.org', 'x password', kh));
    expect(r.message).toBe('this server runs no auth service');
    await bare.kill('SIGTERM');
  });
});
