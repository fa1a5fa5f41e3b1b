import type { FsStore } from './store.js';
import { BlockCache } from './block-cache.js';
import { MAX_FILE_SIZE } from './constants.js';
import { fsErr } from './errors.js';
import type { Inode } from './inode.js';

/** What content operations need from the committer: dirty marking. */
export interface DirtSink {
  markInode(inode: Inode): void;
  markBlock(inode: Inode, index: number, bytes: number): void;
}

const EMPTY = Buffer.alloc(0);
const PAGE_ROUND = 4096;
function roundPage(n: number): number { return Math.ceil(n / PAGE_ROUND) * PAGE_ROUND; }

/**
 * File content: inline data for small files, fixed-size blocks above `inlineMax`, a page cache of
 * dirty/in-flight blocks per inode and a shared LRU of clean blocks.
 *
 * Invariants: bytes of a page past the file size are zero; a page may be shorter than the block
 * size (it reads as zero-padded) (so growing a file never exposes old
 * data); a page buffer not in `inode.owned` may be referenced by the store or the LRU and is
 * copied before it is written (copy-on-write); blocks handed to the store are trimmed to the
 * file size, and a block shorter than the block size reads as if zero-padded.
 */
export class FileContent {
  private readonly zeroBlocks = new Map<number, Buffer>();

  constructor(
    private readonly store: FsStore,
    readonly cache: BlockCache,
    private readonly dirt: DirtSink,
    readonly blockSize: number,
    readonly inlineMax: number,
  ) {}

  isInline(inode: Inode): boolean { return inode.blockSize === undefined; }

  blockSet(inode: Inode): Set<number> {
    let s = inode.blockSet;
    if (s === null) {
      s = new Set(inode.blockSize === undefined ? [] : this.store.blockIndexes(inode.ino));
      inode.blockSet = s;
    }
    return s;
  }

  /** st_blocks in 512-byte units: allocated blocks only (holes don't count), last block by its used part. */
  stBlocks(inode: Inode): number {
    if (!inode.isReg) return 0;
    const size = inode.size;
    const bs = inode.blockSize;
    if (bs === undefined) return Math.ceil(size / 512);
    let set = inode.blockSet;
    if (set === null) {
      if (inode.storedBlocks !== undefined) return inode.storedBlocks;
      set = this.blockSet(inode);
    }
    let n = set.size * (bs / 512);
    if (size > 0) {
      const last = Math.floor((size - 1) / bs);
      if (set.has(last)) n -= (bs - Math.ceil((size - last * bs) / 512) * 512) / 512;
    }
    return n;
  }

  /** The current content of block `index`, or undefined for a hole. May be shorter than the block size. */
  page(inode: Inode, index: number): Buffer | undefined {
    const set = inode.blockSet;
    if (set !== null && !set.has(index)) return undefined;
    const p = inode.pages?.get(index);
    if (p !== undefined) return p;
    const ino = inode.ino;
    const c = this.cache.get(ino, index);
    if (c !== undefined) return c;
    const s = this.store.getBlock(ino, index);
    if (s !== undefined) this.cache.set(ino, index, s);
    return s;
  }

  read(inode: Inode, offset: number, length: number): Buffer {
    const size = inode.size;
    if (offset >= size || length <= 0) return EMPTY;
    const end = Math.min(size, offset + length);
    const bs = inode.blockSize;
    if (bs === undefined) {
      const inl = inode.inline;
      if (inl === undefined) return Buffer.alloc(end - offset);
      // Inline buffers are replaced, never mutated: a view is safe to hand out.
      if (inl.length >= end) return inl.subarray(offset, end);
      const out = Buffer.alloc(end - offset);
      if (inl.length > offset) inl.copy(out, 0, offset);
      return out;
    }
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    if (first === last) {
      const p = this.page(inode, first);
      const from = offset - first * bs, to = end - first * bs;
      if (p === undefined) return Buffer.alloc(to - from);
      // A page not owned by the core is immutable: return a view without copying.
      if (p.length >= to && !(inode.owned?.has(first))) return p.subarray(from, to);
      const out = Buffer.alloc(to - from);
      if (p.length > from) p.copy(out, 0, from, Math.min(to, p.length));
      return out;
    }
    const out = Buffer.allocUnsafe(end - offset);
    let pos = offset;
    for (let i = first; i <= last; i++) {
      const bstart = i * bs;
      const from = pos - bstart;
      const to = Math.min(end - bstart, bs);
      const dst = pos - offset;
      const p = this.page(inode, i);
      if (p === undefined) out.fill(0, dst, dst + (to - from));
      else {
        const n = p.length > from ? p.copy(out, dst, from, Math.min(to, p.length)) : 0;
        if (n < to - from) out.fill(0, dst + n, dst + (to - from));
      }
      pos = bstart + to;
    }
    return out;
  }

