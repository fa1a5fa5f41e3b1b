/**
 * In-process fsync probe: the core (Filesystem + local chain store on disk), no FUSE. n times a
 * 4 KiB write of fresh bytes at the next offset, then fsync; prints p50/p99 ms. Separates the
 * commit path's cost from the transport's. cpuUsPerOp: the whole process's CPU per op (the
 * sign-offs' signatures included); mainCpuUsPerOp: the serving thread's alone (10 ms ticks: use
 * n >= 2000).  node dist/scripts/bench/fsync-core.js <dir> [n]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { openCoreProbe } from './lib/core-probe.js';

const dir = process.argv[2]!;
const n = Number(process.argv[3] ?? 2000);
const probe = await openCoreProbe(dir, `f${Date.now()}`);
const { fs, ctx, ino, fh } = probe;
const page = Buffer.alloc(4096);
// CPU of the whole process (signing workers included) per write+fsync: steadier than latency on a busy machine.
const cpu0 = process.cpuUsage();
// And of the serving thread alone (what the commit path costs; the sign-offs' signatures run on a
// worker at a pace set by time, not by commits): Linux's per-thread counters, in clock ticks.
const main0 = mainThreadTicks();
const lat: number[] = [];
const seq: number[] = [];
for (let i = 0; i < n; i++) {
  randomBytes(4096).copy(page);
  const t0 = performance.now();
  fs.write(ctx, ino, fh, i * 4096, page);
  await fs.fsync(ino, fh, false);
  lat.push(performance.now() - t0);
  seq.push(performance.now() - t0);
}
const cpu = process.cpuUsage(cpu0);
const mainTicks = mainThreadTicks() - main0;
lat.sort((a, b) => a - b);
const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!.toFixed(3);
console.log(JSON.stringify({ n, p50: q(0.5), p75: q(0.75), p90: q(0.9), p99: q(0.99), cpuUsPerOp: Math.round((cpu.user + cpu.system) / n), mainCpuUsPerOp: Number.isNaN(mainTicks) ? null : Math.round((mainTicks * 1e4) / n) }));
if (process.env.SHOW_SEQ) console.log(seq.map((x) => x.toFixed(2)).join(" "));
await probe.close();

/** utime + stime of the calling (main) thread in ticks of 10 ms (USER_HZ 100), NaN where /proc has no thread-self. */
function mainThreadTicks(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}
