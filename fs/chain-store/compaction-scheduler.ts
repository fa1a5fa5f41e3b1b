import type { View } from '../../src/view/index.js';

export interface CompactionSchedulerOptions {
  /** Quiet time (no commit) before a due compaction starts. Default 2000 ms. */
  idleMs?: number;
  /**
   * Longest a due compaction waits for quiet. Default 60 s: a writer that never pauses still
   * gets its log compacted, once per this interval at most.
   */
  maxDeferMs?: number;
  /** How often the policy is asked (also drives its timer modes). Default 500 ms. */
  pollMs?: number;
}

/**
 * Runs the view's compaction policy (factor/size/timer, view.policy) for a mounted filesystem,
 * but starts a due compaction only once commits have paused for `idleMs` (or it has waited
 * `maxDeferMs`). The view's own automatic runs (after every commit) are switched off for that
 * (compaction.auto false): a compaction replays the whole log into a scratch index and compares
 * it with the live one, on the serving thread (in slices). On a chain growing from a bulk load
 * the factor trigger fires at every 40% of growth — a dozen full replays during an 8,000-file
 * untar, measured at ~2-3 s of its ~10 s — while the writer waits behind each slice. Deferred to
 * the pause after the load, the same policy compacts once, when nobody waits.
 */
export class CompactionScheduler {
  private readonly idleMs: number;
  private readonly maxDeferMs: number;
  private lastCommit = 0;
  private dueSince: number | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  /** Compactions this scheduler started (tests, stats). */
  started = 0;

  constructor(private readonly view: View, opts: CompactionSchedulerOptions = {}) {
    this.idleMs = opts.idleMs ?? 2000;
    this.maxDeferMs = opts.maxDeferMs ?? 60_000;
    this.unsubscribe = view.subscribe(() => { this.lastCommit = Date.now(); });
    this.timer = setInterval(() => this.tick(), opts.pollMs ?? 500);
    this.timer.unref();
  }

  private tick(): void {
    const view = this.view;
    if (view.compacting) return;
    const now = Date.now();
    let reason: string | null;
    try {
      reason = view.policy.check(view.log.sizeBytes(), now);
    } catch {
      return; // closed meanwhile
    }
    if (reason === null) { this.dueSince = null; return; }
    this.dueSince ??= now;
    if (now - this.lastCommit < this.idleMs && now - this.dueSince < this.maxDeferMs) return;
    this.dueSince = null;
    this.started++;
    // A failure keeps the old log; the view reports it in stats() and resets the policy's baseline.
    try {
      // automatic: skipped (log untouched) when too little of it is dead to be worth a rewrite.
      view.compact(reason, { automatic: true }).catch(() => undefined);
    } catch {
      /* closed or read-only meanwhile */
    }
  }

  /** Stops scheduling; a compaction already running is the view's to finish (view.close waits). */
  stop(): void {
    clearInterval(this.timer);
    this.unsubscribe();
  }
}
