// Remote mounts (issue 15): a real `atedb solo` on 127.0.0.1 and two real mounts of one chain
// (`atefs mount DIR tcp://127.0.0.1:PORT/team/docs`), each with its own replica and staging log.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, availableTransports, mountForTest, pollUntil, run, sh, sleep, unmountAll, type TestMount } from './harness.js';
import { type Solo, startSolo } from '../integration/atedb/harness.js';

const transports = availableTransports().filter((t) => t === 'kernel' || t === 'fuse-native');

let root: string;
let config: string;
let solo: Solo;
let port: number;

beforeAll(async () => {
  root = await fsp.mkdtemp(join(tmpdir(), 'atefs-remote-'));
  config = join(root, 'config');
  solo = await startSolo({ dataDir: join(root, 'db') });
  port = solo.port;
}, 60_000);

afterAll(async () => {
  await unmountAll();
  await solo?.kill().catch(() => undefined);
  await fsp.rm(root, { recursive: true, force: true });
});

/** A mount of the transport's chain as machine `name` (its replica and staging under root). */
function mountAs(transport: string, name: string, extra: string[] = [], o: { expectErrors?: boolean } = {}): Promise<TestMount> {
  return mountForTest({
    transport, temp: false, extraArgs: [urlOf(transport), '--log-path', join(root, `state-${transport}-${name}`), ...extra],
    env: { XDG_CONFIG_HOME: config, ATEFS_MACHINE: name, ATEFS_UPLOAD_TIMEOUT_MS: '8000' },
    ...(o.expectErrors ? { expectErrors: true } : {}),
  });
}

const urlOf = (transport: string) => `tcp://127.0.0.1:${port}/team/${transport}`;

const until = <T,>(what: string, fn: () => Promise<T | undefined | false>, ms = 5000): Promise<T> => pollUntil(what, fn, ms, 25);

