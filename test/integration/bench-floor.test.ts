/**
 * The bench:fs floors (scripts/bench/floor-fuse-native.ts and, as root, floor-kernel.ts over the
 * kernel transport; run from dist/ like the benchmark runs them): real mounts served by their own
 * process. They must be correct filesystems for the workloads, or the floor figures mean nothing.
 * Also checks the kernel-tracepoint request counter against them when tracefs is available (root).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import {
  mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, statSync, openSync, writeSync, closeSync,
  truncateSync, renameSync, linkSync, symlinkSync, readlinkSync, readdirSync, existsSync, unlinkSync, rmdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMounted, fuseConnection } from '../../scripts/bench/lib/mounts.js';
import { FuseTrace } from '../../scripts/bench/lib/fuse-trace.js';
import { requestCounters } from '../../scripts/bench/lib/stats-file.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FLOORS = [{ name: 'fuse-native', script: 'floor-fuse-native.js' }];
if (process.getuid?.() === 0 && existsSync(join(ROOT, 'dist/fs/kernel/index.js'))) FLOORS.push({ name: 'kernel', script: 'floor-kernel.js' });

/** Counter keys differ by transport (fuse-native op names, kernel opcodes): compare lower-cased. */
const count = (c: Map<string, number> | undefined, k: string): number => {
  let n = 0;
  for (const [key, v] of c ?? []) if (key.toLowerCase() === k) n += v;
  return n;
};

describe.each(FLOORS)('bench floor ($name)', ({ name, script }) => {
const FLOOR = join(ROOT, 'dist/scripts/bench', script);
let base = '';
let mnt = '';
let stats = '';
let daemon: ChildProcess | undefined;

beforeAll(async () => {
  if (!existsSync(FLOOR)) throw new Error(`${FLOOR} missing: run npm run build first`);
  base = mkdtempSync(join(tmpdir(), 'bench-floor-'));
  mnt = join(base, 'mnt');
  stats = join(base, 'stats.json');
  mkdirSync(mnt);
  daemon = spawn(process.execPath, [FLOOR, mnt, '--stats-file', stats], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((ok, fail) => {
    let out = '';
    const t = setTimeout(() => fail(new Error(`floor not mounted after 20 s: ${out}`)), 20000);
    const on = (d: Buffer) => { out += d; if (out.includes(`mounted: ${mnt}`)) { clearTimeout(t); ok(); } };
    daemon!.stdout!.on('data', on);
    daemon!.stderr!.on('data', on);
    daemon!.on('exit', (c) => { clearTimeout(t); fail(new Error(`floor exited ${c}: ${out}`)); });
  });
});

afterAll(async () => {
  if (daemon?.pid && daemon.exitCode === null) { try { process.kill(daemon.pid, 'SIGKILL'); } catch { /* gone */ } }
  if (mnt && isMounted(mnt)) spawnSync('fusermount', ['-u', mnt]);
  if (mnt && isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt]);
  if (base) rmSync(base, { recursive: true, force: true });
});

  it('gets big writes (128 KiB on fuse-native with big_writes, 1 MiB on the kernel transport)', async () => {
    const before = await requestCounters(daemon!.pid!, stats);
    writeFileSync(join(mnt, 'big'), Buffer.alloc(4 << 20, 1));
    const after = await requestCounters(daemon!.pid!, stats);
    const writes = count(after, 'write') - count(before, 'write');
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThanOrEqual(name === 'kernel' ? 4 + 2 : 32 + 2);
    expect(statSync(join(mnt, 'big')).size).toBe(4 << 20);
    unlinkSync(join(mnt, 'big'));
  });

  it('reads back what was written, with holes as zeros, across 1 MiB chunks and truncates', () => {
    const f = join(mnt, 'sparse');
    const fd = openSync(f, 'w+');
    const x = Buffer.alloc(1_500_000, 0x78);
    writeSync(fd, x, 0, x.length, 3 * 1048576 - 7);
    writeSync(fd, Buffer.from('y'), 0, 1, 100);
    closeSync(fd);
    truncateSync(f, 3 * 1048576 + 10);  // shrink inside the written range...
    truncateSync(f, 6 * 1048576);       // ...then grow: the dropped tail must read as zeros
    const want = Buffer.alloc(6 * 1048576);
    want[100] = 0x79;
    want.fill(0x78, 3 * 1048576 - 7, 3 * 1048576 + 10);
    expect(readFileSync(f).equals(want)).toBe(true);
  });

  it('keeps a directory subtree across rename, and counts hard links', () => {
    mkdirSync(join(mnt, 'a/b/c'), { recursive: true });
    writeFileSync(join(mnt, 'a/b/c/f'), 'deep');
    renameSync(join(mnt, 'a'), join(mnt, 'z'));
    expect(readFileSync(join(mnt, 'z/b/c/f'), 'utf8')).toBe('deep');
    expect(existsSync(join(mnt, 'a'))).toBe(false);
    linkSync(join(mnt, 'z/b/c/f'), join(mnt, 'z/h'));
    expect(statSync(join(mnt, 'z/h')).nlink).toBe(2);
    symlinkSync('b/c/f', join(mnt, 'z/l'));
    expect(readlinkSync(join(mnt, 'z/l'))).toBe('b/c/f');
    expect(readFileSync(join(mnt, 'z/l'), 'utf8')).toBe('deep');
    expect(readdirSync(join(mnt, 'z')).sort()).toEqual(['b', 'h', 'l']);
    expect(statSync(join(mnt, 'z')).nlink).toBe(3);
    expect(() => rmdirSync(join(mnt, 'z'))).toThrow(/ENOTEMPTY/);
  });

  it('stores user.* xattrs and refuses system.* like atefs', () => {
    const f = join(mnt, 'x');
    writeFileSync(f, '');
    execFileSync('setfattr', ['-n', 'user.k', '-v', 'v1', f]);
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.k', f], { encoding: 'utf8' })).toBe('v1');
    const acl = spawnSync('getfattr', ['-n', 'system.posix_acl_access', f], { encoding: 'utf8' });
    expect(acl.status).not.toBe(0);
    expect(acl.stderr).toMatch(/not supported/i);
  });

  it('counts FUSE requests per opcode through the kernel tracepoints (root)', async (ctx) => {
    const tr = FuseTrace.open(1024);
    if (typeof tr === 'string') { ctx.skip(); return; }
    try {
      writeFileSync(join(mnt, 'traced'), Buffer.alloc(300_000, 2));
      spawnSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
      tr.start(fuseConnection(mnt)!);
      execFileSync('cat', [join(mnt, 'traced')], { maxBuffer: 1 << 20 });
      const r = tr.stop();
      expect(r.ops.get('OPEN')?.count).toBe(1);
      // 300 kB: >= 3 reads of <= 128 KiB on fuse-native; the kernel transport negotiates bigger ones
      expect(r.ops.get('READ')?.count).toBeGreaterThanOrEqual(name === 'kernel' ? 1 : 3);
      expect(r.lost).toBe(false);
    } finally { tr.close(); }
  });

  it('writes its counters on SIGUSR2 and unmounts on SIGTERM', async () => {
    const c = await requestCounters(daemon!.pid!, stats);
    expect(count(c, 'create')).toBeGreaterThan(0);
    const exited = new Promise<number | null>((ok) => daemon!.on('exit', (code) => ok(code)));
    process.kill(daemon!.pid!, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(isMounted(mnt)).toBe(false);
  });
});
