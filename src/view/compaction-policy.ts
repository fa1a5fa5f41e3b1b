// When to compact: the modes of the original ATE (never, modified, timer, factor, size,
// factor-or-timer, size-or-timer), evaluated against the log size after each applied commit and
// on a timer. Pure logic: the view feeds it sizes and the clock, it answers "compact now?".

export type CompactMode =
  | 'never'
  | 'modified'
  | 'timer'
  | 'factor'
  | 'size'
  | 'factor-or-timer'
  | 'size-or-timer';

export const COMPACT_MODES: readonly CompactMode[] = [
  'never',
  'modified',
  'timer',
  'factor',
  'size',
  'factor-or-timer',
  'size-or-timer',
];

export interface CompactPolicyOptions {
  mode?: CompactMode;
  /** Growth factor over the size after the last compaction (default 0.4). */
  factor?: number;
  /** Growth in bytes since the last compaction (default 100 MB). */
  growthBytes?: number;
  /** Seconds between timer-driven compactions (default 3600). */
  intervalSeconds?: number;
  /**
   * Below this log size the factor trigger never fires: compacting a tiny log to save a few
   * kilobytes is not worth the rewrite (the original ignored factors below 2 MiB).
   */
  minBytes?: number;
  /**
   * An automatic compaction is skipped (the log left untouched) unless it can reclaim at least this
   * fraction of the log (default 0.1): its cost is a pass over the whole log, a copy and a
   * re-validation of what is kept, for whatever it reclaims. Manual compactions always run.
   */
  minReclaimRatio?: number;
}

export const DEFAULT_COMPACT_POLICY: Required<CompactPolicyOptions> = {
  mode: 'factor-or-timer',
  factor: 0.4,
  growthBytes: 100 * 1000 * 1000,
  intervalSeconds: 3600,
  minBytes: 2 * 1024 * 1024,
  minReclaimRatio: 0.1,
};

export function parseCompactMode(s: string): CompactMode {
  const m = s.trim().toLowerCase();
  if (m === 'immutable') return 'never';
  if ((COMPACT_MODES as readonly string[]).includes(m)) return m as CompactMode;
  throw new RangeError(`unknown compaction mode '${s}' (one of ${COMPACT_MODES.join(', ')})`);
}

export type CompactReason = 'modified' | 'timer' | 'factor' | 'size';

export class CompactionPolicy {
  readonly opts: Required<CompactPolicyOptions>;
  private baseBytes: number;
  private baseTime: number;

  constructor(opts: CompactPolicyOptions = {}, initialBytes = 0, now = Date.now()) {
    this.opts = { ...DEFAULT_COMPACT_POLICY, ...stripUndefined(opts) };
    if (!(this.opts.factor > 0)) throw new RangeError('compaction factor must be > 0');
    if (!(this.opts.growthBytes > 0)) throw new RangeError('compaction growth size must be > 0');
    if (!(this.opts.intervalSeconds > 0)) throw new RangeError('compaction interval must be > 0');
    const r = this.opts.minReclaimRatio;
    if (!(r >= 0 && r < 1)) throw new RangeError('minimum reclaim ratio must be in [0, 1)');
    this.baseBytes = initialBytes;
    this.baseTime = now;
  }

  get mode(): CompactMode {
    return this.opts.mode;
  }

  /** Whether the timer part of the mode is active (the view arms a timer only then). */
  get usesTimer(): boolean {
    const m = this.opts.mode;
    return m === 'timer' || m === 'factor-or-timer' || m === 'size-or-timer';
  }

  /** Called after a compaction (or at open): the new baseline the growth is measured from. */
  reset(bytes: number, now = Date.now()): void {
    this.baseBytes = bytes;
    this.baseTime = now;
  }

  /** The reason to compact now, or null. `bytes` is the current log size. */
  check(bytes: number, now = Date.now()): CompactReason | null {
    const o = this.opts;
    const grown = bytes - this.baseBytes;
    const timerDue = now - this.baseTime >= o.intervalSeconds * 1000;
    const factorDue = bytes >= o.minBytes && grown > 0 && grown >= this.baseBytes * o.factor;
    const sizeDue = grown >= o.growthBytes;
    switch (o.mode) {
      case 'never':
        return null;
      case 'modified':
        return grown !== 0 ? 'modified' : null;
      case 'timer':
        // A timer with nothing new since the last compaction would rewrite the same log.
        return timerDue && grown !== 0 ? 'timer' : null;
      case 'factor':
        return factorDue ? 'factor' : null;
      case 'size':
        return sizeDue ? 'size' : null;
      case 'factor-or-timer':
        return factorDue ? 'factor' : timerDue && grown !== 0 ? 'timer' : null;
      case 'size-or-timer':
        return sizeDue ? 'size' : timerDue && grown !== 0 ? 'timer' : null;
    }
  }

  /**
   * Bytes an automatic compaction of a log of `logBytes` must be able to reclaim to run. A growth
   * trigger only says the log grew, not that anything in it died (a large file written once is
   * all live): without this, such a log would be copied and re-validated for nothing.
   */
  minReclaimBytes(logBytes: number): number {
    return Math.max(1, Math.ceil(logBytes * this.opts.minReclaimRatio));
  }

  /** Milliseconds until the timer part is due (for arming a timer), or null without a timer. */
  msUntilTimer(now = Date.now()): number | null {
    if (!this.usesTimer) return null;
    return Math.max(0, this.baseTime + this.opts.intervalSeconds * 1000 - now);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
