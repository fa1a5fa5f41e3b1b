// Upkeep of a replication client's staging log (RemoteChain): what the server refused or has
// confirmed is dropped from it, so that the next open neither stages nor sends it again. Both run
// one at a time, after whatever the log is doing.
import { decodeCommit } from '../chain/index.js';
import type { CompactOptions, RedoLog } from '../log/index.js';

/** The staging log is compacted once its confirmed commits add up to this much (compactIfIdle). */
const COMPACT_BYTES = 4 << 20;
/** ... and once nothing was staged for this long. */
const COMPACT_IDLE_MS = 1000;

export interface StagingUpkeepHost {
  readonly closed: () => boolean;
  /** Staged commits not confirmed (nor refused) yet. */
  readonly pendingCount: () => number;
  /** Whether the server confirmed this commit (it is in the replica). */
  readonly confirmed: (hash: Buffer) => boolean;
  readonly compaction?: Pick<CompactOptions, 'failAt' | 'onStep'> | undefined;
}

export class StagingUpkeep {
  /** The last drop or compaction started (close() waits for it). */
  private chain: Promise<void> = Promise.resolve();
  /** Refused commits (hex hashes) not yet dropped from the staging log. */
  private readonly refused = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly staging: RedoLog, private readonly host: StagingUpkeepHost) {}

  /** Drops a refused commit (handed back to its owner) from the staging log. */
  dropRefused(hash: Buffer): void {
    this.refused.add(hash.toString('hex'));
    this.chain = this.chain.then(async () => {
      if (this.host.closed()) return;
      // Dropped: what was refused or is confirmed; everything else stays. Not "keep what is
      // pending": a commit whose staging append is still syncing is in the log but not in
      // `pending` yet (RemoteChain.stage), and the compaction syncs before it cuts, so such a
      // commit lands before the cut — dropping it lost a commit acknowledged as staged on the next crash.
      const drop = new Set(this.refused);
      await this.staging.compact((rec) => {
        try {
          const c = decodeCommit(Buffer.from(rec.payload));
          return !drop.has(c.hash.toString('hex')) && !this.host.confirmed(c.hash);
        } catch {
          return false;
        }
      });
      for (const h of drop) this.refused.delete(h);
    }).catch(() => undefined);
  }

  /** After confirmations: drops everything confirmed once the writer paused (see below). */
  compactIfIdle(): void {
    // Compaction fsyncs its manifest and the directory (and the tail segment it rotates to): worth
    // it only once the confirmed commits in the staging log add up (on open, confirmed ones are
    // skipped anyway), and only once the writer paused — a big copy whose uploads keep up empties
    // `pending` between its commits, and compacting there put a synchronous rotation (and, before
    // dropBefore, a read of everything staged so far) in the middle of its writes.
    if (this.host.pendingCount() > 0 || this.staging.nextSeq === 1 || this.staging.sizeBytes() < COMPACT_BYTES) return;
    if (this.timer) clearTimeout(this.timer);
    const staged = this.staging.nextSeq;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.chain = this.chain.then(async () => {
        if (this.host.closed() || this.host.pendingCount() > 0 || this.staging.nextSeq !== staged) return;
        // Everything staged before `staged` is confirmed: drop it (records keep their seqs, the log
        // just empties) without reading it back — dropBefore skips the segments holding only such
        // records, so after a big copy this costs the switch (manifest, directory fsync), not a read
        // and checksum of every byte staged. What is staged while the compaction runs (it syncs the
        // log before it cuts, so such records can fall before the cut) is not confirmed: it stays.
        // A crash anywhere leaves the old staging log (its commits are found in the replica or
        // re-sent and refused as replays) or the new one (the log's manifest switch).
        await this.staging.compact(() => true, { ...this.host.compaction, dropBefore: staged });
      }).catch(() => undefined);
    }, COMPACT_IDLE_MS);
    this.timer.unref?.();
  }

  /** Stops the idle timer and waits for a drop or compaction under way. */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.chain;
  }
}
