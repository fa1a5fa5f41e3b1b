import type { CompactionReport, View } from '../../src/view/index.js';
import { relocate, scanLiveness, type CleanerOptions, type LivenessScan, type Serializer } from './log-cleaner.js';

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
  /**
   * The space bound: the log stays under `spaceFactor` x live data + `spaceSlackBytes`
   * (defaults 2 and 128 MiB). A space run starts, without waiting for a pause, once the log
   * passes the factor plus an eighth of the slack (the rest is room for what writers append while
   * it runs). 0 disables space runs.
   */
  spaceFactor?: number;
  spaceSlackBytes?: number;
  /**
   * The brake on writers (pace) while a space run catches up with a log past its trigger (the
   * factor plus an eighth of the slack): writes are held for this many ms per MiB they write at
   * the factor plus half the slack and beyond, in proportion below (0 at the trigger).
   * Default 400 (what holding each commit of a database's 256 KiB checkpoint 100 ms cost it);
   * 0 never holds writers.
   */
  paceMaxMsPerMiB?: number;
  /**
   * Longest a single write is held (pace): the brake is paid in many short holds, never one long
   * one, so no call waits past the writer-stall goal (< 100 ms) for it. Default 10 ms.
   */
  holdMaxMs?: number;
  /** The cleaner's knobs (log-cleaner.ts). */
  cleaner?: CleanerOptions;
  /**
   * Runs the cleaner's relocation commits between the file system's batches (ChainStore.serialize).
   * Without it there is no relocation: space runs only compact.
   */
  serialize?: Serializer;
}

/** What the last space run did (stats file, tests, bench:fs). */
export interface SpaceRunReport {
  at: number;
  logBefore: number;
  liveBytes: number;
  sparseBytes: number;
  relocatedBytes: number;
  relocatedDaos: number;
  compaction: CompactionReport | null;
  /** Segments compacted (the others were kept in place), and how many the log had. */
  segments: number;
  segmentsOf: number;
  logAfter: number;
  ms: number;
  /** Not at risk after all: live data grew as much as the log. */
  skipped: boolean;
}

const MiB = 1 << 20;

/**
 * Runs the view's compaction policy (factor/size/timer, view.policy) for a mounted filesystem,
 * but starts a due compaction only once commits have paused for `idleMs` (or it has waited
 * `maxDeferMs`). The view's own automatic runs (after every commit) are switched off for that
 * (compaction.auto false): a compaction replays the whole log into a scratch index and compares
 * it with the live one, on the serving thread (in slices). On a chain growing from a bulk load
 * the factor trigger fires at every 40% of growth — a dozen full replays during an 8,000-file
 * untar, measured at ~2-3 s of its ~10 s — while the writer waits behind each slice. Deferred to
 * the pause after the load, the same policy compacts once, when nobody waits.
 *
 * Under writes that never pause (a database rewriting its pages) that alone let the log grow
 * without bound: measured, 2.7 GB of log for 75 MB of pages. So the space bound has its own
 * trigger, checked on the same tick and not deferred: when the log passes spaceFactor x the live
 * data (as last measured) + half the slack, a space run measures the live data again, relocates
 * the live events of commits that are mostly dead (log-cleaner.ts) and compacts urgently (longer
 * slices, short waits for writers: it must outpace the growth; a commit still waits for at most
 * one slice). A bulk load that grows live data as fast as the log only costs a measurement per
 * doubling: the next trigger is computed from the new live figure.
 */
export class CompactionScheduler {
  private readonly idleMs: number;
  private readonly maxDeferMs: number;
  private readonly spaceFactor: number;
  private readonly spaceSlack: number;
  private readonly paceMaxMsPerMiB: number;
  private readonly holdMaxMs: number;
  /** Hold time the writes since the last hold have earned (ms; see pace). */
  private paceDebt = 0;
  private lastCommit = 0;
  private dueSince: number | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  /** Live bytes as last measured (0 until the first space run). */
  private live = 0;
  /** Log size when the last space run ended: the next one needs new growth (see spaceDue). */
  private lastSpaceEnd = 0;
  /** When the last space run ended (Date.now()). */
  private lastSpaceEndAt = 0;
  private spaceRun: Promise<void> | null = null;
  private stopped = false;
  /** Compactions this scheduler started (tests, stats). */
  started = 0;
  /** Space runs started, and the last one's report. */
  spaceRuns = 0;
  lastSpaceRun: SpaceRunReport | null = null;
  lastSpaceError: Error | null = null;
  /** Bytes the cleaner wrote again, over every space run. */
  relocatedBytes = 0;
  /**
   * Writes pace() held back, for how long in all (ms, as measured: a busy event loop fires the
   * timer late) and the longest hold it asked for.
   */
  throttled = 0;
  throttledMs = 0;
  longestThrottleMs = 0;