const read = (p: string) => fsp.readFile(p).catch(() => null);
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** Every file under `dir` (relative path -> md5 / symlink target / 'dir'), sorted. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string): Promise<void> {
    for (const e of (await fsp.readdir(join(dir, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) { out[p] = 'dir'; await walk(p); }
      else if (e.isSymbolicLink()) out[p] = `-> ${await fsp.readlink(join(dir, p))}`;
      else out[p] = md5(await fsp.readFile(join(dir, p)));
    }
  }
  await walk('');
  return out;
}

/** What `atefs status DIR --json` says of a remote mount (the fields this file checks). */
interface RemoteStatus {
  connection: string; server?: string; seq: number; lag: number; dirtyBytes: number;
  stagedUploads: number; stagedBytes: number; conflicts: number; lastConflict?: string;
}

async function atefsStatus(dir: string, json = true): Promise<string> {
  const r = await run(process.execPath, [CLI, 'status', dir, ...(json ? ['--json'] : [])], { timeout: 60_000 });
  if (r.code !== 0) throw new Error(`atefs status ${dir} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
const statusOf = async (dir: string) => JSON.parse(await atefsStatus(dir)) as RemoteStatus;

async function restartServer(): Promise<void> {
  solo = await startSolo({ dataDir: solo.dataDir, port: solo.port });
}

describe.each(transports)('remote mounts: two machines, one chain (%s)', (transport) => {
  beforeEach(async () => {
    // A test that failed with the server down leaves it down: the next one starts with it up.
    if (solo.proc.exitCode !== null || solo.proc.signalCode !== null) await restartServer();
  });
  let A: TestMount;
  let B: TestMount;

  it('the first mount creates the chain; a second machine sees it', async () => {
    A = await mountAs(transport, 'alpha');
    B = await mountAs(transport, 'beta');
    await fsp.writeFile(join(A.dir, 'hello.txt'), 'hello from alpha\n');
    expect((await until('hello.txt on B', () => read(join(B.dir, 'hello.txt')).then((b) => b ?? undefined), 3000)).toString()).toBe('hello from alpha\n');
  }, 60_000);

  it('a file written and closed on A reads back identical on B within a second', async () => {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    const t0 = Date.now();
    await fsp.writeFile(join(A.dir, 'blob.bin'), data);
    const got = await until('blob.bin on B', async () => {
      const b = await read(join(B.dir, 'blob.bin'));
      return b && b.equals(data) ? b : undefined;
    }, 1000);
    expect(md5(got)).toBe(md5(data));
    console.log(`close-to-open A -> B: ${Date.now() - t0} ms`);
  }, 30_000);

  it("B's cached content is invalidated when A rewrites the file", async () => {
    const p = 'cached.txt';
    await fsp.writeFile(join(A.dir, p), 'version one\n');
    await until('v1 on B', async () => (await read(join(B.dir, p)))?.toString() === 'version one\n');
    // B reads it (kernel page cache and attributes), then A rewrites it with the same length.
    expect((await sh(`cat ${join(B.dir, p)}; stat -c %s ${join(B.dir, p)}`)).stdout).toBe('version one\n12\n');
    await fsp.writeFile(join(A.dir, p), 'version two\n');
    await until('v2 through cat on B', async () => (await sh(`cat ${join(B.dir, p)}`)).stdout === 'version two\n', 1500);
  }, 30_000);

  it('rename, unlink, chmod, truncate, symlink, hard link and xattrs propagate', async () => {
    const a = (p: string) => join(A.dir, p);
    await fsp.mkdir(a('d'));
    await fsp.writeFile(a('d/f'), '0123456789');
    await fsp.writeFile(a('gone'), 'bye');
    await until('setup on B', async () => (await read(join(B.dir, 'gone'))) !== null && (await read(join(B.dir, 'd/f'))) !== null);
    await fsp.rename(a('d/f'), a('d/g'));
    await fsp.unlink(a('gone'));
    await fsp.chmod(a('d/g'), 0o640);
    await fsp.truncate(a('d/g'), 4);
    await fsp.symlink('d/g', a('link'));
    await fsp.link(a('d/g'), a('hard'));
    expect((await sh(`setfattr -n user.color -v blue ${a('d/g')}`)).code).toBe(0);
    const b = (p: string) => join(B.dir, p);
    await until('all changes on B', async () => {
      const st = await fsp.stat(b('d/g')).catch(() => null);
      if (!st || (st.mode & 0o777) !== 0o640 || st.size !== 4 || st.nlink !== 2) return false;
      if ((await read(b('gone'))) !== null || (await read(b('d/f'))) !== null) return false;
      if ((await fsp.readlink(b('link')).catch(() => '')) !== 'd/g') return false;
      const hs = await fsp.stat(b('hard')).catch(() => null);
      if (!hs || hs.ino !== st.ino) return false;
      return (await sh(`getfattr --only-values -n user.color ${b('d/g')}`)).stdout === 'blue';
    }, 3000);
    expect((await read(b('hard')))!.toString()).toBe('0123');
    // Inode numbers of files made on different machines do not collide.
    await fsp.writeFile(join(B.dir, 'from-beta'), 'b');
    await until('from-beta on A', async () => (await read(a('from-beta'))) !== null);
    const inos = await Promise.all(['d/g', 'from-beta', 'hello.txt', 'blob.bin'].map((p) => fsp.stat(a(p)).then((s) => s.ino)));
    expect(new Set(inos).size).toBe(4);
    expect(await tree(A.dir)).toEqual(await tree(B.dir));
  }, 30_000);

  it('conflicts: same-file edits, same-name creates and delete-vs-modify keep every version', async () => {
    const a = (p: string) => join(A.dir, p);
    const b = (p: string) => join(B.dir, p);
    await fsp.writeFile(a('doc.txt'), 'base\n');
    await fsp.writeFile(a('victim.txt'), 'keep me\n');
    await fsp.mkdir(a('proj'));
    await until('setup on B', async () => (await read(b('doc.txt')))?.toString() === 'base\n' && (await read(b('victim.txt'))) !== null
      && (await fsp.stat(b('proj')).then(() => true, () => false)));
    // Both machines work while the server is down: their commits race when it is back.
    await solo.kill('SIGKILL');
    await fsp.writeFile(a('doc.txt'), 'edited on alpha\n');
    await fsp.writeFile(b('doc.txt'), 'edited on beta\n');
    await fsp.writeFile(a('new.txt'), 'alpha made this\n');
    await fsp.writeFile(b('new.txt'), 'beta made this\n');
    await fsp.unlink(a('victim.txt'));
    await fsp.appendFile(b('victim.txt'), 'modified on beta\n');
    // A removes a directory B adds into: the directory is re-created with what was added.
    await fsp.rmdir(a('proj'));
    await fsp.writeFile(b('proj/added.txt'), 'added into a removed dir\n');
    await sh(`sync ${A.dir}; sync ${B.dir}`);
    await restartServer();
    const contents = ['added into a removed dir\n', 'edited on alpha\n', 'edited on beta\n', 'alpha made this\n', 'beta made this\n', 'keep me\nmodified on beta\n'];
    let seen = '';
    const settled = await until('both trees equal, with every version', async () => {
      const [ta, tb] = [await tree(A.dir), await tree(B.dir)];
      seen = `A ${JSON.stringify(ta)}\nB ${JSON.stringify(tb)}\nwanted ${contents.map((c) => md5(Buffer.from(c))).join(' ')}`;
      if (JSON.stringify(ta) !== JSON.stringify(tb)) return false;
      const all = new Set(Object.values(ta));
      return contents.every((c) => all.has(md5(Buffer.from(c)))) ? ta : false;
    }, 20_000).catch((e: Error) => { throw new Error(`${e.message}\n${seen}\n--- A ---\n${A.output().stderr.slice(-3000)}\n--- B ---\n${B.output().stderr.slice(-3000)}`); });
    const names = Object.keys(settled);
    expect(names.filter((n) => /^doc\.conflict-(alpha|beta)-\d{8}T\d{6}Z\.txt$/.test(n))).toHaveLength(1);
    expect(names.filter((n) => /^new\.conflict-(alpha|beta)-\d{8}T\d{6}Z\.txt$/.test(n))).toHaveLength(1);
    // Modify beats delete: the file survives, with the modification.
    expect((await read(a('victim.txt')))?.toString()).toBe('keep me\nmodified on beta\n');
    expect((await read(a('proj/added.txt')))?.toString()).toBe('added into a removed dir\n');
    expect((await fsp.stat(a('proj'))).nlink).toBe(2);
  }, 90_000);

  it('atefs status shows staged uploads while the server stalls, their draining, dirty bytes, lag and the conflicts', async () => {
    // The conflicts of the test before: each was noted by the machine whose commit was re-made.
    const [sa, sb] = [await statusOf(A.dir), await statusOf(B.dir)];
    expect(sa.conflicts + sb.conflicts).toBeGreaterThanOrEqual(2);
    const noted = sa.conflicts > 0 ? sa : sb;
    expect(noted.lastConflict).toMatch(/'(doc|new|victim|proj)[^']*'/);
    expect(sa).toMatchObject({ connection: 'online', server: expect.stringMatching(/^[0-9a-f]{16}$/) as unknown as string });
    // A stopped (not killed) server: the connection stays up, nothing is confirmed.
    process.kill(solo.pid, 'SIGSTOP');
    let writer: ReturnType<typeof sh> | null = null;
    try {
      await sh(`set -e; mkdir -p ${join(A.dir, 'stalled')}; for i in $(seq 1 8); do head -c 200000 /dev/urandom > ${join(A.dir, 'stalled')}/f$i; done; sync ${A.dir}`);
      const staged = await until('staged uploads in atefs status', async () => {
        const s = await statusOf(A.dir);
        return s.stagedUploads > 0 && s.stagedBytes >= 8 * 200_000 ? s : undefined;
      }, 10_000);
      expect(staged.stagedBytes).toBeGreaterThanOrEqual(8 * 200_000);
      expect(await atefsStatus(A.dir, false)).toMatch(/staged uploads: [1-9]\d*\nstaged bytes: \d{7,}\n/);
      // Dirty bytes: data written and not committed yet (a writer that keeps appending for a while).
      writer = sh(`for i in $(seq 1 40); do head -c 65536 /dev/urandom >> ${join(A.dir, 'stalled/growing')}; sleep 0.05; done`, { timeout: 60_000 });
      await until('dirty bytes in atefs status', async () => ((await statusOf(A.dir)).dirtyBytes > 0 ? true : undefined), 10_000);
      await writer;
      writer = null;
    } finally {
      process.kill(solo.pid, 'SIGCONT');
      await writer;
    }
    await sh(`sync ${A.dir}`);
    await until('staged uploads drained to 0', async () => {
      const s = await statusOf(A.dir);
      return s.stagedUploads === 0 && s.stagedBytes === 0 && s.dirtyBytes === 0 ? s : undefined;
    }, 30_000);
    // B applies what A uploaded: its lag comes back to 0 at A's seq.
    const seqA = (await statusOf(A.dir)).seq;
    await until('B caught up (lag 0 at A\'s seq)', async () => {
      const s = await statusOf(B.dir);
      return s.lag === 0 && s.seq >= seqA ? s : undefined;
    }, 10_000);
    expect((await read(join(B.dir, 'stalled/f8')))?.length).toBe(200_000);
  }, 120_000);

  it('offline: staged work survives an unmount and a remount, then reaches the other machine', async () => {
    await solo.kill('SIGKILL');
    await fsp.writeFile(join(A.dir, 'offline-1.txt'), 'written offline\n');
    await fsp.mkdir(join(A.dir, 'offline-dir'));
    await fsp.writeFile(join(A.dir, 'offline-dir/x'), 'x'.repeat(100_000));
    await fsp.unlink(join(A.dir, 'hello.txt'));
    const dirA = A.dir;
    await A.unmount();
    expect(A.output().stderr).toMatch(/commit\(s\) \(\d+ bytes\) stay staged in .*; the next mount of tcp:\/\/.* uploads them/);
    // Remount while the server is still down: the staged work is there.
    A = await mountForTest({
      transport, temp: false, dir: dirA, extraArgs: [urlOf(transport), '--log-path', join(root, `state-${transport}-alpha`)],
      env: { XDG_CONFIG_HOME: config, ATEFS_MACHINE: 'alpha', ATEFS_UPLOAD_TIMEOUT_MS: '8000' },
    });
    expect((await read(join(A.dir, 'offline-1.txt')))?.toString()).toBe('written offline\n');
    expect(await read(join(A.dir, 'hello.txt'))).toBeNull();
    expect((await read(join(B.dir, 'offline-1.txt')))).toBeNull();
    await restartServer();
    await until('offline work on B', async () => (await read(join(B.dir, 'offline-1.txt')))?.toString() === 'written offline\n'
      && (await read(join(B.dir, 'offline-dir/x')))?.length === 100_000 && (await read(join(B.dir, 'hello.txt'))) === null, 20_000);
    expect(await tree(A.dir)).toEqual(await tree(B.dir));
  }, 120_000);

  it('readonly recovery mode refuses writes with EROFS while offline', async () => {
    const C = await mountAs(transport, 'gamma', ['--recovery-mode', 'readonly']);
    await fsp.writeFile(join(C.dir, 'online.txt'), 'ok');
    await until('online.txt on B', async () => (await read(join(B.dir, 'online.txt'))) !== null);
    await solo.kill('SIGKILL');
    await until('EROFS on C', async () => {
      const e = await fsp.writeFile(join(C.dir, 'refused.txt'), 'no').then(() => null, (err: NodeJS.ErrnoException) => err.code);
      return e === 'EROFS';
    }, 5000);
    // Reads still work offline.
    expect((await read(join(C.dir, 'online.txt')))?.toString()).toBe('ok');
    await restartServer();
    await until('writable again', async () => fsp.writeFile(join(C.dir, 'back.txt'), 'yes').then(() => true, () => false), 10_000);
    await C.unmount();
  }, 60_000);

  it('SIGKILL of atedb during an untar: A keeps working, resumes, B ends with the full tree', async () => {
    const src = join(root, `src-${transport}`);
    const tar = join(root, `tree-${transport}.tar`);
    // ~400 files in 20 directories, sizes 0..40 KiB, a symlink and a hard link.
    await sh(`set -e; mkdir -p ${src}; cd ${src}; for d in $(seq 1 20); do mkdir -p d$d/sub; for f in $(seq 1 20); do head -c $(( (d * 7919 + f * 104729) % 40960 )) /dev/urandom > d$d/sub/f$f.dat; done; done; ln -s d1/sub/f1.dat link; ln d2/sub/f2.dat hard; tar -cf ${tar} .`);
    await fsp.mkdir(join(A.dir, 'untar'));
    const untar = sh(`tar -xf ${tar} -C ${join(A.dir, 'untar')} && sync ${A.dir}`, { timeout: 120_000 });
    await sleep(300);
    await solo.kill('SIGKILL');
    const r = await untar;
    expect(r.code, r.stderr).toBe(0);
    const want = await tree(src);
    expect(await tree(join(A.dir, 'untar'))).toEqual(want);
    await restartServer();
    await until('the full tree on B', async () => JSON.stringify(await tree(join(B.dir, 'untar')).catch(() => ({}))) === JSON.stringify(want), 60_000);
  }, 180_000);

  // This one found the kernel transport's notification deadlock (session.ts pumpNotify), a
  // machine making a conflict copy of its own file (fixed: conflicts.ts ownVersion, and the resync's
  // split of own and foreign changes), and, about one run in three under load, the writing mount
  // keeping an earlier version of one of its own files after a staged commit was refused and re-made
  // (fixed: the core keeps a batch in flight over the resync's refresh, Filesystem.applyRemote;
  // test/integration/remote-fs-resync.test.ts makes that case happen every time). On failure it
  // prints what differs.
  it('two mounts untar into the same chain at once: both trees complete, identical on both and on a third mount', async () => {
    const tar = join(root, `tree-${transport}.tar`);
    const want = await tree(join(root, `src-${transport}`));
    const [ra, rb] = await Promise.all([
      sh(`mkdir ${join(A.dir, 'ua')} && tar -xf ${tar} -C ${join(A.dir, 'ua')} && sync ${A.dir}`, { timeout: 120_000 }),
      sh(`mkdir ${join(B.dir, 'ub')} && tar -xf ${tar} -C ${join(B.dir, 'ub')} && sync ${B.dir}`, { timeout: 120_000 }),
    ]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const dirs = [join(A.dir, 'ua'), join(A.dir, 'ub'), join(B.dir, 'ua'), join(B.dir, 'ub')];
    const differences = async () => {
      const out: string[] = [];
      for (const d of dirs) {
        const got: Record<string, string> = await tree(d).catch(() => ({}));
        const missing = Object.keys(want).filter((k) => got[k] === undefined);
        const wrong = Object.keys(want).filter((k) => got[k] !== undefined && got[k] !== want[k]);
        const extra = Object.keys(got).filter((k) => want[k] === undefined);
        if (missing.length + wrong.length + extra.length) out.push(`${d}: ${missing.length} missing (${missing.slice(0, 5).join(', ')}), ${wrong.length} different (${wrong.slice(0, 5).join(', ')}), ${extra.length} extra (${extra.slice(0, 5).join(', ')})`);
      }
      return out;
    };
    await until('both trees on both mounts', async () => (await differences()).length === 0, 60_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${(await differences()).join('\n')}\nA: ${A.output().stderr.slice(-2000)}\nB: ${B.output().stderr.slice(-2000)}`);
    });
    expect(await tree(A.dir)).toEqual(await tree(B.dir));
    const C = await mountForTest({ transport, temp: true, extraArgs: [urlOf(transport)], env: { XDG_CONFIG_HOME: config, ATEFS_MACHINE: 'gamma' } });
    try {
      expect(await tree(C.dir)).toEqual(await tree(A.dir));
    } finally {
      await C.unmount();
    }
    // `atefs verify` of the chain as the server holds it: every commit downloaded and validated here.
    const v = await run(process.execPath, [CLI, 'verify', urlOf(transport), '--json'], { timeout: 120_000, env: { ...process.env, XDG_CONFIG_HOME: config } });
    expect(v.code, v.stderr + v.stdout).toBe(0);
    const report = JSON.parse(v.stdout.trim().split('\n').pop()!) as { ok: boolean; records: number; accepted: number; problems: unknown[] };
    expect(report).toMatchObject({ ok: true, problems: [] });
    expect(report.records).toBeGreaterThan(10);
    expect(report.accepted).toBe(report.records);
  }, 240_000);

  it.skipIf(transport !== 'kernel')('locks: flock held on A blocks flock -n on B; killing A frees it', async () => {
    await fsp.writeFile(join(A.dir, 'locked'), 'x');
    await until('locked on B', async () => (await read(join(B.dir, 'locked'))) !== null);
    const holder = spawn('flock', [join(A.dir, 'locked'), 'sleep', '60'], { stdio: 'ignore' });
    try {
      await until('A holds the lock', async () => (await sh(`flock -n ${join(A.dir, 'locked')} true`)).code !== 0);
      expect((await sh(`flock -n ${join(B.dir, 'locked')} true`)).code).not.toBe(0);
      expect((await sh(`flock -n -s ${join(B.dir, 'locked')} true`)).code).not.toBe(0);
      // The holder's mount dies: its connection, and the lease with it, are gone.
      A.kill('SIGKILL');
      await A.exited;
      await until('B gets the lock', async () => (await sh(`flock -n ${join(B.dir, 'locked')} true`)).code === 0, 15_000);
    } finally {
      holder.kill('SIGKILL');
    }
    await sh(`fusermount -u -z ${A.dir} 2>/dev/null || umount -l ${A.dir} 2>/dev/null; true`);
    A = await mountForTest({
      transport, temp: false, dir: A.dir, extraArgs: [urlOf(transport), '--log-path', join(root, `state-${transport}-alpha`)],
      env: { XDG_CONFIG_HOME: config, ATEFS_MACHINE: 'alpha', ATEFS_UPLOAD_TIMEOUT_MS: '8000' },
    });
    // And back: A takes it while B holds nothing.
    expect((await sh(`flock -n ${join(A.dir, 'locked')} true`)).code).toBe(0);
  }, 60_000);

  it("SIGKILL of A's daemon during uploads: the next mount uploads the rest exactly once", async () => {
    await sh(`set -e; mkdir ${join(A.dir, 'burst')}; for i in $(seq 1 150); do echo "burst file $i" > ${join(A.dir, 'burst')}/f$i; done; sync ${A.dir}`);
    // fsync returned: everything is staged durably; uploads are still on their way.
    A.kill('SIGKILL');
    await A.exited;
    // What the killed daemon left mounted (a dead FUSE connection) goes first.
    await sh(`fusermount -u -z ${A.dir} 2>/dev/null || umount -l ${A.dir} 2>/dev/null; true`);
    A = await mountForTest({
      transport, temp: false, dir: A.dir, extraArgs: [urlOf(transport), '--log-path', join(root, `state-${transport}-alpha`)],
      env: { XDG_CONFIG_HOME: config, ATEFS_MACHINE: 'alpha', ATEFS_UPLOAD_TIMEOUT_MS: '8000' },
    });
    const names = Array.from({ length: 150 }, (_, i) => `f${i + 1}`);
    expect((await fsp.readdir(join(A.dir, 'burst'))).sort()).toEqual([...names].sort());
    await until('the burst on B', async () => (await fsp.readdir(join(B.dir, 'burst')).catch(() => [])).length === 150, 30_000);
    expect((await read(join(B.dir, 'burst/f150')))?.toString()).toBe('burst file 150\n');
    // Re-sent commits the server already had were recognised as such (replays), not conflicts.
    await sleep(500);
    expect(A.output().stderr).not.toMatch(/resynced|conflict/);
    expect(await tree(A.dir)).toEqual(await tree(B.dir));
  }, 120_000);

  it('unmount uploads what is staged first', async () => {
    await fsp.writeFile(join(A.dir, 'last-words.txt'), 'uploaded at unmount\n');
    await A.unmount();
    expect(A.output().stderr).not.toMatch(/stay staged/);
    await until('last-words on B', async () => (await read(join(B.dir, 'last-words.txt')))?.toString() === 'uploaded at unmount\n', 3000);
    await B.unmount();
  }, 60_000);
});
