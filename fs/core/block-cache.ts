import type { Ino } from './api.js';

/**
 * A small LRU of clean plaintext blocks shared by all inodes (the decrypted-block cache: the
 * chain store decrypts on every getBlock, so repeated reads of one block — 4 KiB reads, a kernel
 * re-reading after invalidation — must not decrypt again). Dirty and in-flight pages live in the
 * inode itself; only committed, immutable buffers come here.
 *
 * Keys are numbers (ino * 2^22 + index) so the hot path allocates no strings; blocks past that
 * range (files above 256 GiB at 64 KiB blocks, inos above 2^31) are simply not cached.
 */
const INDEX_SPAN = 2 ** 22;
const INO_LIMIT = 2 ** 31;

export class BlockCache {
  private readonly map = new Map<number, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  static key(ino: Ino, index: number): number {
    return index < INDEX_SPAN && ino < INO_LIMIT ? ino * INDEX_SPAN + index : -1;
  }

  get(ino: Ino, index: number): Buffer | undefined {
    const k = BlockCache.key(ino, index);
    if (k < 0) return undefined;
    const b = this.map.get(k);
    if (b !== undefined) { this.map.delete(k); this.map.set(k, b); }
    return b;
  }

  /** Whether a block is cached, without touching its LRU position. */
  has(ino: Ino, index: number): boolean {
    const k = BlockCache.key(ino, index);
    return k >= 0 && this.map.has(k);
  }

  set(ino: Ino, index: number, data: Buffer): void {
    if (this.maxBytes <= 0) return;
    const k = BlockCache.key(ino, index);
    if (k < 0) return;
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
    if (k < 0) return;
    const old = this.map.get(k);
    if (old !== undefined) { this.bytes -= old.length; this.map.delete(k); }
  }

  clear(): void { this.map.clear(); this.bytes = 0; }
}
