/**
 * In-process sequential-write probe: the core (Filesystem + local chain store on disk), no FUSE.
 * Writes <mib> MiB of random bytes in 1 MiB calls (waiting when the core asks for backpressure, as
 * the kernel transport does), then fsync; prints wall time, the process's CPU (every thread) and
 * the main thread's GC pauses. Separates the write path's cost from the transport's.
 *   node dist/scripts/bench/write-core.js <dir> [mib]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';
import { Filesystem } from '../../fs/core/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';

const dir = process.argv[2]!;
const mib = Number(process.argv[3] ?? 256);
mkdirSync(dir, { recursive: true });
const chain = await openLocalChain({ chainDir: join(dir, 'chain'), configDir: join(dir, 'config') });
const fs = await Filesystem.open(chain.store, {});
const ctx = { uid: 0, gid: 0, pid: 1, umask: 0o022 } as never;
const { entry, open } = fs.create(ctx, 1, Buffer.from(`f${Date.now()}`), 0o100644, 2);
const data = randomBytes(64 << 20);
let gcMs = 0;
let gcs = 0;
const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) { gcMs += e.duration; gcs++; } });
obs.observe({ entryTypes: ['gc'] });
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (let i = 0; i < mib; i++) {
  const off = (i % 64) << 20;
  fs.write(ctx, entry.ino, open.fh, i * 1048576, data.subarray(off, off + 1048576));
  const bp = fs.backpressure?.() ?? null;
  if (bp !== null) await bp.catch(() => undefined);
  else if (i % 8 === 7) await tick();
}
await fs.fsync(entry.ino, open.fh, false);
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await tick();
obs.disconnect();
console.log(JSON.stringify({ mib, wallMs: Math.round(wall), mbPerS: Math.round((mib * 1.048576) / (wall / 1000)), cpuMs: Math.round((cpu.user + cpu.system) / 1000), gcMs: Math.round(gcMs), gcs }));
fs.release(entry.ino, open.fh);
await fs.destroy();
await chain.close();
