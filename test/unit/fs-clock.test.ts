import { describe, expect, it } from 'vitest';
import { nowNs, nowTimespec } from '../../fs/core/clock.js';
import { Filesystem, MemoryStore } from '../../fs/core/index.js';
import { ROOT, b } from './fs-helpers.js';

describe('fs core: the clock the filesystem sets times with', () => {
  it('is the wall clock with nanosecond resolution', () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const samples = Array.from({ length: 200 }, () => nowNs());
    const after = BigInt(Date.now() + 1) * 1_000_000n;
    for (const t of samples) {
      expect(t >= before - 100_000_000n && t <= after + 100_000_000n).toBe(true);
    }
    // Never backwards between calls (monotonic source), and not stuck on whole milliseconds.
    for (let i = 1; i < samples.length; i++) expect(samples[i]! >= samples[i - 1]!).toBe(true);
    expect(samples.some((t) => t % 1_000_000n !== 0n)).toBe(true);
    const ts = nowTimespec();
    expect(Number.isSafeInteger(ts.sec) && ts.nsec >= 0 && ts.nsec < 1e9).toBe(true);
  });

  it('gives files created and written in the same millisecond distinct, sub-ms times', () => {
    const fs = new Filesystem(new MemoryStore(), { rootMode: 0o777, commitDelayMs: 60_000 });
    const times: Array<{ sec: number; nsec: number }> = [];
    for (let i = 0; i < 20; i++) {
      const { entry, open } = fs.create(ROOT, 1, b(`f${i}`), 0o644, 2);
      fs.write(ROOT, entry.ino, open.fh, 0, b('x'));
      times.push(fs.getattr(ROOT, entry.ino).mtime);
      fs.release(entry.ino, open.fh);
    }
    expect(times.some((t) => t.nsec % 1_000_000 !== 0)).toBe(true);
    const keys = new Set(times.map((t) => `${t.sec}.${t.nsec}`));
    expect(keys.size).toBe(times.length);
  });
});
