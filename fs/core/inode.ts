import type { Attr, Ino, Timespec } from './api.js';
import type { InodeRecord } from './store.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './constants.js';
import type { DirIndex } from './dir-index.js';

/**
 * An inode as the core holds it in memory: the persisted record's fields (mutated in place,
 * snapshotted into a fresh InodeRecord at commit time) plus runtime state that is never persisted.
 *
 * Buffers referenced from here (inline, xattr values, symlink target, clean pages) are treated as
 * immutable once they may have been handed to the store: changes replace them instead of mutating.
 */
export class Inode {
  ino: Ino;
  generation: number;
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  nlink: number;
  size: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  xattrs: Record<string, Buffer>;
  symlinkTarget: Buffer | undefined;
  /** Content of a small regular file; undefined once the file lives in blocks. */
  inline: Buffer | undefined;
  blockSize: number | undefined;
  /** Directories only: the parent directory (".." and the rename-into-own-subtree check). */
  parent: Ino;
  /** st_blocks as last persisted; used while `blockSet` is not loaded. */
  storedBlocks: number | undefined;

  // --- runtime state
  /** Kernel lookup count (lookup/create/mkdir/... add one, forget subtracts). */
  lookups = 0;
  /** Open file/dir handles. */
  opens = 0;
  /** Set once the inode has been deleted (nlink 0 and no references): it is gone from the table. */
  deleted = false;
  /** Directory index, loaded on first use. */
  dir: DirIndex | null = null;
  /** Indexes of the blocks that exist (in the store or dirty); null until first needed. */
  blockSet: Set<number> | null = null;
  /** Only its atime changed since the last commit (Committer.markAtime): kept in memory meanwhile. */
  lazyAtime = false;
  /** Bumped whenever content changes (a block dirtied or dropped, a remote change): fetches started before it are dropped. */
  contentGen = 0;
  /** End of the last read: a read starting here is sequential and reads ahead. */
  readNext = -1;
  /**
   * Pages that are dirty or part of an in-flight commit (the store may not have them yet).
   * Clean pages live in the shared block LRU instead.
   */
  pages: Map<number, Buffer> | null = null;
  /** Page indexes whose buffer is private to the core and may be written in place. */
  owned: Set<number> | null = null;
  /** Page indexes changed (written or deleted) since the last batch. */
  dirtyBlocks: Set<number> | null = null;
  /** The record itself needs to be persisted. */
  dirty = false;
  /** Sequence number of the last batch that contained this inode's state. */
  commitSeq = 0;
  /** Loaded from the store (as opposed to created in this session and maybe never committed). */
  fromStore = false;

  constructor(rec: InodeRecord) {
    this.ino = rec.ino;
    this.generation = rec.generation;
    this.mode = rec.mode;
    this.uid = rec.uid;
    this.gid = rec.gid;
    this.rdev = rec.rdev;
    this.nlink = rec.nlink;
    this.size = rec.size;
    this.atime = rec.atime;
    this.mtime = rec.mtime;
    this.ctime = rec.ctime;
    this.xattrs = rec.xattrs;
    this.symlinkTarget = rec.symlinkTarget;
    this.inline = rec.inline;
    this.blockSize = rec.blockSize;
    this.parent = rec.parent ?? 0;
    this.storedBlocks = rec.blocks;
  }

  get isDir(): boolean { return (this.mode & S_IFMT) === S_IFDIR; }
  get isReg(): boolean { return (this.mode & S_IFMT) === S_IFREG; }
  get isSymlink(): boolean { return (this.mode & S_IFMT) === S_IFLNK; }
  get type(): number { return this.mode & S_IFMT; }

  toRecord(stBlocks: number): InodeRecord {
    const rec: InodeRecord = {
      ino: this.ino, generation: this.generation, mode: this.mode, uid: this.uid, gid: this.gid,
      rdev: this.rdev, nlink: this.nlink, size: this.size,
      atime: this.atime, mtime: this.mtime, ctime: this.ctime, xattrs: this.xattrs,
    };
    if (this.symlinkTarget !== undefined) rec.symlinkTarget = this.symlinkTarget;
    if (this.inline !== undefined) rec.inline = this.inline;
    if (this.blockSize !== undefined) rec.blockSize = this.blockSize;
    if (this.parent) rec.parent = this.parent;
    if (this.isReg) rec.blocks = stBlocks;
    return rec;
  }

  toAttr(stBlocks: number, blksize: number): Attr {
    return {
      ino: this.ino, mode: this.mode, nlink: this.nlink, uid: this.uid, gid: this.gid, rdev: this.rdev,
      size: this.size, blocks: stBlocks, blksize, atime: this.atime, mtime: this.mtime, ctime: this.ctime,
    };
  }
}
