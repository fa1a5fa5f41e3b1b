// The auth commands as a user runs them: real `atedb solo --policy auth` and `atefs` processes
// (passwords on stdin), then the library opening a chain with the token file they wrote.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openChain } from '../../src/api/index.js';
import { totpCode } from '../../server/auth/totp.js';
import { run } from '../e2e/harness.js';
import { ROOT, startSolo, tempDir } from './atedb/harness.js';

const ATEFS = join(ROOT, 'dist', 'cli', 'atefs.js');

describe('atefs auth commands', () => {
  it('create-user, create-token, token view, user details, groups, sudo, expiry, one-line refusals', async () => {
    const solo = await startSolo({ args: ['--policy', 'auth', '--auth-kdf', 'test', '--login-max-failures', '3'] });
    const url = `tcp://127.0.0.1:${solo.port}`;
    const home = await tempDir('auth-cli-home-');
    const env = { ...process.env, XDG_CONFIG_HOME: join(home, 'config'), XDG_DATA_HOME: join(home, 'data'), ATEFS_ALLOW_WEAK_KDF: '1', ATEFS_AUTH: url };
    const atefs = (args: string[], input?: string) => run(process.execPath, [ATEFS, ...args], { env, timeout: 120_000, ...(input !== undefined ? { input } : {}) });
    const ok = async (args: string[], input?: string) => {
      const r = await atefs(args, input);
      expect(r.code, `atefs ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const refused = async (args: string[], input?: string) => {
      const r = await atefs(args, input);
      expect(r.code, `atefs ${args.join(' ')}`).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines, `atefs ${args.join(' ')}: one line`).toHaveLength(1);
      return lines[0]!;
    };

    const alice = JSON.parse(await ok(['create-user', 'alice@example.org', '--password-stdin', '--totp', '--json'], 'alice password\n'));
    expect(alice.uid).toBeGreaterThanOrEqual(1000);
    expect(alice.totpSecret).toMatch(/^[A-Z2-7]+$/);
    const bobOut = await ok(['create-user', 'bob@example.org', '--password-stdin'], 'bob password\n');
    expect(bobOut).toMatch(/^created user bob@example.org uid \d+ fingerprint [a-z0-9-]+\n$/);
    expect(await refused(['create-user', 'alice@example.org', '--password-stdin'], 'another password\n')).toBe('user alice@example.org already exists');
    expect(await refused(['create-user', 'x@example.org', '--password-stdin'], 'short\n')).toMatch(/shorter than 8/);

    // Tokens: default file in a 0700 directory, mode 0600.
    const created = await ok(['create-token', 'alice@example.org', '--password-stdin', '--expires', '2h'], 'alice password\n');
    const aliceToken = join(home, 'config', 'atefs', 'token');
    expect(created).toContain(aliceToken);
    expect((await fsp.stat(aliceToken)).mode & 0o777).toBe(0o600);
    expect((await fsp.stat(join(home, 'config', 'atefs'))).mode & 0o777).toBe(0o700);
    // A token sealed under a passcode (production scrypt: kept to one write and one read here).
    const sealedToken = join(home, 'bob-sealed.token');
    await ok(['create-token', 'bob@example.org', '--password-stdin', '--out', sealedToken, '--passcode', 'bob passcode'], 'bob password\n');
    expect((await fsp.stat(sealedToken)).mode & 0o777).toBe(0o600);
    const bobToken = join(home, 'bob.token');
    await ok(['create-token', 'bob@example.org', '--password-stdin', '--out', bobToken], 'bob password\n');
    expect(await refused(['create-token', 'bob@example.org', '--password-stdin', '--out', join(home, 'x')], 'wrong password\n')).toBe('login failed: wrong email or password');
    expect(await refused(['create-token', 'nobody@example.org', '--password-stdin', '--out', join(home, 'x')], 'wrong password\n')).toBe('login failed: wrong email or password');

    const view = JSON.parse(await ok(['token', 'view', '--json']));
    expect(view.email).toBe('alice@example.org');
    expect(view.uid).toBe(alice.uid);
    expect(view.sudo).toBe(false);
    expect(Date.parse(view.expiresAt) - Date.parse(view.issuedAt)).toBe(2 * 3600e3);
    const plainView = await ok(['token', 'view']);
    expect(plainView).toMatch(/expires: /);
    expect(plainView).not.toMatch(/secret/i);
    expect(await refused(['token', 'view', '--token-path', sealedToken])).toMatch(/passphrase/);
    expect(JSON.parse(await ok(['token', 'view', '--token-path', sealedToken, '--passcode', 'bob passcode', '--json'])).email).toBe('bob@example.org');
    expect(await ok(['user', 'details'])).toMatch(new RegExp(`uid: ${alice.uid}`));

    // Groups through the CLI.
    expect(await refused(['group', 'create', 'acme', '--token-path', join(home, 'none')])).toMatch(/no token at/);
    expect(await ok(['group', 'create', 'acme'])).toMatch(/^created group acme gid \d+/);
    await ok(['group', 'add-user', 'acme', 'contributor', 'bob@example.org']);
    expect(await refused(['group', 'add-user', 'acme', 'owner', 'bob@example.org'])).toMatch(/sudo token/);
    const det = JSON.parse(await ok(['group', 'details', 'acme', '--json']));
    expect(det.members.map((m: { email: string }) => m.email).sort()).toEqual(['alice@example.org', 'bob@example.org']);
    const bobArgs = ['--token-path', bobToken];
    expect(JSON.parse(await ok(['group', 'details', 'acme', '--json', ...bobArgs])).hidden).toBe(true);
    expect(await ok(['token', 'gather', 'acme', ...bobArgs])).toMatch(/contributor; 2 new keys/);
    expect(JSON.parse(await ok(['token', 'view', '--json', ...bobArgs])).keys.sort()).toEqual(['acme:contributor#0', 'acme:observer#0']);
    expect(await refused(['group', 'remove-user', 'acme', 'observer', 'bob@example.org'])).toBe('bob@example.org is contributor of acme, not observer');
    expect(await ok(['group', 'remove-user', 'acme', 'contributor', 'bob@example.org'])).toMatch(/new keys for contributor, observer/);
    expect(await refused(['token', 'gather', 'acme', ...bobArgs])).toBe("bob@example.org is not a member of 'acme'");

    // Sudo: needs the TOTP code; then ownership changes go through.
    expect(await refused(['create-token', 'alice@example.org', '--password-stdin', '--sudo', '--code', '000000', '--out', join(home, 'x')], 'alice password\n'))
      .toBe('login failed: the TOTP code is wrong or already used');
    const sudoToken = join(home, 'sudo.token');
    await ok(['create-token', 'alice@example.org', '--password-stdin', '--sudo', '--code', totpCode(alice.totpSecret, 'alice@example.org'), '--out', sudoToken], 'alice password\n');
    expect(JSON.parse(await ok(['token', 'view', '--json', '--token-path', sudoToken])).sudo).toBe(true);
    await ok(['group', 'add-user', 'acme', 'owner', 'bob@example.org', '--token-path', sudoToken]);

    // An expired token: one line, everywhere.
    const shortToken = join(home, 'short.token');
    await ok(['create-token', 'alice@example.org', '--password-stdin', '--expires', '1s', '--out', shortToken], 'alice password\n');
    await new Promise((r) => setTimeout(r, 1200));
    expect(await refused(['token', 'view', '--token-path', shortToken])).toMatch(/^token expired at /);
    expect(await refused(['user', 'details', '--token-path', shortToken])).toMatch(/^token expired at /);
    await expect(openChain(`${url}/example.org/alice/docs`, { tokenPath: shortToken, dir: await tempDir('auth-cli-x-'), configDir: join(home, 'config', 'atefs') }))
      .rejects.toThrow(/token expired at/);

    // The token create-token wrote opens alice's personal chain through the library.
    const c = await openChain(`${url}/example.org/alice/docs`, { tokenPath: aliceToken, dir: await tempDir('auth-cli-chain-'), configDir: join(home, 'config', 'atefs') });
    const k = await c.transact((tx) => tx.store({ from: 'the CLI token' }));
    expect(c.load<{ from: string }>(k).value.from).toBe('the CLI token');
    await c.close();
    await solo.kill('SIGTERM');
  }, 300_000);
});