  /** Writes `data` at `offset`, growing the file as needed. Does not touch times or modes. */
  write(inode: Inode, offset: number, data: Buffer): void {
    const len = data.length;
    if (len === 0) return;
    const end = offset + len;
    if (end > MAX_FILE_SIZE) throw fsErr('EFBIG');
    if (inode.blockSize === undefined) {
      if (end <= this.inlineMax) {
        const old = inode.inline;
        const nsize = Math.max(inode.size, end);
        // allocUnsafe: small sizes come from Node's pool (no ArrayBuffer per write); every byte
        // is written below — old content, zeros for any gap, then the new data.
        const nb = Buffer.allocUnsafe(nsize);
        const kept = old !== undefined && offset > 0 ? old.copy(nb, 0, 0, Math.min(old.length, offset)) : 0;
        if (kept < offset) nb.fill(0, kept, offset);
        data.copy(nb, offset);
        if (end < nsize) {
          const tail = old !== undefined && old.length > end ? old.copy(nb, end, end, Math.min(old.length, nsize)) : 0;
          if (end + tail < nsize) nb.fill(0, end + tail, nsize);
        }
        inode.inline = nb;
        inode.size = nsize;
        this.dirt.markInode(inode);
        return;
      }
      this.toBlocks(inode);
    }
    const bs = inode.blockSize!;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    let src = 0;
    for (let i = first; i <= last; i++) {
      const bstart = i * bs;
      const from = i === first ? offset - bstart : 0;
      const to = i === last ? end - bstart : bs;
      const page = this.writablePage(inode, i, from === 0 && to === bs, to);
      data.copy(page, from, src, src + (to - from));
      src += to - from;
    }
    if (end > inode.size) inode.size = end;
    this.dirt.markInode(inode);
  }

  /** Sets the size: shrinking drops blocks and zeroes the tail of the last one; growing makes a hole. */
  truncate(inode: Inode, size: number): void {
    if (size > MAX_FILE_SIZE) throw fsErr('EFBIG');
    const old = inode.size;
    if (size === old) return;
    if (inode.blockSize === undefined) {
      if (size <= this.inlineMax) {
        const inl = inode.inline;
        if (size < old && inl !== undefined) inode.inline = size === 0 ? undefined : Buffer.from(inl.subarray(0, size));
        inode.size = size;
        this.dirt.markInode(inode);
        return;
      }
      this.toBlocks(inode);
    }
    const bs = inode.blockSize!;
    if (size < old) {
      if (size <= this.inlineMax) {
        // Small again: back to inline (one record, no blocks).
        const data = size > 0 ? Buffer.from(this.read(inode, 0, size)) : undefined;
        this.dropAllBlocks(inode);
        inode.blockSize = undefined;
        inode.inline = data;
        inode.size = size;
        this.dirt.markInode(inode);
        return;
      }
      const keep = Math.ceil(size / bs);
      const set = this.blockSet(inode);
      for (const i of [...set]) if (i >= keep) this.dropBlock(inode, i);
      const tail = size % bs;
      if (tail !== 0 && set.has(keep - 1)) {
        const p = this.page(inode, keep - 1)!;
        if (p.length > tail) { const w = this.writablePage(inode, keep - 1, false, tail); if (w.length > tail) w.fill(0, tail); }
      }
    }
    inode.size = size;
    this.dirt.markInode(inode);
  }

