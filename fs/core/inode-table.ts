import type { Ino } from './api.js';
import type { FsStore, InodeRecord } from './store.js';
import { fsErr } from './errors.js';
import { Inode } from './inode.js';

export const ROOT_INO = 1;

/**
 * The in-memory inode table: inodes keyed by ino, loaded from the store on first use.
 * Clean, unreferenced inodes are dropped when the table grows past `maxInodes` (they reload on
 * the next use). `pinned` tells which ones must stay (lookups, handles, dirty or in-flight state,
 * locks): two live Inode objects for one ino would diverge.
 */
export class InodeTable {
  private readonly map = new Map<Ino, Inode>();
  private evictCheckAt: number;

  constructor(
    private readonly store: FsStore,
    private readonly maxInodes: number,
    private readonly pinned: (inode: Inode) => boolean,
  ) {
    this.evictCheckAt = maxInodes;
  }

  get size(): number { return this.map.size; }

  /** The inode if it is in memory (no store access). */
  peek(ino: Ino): Inode | undefined { return this.map.get(ino); }

  /** Adds a record the core just created (or the root). */
  adopt(rec: InodeRecord): Inode {
    const inode = new Inode(rec);
    this.map.set(rec.ino, inode);
    return inode;
  }

  /** The inode, loaded from the store if needed; ENOENT if it does not exist (or has no links). */
  get(ino: Ino): Inode {
    const i = this.map.get(ino);
    if (i !== undefined) return i;
    const rec = this.store.getInode(ino);
    // nlink 0 in the store: deleted in memory but not committed yet, or left by a crash while open.
    if (rec === undefined || (rec.nlink === 0 && ino !== ROOT_INO)) throw fsErr('ENOENT');
    const inode = this.adopt(rec);
    inode.fromStore = true;
    return inode;
  }

  tryGet(ino: Ino): Inode | undefined {
    try { return this.get(ino); } catch { return undefined; }
  }

  delete(ino: Ino): void { this.map.delete(ino); }

  /**
   * Drops clean, unreferenced inodes when over `maxInodes`. Call only at the start of an
   * operation, when the caller holds no Inode object.
   */
  maybeEvict(): void {
    if (this.map.size <= this.evictCheckAt) return;
    const target = Math.floor(this.maxInodes * 0.9);
    for (const [ino, inode] of this.map) {
      if (this.map.size <= target) break;
      if (ino === ROOT_INO || this.pinned(inode)) continue;
      this.map.delete(ino);
    }
    // If most inodes are pinned, don't rescan on every call.
    this.evictCheckAt = Math.max(this.maxInodes, this.map.size + (this.maxInodes >> 3));
  }
}
