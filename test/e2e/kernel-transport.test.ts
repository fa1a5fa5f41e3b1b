/**
 * The kernel transport through a real FUSE mount: a daemon process mounts a fresh in-memory
 * Filesystem over /dev/fuse, the tests use the mount with ordinary tools (shell, python, dd) and
 * read the transport's counters through the daemon. Root only (mount(2)).
 */
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INIT } from '../../fs/kernel/protocol.js';
import { KernelDaemon, ensureBuilt, kernelTestsPossible, py, sh } from '../fixtures/kernel/harness.js';

const possible = kernelTestsPossible();

/** The mount's line in mountinfo (its options included). */
function mountLine(dir: string): string {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === dir) ?? '';
}
const MiB = 1 << 20;

describe.skipIf(!possible)('kernel transport: a mount with the default options', () => {
  let d: KernelDaemon;
  let m: string;

  beforeAll(async () => {
    ensureBuilt();
    d = await KernelDaemon.start({ mount: { allowOther: true } });
    m = d.mnt;
  });
  afterAll(async () => { await d?.cleanup(); });

  it('negotiates the protocol features we rely on', () => {
    expect(d.protocol.major).toBe(7);
    const want = [INIT.ASYNC_READ, INIT.POSIX_LOCKS, INIT.DO_READDIRPLUS, INIT.READDIRPLUS_AUTO, INIT.PARALLEL_DIROPS,
      INIT.HANDLE_KILLPRIV_V2, INIT.MAX_PAGES, INIT.CACHE_SYMLINKS, INIT.ATOMIC_O_TRUNC];
    for (const f of want) expect(d.protocol.flags & f).toBe(f);
    expect(d.protocol.flags & INIT.WRITEBACK_CACHE).toBe(0); // off by default (measured: see index.ts)
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    expect(mounts).toContain(`${m} `);
    expect(mounts).toMatch(/fuse\.atefs/);
    // Other users may enter: the kernel checks modes for them (cached path walks never ask us).
    expect(mountLine(m)).toContain('default_permissions');
  });

  it('serves files, directories, symlinks, hard links and xattrs', () => {
    writeFileSync(join(m, 'hello.txt'), 'hello world\n');
    expect(readFileSync(join(m, 'hello.txt'), 'utf8')).toBe('hello world\n');
    sh(`mkdir -p ${m}/a/b/c && echo x > ${m}/a/b/c/f && ln -s ../hello.txt ${m}/a/link && ln ${m}/hello.txt ${m}/a/hard`);
    expect(readFileSync(join(m, 'a/link'), 'utf8')).toBe('hello world\n');
    expect(statSync(join(m, 'hello.txt')).nlink).toBe(2);
    expect(readdirSync(join(m, 'a')).sort()).toEqual(['b', 'hard', 'link']);
    expect(sh(`cd ${m} && find . | sort`).trim().split('\n')).toEqual(
      ['.', './a', './a/b', './a/b/c', './a/b/c/f', './a/hard', './a/link', './hello.txt']);
    // xattrs: python probes the size first (size 0), then reads; a too-small buffer is ERANGE.
    const out = py(`
import os, ctypes, sys
p = sys.argv[1]
os.setxattr(p, 'user.k', b'v' * 100)
print(os.getxattr(p, 'user.k') == b'v' * 100)
print(sorted(os.listxattr(p)))
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(10)
r = libc.getxattr(p.encode(), b'user.k', buf, 10)
print(r, ctypes.get_errno())
print(libc.getxattr(p.encode(), b'user.k', None, 0))
os.removexattr(p, 'user.k')
try:
    os.getxattr(p, 'user.k')
except OSError as e:
    print(e.errno)
`, join(m, 'hello.txt'));
    expect(out.trim().split('\n')).toEqual(['True', "['user.k']", '-1 34', '100', '61']);
    sh(`rm -r ${m}/a`);
    expect(existsSync(join(m, 'a'))).toBe(false);
  });

  it('carries 1 MiB writes to the filesystem as 1 MiB requests', async () => {
    const before = (await d.counters()).counters;
    const src = join(tmpdir(), `atefs-kt-src-${process.pid}`);
    sh(`head -c ${16 * MiB} /dev/urandom > ${src} && dd if=${src} of=${m}/big bs=1M status=none && sync ${m}/big`);
    const after = (await d.counters()).counters;
    expect(after.maxWrite).toBe(MiB);
    expect((after.writesAtMax ?? 0) - (before.writesAtMax ?? 0)).toBeGreaterThanOrEqual(15);
    // The bytes read back are the bytes written (the source lives outside the mount).
    expect(sh(`md5sum < ${m}/big`)).toBe(sh(`md5sum < ${src}`));
    sh(`rm -f ${src}`);
    expect(statSync(join(m, 'big')).size).toBe(16 * MiB);
    sh(`rm ${m}/big`);
  });

  it('clears suid/sgid when a non-owner writes', () => {
    const f = join(m, 'suid');
    sh(`chmod 0755 ${d.dir} && echo start > ${f} && chmod 6777 ${f} && chmod 0777 ${m}`);
    expect(statSync(f).mode & 0o7777).toBe(0o6777);
    sh(`setpriv --reuid 1000 --regid 1000 --clear-groups sh -c 'echo more >> ${f}'`);
    expect(statSync(f).mode & 0o7777).toBe(0o777);
    expect(readFileSync(f, 'utf8')).toBe('start\nmore\n');
    // The owner (root, CAP_FSETID) keeps the bits.
    sh(`chmod 6777 ${f} && echo root >> ${f}`);
    expect(statSync(f).mode & 0o7777).toBe(0o6777);
    sh(`chmod 0755 ${m} && rm ${f}`);
  });

  it('renames with RENAME_NOREPLACE and RENAME_EXCHANGE', () => {
    sh(`echo one > ${m}/r1 && echo two > ${m}/r2`);
    const out = py(`
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT = -100
def r2(a, b, flags):
    r = libc.renameat2(AT, a.encode(), AT, b.encode(), flags)
    return 0 if r == 0 else ctypes.get_errno()
m = sys.argv[1]
print(r2(m + '/r1', m + '/r2', 1))   # NOREPLACE onto an existing name: EEXIST
print(r2(m + '/r1', m + '/r3', 1))   # NOREPLACE onto a free name
print(r2(m + '/r3', m + '/r2', 2))   # EXCHANGE
print(r2(m + '/r3', m + '/nope', 2)) # EXCHANGE with a missing target: ENOENT
`, m);
    expect(out.trim().split('\n')).toEqual(['17', '0', '0', '2']);
    expect(readFileSync(join(m, 'r2'), 'utf8')).toBe('one\n');
    expect(readFileSync(join(m, 'r3'), 'utf8')).toBe('two\n');
    expect(existsSync(join(m, 'r1'))).toBe(false);
    sh(`rm ${m}/r2 ${m}/r3`);
  });

  it('keeps POSIX record locks between two processes, and drops them on close', async () => {
    const f = join(m, 'lockfile');
    writeFileSync(f, 'x'.repeat(100));
    const holder = `
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
print('locked', flush=True)
sys.stdin.readline()
os.close(fd)
print('closed', flush=True)
sys.stdin.readline()
`;
    const { spawn } = await import('node:child_process');
    const h = spawn('python3', ['-c', holder, f], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const lines: string[] = [];
      const next = () => new Promise<string>((res) => {
        const check = () => { const l = lines.shift(); if (l !== undefined) res(l); else setTimeout(check, 10); };
        check();
      });
      let buf = '';
      h.stdout!.setEncoding('utf8').on('data', (s: string) => {
        buf += s;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
      });
      expect(await next()).toBe('locked');
      const probe = `
import fcntl, os, sys, struct
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
    print('got')
except OSError as e:
    print('busy', e.errno)
# F_GETLK reports the holder
lk = struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 10, 0)
r = struct.unpack('hhqqi', fcntl.fcntl(fd, fcntl.F_GETLK, lk))
print('getlk', r[0] == fcntl.F_WRLCK, r[4] == int(sys.argv[2]))
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20)
    print('other range ok')
except OSError as e:
    print('other range busy', e.errno)
`;
      expect(py(probe, f, String(h.pid)).trim().split('\n')).toEqual(['busy 11', 'getlk True True', 'other range ok']);
      // A blocked waiter (SETLKW) gets the lock once the holder closes its descriptor (FLUSH drops it).
      const waiter = spawn('python3', ['-c', `
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
print('acquired', flush=True)
`, f], { stdio: ['ignore', 'pipe', 'inherit'] });
      let waiterOut = '';
      waiter.stdout!.setEncoding('utf8').on('data', (s: string) => { waiterOut += s; });
      const waiterDone = new Promise<number | null>((r) => waiter.on('exit', r));
      await new Promise((r) => setTimeout(r, 300));
      expect(waiterOut).toBe('');
      h.stdin!.write('\n');
      expect(await next()).toBe('closed');
      expect(await waiterDone).toBe(0);
      expect(waiterOut).toBe('acquired\n');
      h.stdin!.write('\n');
    } finally {
      h.kill('SIGKILL');
    }
    sh(`rm ${f}`);
  });

  it('ends a lock wait interrupted by a signal (INTERRUPT) without leaking the lock', () => {
    const f = join(m, 'lockwait');
    writeFileSync(f, 'x');
    const out = py(`
import fcntl, os, signal, sys, time
p = sys.argv[1]
pid = os.fork()
if pid == 0:
    fd = os.open(p, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    time.sleep(2)
    os._exit(0)
time.sleep(0.3)
class Alarm(Exception): pass
def on_alarm(sig, frame): raise Alarm()
signal.signal(signal.SIGALRM, on_alarm)
fd = os.open(p, os.O_RDWR)
signal.alarm(1)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX)
    print('acquired early')
except Alarm:
    print('interrupted')
os.waitpid(pid, 0)
# the holder is gone and the interrupted wait left nothing behind
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print('free')
`, f);
    expect(out.trim().split('\n')).toEqual(['interrupted', 'free']);
    sh(`rm ${f}`);
  });

  it('answers SEEK_DATA and SEEK_HOLE on a sparse file', () => {
    const out = py(`
import os, sys
p = sys.argv[1]
fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.pwrite(fd, b'a' * 10, 0)
os.pwrite(fd, b'b' * 10, 4 << 20)
os.close(fd)   # with the writeback cache the kernel flushes dirty pages on close
fd = os.open(p, os.O_RDONLY)
size = os.fstat(fd).st_size
print(size)
print(os.lseek(fd, 0, os.SEEK_DATA))
hole = os.lseek(fd, 0, os.SEEK_HOLE)
print(0 < hole < (4 << 20))
print(os.lseek(fd, hole, os.SEEK_DATA) <= (4 << 20), os.lseek(fd, hole, os.SEEK_DATA) > hole)
print(os.lseek(fd, 4 << 20, os.SEEK_HOLE) == size)
try:
    os.lseek(fd, size, os.SEEK_DATA)
except OSError as e:
    print(e.errno)
`, join(m, 'sparse'));
    expect(out.trim().split('\n')).toEqual([String((4 << 20) + 10), '0', 'True', 'True True', 'True', '6']);
    sh(`rm ${m}/sparse`);
  });

  it('survives requests that fail and keeps serving', async () => {
    expect(() => sh(`cat ${m}/does-not-exist`)).toThrow();
    expect(() => sh(`rmdir ${m}/hello.txt`)).toThrow();
    expect(() => sh(`mkdir ${m}/hello.txt`)).toThrow();
    expect(readFileSync(join(m, 'hello.txt'), 'utf8')).toBe('hello world\n');
    const c = (await d.counters()).counters;
    expect(c.errors).toBeGreaterThan(0);
    expect(c.LOOKUP).toBeGreaterThan(0);
  });
});