  /** fallocate mode 0 / KEEP_SIZE: allocates (zero) blocks over the range. */
  allocate(inode: Inode, offset: number, length: number, keepSize: boolean): void {
    const end = offset + length;
    if (end > MAX_FILE_SIZE) throw fsErr('EFBIG');
    if (inode.blockSize === undefined) {
      if (end <= this.inlineMax) {
        if (!keepSize && end > inode.size) this.truncate(inode, end);
        return;
      }
      this.toBlocks(inode);
    }
    const bs = inode.blockSize!;
    const set = this.blockSet(inode);
    const zero = this.zeroBlock(bs);
    const firstBlock = Math.floor(offset / bs), lastBlock = Math.floor((end - 1) / bs);
    // fallocate promises the space: refuse what the store cannot hold (before looping over it).
    if ((lastBlock - firstBlock + 1) * bs > this.store.stats().bytesFree) throw fsErr('ENOSPC');
    for (let i = firstBlock; i <= lastBlock; i++) {
      if (set.has(i)) continue;
      set.add(i);
      (inode.pages ??= new Map()).set(i, zero);
      this.dirt.markBlock(inode, i, bs);
    }
    if (!keepSize && end > inode.size) inode.size = end;
    this.dirt.markInode(inode);
  }

  /**
   * Makes [offset, end) read as zeros without changing the size (fallocate PUNCH_HOLE and
   * ZERO_RANGE): blocks wholly inside the range are dropped, becoming holes — or, with
   * `keepBlocks`, replaced by zero blocks (they stay allocated); the partial blocks at either end
   * get the bytes zeroed. A range reaching the end of the file covers every block from `offset` on,
   * the partial last one and blocks preallocated past the end (KEEP_SIZE) included: what lies past
   * the size reads as zeros anyway.
   */
  clear(inode: Inode, offset: number, end: number, keepBlocks = false): void {
    const size = inode.size;
    const bs = inode.blockSize;
    if (bs === undefined) {
      const inl = inode.inline;
      const to = Math.min(end, size);
      if (inl === undefined || inl.length <= offset || to <= offset) return;
      // Inline buffers are replaced, never mutated (a batch in flight may hold this one).
      const nb = Buffer.from(inl);
      nb.fill(0, offset, Math.min(to, nb.length));
      inode.inline = nb;
      this.dirt.markInode(inode);
      return;
    }
    const set = this.blockSet(inode);
    const firstWhole = Math.ceil(offset / bs);
    const endWhole = end >= size ? Number.POSITIVE_INFINITY : Math.floor(end / bs);
    if (firstWhole < endWhole) {
      const whole = (i: number): void => { if (keepBlocks) this.zeroWhole(inode, i); else this.dropBlock(inode, i); };
      // Over whichever is smaller: the range or the allocated blocks (sparse files may be huge).
      if (endWhole - firstWhole <= set.size) {
        for (let i = firstWhole; i < endWhole; i++) if (set.has(i)) whole(i);
      } else {
        for (const i of [...set]) if (i >= firstWhole && i < endWhole) whole(i);
      }
    }
    const to = Math.min(end, size);
    if (to > offset) {
      const zeroPart = (i: number): void => {
        if (!set.has(i)) return;
        const from = Math.max(offset, i * bs) - i * bs;
        const upto = Math.min(to, (i + 1) * bs) - i * bs;
        const cur = this.page(inode, i);
        if (cur === undefined || cur.length <= from) return; // already zero: past the page's end
        const w = this.writablePage(inode, i, false, cur.length);
        w.fill(0, from, Math.min(upto, w.length));
      };
      // zeroPart clips to [offset, to): a head and tail in one block are zeroed by one call.
      const head = Math.floor(offset / bs);
      const headPartial = head < firstWhole;
      if (headPartial) zeroPart(head);
      const tail = Math.floor((to - 1) / bs);
      if (tail >= endWhole && !(headPartial && tail === head)) zeroPart(tail);
    }
    this.dirt.markInode(inode);
  }

