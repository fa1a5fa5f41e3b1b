import { describeUncommitted, type CommitStats, type Uncommitted } from '../fs/core/index.js';

/**
 * What the mount daemon says about failing commits (its log, the stats file, the status panel).
 * A failing commit holds every later change (a batch is all dirty state), so it must be loud:
 * the first failure, every change of the error or of the mount's state, a reminder while it
 * lasts, and the recovery.
 */

/** A reminder line while commits keep failing with the same error. */
const REMIND_MS = 60_000;

export interface CommitHealthSource {
  readonly commitStats: CommitStats;
  readonly uncommitted: Uncommitted;
}

/** The stats file's / panel's view of the commit path. */
export interface CommitHealthReport {
  /** 'ok', 'retrying' (a transient failure: changes refused until a retry succeeds) or 'read-only'. */
  state: CommitStats['health'];
  failures: number;
  /** Failures since the last successful commit. */
  failing: number;
  lastError: string | null;
  lastErrorAt: string | null;
  uncommitted: Uncommitted;
}

export function commitHealthReport(core: CommitHealthSource): CommitHealthReport {
  const cs = core.commitStats;
  return {
    state: cs.health, failures: cs.failures, failing: cs.failing,
    lastError: cs.lastError?.message ?? null,
    lastErrorAt: cs.lastErrorAt ? new Date(cs.lastErrorAt).toISOString() : null,
    uncommitted: core.uncommitted,
  };
}

/** One line for the panel: empty while commits succeed. */
export function commitHealthLine(r: CommitHealthReport): string | undefined {
  if (r.state === 'ok') return undefined;
  const what = r.state === 'read-only' ? 'read-only (EROFS): the commit cannot be retried' : 'retrying; changes are refused meanwhile';
  return `${r.failing} failed commit${r.failing === 1 ? '' : 's'}, ${what}; ${describeUncommitted(r.uncommitted)}`;
}

/**
 * Watches the core's commit counters (polled by the daemon) and returns the log lines to print.
 * Polling cannot miss a failure: the counters only grow.
 */
export class CommitHealthLog {
  private failures: number;
  private state: CommitStats['health'];
  private message: string | null;
  private lastSaid = 0;
  /** The failure count before the current run of failures. */
  private failuresBefore = 0;

  constructor(private readonly core: CommitHealthSource, private readonly now: () => number = Date.now) {
    const cs = core.commitStats;
    this.failures = cs.failures;
    this.state = cs.health;
    this.message = cs.lastError?.message ?? null;
  }

  /** Lines to log since the last call (none while nothing changed). */
  poll(): string[] {
    const cs = this.core.commitStats;
    const out: string[] = [];
    const now = this.now();
    const message = cs.lastError?.message ?? null;
    if (cs.health !== 'ok') {
      if (this.state === 'ok') this.failuresBefore = this.failures;
      const pending = describeUncommitted(this.core.uncommitted);
      if (cs.health !== this.state || message !== this.message) {
        out.push(cs.health === 'read-only'
          ? `error: commit failed: ${message}. The mount is read-only from now on (changes fail with EROFS): this batch cannot be committed; ${pending} (lost at unmount unless an fsync or the final commit succeeds)`
          : `error: commit failed: ${message}. Retried every commit interval; changes fail with ${cs.refusedWith ?? 'EIO'} until a commit succeeds; ${pending}`);
        this.lastSaid = now;
      } else if (now - this.lastSaid >= REMIND_MS) {
        out.push(`error: commits still failing (${cs.failing} attempts): ${message}; ${pending}`);
        this.lastSaid = now;
      }
    } else if (this.state !== 'ok') {
      const n = cs.failures - this.failuresBefore;
      out.push(`commits succeed again after ${n} failed attempt${n === 1 ? '' : 's'}; the mount accepts changes again`);
    } else if (cs.failures > this.failures) {
      out.push(`error: a commit failed and its retry succeeded: ${message}`);
    }
    this.failures = cs.failures;
    this.state = cs.health;
    this.message = message;
    return out;
  }
}