describe.skipIf(!possible)('kernel transport: invalidation of kernel caches', () => {
  let d: KernelDaemon;
  let m: string;

  beforeAll(async () => {
    ensureBuilt();
    // Long timeouts: without a notification the kernel would serve stale data for a minute.
    // No writeback cache: with it the kernel owns the size of regular files and ignores the
    // server's (fuse_get_cache_mask), so remotely changed mounts must run without it.
    d = await KernelDaemon.start({ store: { cacheTimeout: 60 }, mount: { negativeTimeout: 60, writebackCache: false } });
    m = d.mnt;
  });
  afterAll(async () => { await d?.cleanup(); });

  it('shows a change made through the core at once (INVAL_INODE)', async () => {
    writeFileSync(join(m, 'f'), 'AAAA');
    expect(readFileSync(join(m, 'f'), 'utf8')).toBe('AAAA');
    expect(readFileSync(join(m, 'f'), 'utf8')).toBe('AAAA'); // now in the page cache (keep_cache)
    const before = (await d.counters()).counters;
    expect((await d.command({ cmd: 'write', path: 'f', data: 'BBBB' })).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 50)); // notifications are written from the threadpool
    expect(readFileSync(join(m, 'f'), 'utf8')).toBe('BBBB');
    expect((await d.command({ cmd: 'write', path: 'f', data: 'longer content' })).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(join(m, 'f'), 'utf8')).toBe('longer content');
    const after = (await d.counters()).counters;
    expect(after.notifications - before.notifications).toBe(2);
    expect(after.notifyFailures).toBe(0);
  });

  it('shows a name created through the core at once (INVAL_ENTRY over a cached negative entry)', async () => {
    expect(existsSync(join(m, 'g'))).toBe(false); // cached as absent for 60 s
    expect((await d.command({ cmd: 'create', path: 'g', data: 'new' })).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(join(m, 'g'), 'utf8')).toBe('new');
  });

  it('hides a name removed through the core at once (DELETE)', async () => {
    expect(statSync(join(m, 'g')).size).toBe(3);
    expect((await d.command({ cmd: 'unlink', path: 'g' })).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(join(m, 'g'))).toBe(false);
  });
});