  /** lseek SEEK_DATA (hole=false) / SEEK_HOLE (hole=true). */
  seek(inode: Inode, offset: number, hole: boolean): number {
    const size = inode.size;
    if (offset < 0) throw fsErr('EINVAL');
    if (offset >= size) throw fsErr('ENXIO');
    const bs = inode.blockSize;
    if (bs === undefined) return hole ? size : offset;
    const set = this.blockSet(inode);
    const last = Math.floor((size - 1) / bs);
    const first = Math.floor(offset / bs);
    // Bounded by the number of allocated blocks, never by the file size (sparse files may be huge).
    if (hole) {
      let i = first;
      while (i <= last && set.has(i)) i++;
      return i > last ? size : Math.max(offset, i * bs);
    }
    let best = -1;
    for (const i of set) if (i >= first && i <= last && (best < 0 || i < best)) best = i;
    if (best < 0) throw fsErr('ENXIO');
    return Math.max(offset, best * bs);
  }

  /** Forgets every block of an inode (deletion): marks them for deletion in the store. */
  dropAllBlocks(inode: Inode): void {
    if (inode.blockSize === undefined) return;
    const set = this.blockSet(inode);
    for (const i of [...set]) this.dropBlock(inode, i);
  }

  /** Drops an inode's clean cached blocks (it left the table). */
  evict(inode: Inode): void {
    if (inode.blockSet !== null) for (const i of inode.blockSet) this.cache.delete(inode.ino, i);
  }

  private dropBlock(inode: Inode, i: number): void {
    inode.blockSet!.delete(i);
    inode.pages?.delete(i);
    inode.owned?.delete(i);
    this.cache.delete(inode.ino, i);
    this.dirt.markBlock(inode, i, 0);
  }

  /** Block `i` becomes the shared zero block (allocated, reads as zeros). */
  private zeroWhole(inode: Inode, i: number): void {
    const bs = inode.blockSize!;
    (inode.pages ??= new Map()).set(i, this.zeroBlock(bs));
    inode.owned?.delete(i);
    this.cache.delete(inode.ino, i);
    this.dirt.markBlock(inode, i, bs);
  }

  private toBlocks(inode: Inode): void {
    const bs = this.blockSize;
    const inl = inode.inline;
    inode.blockSize = bs;
    inode.inline = undefined;
    inode.blockSet = new Set();
    if (inl !== undefined && inode.size > 0) {
      const p = this.writablePage(inode, 0, false, Math.min(inl.length, bs));
      inl.copy(p, 0, 0, Math.min(inl.length, bs));
    }
    this.dirt.markInode(inode);
  }

  /**
   * A page of block `i` the core may write in place, at least `need` bytes long, created
   * (copy-on-write) or grown if needed. Pages are sized to what the file uses (rounded up to
   * 4 KiB) rather than the block size: a 6 KB file costs 8 KiB of memory, not 64 KiB.
   */
  private writablePage(inode: Inode, i: number, whole: boolean, need: number): Buffer {
    const owned = (inode.owned ??= new Set());
    const pages = (inode.pages ??= new Map());
    const bs = inode.blockSize!;
    if (owned.has(i)) {
      const p = pages.get(i)!;
      if (p.length >= need) return p;
      const grown = Buffer.alloc(Math.min(bs, Math.max(roundPage(need), p.length * 2)));
      p.copy(grown);
      pages.set(i, grown);
      return grown;
    }
    let page: Buffer;
    if (whole) page = Buffer.allocUnsafe(bs);
    else {
      const cur = this.page(inode, i);
      const len = Math.min(bs, Math.max(roundPage(need), cur !== undefined ? cur.length : 0));
      // Not zero-filled and then copied over (a database's page write copies its block here):
      // only what the copy leaves is zeroed.
      page = Buffer.allocUnsafe(len);
      const kept = cur !== undefined ? cur.copy(page, 0, 0, Math.min(cur.length, len)) : 0;
      if (kept < len) page.fill(0, kept);
    }
    pages.set(i, page);
    owned.add(i);
    this.blockSet(inode).add(i);
    this.cache.delete(inode.ino, i);
    this.dirt.markBlock(inode, i, page.length);
    return page;
  }

  private zeroBlock(bs: number): Buffer {
    let z = this.zeroBlocks.get(bs);
    if (!z) this.zeroBlocks.set(bs, z = Buffer.alloc(bs));
    return z;
  }
}