  constructor(private readonly view: View, private readonly opts: CompactionSchedulerOptions = {}) {
    this.idleMs = opts.idleMs ?? 2000;
    this.maxDeferMs = opts.maxDeferMs ?? 60_000;
    this.spaceFactor = opts.spaceFactor ?? 2;
    this.spaceSlack = opts.spaceSlackBytes ?? 128 * MiB;
    this.paceMaxMsPerMiB = opts.paceMaxMsPerMiB ?? 400;
    this.holdMaxMs = opts.holdMaxMs ?? 10;
    if (!(this.paceMaxMsPerMiB >= 0)) throw new RangeError('paceMaxMsPerMiB must be >= 0');
    if (!(this.holdMaxMs > 0)) throw new RangeError('holdMaxMs must be > 0');
    if (!(this.spaceFactor === 0 || this.spaceFactor >= 1)) throw new RangeError('spaceFactor must be 0 (off) or >= 1');
    if (!(this.spaceSlack >= 0)) throw new RangeError('spaceSlackBytes must be >= 0');
    this.unsubscribe = view.subscribe(() => { this.lastCommit = Date.now(); });
    this.timer = setInterval(() => this.tick(), opts.pollMs ?? 500);
    this.timer.unref();
  }

  /** Live data as last measured by a space run (0 before the first). */
  get liveBytes(): number {
    return this.live;
  }

  /** Counters for the mount's stats file: log size against live data, space runs, relocation. */
  counters(): Record<string, number> {
    const last = this.lastSpaceRun;
    return {
      logBytes: this.view.log.sizeBytes(),
      liveBytes: this.live,
      spaceRuns: this.spaceRuns,
      relocatedBytes: this.relocatedBytes,
      throttledWrites: this.throttled,
      throttledMs: Math.round(this.throttledMs),
      ...(last?.compaction ? { lastSpaceCompactionMs: Math.round(last.compaction.ms), lastSpaceMaxWriterStallMs: Math.round(last.compaction.maxWriterStallMs) } : {}),
    };
  }

  /**
   * The log size at which a space run starts. After a run that compacted, the next may start at
   * once: a writer appending faster than one run reclaims (a database's page rewrites: several
   * times the bytes it writes, see block-delta.ts) needs runs back to back, and the compaction
   * policy's own minimum reclaim keeps a run from copying a log it cannot shrink. After a run that
   * did not compact (too little dead), the trigger backs off to new growth past where it ended.
   */
  spaceTrigger(): number {
    const start = this.spaceFactor * this.live + this.spaceSlack / 8;
    const last = this.lastSpaceRun;
    // No back-off after a run that gained a real amount (a fast writer needs the next one soon);
    // after one that gained nothing to speak of, the log cannot shrink now: back off.
    const gained = last !== null && last.compaction !== null && !last.compaction.skipped &&
      last.logBefore - last.logAfter > Math.max(MiB, last.logBefore / 100);
    return gained ? start : Math.max(start, this.lastSpaceEnd + Math.max(this.spaceSlack / 4, MiB));
  }

  /**
   * Called after each write of `bytes` (ChainStore.writeBrake, the transports' write
   * backpressure). While a space run is catching up and the log is past the trigger (factor plus
   * an eighth of the slack), writes earn hold time in proportion to how far it is past the
   * trigger, up to paceMaxMsPerMiB at half the slack: writers slow down and the run gets the
   * thread and the disk, instead of the log passing the bound. The hold is paid in pieces of at
   * most holdMaxMs by the write that crosses it, so no call waits long (the writer-stall goal,
   * < 100 ms per call, which holding a whole commit up to 100 ms broke on top of the commit's
   * own time). Null (reply at once) below the mark, with no run going, or while the debt is small.
   */
  pace(bytes: number): Promise<void> | null {
    if (this.spaceFactor <= 0 || this.paceMaxMsPerMiB <= 0 || this.spaceRun === null || this.stopped) { this.paceDebt = 0; return null; }
    let size: number;
    try {
      size = this.view.log.sizeBytes();
    } catch {
      return null; // closed
    }
    const soft = this.spaceFactor * this.live + this.spaceSlack / 8;
    if (size <= soft) { this.paceDebt = 0; return null; }
    // Full brake from half the slack on: what a run has not reclaimed by then must wait.
    const full = this.spaceFactor * this.live + this.spaceSlack / 2;
    const share = Math.min(1, (size - soft) / (full - soft || 1));
    this.paceDebt += (this.paceMaxMsPerMiB * share * bytes) / MiB;
    // Pieces of at least 2 ms (a timer's resolution), at most holdMaxMs.
    if (this.paceDebt < Math.min(2, this.holdMaxMs)) return null;
    const ms = Math.min(this.holdMaxMs, this.paceDebt);
    this.paceDebt -= ms;
    const t0 = performance.now();
    this.throttled++;
    if (ms > this.longestThrottleMs) this.longestThrottleMs = ms;
    return new Promise<void>((r) => setTimeout(r, ms)).then(() => { this.throttledMs += performance.now() - t0; });
  }

