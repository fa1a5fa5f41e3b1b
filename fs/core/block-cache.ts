import type { Ino } from './api.js';

/**
 * A small LRU of clean plaintext blocks shared by all inodes (the decrypted-block cache: the
 * chain store decrypts on every getBlock, so repeated reads of one block — 4 KiB reads, a kernel
 * re-reading after invalidation — must not decrypt again). Dirty and in-flight pages live in the
 * inode itself; only committed, immutable buffers come here.
 *
 * Keys are numbers (ino * 2^22 + index) where that is exact, so a local chain's hot path
 * allocates no strings; past it (inos from 2^31, blocks from 2^22) they are strings. A remote
 * mount's inode numbers all lie there (a machine's range starts at M * 2^32, fs/remote/ino-space.ts):
 * when those blocks were left uncached, a remote mount decrypted a block again on every read of
 * it, and its reads fetched nothing ahead (the core's `fetching` map shares these keys).
 */
const INDEX_SPAN = 2 ** 22;
const INO_LIMIT = 2 ** 31;

/** A block's key in the cache (BlockCache.key). */
export type BlockKey = number | string;

export class BlockCache {
  private readonly map = new Map<BlockKey, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  static key(ino: Ino, index: number): BlockKey {
    return index < INDEX_SPAN && ino < INO_LIMIT ? ino * INDEX_SPAN + index : `${ino}/${index}`;
  }

  get(ino: Ino, index: number): Buffer | undefined {
    const k = BlockCache.key(ino, index);
    const b = this.map.get(k);
    if (b !== undefined) { this.map.delete(k); this.map.set(k, b); }
    return b;
  }

  /** Whether a block is cached, without touching its LRU position. */
  has(ino: Ino, index: number): boolean {
    return this.map.has(BlockCache.key(ino, index));
  }

  set(ino: Ino, index: number, data: Buffer): void {
    if (this.maxBytes <= 0) return;
    const k = BlockCache.key(ino, index);
    const old = this.map.get(k);
    if (old !== undefined) { this.bytes -= old.length; this.map.delete(k); }
    this.map.set(k, data);
    this.bytes += data.length;
    if (this.bytes > this.maxBytes) {
      for (const [key, b] of this.map) {
        this.map.delete(key);
        this.bytes -= b.length;
        if (this.bytes <= this.maxBytes) break;
      }
    }
  }

  delete(ino: Ino, index: number): void {
    const k = BlockCache.key(ino, index);
    const old = this.map.get(k);
    if (old !== undefined) { this.bytes -= old.length; this.map.delete(k); }
  }

  clear(): void { this.map.clear(); this.bytes = 0; }
}
