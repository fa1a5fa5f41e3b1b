// Loading and compaction progress as the mount and `atefs status` show it: the view's reports
// ({phase, done, total, unit}) become a phase with a percentage, a rate and an ETA, shown only once
// the phase has run longer than ATEFS_PROGRESS_AFTER_MS (fast opens stay quiet).
import type { ProgressUnit, ViewPhase, ViewProgress } from '../src/view/index.js';

/** What a progress bar or a plain line shows (also sent through the control socket as JSON). */
export interface ProgressState {
  phase: ViewPhase;
  /** What the phase does, in words. */
  label: string;
  done: number;
  total: number;
  unit: ProgressUnit;
  /** 0..100, whole numbers; 100 only when done === total. */
  percent: number;
  /** Units per second since the phase started. */
  rate: number;
  /** Estimated ms to the end of the phase (null before anything was done). */
  etaMs: number | null;
  elapsedMs: number;
  finished: boolean;
}

const LABELS: Record<ViewPhase, string> = {
  download: 'downloading the history',
  verify: 'checking the index against the log',
  replay: 'replaying the log',
  rebuild: 'rebuilding the index',
  'compact-scan': 'compaction: finding live records',
  'compact-check': 'compaction: checking the new log',
  'compact-copy': 'compaction: writing the new log',
  'compact-index': 'compaction: updating the index',
};

export const DEFAULT_PROGRESS_AFTER_MS = 300;

/** ATEFS_PROGRESS_AFTER_MS (a whole number of ms >= 0), else the default. */
export function progressAfterMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.ATEFS_PROGRESS_AFTER_MS;
  if (v === undefined || v.trim() === '') return DEFAULT_PROGRESS_AFTER_MS;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : DEFAULT_PROGRESS_AFTER_MS;
}

/**
 * The phase under way, from the view's reports. A report of another phase (or one whose done went
 * back: compaction's check may run again) starts a new phase. `report` returns the state when it
 * is to be shown (the phase has run at least `afterMs`), else null.
 */
export class ProgressTracker {
  private cur: { p: ViewProgress; startedAt: number } | null = null;
  /** Counts phases started (ProgressLines prints a new phase's first line at once). */
  generation = 0;
  private readonly afterMs: number;
  private readonly now: () => number;

  constructor(o: { afterMs?: number; now?: () => number } = {}) {
    this.afterMs = o.afterMs ?? progressAfterMs();
    this.now = o.now ?? Date.now;
  }

  report(p: ViewProgress): ProgressState | null {
    const c = this.cur;
    if (!c || c.p.phase !== p.phase || p.done < c.p.done || c.p.done >= c.p.total) {
      this.cur = { p, startedAt: this.now() };
      this.generation++;
    }
    else c.p = p;
    return this.visible();
  }

  /** The phase under way, once it has run `afterMs`; undefined when none is (or it is finished). */
  current(): ProgressState | undefined {
    const s = this.visible();
    return s && !s.finished ? s : undefined;
  }

  private visible(): ProgressState | null {
    const c = this.cur;
    if (!c) return null;
    const elapsedMs = this.now() - c.startedAt;
    if (elapsedMs < this.afterMs) return null;
    return stateOf(c.p, elapsedMs);
  }
}

export function stateOf(p: ViewProgress, elapsedMs: number): ProgressState {
  const total = Math.max(p.total, p.done);
  const finished = p.done >= total;
  const percent = finished ? 100 : Math.min(99, Math.floor((p.done / Math.max(1, total)) * 100));
  const rate = elapsedMs > 0 ? (p.done / elapsedMs) * 1000 : 0;
  const etaMs = finished ? 0 : rate > 0 ? ((total - p.done) / rate) * 1000 : null;
  return { phase: p.phase, label: LABELS[p.phase] ?? p.phase, done: p.done, total, unit: p.unit, percent, rate, etaMs, elapsedMs, finished };
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** An amount in the phase's unit ("12.3 MiB", "4096 records"). */
export function amount(n: number, unit: ProgressUnit): string {
  return unit === 'bytes' ? bytes(n) : `${Math.round(n)} ${unit}`;
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

/** "12.3 of 40.0 MiB, 8.1 MiB/s, ETA 3s" — what follows the bar or the percentage. */
export function progressDetail(s: ProgressState): string {
  const rate = `${amount(s.rate, s.unit)}/s`;
  if (s.finished) return `${amount(s.total, s.unit)} in ${(s.elapsedMs / 1000).toFixed(1)} s, ${rate}`;
  const of = s.unit === 'bytes' ? `${bytes(s.done)} of ${bytes(s.total)}` : `${Math.round(s.done)} of ${amount(s.total, s.unit)}`;
  return `${of}, ${rate}, ETA ${s.etaMs === null ? '-' : duration(s.etaMs)}`;
}

/** The plain-line form: "rebuilding the index: 42% (12.3 of 40.0 MiB, 8.1 MiB/s, ETA 3s)". */
export function progressLine(s: ProgressState): string {
  return `${s.label}: ${s.percent}% (${progressDetail(s)})`;
}

/**
 * Plain progress lines (off a terminal): the first line of a shown phase, then at most one every
 * `everyMs`, and always its 100% line.
 */
export class ProgressLines {
  private printed = -1;
  private lastAt = 0;
  private readonly everyMs: number;
  private readonly now: () => number;

  constructor(private readonly tracker: ProgressTracker, private readonly write: (line: string) => void, o: { everyMs?: number; now?: () => number } = {}) {
    this.everyMs = o.everyMs ?? 1000;
    this.now = o.now ?? Date.now;
  }

  report(p: ViewProgress): void {
    const s = this.tracker.report(p);
    if (!s) return;
    const t = this.now();
    const fresh = this.printed !== this.tracker.generation;
    if (!fresh && !s.finished && t - this.lastAt < this.everyMs) return;
    this.printed = this.tracker.generation;
    this.lastAt = t;
    this.write(progressLine(s));
  }
}
