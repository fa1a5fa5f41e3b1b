// What `atedb solo` counts about itself, for its panel, its --json stats lines and --metrics.
// Counting is cheap on purpose: plain number fields bumped where the event happens (server.ts for
// connections and wire bytes, session.ts for rejections, hosted-chain.ts for stored appends and
// their durable-write latency); nothing is allocated per append. Figures that already live
// elsewhere (chains open, bytes of open connections) are read when a snapshot is taken.

/** Upper bounds (ms) of the durable-append latency buckets; one more bucket catches the rest. */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
];

/** A fixed-bucket latency histogram: recording is an index search and an increment. */
export class LatencyHistogram {
  readonly counts = new Float64Array(LATENCY_BOUNDS_MS.length + 1);
  count = 0;
  sumMs = 0;

  record(ms: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sumMs += ms;
  }
}

/**
 * The q-quantile (0..1) of bucket counts, as the upper bound of the bucket it falls in (the
 * overflow bucket reports the largest bound); null without samples. An estimate within a factor
 * of two, which is what a p99 on a panel needs.
 */
export function quantileMs(counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total <= 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return LATENCY_BOUNDS_MS[Math.min(i, LATENCY_BOUNDS_MS.length - 1)]!;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!;
}

/** The hosted chains' side of the counting (hosted-chain.ts knows nothing else of stats). */
export interface AppendStats {
  /** A commit is stored durably: `ms` from the log append to its fdatasync, `events` in it. */
  stored(ms: number, events: number): void;
}

export interface StatsSnapshot {
  /** ms since the epoch when taken. */
  at: number;
  startedAt: number;
  connections: { open: number; total: number };
  chainsOpen: number;
  /** Commits stored and confirmed (genesis commits included). */
  appends: number;
  events: number;
  /** Bytes on the wire (encrypted frames), connections closed and open. */
  bytesIn: number;
  bytesOut: number;
  /** Rejected appends by wire reason. */
  rejected: Record<string, number>;
  /** Durable-append latency: cumulative bucket counts (LATENCY_BOUNDS_MS) and quantiles over all. */
  fsync: { count: number; sumMs: number; buckets: number[]; p50Ms: number | null; p99Ms: number | null };
}

/** What the server reads live when a snapshot is taken. */
export interface LiveFigures {
  connectionsOpen(): number;
  chainsOpen(): number;
  /** Wire bytes of the connections still open. */
  openBytes(): { bytesIn: number; bytesOut: number };
}

export class ServerStats implements AppendStats {
  readonly startedAt = Date.now();
  connectionsTotal = 0;
  appends = 0;
  events = 0;
  /** Wire bytes of connections already closed (open ones are read live). */
  closedBytesIn = 0;
  closedBytesOut = 0;
  readonly rejected = new Map<string, number>();
  readonly fsync = new LatencyHistogram();
  live: LiveFigures | null = null;
  /** Also told every durable-append latency (the --metrics histogram), if set. */
  onStored: ((ms: number) => void) | null = null;

  stored(ms: number, events: number): void {
    this.appends++;
    this.events += events;
    this.fsync.record(ms);
    this.onStored?.(ms);
  }

  rejectedFor(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  connectionClosed(bytesIn: number, bytesOut: number): void {
    this.closedBytesIn += bytesIn;
    this.closedBytesOut += bytesOut;
  }

  snapshot(): StatsSnapshot {
    const open = this.live?.openBytes() ?? { bytesIn: 0, bytesOut: 0 };
    const buckets = Array.from(this.fsync.counts);
    return {
      at: Date.now(),
      startedAt: this.startedAt,
      connections: { open: this.live?.connectionsOpen() ?? 0, total: this.connectionsTotal },
      chainsOpen: this.live?.chainsOpen() ?? 0,
      appends: this.appends,
      events: this.events,
      bytesIn: this.closedBytesIn + open.bytesIn,
      bytesOut: this.closedBytesOut + open.bytesOut,
      rejected: Object.fromEntries([...this.rejected].sort(([a], [b]) => a.localeCompare(b))),
      fsync: { count: this.fsync.count, sumMs: this.fsync.sumMs, buckets, p50Ms: quantileMs(buckets, 0.5), p99Ms: quantileMs(buckets, 0.99) },
    };
  }
}

/** Bucket counts between two snapshots (for quantiles of the last interval). */
export function bucketsSince(prev: StatsSnapshot | null, next: StatsSnapshot): number[] {
  return next.fsync.buckets.map((c, i) => c - (prev?.fsync.buckets[i] ?? 0));
}
