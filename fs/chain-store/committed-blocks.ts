/**
 * The last committed content of recently written blocks, for page deltas (block-delta.ts).
 *
 * Deciding what a rewritten block commits needs the block as committed: its base, the base with
 * its delta, and that with its recent delta. Read from the view, that is a decryption of the 64 KiB
 * base plus each delta, and new 64 KiB buffers for each level, on every fsync of a block being
 * rewritten (a database's page, a log file's last block): the largest cost of such a commit before
 * the log write, and most of its garbage. The levels a commit leaves are known when it is built, so
 * they are kept here after it lands and used while the chain still holds exactly that; so are the
 * levels of a block read from the chain (ChainStore.getBlock), which a page rewrite reads first and
 * its commit needs again.
 *
 * "Exactly that" is checked by the event hashes the index holds for the block and its two deltas
 * (a hash covers the DAO key, the version and the sealed payload): any other commit touching the
 * block (a remote edit, a truncate, a rewrite by another path, compaction's re-seal) changes a hash
 * and the entry is not used. The buffers are never written: blocks handed to the store are
 * immutable, deltas are decoded from buffers nothing writes again, and applyDelta returns new
 * buffers.
 */
import type { View } from '../../src/view/index.js';
import type { BlockDelta } from './block-delta.js';

/**
 * A block as committed, in its levels: the base, the delta over it and the recent delta over that
 * (null: none, or emptied). Kept decoded and not applied: a block with both levels costs its base
 * and a few pages, not three blocks, so one fsync's worth of a database's blocks fits.
 */
export interface BlockLevels {
  /** The block DAO's plaintext. */
  base: Buffer;
  delta: BlockDelta | null;
  recent: BlockDelta | null;
}

interface Entry extends BlockLevels {
  /** Event hashes of [block, delta, recent delta] when these levels were committed (null: absent). */
  hashes: Array<Buffer | null>;
  bytes: number;
}

/**
 * Bytes of kept levels: enough for the blocks a database rewrites between two fsyncs (1 MiB of
 * random pages touches 256 blocks), bounded whatever the workload.
 */
const MAX_BYTES = 32 << 20;

export class CommittedBlocks {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  /** Lookups answered here / not (absent, or the chain holds something else now). */
  hits = 0;
  misses = 0;

  constructor(private readonly maxBytes = MAX_BYTES) {}

  /** The levels of block `keys[0]` when the view still holds what they were committed as. */
  get(view: View, keys: readonly [string, string, string]): BlockLevels | undefined {
    const e = this.entries.get(keys[0]);
    if (!e) { this.misses++; return undefined; }
    for (let i = 0; i < 3; i++) {
      const h = hashOf(view, keys[i]!);
      const want = e.hashes[i]!;
      if (h === null ? want !== null : want === null || !h.equals(want)) {
        this.forget(keys[0]);
        this.misses++;
        return undefined;
      }
    }
    // Most recently used last: the first in the map is evicted.
    this.entries.delete(keys[0]);
    this.entries.set(keys[0], e);
    this.hits++;
    return e;
  }

  /** After the commit that left `levels` applied: what the view now holds for the three keys. */
  set(view: View, keys: readonly [string, string, string], levels: BlockLevels): void {
    this.forget(keys[0]);
    // Built field by field: a spread of the levels cost several microseconds per commit here.
    const e: Entry = { base: levels.base, delta: levels.delta, recent: levels.recent, hashes: keys.map((k) => hashOf(view, k)), bytes: sizeOf(levels) };
    this.entries.set(keys[0], e);
    this.bytes += e.bytes;
    for (const [k, old] of this.entries) {
      if (this.bytes <= this.maxBytes || old === e) break;
      this.entries.delete(k);
      this.bytes -= old.bytes;
    }
  }

  forget(blockKey: string): void {
    const e = this.entries.get(blockKey);
    if (!e) return;
    this.entries.delete(blockKey);
    this.bytes -= e.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/** Memory the levels hold. */
function sizeOf(l: BlockLevels): number {
  return l.base.length + (l.delta?.body.length ?? 0) + (l.recent?.body.length ?? 0);
}

function hashOf(view: View, key: string): Buffer | null {
  const e = view.entry(key);
  return e && !e.node.deleted ? e.hash : null;
}