  /** Whether a space run is due now (tests wait for the log to settle with it). */
  spaceDueNow(): boolean {
    try {
      return this.spaceDue(this.view.log.sizeBytes());
    } catch {
      return false; // closed
    }
  }

  private spaceDue(size: number): boolean {
    if (this.spaceFactor <= 0) return false;
    if (size >= this.spaceTrigger()) return true;
    // The trigger backs off after a run (no thrashing on a log that cannot shrink). But a run that
    // raced a fast writer ends above the bound with what was appended meanwhile: once nothing was
    // committed since it ended, run again — as long as runs still shrink the log by a real amount
    // (a run that re-signs what it kept appends a little: a few bytes gained is no progress, and
    // counting it as one ran hundreds of useless runs once the writer stopped).
    const last = this.lastSpaceRun;
    const gained = last ? last.logBefore - last.logAfter : 0;
    return last !== null && !last.skipped && gained > Math.max(1 << 20, last.logBefore / 100) && this.lastCommit <= this.lastSpaceEndAt &&
      size >= this.spaceFactor * this.live + this.spaceSlack / 8;
  }

  private tick(): void {
    const view = this.view;
    if (this.spaceRun) return;
    let size: number;
    try {
      size = view.log.sizeBytes();
    } catch {
      return; // closed meanwhile
    }
    if (this.spaceDue(size)) {
      this.dueSince = null;
      this.spaceRun = this.runSpace(size).catch((e: unknown) => { this.lastSpaceError = e as Error; })
        .finally(() => { this.spaceRun = null; });
      return;
    }
    if (view.compacting) return;
    const now = Date.now();
    let reason: string | null;
    try {
      reason = view.policy.check(size, now);
    } catch {
      return; // closed meanwhile
    }
    if (reason === null) { this.dueSince = null; return; }
    this.dueSince ??= now;
    if (now - this.lastCommit < this.idleMs && now - this.dueSince < this.maxDeferMs) return;
    this.dueSince = null;
    this.started++;
    if (this.spaceFactor > 0 && view.log.segmentList) {
      // Under the space bound a policy run compacts only what fits too: a whole-log copy beside
      // the log (a pause right after a space run: ~230 MiB of log + ~110 MiB of copy for a 64 MiB
      // file) would pass the bound the space runs keep.
      this.spaceRun = this.runPolicy(reason).catch(() => undefined).finally(() => { this.spaceRun = null; });
      return;
    }
    // A failure keeps the old log; the view reports it in stats() and resets the policy's baseline.
    try {
      // automatic: skipped (log untouched) when too little of it is dead to be worth a rewrite.
      view.compact(reason, { automatic: true }).catch(() => undefined);
    } catch {
      /* closed or read-only meanwhile */
    }
  }

  /**
   * One space run: measure the live data; if the log is still past the trigger, relocate what
   * keeps mostly-dead commits alive and compact urgently.
   */
  private async runSpace(logBefore: number): Promise<void> {
    const view = this.view;
    const t0 = performance.now();
    this.spaceRuns++;
    const report: SpaceRunReport = {
      at: Date.now(), logBefore, liveBytes: 0, sparseBytes: 0, relocatedBytes: 0, relocatedDaos: 0,
      compaction: null, segments: 0, segmentsOf: 0, logAfter: logBefore, ms: 0, skipped: false,
    };
    try {
      // A running (deferred) compaction first: the scan would race its index switch.
      if (view.compacting) await view.compacting.catch(() => undefined);
      if (this.stopped) return;
      const scan = await scanLiveness(view, this.opts.cleaner);
      this.live = scan.liveBytes;
      report.liveBytes = scan.liveBytes;
      report.sparseBytes = scan.sparseBytes;
      if (!this.spaceDue(view.log.sizeBytes())) { report.skipped = true; return; }
      const victims = this.victims(scan);
      report.segments = victims?.size ?? 0;
      report.segmentsOf = view.log.segmentList?.().length ?? 0;
      const sparse = victims ? new Set([...victims].flatMap((id) => scan.segments.get(id)?.sparse ?? [])) : scan.sparse;
      if (this.opts.serialize && sparse.size > 0 && !this.stopped) {
        const r = await relocate(view, sparse, this.opts.serialize, this.opts.cleaner);
        report.relocatedBytes = r.bytes;
        report.relocatedDaos = r.daos;
        this.relocatedBytes += r.bytes;
      }
      if (this.stopped) return;
      this.started++;
      report.compaction = await view.compact('space', { automatic: true, urgent: true, ...(victims ? { segments: victims } : {}) });
    } finally {
      report.logAfter = view.log.sizeBytes();
      report.ms = performance.now() - t0;
      this.lastSpaceEnd = report.logAfter;
      this.lastSpaceEndAt = Date.now();
      this.lastSpaceRun = report;
    }
  }