describe.skipIf(!possible)('kernel transport: lookup counts and mount life', () => {
  let d: KernelDaemon;
  let m: string;

  beforeAll(async () => {
    ensureBuilt();
    d = await KernelDaemon.start();
    m = d.mnt;
  });
  afterAll(async () => { await d?.cleanup(); });

  it('balances lookups with FORGET after find over 10,000 files', async () => {
    py(`
import os, sys
m = sys.argv[1]
for i in range(100):
    d = os.path.join(m, 'd%03d' % i)
    os.mkdir(d)
    for j in range(100):
        with open(os.path.join(d, 'f%03d' % j), 'w') as f:
            f.write('x')
`, m);
    sh('echo 2 > /proc/sys/vm/drop_caches');
    const n = sh(`find ${m} -type f | wc -l`).trim();
    expect(n).toBe('10000');
    sh(`find ${m} -type f -name 'f0*' -exec true {} +`);
    const mid = await d.counters();
    expect(mid.counters.lookupsOutstanding).toBeGreaterThan(5000);
    sh('echo 2 > /proc/sys/vm/drop_caches');
    // FORGETs are sent as the kernel evicts inodes; give the batch a moment to arrive.
    let end = await d.counters();
    for (let i = 0; i < 50 && end.counters.lookupsOutstanding > 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      end = await d.counters();
    }
    expect(end.counters.lookupsOutstanding).toBeLessThanOrEqual(10);
    expect(end.core.refs).toBeLessThanOrEqual(10);
    expect(end.counters.FORGET + (end.counters.BATCH_FORGET ?? 0)).toBeGreaterThan(0);
  });

  it('mounts without default_permissions when only root can enter, and unlinks without a GETATTR each', async () => {
    const line = mountLine(m);
    expect(line).not.toContain('allow_other');
    expect(line).not.toContain('default_permissions');
    sh(`mkdir ${m}/many && cd ${m}/many && touch $(seq -f 'f%03g' 1 200)`);
    sh('echo 2 > /proc/sys/vm/drop_caches');
    const before = (await d.counters()).counters;
    sh(`rm -rf ${m}/many`);
    const after = (await d.counters()).counters;
    expect(after.UNLINK - (before.UNLINK ?? 0)).toBe(200);
    // With default_permissions every unlink drops the directory's attributes and the next
    // permission check asks for them again: ~200 GETATTRs here.
    expect((after.GETATTR ?? 0) - (before.GETATTR ?? 0)).toBeLessThan(20);
    expect(existsSync(join(m, 'many'))).toBe(false);
  });

  it('ends cleanly on an external umount (DESTROY, then ENODEV)', async () => {
    sh(`umount ${m}`);
    expect(await d.exited).toBe(0);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(`${m} `);
  });

  it('recovers a stale mount left by a killed daemon', async () => {
    await d.launch();
    writeFileSync(join(m, 'x'), 'x');
    d.child.kill('SIGKILL');
    await d.exited;
    expect(() => statSync(m)).toThrow(/ENOTCONN/);
    await d.launch();
    expect(readdirSync(m)).toEqual([]);
    writeFileSync(join(m, 'y'), 'y');
    expect(readFileSync(join(m, 'y'), 'utf8')).toBe('y');
  });
});
