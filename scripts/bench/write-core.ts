/**
 * In-process sequential-write probe: the core (Filesystem + local chain store on disk), no FUSE.
 * Writes <mib> MiB of random bytes in 1 MiB calls (waiting when the core asks for backpressure, as
 * the kernel transport does), then fsync; prints wall time, the process's CPU (every thread) and
 * the main thread's GC pauses. Separates the write path's cost from the transport's.
 *   node dist/scripts/bench/write-core.js <dir> [mib]
 */
import { randomBytes } from 'node:crypto';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';
import { openCoreProbe } from './lib/core-probe.js';

const dir = process.argv[2]!;
const mib = Number(process.argv[3] ?? 256);
const probe = await openCoreProbe(dir, `f${Date.now()}`);
const { fs, ctx, ino, fh } = probe;
const data = randomBytes(64 << 20);
let gcMs = 0;
let gcs = 0;
const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcMs += e.duration; gcs++; } });
obs.observe({ entryTypes: ['gc'] });
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < mib; i++) {
  const off = (i % 64) << 20;
  fs.write(ctx, ino, fh, i * 1048576, data.subarray(off, off + 1048576));
  // With the bytes written, as the transports ask: the store's space brake paces by them.
  const bp = fs.backpressure(1048576);
  if (bp !== null) await bp.catch(() => undefined);
  else if (i % 8 === 7) await tick();
}
await fs.fsync(ino, fh, false);
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await tick();
obs.disconnect();
console.log(JSON.stringify({ mib, wallMs: Math.round(wall), mbPerS: Math.round((mib * 1.048576) / (wall / 1000)), cpuMs: Math.round((cpu.user + cpu.system) / 1000), gcMs: Math.round(gcMs), gcs }));
await probe.close();