  /**
   * The segments a space run compacts. A compaction writes the records it keeps into new segments
   * before it deletes the old ones, so until its switch the disk holds the log plus that copy
   * (and what relocation and the writers append meanwhile): compacting the whole log at once took
   * the disk to ~1.3x the bound at each run (a 64 MiB file: 240 MB of log + 105 MB of copy against
   * a bound of 288 MiB). So a run takes the sealed segments with the most to free first (dead
   * bytes, as a share of the segment), as many as fit: the log now, plus the copy and the
   * relocation of those, plus half the slack for the writers meanwhile, within the bound (a
   * quarter was too little: through a kernel mount a run of 2-4 s met writers appending ~16 MiB/s,
   * and one sample of 88 went 2 MiB over).
   * At least one (a run must make progress; the write brake, pace, holds the writers back meanwhile).
   * `relocating`: the run relocates the sparse commits of its segments (a space run), so they
   * cost their live bytes; else (a policy run) they are copied whole. Undefined: compact the whole
   * log (a log that cannot list its segments, or whose records are all in the active segment).
   */
  private victims(scan: LivenessScan, relocating = true): Set<number> | undefined {
    const list = this.view.log.segmentList?.();
    if (!list) return undefined;
    const withRecords = list.filter((s) => !s.active && s.records > 0);
    // Everything in the active segment (a small log): compacting it all copies at most one segment.
    if (withRecords.length === 0) return undefined;
    const sealed = withRecords.map((s) => {
      const l = scan.segments.get(s.id);
      // Relocated, a sparse commit costs its live bytes (written again) and is freed; else it is copied whole.
      const cost = (l?.keptBytes ?? s.bytes) + (relocating ? l?.sparseLive ?? 0 : l?.sparseBytes ?? 0);
      return { id: s.id, cost, free: s.bytes - cost };
    }).filter((s) => s.free > 0);
    // Nothing sealed to free (the run then finds too little to reclaim and leaves the log alone).
    if (sealed.length === 0) return new Set();
    sealed.sort((a, b) => b.free / (b.free + b.cost) - a.free / (a.free + a.cost));
    const logBytes = this.view.log.sizeBytes();
    let room = this.spaceFactor * this.live + this.spaceSlack / 2 - logBytes;
    // The run is an automatic compaction: it is skipped unless its segments free at least this.
    // Once the log is past the room (the writers outran a run), the room takes one segment only,
    // and that alone freed too little: every later run was skipped and the log grew without end
    // (1.1 GB against 80 MiB live in bench:fs's rewrite; fs-space-bound failed about one run in
    // two). So the deadest segments are taken until they free that much, room or not.
    const need = this.view.policy.minReclaimBytes(logBytes);
    const out = new Set<number>();
    let freed = 0;
    for (const s of sealed) {
      if (out.size > 0 && s.cost > room && freed >= need) continue;
      out.add(s.id);
      room -= s.cost;
      freed += s.free;
    }
    return out;
  }

  /** A compaction the policy wants (factor, size, timer), of the segments that fit (victims, no relocation). */
  private async runPolicy(reason: string): Promise<void> {
    const view = this.view;
    const scan = await scanLiveness(view, this.opts.cleaner);
    if (this.stopped) return;
    this.live = scan.liveBytes;
    const victims = this.victims(scan, false);
    // automatic: skipped (log untouched) when too little of it is dead to be worth a rewrite.
    await view.compact(reason, { automatic: true, ...(victims ? { segments: victims } : {}) });
  }

  /** Resolves when no space run (or policy run under the bound) is in progress (tests; close). */
  async settled(): Promise<void> {
    while (this.spaceRun) await this.spaceRun;
  }

  /** Stops scheduling; a compaction already running is the view's to finish (view.close waits). */
  stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe();
    return this.settled();
  }
}
