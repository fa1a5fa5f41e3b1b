/**
 * The bench:fs fuse-native floor (scripts/bench/floor-fuse-native.ts, run from dist/ like the
 * benchmark runs it): a real mount served by its own process. It must be a correct filesystem for
 * the workloads, or the floor figures mean nothing. Also checks the kernel-tracepoint request
 * counter against it when tracefs is available (root).
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
const FLOOR = join(ROOT, 'dist/scripts/bench/floor-fuse-native.js');

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

describe('bench floor (fuse-native)', () => {
  it('mounts with big_writes (128 KiB writes reach the daemon)', async () => {
    const before = await requestCounters(daemon!.pid!, stats);
    writeFileSync(join(mnt, 'big'), Buffer.alloc(4 << 20, 1));
    const after = await requestCounters(daemon!.pid!, stats);
    expect((after!.get('write') ?? 0) - (before!.get('write') ?? 0)).toBeLessThanOrEqual(32 + 2);
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
      expect(r.ops.get('READ')?.count).toBeGreaterThanOrEqual(3); // 300 kB in <= 128 KiB reads
      expect(r.lost).toBe(false);
    } finally { tr.close(); }
  });

  it('writes its counters on SIGUSR2 and unmounts on SIGTERM', async () => {
    const c = await requestCounters(daemon!.pid!, stats);
    expect(c!.get('create')).toBeGreaterThan(0);
    const exited = new Promise<number | null>((ok) => daemon!.on('exit', (code) => ok(code)));
    process.kill(daemon!.pid!, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(isMounted(mnt)).toBe(false);
  });
});
