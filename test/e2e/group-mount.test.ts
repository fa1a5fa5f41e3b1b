// Personal and group chains mounted with an auth service's token (issue 16), through real
// processes: `atedb solo --policy auth` on 127.0.0.1, `atefs create-user` / `create-token` /
// `group create` / `group add-user`, and `atefs mount DIR tcp://127.0.0.1:PORT/...` daemons.
//   - alice mounts her personal chain example.org/alice/notes with her token (and with a
//     passcode-encrypted copy of it); bob cannot create a chain under alice's name;
//   - alice creates group acme, adds bob as contributor and mounts acme/docs: a 0660 file is
//     sealed for the group, a 0600 file for alice's own key; bob mounts it with his token, reads
//     and edits the 0660 file, gets EACCES (not EIO) on the 0600 one, and creates a file of his
//     own; new files carry the writer's token uid and the group's gid; he lists alice's 0600 file
//     (stat and read: EACCES), cannot chmod or chown alice's 0660 file or the mount root (EPERM),
//     and cannot change the group root, neither through the library nor with a commit forged by
//     hand (the server refuses it), while both still create files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, availableTransports, mountForTest, pollUntil, run, sh, sleep, unmountAll, type TestMount } from './harness.js';
import { RawClient, type Solo, startSolo } from '../integration/atedb/harness.js';
import { meta, rawCommit } from '../unit/chain-fixtures.js';
import { openChain } from '../../src/api/index.js';
import { publicKeyId } from '../../src/chain/index.js';
import { type Message, currentRole, gather } from '../../src/net/index.js';
import { type Identity, readTokenFile } from '../../src/session/index.js';
import { GROUP_ROOT_KEY } from '../../fs/chain-store/keys.js';

const transports = availableTransports().filter((t) => t === 'kernel' || t === 'fuse-native');

let root: string;
let solo: Solo;
let auth: string;
const conf = (user: string) => join(root, `config-${user}`);
const envOf = (user: string) => ({ XDG_CONFIG_HOME: conf(user), ATEFS_ALLOW_WEAK_KDF: '1', ATEFS_MACHINE: user, ATEFS_UPLOAD_TIMEOUT_MS: '8000' });
const ids: Record<string, number> = {};
let acmeGid = 0;

/** `atefs ARGS` as `user` (its own config dir), stdin `input`; fails the test on a non-zero exit. */
async function atefs(user: string, args: string[], input?: string): Promise<string> {
  const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, CI: 'true', ...envOf(user) }, ...(input !== undefined ? { input } : {}), timeout: 60_000 });
  if (r.code !== 0) throw new Error(`atefs ${args.join(' ')} as ${user} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const until = <T,>(what: string, fn: () => Promise<T | undefined | false>, ms = 10_000): Promise<T> => pollUntil(what, fn, ms, 50);

/** The error code of reading `p` (null when it reads). */
const readError = (p: string) => fsp.readFile(p).then(() => null, (e: NodeJS.ErrnoException) => e.code ?? String(e));

beforeAll(async () => {
  root = await fsp.mkdtemp(join(tmpdir(), 'atefs-group-'));
  solo = await startSolo({ dataDir: join(root, 'db'), args: ['--policy', 'auth', '--auth-kdf', 'test'] });
  auth = `tcp://127.0.0.1:${solo.port}`;
  for (const u of ['alice', 'bob', 'carol']) {
    const created = JSON.parse(await atefs(u, ['create-user', `${u}@example.org`, '--auth', auth, '--password-stdin', '--json'], `password of ${u}\n`)) as { uid: number };
    ids[u] = created.uid;
    await atefs(u, ['create-token', `${u}@example.org`, '--auth', auth, '--password-stdin'], `password of ${u}\n`);
  }
  const g = JSON.parse(await atefs('alice', ['group', 'create', 'acme', '--auth', auth, '--json'])) as { gid: number };
  acmeGid = g.gid;
  await atefs('alice', ['group', 'add-user', 'acme', 'contributor', 'bob@example.org', '--auth', auth]);
  await atefs('alice', ['group', 'add-user', 'acme', 'observer', 'carol@example.org', '--auth', auth]);
}, 120_000);

afterAll(async () => {
  await unmountAll();
  await solo?.kill().catch(() => undefined);
  if (root) await fsp.rm(root, { recursive: true, force: true });
});

