import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';

/**
 * Bounded space: a file rewritten without pause (random 4 KiB pages, an fsync every 64 pages, as a
 * database does) on a chain on disk. The log must stay within 2x the live data + the slack on disk
 * at every sample (a compaction's copy beside the old segments included) and end within it, with
 * the compaction done while the writes went on (the pause-deferred policy is held off), and the
 * content must survive the relocations and compactions, reopened from disk.
 *
 * The slack is 16 MiB here instead of the mount's 128 MiB so that a test-sized run (an 8 MiB file,
 * ~300 MiB appended to the log) has to compact many times to stay inside it.
 */

const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
const MiB = 1 << 20;
const PAGE = 4096;
const LIVE = 8 * MiB;
const SLACK = 16 * MiB;
/**
 * Log bytes appended. Blocks are 64 KiB; a page rewrite appends a page delta (block-delta.ts) until
 * a quarter of the block differs, then the whole block.
 */
const APPENDED = 320 * MiB;

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-space-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('bounded space under continuous rewrites', () => {
  it('the log of a file rewritten without pause stays within 2x its live data + slack, and the data survives', async () => {
    const chainDir = join(base, 'chain');
    const configDir = join(base, 'config');
    const open = async () => {
      const chain = await openLocalChain({
        chainDir, configDir,
        // Only the space trigger may compact while the writer runs.
        deferCompaction: { pollMs: 50, maxDeferMs: 3_600_000, idleMs: 3_600_000, spaceSlackBytes: SLACK },
        // The mount's segments are a sixteenth of its slack (LOCAL_SEGMENT_SIZE): the same here.
        segmentSize: SLACK / 16,
      });
      const fs = await Filesystem.open(chain.store);
      return { chain, fs };
    };
    let { chain, fs } = await open();
    const model = randomBytes(LIVE);
    const { entry, open: o } = fs.create(ROOT, 1, Buffer.from('db'), 0o644, 2);
    const ino = entry.ino;
    fs.write(ROOT, ino, o.fh, 0, model);
    await fs.fsync(ino, o.fh, false);

    const scheduler = chain.scheduler!;
    expect(scheduler).not.toBeNull();
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const logDir = join(chainDir, 'log');
    // What the log takes on disk, every 20 ms while writing: the segments a compaction is writing
    // beside the old ones included (the log's own size does not count them until the switch).
    let maxDisk = 0;
    let samples = 0;
    const sampler = setInterval(() => {
      try { maxDisk = Math.max(maxDisk, dirBytes(logDir)); samples++; } catch { /* a segment deleted while listed */ }
    }, 20);
    const start = chain.log.sizeBytes();
    let appended = 0;
    let maxLog = 0;
    let maxFsyncMs = 0;
    let maxHoldMs = 0;
    let rounds = 0;
    let seed = 12345;
    const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    let lastSize = start;
    while (appended < APPENDED) {
      for (let i = 0; i < 64; i++) {
        const page = rand() % (LIVE / PAGE);
        const data = randomBytes(PAGE);
        data.copy(model, page * PAGE);
        fs.write(ROOT, ino, o.fh, page * PAGE, data);
        // As a transport does before it replies: the space brake paces writes (pace), briefly.
        const bp = fs.backpressure(PAGE);
        if (bp) {
          const t = performance.now();
          await bp;
          maxHoldMs = Math.max(maxHoldMs, performance.now() - t);
        }
      }
      const t = performance.now();
      await fs.fsync(ino, o.fh, false);
      maxFsyncMs = Math.max(maxFsyncMs, performance.now() - t);
      rounds++;
      const size = chain.log.sizeBytes();
      // Growth of the log between two rounds (compactions shrink it meanwhile: count only growth).
      appended += Math.max(0, size - lastSize);
      lastSize = size;
      maxLog = Math.max(maxLog, size);
    }
    lag.disable();
    clearInterval(sampler);
    const runsWhileWriting = scheduler.spaceRuns;
    const relocated = scheduler.lastSpaceRun;

    // The end: a space run already started finishes; one due at the last round starts and ends.
    const end = Date.now() + 120_000;
    // (A run that raced the writer ends above the bound; with the writer stopped, one more is due.)
    do {
      await scheduler.settled();
      await sleep(200); // the scheduler polls every 50 ms: a due run has started by now
    } while (Date.now() < end && scheduler.spaceDueNow());
    await scheduler.settled();
    const logBytes = dirBytes(logDir);
    const bound = 2 * LIVE + SLACK;
    console.log(`space bound: ${rounds} rounds, ${(appended / MiB).toFixed(0)} MiB appended, ${scheduler.spaceRuns} space runs ` +
      `(${runsWhileWriting} while writing), log at the end ${(logBytes / MiB).toFixed(1)} MiB (bound ${bound / MiB} MiB), ` +
      `largest while writing ${(maxLog / MiB).toFixed(1)} MiB, on disk ${(maxDisk / MiB).toFixed(1)} MiB (${samples} samples); last run: ${JSON.stringify({ ...scheduler.lastSpaceRun, compaction: scheduler.lastSpaceRun?.compaction ? { ms: Math.round(scheduler.lastSpaceRun.compaction.ms), maxWriterStallMs: Math.round(scheduler.lastSpaceRun.compaction.maxWriterStallMs), skipped: scheduler.lastSpaceRun.compaction.skipped } : null })}; ` +
      `held writes ${scheduler.throttled} (${scheduler.throttledMs.toFixed(0)} ms, longest asked ${scheduler.longestThrottleMs.toFixed(0)} ms, longest waited ${maxHoldMs.toFixed(0)} ms); ` +
      `writer: longest fsync ${maxFsyncMs.toFixed(0)} ms, event loop delay max ${(lag.max / 1e6).toFixed(0)} ms p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms`);
    expect(scheduler.lastSpaceError).toBeNull();
    // Compactions ran under the writes (the pause-deferred policy could not), and relocated.
    expect(runsWhileWriting).toBeGreaterThanOrEqual(2);
    expect(relocated).not.toBeNull();
    expect(logBytes).toBeLessThanOrEqual(bound);
    // At every sample, not only at the end: a compaction's copy beside the old log included.
    expect(samples).toBeGreaterThan(100);
    expect(maxDisk).toBeLessThanOrEqual(bound);
    // The live data it measured is the file, plus its page deltas (at most a quarter of each
    // block) and a little metadata, as the stats file reports it.
    const c = scheduler.counters();
    expect(c.liveBytes).toBeGreaterThanOrEqual(LIVE);
    expect(c.liveBytes).toBeLessThan(LIVE * 1.3);
    expect(c.relocatedBytes).toBeGreaterThan(0);
    expect(c.logBytes).toBe(chain.log.sizeBytes());
    // Writers were held back while runs caught up (pace), in many short holds: never one longer
    // than holdMaxMs (10 ms) asked for a write, and commits are not held at all.
    expect(c.throttledWrites).toBeGreaterThan(0);
    expect(scheduler.longestThrottleMs).toBeGreaterThan(0);
    expect(scheduler.longestThrottleMs).toBeLessThanOrEqual(10);

    fs.release(ino, o.fh);
    await fs.destroy();
    await chain.close();
    // Reopened from disk: every page as last written.
    ({ chain, fs } = await open());
    const again = fs.open(ROOT, ino, 0);
    const back = Buffer.from(fs.read(ROOT, ino, again.fh, 0, LIVE + 1));
    fs.release(ino, again.fh);
    expect(back.length).toBe(LIVE);
    expect(back.equals(model)).toBe(true);
    await fs.destroy();
    await chain.close();
  }, 600_000);

  it('refuses a space bound below the live data or a negative slack, and closes what it opened', async () => {
    const chainDir = join(base, 'bad-options');
    const configDir = join(base, 'config');
    await expect(openLocalChain({ chainDir, configDir, deferCompaction: { spaceFactor: 0.5 } })).rejects.toThrow(RangeError);
    await expect(openLocalChain({ chainDir, configDir, deferCompaction: { spaceSlackBytes: -1 } })).rejects.toThrow(RangeError);
    // The log's lock was released: the chain opens again.
    const chain = await openLocalChain({ chainDir, configDir, deferCompaction: { spaceFactor: 0 } });
    expect(chain.scheduler).not.toBeNull();
    await chain.close();
  });
});
