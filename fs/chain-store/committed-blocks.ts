/**
 * The last committed content of recently written blocks, for page deltas (block-delta.ts).
 *
 * Deciding what a rewritten block commits needs the block as committed: its base, the base with
 * its delta, and that with its recent delta. Read from the view, that is a decryption of the 64 KiB
 * base plus each delta, and new 64 KiB buffers for each level, on every fsync of a block being
 * rewritten (a database's page, a log file's last block): the largest cost of such a commit before
 * the log write, and most of its garbage. The levels a commit leaves are known when it is built, so
 * they are kept here after it lands and used while the chain still holds exactly that.
 *
 * "Exactly that" is checked by the event hashes the index holds for the block and its two deltas
 * (a hash covers the DAO key, the version and the sealed payload): any other commit touching the
 * block (a remote edit, a truncate, a rewrite by another path, compaction's re-seal) changes a hash
 * and the entry is not used. The buffers are never written: blocks handed to the store are
 * immutable, and applyDelta returns new buffers.
 */
import type { View } from '../../src/view/index.js';

export interface BlockLevels {
  /** The block DAO's plaintext. */
  base: Buffer;
  /** The base with the delta applied (the base itself when the delta is empty). */
  underRecent: Buffer;
  /** The block as committed: underRecent with the recent delta applied. */
  cur: Buffer;
}

interface Entry extends BlockLevels {
  /** Event hashes of [block, delta, recent delta] when these levels were committed (null: absent). */
  hashes: Array<Buffer | null>;
}

/** Blocks kept: 32 x up to 3 x 64 KiB, at most 6 MiB. */
const MAX_ENTRIES = 32;

export class CommittedBlocks {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly max = MAX_ENTRIES) {}

  /** The levels of block `keys[0]` when the view still holds what they were committed as. */
  get(view: View, keys: readonly [string, string, string]): BlockLevels | undefined {
    const e = this.entries.get(keys[0]);
    if (!e) return undefined;
    for (let i = 0; i < 3; i++) {
      const h = hashOf(view, keys[i]!);
      const want = e.hashes[i]!;
      if (h === null ? want !== null : want === null || !h.equals(want)) {
        this.entries.delete(keys[0]);
        return undefined;
      }
    }
    // Most recently used last: the first in the map is evicted.
    this.entries.delete(keys[0]);
    this.entries.set(keys[0], e);
    return e;
  }

  /** After the commit that left `levels` applied: what the view now holds for the three keys. */
  set(view: View, keys: readonly [string, string, string], levels: BlockLevels): void {
    this.entries.delete(keys[0]);
    this.entries.set(keys[0], { ...levels, hashes: keys.map((k) => hashOf(view, k)) });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }

  forget(blockKey: string): void {
    this.entries.delete(blockKey);
  }

  clear(): void {
    this.entries.clear();
  }
}

function hashOf(view: View, key: string): Buffer | null {
  const e = view.entry(key);
  return e && !e.node.deleted ? e.hash : null;
}
