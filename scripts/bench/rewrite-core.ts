/**
 * In-process rewrite probe (issue 17's writer-stall goal): the core (Filesystem + local chain store
 * on disk, the mount's compaction scheduler and space bound), no FUSE. A file of F MiB filled, then
 * random 4 KiB pages rewritten with an fsync every S pages until X times the file was written, as
 * bench:fs's rewrite does through a mount. Prints MB/s, the longest write/fsync, fsync p50/p99, the
 * largest log, the event loop's longest delay and, for each fsync over STALL_MS, when it ended.
 * Separates the commit path's and compaction's stalls from the transport's.
 *   node dist/scripts/bench/rewrite-core.js <dir> [fileMiB=64] [times=5] [pagesPerSync=256]
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { openCoreProbe } from './lib/core-probe.js';

const dir = process.argv[2]!;
const fileMiB = Number(process.argv[3] ?? 64);
const times = Number(process.argv[4] ?? 5);
const perSync = Number(process.argv[5] ?? 256);
const STALL_MS = Number(process.env.STALL_MS ?? 100);
const PAGE = 4096;
const MiB = 1 << 20;
rmSync(dir, { recursive: true, force: true });
// NO_SPACE=1: no space runs (the commit path alone).
const probe = await openCoreProbe(dir, 'rewrite.bin', process.env.NO_SPACE ? { deferCompaction: { spaceFactor: 0 } } : {});
const { chain, fs, ctx, ino, fh } = probe;
const fileBytes = fileMiB * MiB;
const fill = randomBytes(MiB);
for (let off = 0; off < fileBytes; off += MiB) {
  fs.write(ctx, ino, fh, off, fill);
  await fs.fsync(ino, fh, false);
}
const gcs: number[] = [];
const gcObs = new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push(e.duration); });
gcObs.observe({ entryTypes: ['gc'] });
const lag = monitorEventLoopDelay({ resolution: 5 });
lag.enable();
const pages = fileBytes / PAGE;
const total = times * fileBytes;
const fsyncMs: number[] = [];
const stalls: string[] = [];
let longestWrite = 0;
let maxLog = 0;
const t0 = performance.now();
let done = 0;
while (done < total) {
  for (let i = 0; i < perSync; i++) {
    const p = Math.floor(Math.random() * pages);
    const a = performance.now();
    fs.write(ctx, ino, fh, p * PAGE, randomBytes(PAGE));
    // As a transport does: the reply waits for the core's backpressure (the space brake included).
    const bp = fs.backpressure(PAGE);
    if (bp) await bp;
    longestWrite = Math.max(longestWrite, performance.now() - a);
    done += PAGE;
  }
  const a = performance.now();
  await fs.fsync(ino, fh, false);
  const ms = performance.now() - a;
  fsyncMs.push(ms);
  if (ms > STALL_MS) stalls.push(`${((a - t0) / 1000).toFixed(2)}s:${ms.toFixed(0)}${chain.view.compacting ? 'c' : ''}`);
  maxLog = Math.max(maxLog, chain.log.sizeBytes());
}
const secs = (performance.now() - t0) / 1000;
lag.disable();
const sorted = [...fsyncMs].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!.toFixed(1);
const c = chain.scheduler?.counters() ?? {};
console.log(JSON.stringify({
  mbps: +(total / secs / 1e6).toFixed(2), fsyncs: fsyncMs.length, longestWriteMs: +longestWrite.toFixed(1), longestFsyncMs: +sorted[sorted.length - 1]!.toFixed(1),
  p50: q(0.5), p99: q(0.99), over: stalls.length, maxLogMiB: +(maxLog / MiB).toFixed(0), liveMiB: +((c.liveBytes ?? 0) / MiB).toFixed(0),
  gcMs: Math.round(gcs.reduce((a, b) => a + b, 0)), gcMaxMs: Math.round(Math.max(0, ...gcs)), gcOver20: gcs.filter((x) => x > 20).length,
  cbHits: chain.store.committedBlocks.hits, cbMisses: chain.store.committedBlocks.misses,
  loopDelayMaxMs: +(lag.max / 1e6).toFixed(0), spaceRuns: c.spaceRuns, throttled: c.throttledWrites, throttledMs: c.throttledMs,
}));
{ const R = (globalThis as any).__rot ?? []; const avg = (i: number) => (R.reduce((a: number, r: number[]) => a + r[i]!, 0) / (R.length || 1)).toFixed(1); const mx = (i: number) => Math.max(0, ...R.map((r: number[]) => r[i]!)).toFixed(0); console.log(`rotations ${R.length}: writeOut+cut ${avg(0)}/${mx(0)}, datasync old ${avg(1)}/${mx(1)}, create ${avg(2)}/${mx(2)}, manifest ${avg(3)}/${mx(3)} (avg/max ms)`); }
console.log(`fsyncs over ${STALL_MS} ms (start:ms): ${stalls.join(' ')}`);
await probe.close();
rmSync(dir, { recursive: true, force: true });