describe.each(transports)('token mounts of personal and group chains (%s)', (transport) => {
  const mount = (user: string, chain: string, extra: string[] = [], o: { expectErrors?: boolean } = {}): Promise<TestMount> => mountForTest({
    transport, temp: false, extraArgs: [`${auth}/${chain}`, '--log-path', join(root, `state-${transport}-${user}-${chain.replace(/\//g, '+')}`), ...extra],
    env: envOf(user), ...(o.expectErrors ? { expectErrors: true } : {}),
  });

  it('a personal chain with the default token and with a passcode-encrypted token; nobody else creates it', async () => {
    const chain = `example.org/alice/notes-${transport}`;
    let A = await mount('alice', chain);
    try {
      await fsp.writeFile(join(A.dir, 'todo.txt'), 'buy milk\n');
      await A.checkHealthy();
    } finally {
      await A.unmount();
    }
    // The same chain through a token file encrypted under a passcode (given in the environment).
    const locked = join(conf('alice'), 'locked.token');
    await atefs('alice', ['create-token', 'alice@example.org', '--auth', auth, '--password-stdin', '--out', locked, '--passcode', 'open sesame'], 'password of alice\n');
    A = await mountForTest({
      transport, temp: false, extraArgs: [`${auth}/${chain}`, '--log-path', join(root, `state-${transport}-alice-locked`), '--token-path', locked],
      env: { ...envOf('alice'), ATEFS_PASSCODE: 'open sesame' },
    });
    try {
      expect(await until('todo.txt through the locked token', async () => (await fsp.readFile(join(A.dir, 'todo.txt'), 'utf8').catch(() => undefined)))).toBe('buy milk\n');
      await A.checkHealthy();
    } finally {
      await A.unmount();
    }
    // Bob's token cannot create a chain under alice's name (the auth policy's chain-root check).
    const dir = await fsp.mkdtemp(join(tmpdir(), 'atefs-group-refused-'));
    try {
      const r = await run(process.execPath, [CLI, 'mount', dir, `${auth}/example.org/alice/bobs-${transport}`, '--transport', transport, '--log-path', join(root, `state-${transport}-bob-refused`)], {
        env: { ...process.env, CI: 'true', ...envOf('bob') }, timeout: 60_000,
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/must be rooted at alice@example\.org's signing key/);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a group chain: 0660 shared with a contributor, 0600 EACCES to him; new files carry token ids', async () => {
    const chain = `acme/docs-${transport}`;
    const A = await mount('alice', chain);
    let B: TestMount | null = null;
    let C: TestMount | null = null;
    try {
      const a = (p: string) => join(A.dir, p);
      // The root of a group chain belongs to its creator in the group, setgid.
      const rootStat = await fsp.stat(A.dir);
      expect([rootStat.uid, rootStat.gid, (rootStat.mode & 0o7777).toString(8)]).toEqual([ids.alice, acmeGid, '2775']);
      await fsp.writeFile(a('shared.txt'), 'shared v1\n');
      await fsp.chmod(a('shared.txt'), 0o660);
      await fsp.writeFile(a('secret.txt'), 'alice only\n', { mode: 0o600 });
      await fsp.writeFile(a('readme.txt'), 'read, do not touch\n');
      await fsp.chmod(a('readme.txt'), 0o644);
      await fsp.mkdir(a('sub'));
      const st = await fsp.stat(a('shared.txt'));
      expect([st.uid, st.gid]).toEqual([ids.alice, acmeGid]);
      await A.checkHealthy();

      // Bob, with his token named explicitly.
      B = await mount('bob', chain, ['--token-path', join(conf('bob'), 'atefs', 'token')]);
      const b = (p: string) => join(B!.dir, p);
      expect(await until('shared.txt on bob', async () => (await fsp.readFile(b('shared.txt'), 'utf8').catch(() => undefined)))).toBe('shared v1\n');
      // The 0600 file is sealed for alice's key alone: EACCES for bob, never EIO.
      expect(await until('secret.txt refused on bob', async () => {
        const code = await readError(b('secret.txt'));
        return code === 'EACCES' ? code : code === 'ENOENT' ? undefined : `unexpected ${code}`;
      })).toBe('EACCES');
      expect((await sh(`cat ${b('secret.txt')}`)).stderr).toMatch(/Permission denied/);
      // Group-readable but not group-writable: bob reads it; his key may not change it, so writing
      // (as root, past the mode bits) is EACCES at once, and his mount stays writable.
      expect(await fsp.readFile(b('readme.txt'), 'utf8')).toBe('read, do not touch\n');
      expect(await fsp.writeFile(b('readme.txt'), 'bob was here\n').then(() => 'written', (e: NodeJS.ErrnoException) => e.code)).toBe('EACCES');
      expect(await fsp.rm(b('readme.txt')).then(() => 'removed', (e: NodeJS.ErrnoException) => e.code)).toBe('EACCES');
      // Bob edits the shared file; alice reads his edit.
      await fsp.writeFile(b('shared.txt'), 'shared v2 by bob\n');
      expect(await until('bob\'s edit on alice', async () => {
        const t = await fsp.readFile(a('shared.txt'), 'utf8');
        return t === 'shared v2 by bob\n' ? t : undefined;
      })).toBe('shared v2 by bob\n');
      // ...but its mode and owner are alice's and the group managers' (the file's admin ACL): chmod
      // and chown are EPERM for him although he runs as root (his keys say no, not the kernel's
      // mode check), and so they are on the mount root, which alice made.
      const perm = (p: Promise<unknown>) => p.then(() => 'done', (e: NodeJS.ErrnoException) => e.code);
      expect(await perm(fsp.chmod(b('shared.txt'), 0o600))).toBe('EPERM');
      expect(await perm(fsp.chown(b('shared.txt'), ids.bob!, acmeGid))).toBe('EPERM');
      expect(await perm(fsp.chmod(B.dir, 0o700))).toBe('EPERM');
      expect((await fsp.stat(b('shared.txt'))).mode & 0o7777).toBe(0o660);
      expect((await fsp.stat(a('shared.txt'))).mode & 0o7777).toBe(0o660);
      // A contributor creates files (under the group root) with his uid and the group's gid.
      await fsp.writeFile(b('sub/from-bob.txt'), 'hello from bob\n');
      await fsp.chmod(b('sub/from-bob.txt'), 0o664);
      const fb = await fsp.stat(b('sub/from-bob.txt'));
      expect([fb.uid, fb.gid]).toEqual([ids.bob, acmeGid]);
      expect(await until('bob\'s file on alice', async () => (await fsp.readFile(a('sub/from-bob.txt'), 'utf8').catch(() => undefined)))).toBe('hello from bob\n');
      const fa = await fsp.stat(a('sub/from-bob.txt'));
      expect([fa.uid, fa.gid]).toEqual([ids.bob, acmeGid]);
      // Alice still reads her own secret, and edits bob's group-writable file.
      expect(await fsp.readFile(a('secret.txt'), 'utf8')).toBe('alice only\n');
      expect(await fsp.readFile(a('readme.txt'), 'utf8')).toBe('read, do not touch\n');
      await fsp.appendFile(a('sub/from-bob.txt'), 'and from alice\n');
      expect(await until('alice\'s append on bob', async () => {
        const t = await fsp.readFile(b('sub/from-bob.txt'), 'utf8');
        return t.endsWith('and from alice\n') ? t : undefined;
      })).toBe('hello from bob\nand from alice\n');
      // chmod across the line re-seals the content (blocks, not only the inline data of small files).
      const big = Buffer.alloc(200_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
      await fsp.writeFile(a('big.bin'), big);
      await fsp.chmod(a('big.bin'), 0o660);
      expect(await until('big.bin on bob', async () => {
        const got = await fsp.readFile(b('big.bin')).catch(() => undefined);
        return got?.equals(big) ? true : undefined;
      })).toBe(true);
      await fsp.chmod(a('big.bin'), 0o600);
      expect(await until('big.bin closed to bob', async () => ((await readError(b('big.bin'))) === 'EACCES' ? true : undefined))).toBe(true);
      expect((await fsp.readFile(a('big.bin'))).equals(big)).toBe(true);
      await fsp.chmod(a('big.bin'), 0o640);
      expect(await until('big.bin open to bob again', async () => {
        const got = await fsp.readFile(b('big.bin')).catch(() => undefined);
        return got?.equals(big) ? true : undefined;
      })).toBe(true);
      await A.checkHealthy();
      await B.checkHealthy();

      // Bob lists alice's 0600 file (its name is sealed under the directory's key, which he holds);
      // its attributes and content are EACCES to him.
      expect(await fsp.readdir(B.dir)).toContain('secret.txt');
      expect(await fsp.stat(b('secret.txt')).then(() => 'stat', (e: NodeJS.ErrnoException) => e.code)).toBe('EACCES');
      expect((await sh(`ls -1 ${B.dir}`)).stdout.split('\n')).toContain('secret.txt');

      // Bob creates under the group root, but never changes it (its write ACL admits only owners
      // and delegates; its children ACL contributors too). Through the library with his token's
      // keys the change is refused before anything is signed (NoWriteAuthority: EACCES in a
      // mount); the same change forged by hand and signed by his contributor key is refused by
      // the server with its reason; and the group root is as alice's mount wrote it.
      const bobToken = await readTokenFile(join(conf('bob'), 'atefs', 'token'));
      const bobConfig = join(conf('bob'), 'atefs');
      const knownHosts = join(bobConfig, 'known_hosts');
      for (const p of (await gather(auth, { session: bobToken.session, claims: bobToken.claims! }, 'acme', { knownHosts })).roles) bobToken.session.add(p);
      const contributor = currentRole(bobToken.session, 'acme', 'contributor')!.signing!;
      const bobKey = publicKeyId(contributor.publicKey);
      const lib = await openChain(`${auth}/${chain}`, { session: bobToken.session, configDir: bobConfig, dir: join(root, `lib-bob-${transport}`) });
      try {
        const before = lib.view.node(GROUP_ROOT_KEY)!;
        expect(before.write.mode === 'any' && before.write.keys.includes(bobKey)).toBe(false);
        expect(before.children?.mode === 'any' && before.children.keys.includes(bobKey)).toBe(true);
        const refused = await lib.transact((tx) => void tx.setAcl(GROUP_ROOT_KEY, { write: { mode: 'any', keys: [bobKey] } })).then(() => null, (e: Error) => e);
        expect(refused?.name).toBe('NoWriteAuthority');
        expect(refused?.message).toMatch(/no key the write ACL \(any\) of/);
        const forged = rawCommit(Buffer.from(lib.genesisHash, 'hex'), [{
          meta: meta({ key: GROUP_ROOT_KEY, version: before.version + 1, type: 'group-root', write: { mode: 'any', keys: [bobKey] }, children: { mode: 'any', keys: [bobKey] } }),
        }], [{ signing: contributor } as Identity], Date.now());
        const raw = await RawClient.connect(solo.port, knownHosts);
        try {
          const r = await raw.append(chain, forged.bytes) as Extract<Message, { t: 'rej' }>;
          expect(r).toMatchObject({ t: 'rej', reason: 'unauthorized' });
          expect(r.detail).toContain(`no signature admitted by the write ACL (any) of ${GROUP_ROOT_KEY}, which says who may change it`);
        } finally {
          raw.close();
        }
        expect(lib.view.node(GROUP_ROOT_KEY)!.version).toBe(before.version);
      } finally {
        await lib.close();
      }
      // Files are still creatable by both, and each sees the other's.
      await Promise.all([fsp.writeFile(b('after-bob.txt'), 'bob, after\n'), fsp.writeFile(a('after-alice.txt'), 'alice, after\n')]);
      // (Both change the mount root at once: the later one is rebuilt on the other's commit, and
      // that conflict resolution meets alice's 0600 file, which bob cannot read: it once stopped
      // his mount's replication for good.)
      const withOutput = (e: Error) => new Error(`${e.message}\nalice's mount: ${A.output().stderr.slice(-2000)}\nbob's mount: ${B!.output().stderr.slice(-2000)}`);
      expect(await until('after-bob.txt on alice', async () => (await fsp.readFile(a('after-bob.txt'), 'utf8').catch(() => undefined)), 30_000).catch((e: Error) => { throw withOutput(e); })).toBe('bob, after\n');
      expect(await until('after-alice.txt on bob', async () => (await fsp.readFile(b('after-alice.txt'), 'utf8').catch(() => undefined)), 30_000).catch((e: Error) => { throw withOutput(e); })).toBe('alice, after\n');
      expect(B.output().stderr).not.toContain('replication stopped');
      await A.checkHealthy();
      await B.checkHealthy();

      // Carol, an observer: reads what the group reads; every change is EACCES, her mount stays healthy.
      C = await mount('carol', chain);
      const c = (p: string) => join(C!.dir, p);
      expect(await until('shared.txt on carol', async () => (await fsp.readFile(c('shared.txt'), 'utf8').catch(() => undefined)))).toBe('shared v2 by bob\n');
      expect(await readError(c('secret.txt'))).toBe('EACCES');
      const code = (p: Promise<unknown>) => p.then(() => 'done', (e: NodeJS.ErrnoException) => e.code);
      expect(await code(fsp.writeFile(c('shared.txt'), 'carol was here\n'))).toBe('EACCES');
      expect(await code(fsp.writeFile(c('carol.txt'), 'new\n'))).toBe('EACCES');
      expect(await code(fsp.mkdir(c('carol-dir')))).toBe('EACCES');
      expect(await fsp.readFile(a('shared.txt'), 'utf8')).toBe('shared v2 by bob\n');
      await C.checkHealthy();
    } finally {
      await C?.unmount();
      await B?.unmount();
      await A.unmount();
    }
  }, 180_000);

  it('a member removed while mounted: the others\' mounts switch to the new keys, what they write then is EACCES to him', async () => {
    // A group of its own: removing bob from acme would change the other transport's run.
    const group = `rot-${transport.replace(/[^a-z]/g, '')}`;
    await atefs('alice', ['group', 'create', group, '--auth', auth]);
    await atefs('alice', ['group', 'add-user', group, 'contributor', 'bob@example.org', '--auth', auth]);
    const fast = ['--stats-file', join(root, `stats-${group}-a.json`)];
    const env = (user: string) => ({ ...envOf(user), ATEFS_GROUP_REFRESH_MS: '300' });
    const mountFast = (user: string, extra: string[] = []) => mountForTest({
      transport, temp: false, extraArgs: [`${auth}/${group}/docs`, '--log-path', join(root, `state-${transport}-${user}-${group}`), ...extra], env: env(user),
    });
    const A = await mountFast('alice', fast);
    let B: TestMount | null = null;
    try {
      await fsp.writeFile(join(A.dir, 'before.txt'), 'before the removal\n');
      await fsp.chmod(join(A.dir, 'before.txt'), 0o660);
      B = await mountFast('bob');
      const b = (p: string) => join(B!.dir, p);
      expect(await until('before.txt on bob', async () => (await fsp.readFile(b('before.txt'), 'utf8').catch(() => undefined)))).toBe('before the removal\n');
      expect(A.output().stderr).not.toContain('new keys');
      await atefs('alice', ['group', 'remove-user', group, 'contributor', 'bob@example.org', '--auth', auth]);
      await until('alice\'s mount on the new keys', async () => A.output().stderr.includes(`group ${group}: new keys`));
      // Bob's mount is refused the new keys: it keeps its own (said once), nothing changes for it.
      await until('bob\'s mount refused', async () => B!.output().stderr.includes('is not a member'));
      await fsp.writeFile(join(A.dir, 'after.txt'), 'after the removal\n');
      await fsp.chmod(join(A.dir, 'after.txt'), 0o660);
      expect(await until('after.txt refused on bob', async () => {
        const code = await readError(b('after.txt'));
        return code === 'EACCES' ? code : code === 'ENOENT' ? undefined : `unexpected ${code}`;
      })).toBe('EACCES');
      // Alice's mount (an owner's) moves the group root to the new writer keys: bob's old
      // contributor key creates nothing any more.
      await until('the group root on the new keys', async () => A.output().stderr.includes(`group ${group}: the group root now admits the new writer keys`));
      // (Once his mount has that commit: relayed within a second. A file he made before it arrived
      // would be a change the server refuses: an ACL change races writers, as anywhere.)
      await sleep(2000);
      expect(await fsp.writeFile(b('late.txt'), 'too late\n').then(() => 'written', (e: NodeJS.ErrnoException) => e.code)).toBe('EACCES');
      expect(await fsp.mkdir(b('late-dir')).then(() => 'made', (e: NodeJS.ErrnoException) => e.code)).toBe('EACCES');
      // What he could read before stays readable to him (nothing is re-encrypted; see the README).
      expect(await fsp.readFile(b('before.txt'), 'utf8')).toBe('before the removal\n');
      expect(await fsp.readFile(join(A.dir, 'after.txt'), 'utf8')).toBe('after the removal\n');
      expect(B.output().stderr.split('is not a member').length).toBe(2);
      await A.checkHealthy();
      await B.checkHealthy();
    } finally {
      await B?.unmount();
      await A.unmount();
    }
  }, 180_000);
});
