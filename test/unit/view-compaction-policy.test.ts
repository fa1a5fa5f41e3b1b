import { describe, expect, it } from 'vitest';
import { CompactionPolicy, parseCompactMode } from '../../src/view/index.js';

const MB = 1024 * 1024;

describe('view: compaction policy', () => {
  it('defaults to factor-or-timer, 0.4, 100 MB, 3600 s', () => {
    const p = new CompactionPolicy();
    expect(p.opts).toMatchObject({ mode: 'factor-or-timer', factor: 0.4, growthBytes: 100_000_000, intervalSeconds: 3600 });
  });

  it('never never fires', () => {
    const p = new CompactionPolicy({ mode: 'never' }, 10 * MB, 0);
    expect(p.check(10_000 * MB, 10 ** 12)).toBeNull();
  });

  it('modified fires on any change of size', () => {
    const p = new CompactionPolicy({ mode: 'modified' }, 10 * MB, 0);
    expect(p.check(10 * MB, 1)).toBeNull();
    expect(p.check(10 * MB + 1, 1)).toBe('modified');
  });

  it('factor fires at base * (1 + factor), not below the minimum size', () => {
    const p = new CompactionPolicy({ mode: 'factor', factor: 0.4 }, 10 * MB, 0);
    expect(p.check(14 * MB - 1, 0)).toBeNull();
    expect(p.check(14 * MB, 0)).toBe('factor');
    const small = new CompactionPolicy({ mode: 'factor' }, 100, 0);
    expect(small.check(1000, 0)).toBeNull();
  });

  it('size fires after the growth in bytes', () => {
    const p = new CompactionPolicy({ mode: 'size', growthBytes: 5 * MB }, 10 * MB, 0);
    expect(p.check(15 * MB - 1, 0)).toBeNull();
    expect(p.check(15 * MB, 0)).toBe('size');
  });

  it('timer fires after the interval, only if something changed', () => {
    const p = new CompactionPolicy({ mode: 'timer', intervalSeconds: 10 }, 10 * MB, 0);
    expect(p.check(11 * MB, 9_999)).toBeNull();
    expect(p.check(10 * MB, 10_000)).toBeNull();
    expect(p.check(11 * MB, 10_000)).toBe('timer');
    expect(p.msUntilTimer(4000)).toBe(6000);
  });

  it('factor-or-timer and size-or-timer combine; reset moves the baseline', () => {
    const f = new CompactionPolicy({ mode: 'factor-or-timer', factor: 0.5, intervalSeconds: 10 }, 10 * MB, 0);
    expect(f.check(15 * MB, 1)).toBe('factor');
    expect(f.check(11 * MB, 10_000)).toBe('timer');
    f.reset(15 * MB, 10_000);
    expect(f.check(16 * MB, 10_001)).toBeNull();
    const s = new CompactionPolicy({ mode: 'size-or-timer', growthBytes: MB, intervalSeconds: 10 }, 10 * MB, 0);
    expect(s.check(11 * MB, 1)).toBe('size');
    expect(s.check(10 * MB + 1, 10_000)).toBe('timer');
    expect(new CompactionPolicy({ mode: 'size' }).msUntilTimer()).toBeNull();
  });

  it('automatic runs need 10% of the log reclaimable (at least one byte); the ratio is configurable', () => {
    expect(new CompactionPolicy().minReclaimBytes(256 * MB)).toBe(Math.ceil(25.6 * MB));
    expect(new CompactionPolicy().minReclaimBytes(0)).toBe(1);
    expect(new CompactionPolicy({ minReclaimRatio: 0.5 }).minReclaimBytes(10 * MB)).toBe(5 * MB);
    expect(new CompactionPolicy({ minReclaimRatio: 0 }).minReclaimBytes(10 * MB)).toBe(1);
    expect(() => new CompactionPolicy({ minReclaimRatio: 1 })).toThrow(RangeError);
    expect(() => new CompactionPolicy({ minReclaimRatio: -0.1 })).toThrow(RangeError);
  });

  it('parses mode names (immutable = never) and rejects unknown ones', () => {
    expect(parseCompactMode('Factor-Or-Timer')).toBe('factor-or-timer');
    expect(parseCompactMode('immutable')).toBe('never');
    expect(() => parseCompactMode('sometimes')).toThrow(RangeError);
    expect(() => new CompactionPolicy({ factor: 0 })).toThrow(RangeError);
  });
});
