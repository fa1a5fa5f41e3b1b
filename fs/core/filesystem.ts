import type {
  Attr, Ctx, DirEntry, Entry, Fh, FsCore, Ino, InvalidateEvent, OpenResult, PosixLock, ReadPlan, SetAttr, StatFs, Timespec,
} from './api.js';
import type { BlockSource, FsStore } from './store.js';
import { fsErr, isMissingKey } from './errors.js';
import {
  F_UNLCK, NAME_MAX, O_ACCMODE, O_APPEND, O_EXCL, O_RDONLY, O_TRUNC, O_WRONLY, S_IFDIR, S_IFREG, S_ISGID, S_ISUID,
  SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET, XATTR_CREATE, XATTR_REPLACE,
} from './constants.js';
import type { Inode } from './inode.js';
import { ROOT_INO } from './inode-table.js';
import { DirIndex } from './dir-index.js';
import { BlockCache } from './block-cache.js';
import type { CommitStats } from './committer.js';
import type { Uncommitted } from './commit-failure.js';
import { applyFallocate, checkFallocateArgs } from './fallocate.js';
import { checkAccess } from './permissions.js';
import { ownerKey } from './locks.js';
import * as attrs from './ops-attrs.js';
import * as names from './ops-namespace.js';
import * as remote from './ops-remote.js';
import { CoreState, clearSuidgid, type Handle } from './core-state.js';
import { checkXattrRead, checkXattrValue, checkXattrWrite, xattrNamespace, xattrVisible } from './xattrs.js';

export { ROOT_INO };

export interface FilesystemOptions {
  /** Content block size in bytes (default 64 KiB). Fixed per inode once it has blocks. */
  blockSize?: number;
  /** Files up to this size live inline in the inode record (default 4 KiB). */
  inlineMax?: number;
  /** Delay between the first change and the background commit (default 1000 ms). */
  commitDelayMs?: number | (() => number);
  /** A burst of bulk data commits later than commitDelayMs (see CommitterOptions.burst). */
  commitBurst?: { bytes: number; maxMs: number };
  /** Dirty page bytes that trigger an immediate commit (default 64 MiB). */
  maxDirtyBytes?: number;
  /** Clean decrypted-block LRU size in bytes (default 32 MiB). */
  cacheBytes?: number;
  readOnly?: boolean;
  /** Clock (tests pin it). Default: the wall clock in nanoseconds (clock.ts). */
  now?: () => Timespec;
  /** atime policy: 'relatime' (default, like Linux mounts), 'noatime' or 'strict'. */
  atime?: 'relatime' | 'noatime' | 'strict';
  /** Root directory created when the store is empty. */
  rootMode?: number;
  rootUid?: number;
  rootGid?: number;
  /**
   * Owner ids of what this mount creates, instead of the caller's: a mount with an auth service's
   * token writes as the token's user (its uid) in the group of a group chain (the group's gid), so
   * every machine shows the same numbers whatever the local accounts. A setgid directory still
   * hands down its own gid.
   */
  creator?: { uid: number; gid: number };
  /**
   * Inodes kept in memory before clean, unreferenced ones (no lookups, no handles, nothing dirty
   * or in flight) are dropped; they reload from the store on the next use. Default 200,000.
   */
  maxInodes?: number;
  /** Called when a background commit fails (the data stays dirty and the next fsync reports it). */
  onCommitError?: (err: Error) => void;
}

/**
 * Smallest read handed to workers whole (readPlan): smaller ones are served (and cached) here — for
 * a file of a block or two the hand-off costs more than decrypting it in place (md5sum of a tree).
 */
const READ_PLAN_MIN = 256 * 1024;
/** Fewest missing blocks a read waits for off-thread (readReady); fewer are decrypted in place. */
const FETCH_MIN_BLOCKS = 4;
/** Blocks a sequential reader's fetches run ahead of its reads (1 MiB at 64 KiB blocks). */
const READAHEAD_BLOCKS = 16;
/** Most bytes one copyFileRange call copies (a short copy; the caller asks again for the rest). */
export const MAX_COPY_PER_CALL = 16 * 1024 * 1024;

function tsLe(a: Timespec, b: Timespec): boolean { return a.sec < b.sec || (a.sec === b.sec && a.nsec <= b.nsec); }

/**
 * The filesystem core: POSIX semantics over an FsStore, inode-based, synchronous except where
 * durability is involved. See fs/core/api.ts for the contract.
 *
 * Design notes (the why):
 *  - Inodes live in a table keyed by ino, loaded from the store on first use and kept while the
 *    kernel holds a lookup, a handle is open or state is dirty/in flight; clean unreferenced ones
 *    are dropped above `maxInodes`. Directories keep a name-keyed index (O(1) lookup) with
 *    per-directory increasing entry ids as readdir cookies (dir-index.ts).
 *  - Every change is applied to memory at once and committed later by the Committer in one batch
 *    for many files (timer, memory pressure, fsync, destroy). close/flush are not durable; fsync
 *    resolves after a 'durable' commit; a failed commit keeps the state dirty, is retried, and
 *    is reported by the next fsync (once, like Linux's errseq).
 *  - Clean decrypted blocks are cached in the core (block-cache.ts, `cacheBytes`): the chain
 *    store decrypts on every getBlock, and small/re-reads would otherwise decrypt again.
 *  - An unlinked inode still open or looked up keeps its record (nlink 0) in the store until the
 *    last release/forget, so its data stays readable; a crash in between leaves that record as
 *    garbage (it reads as ENOENT and is never reachable by name).
 *  - Permission checks follow Linux (supplementary groups through ctx.inGroup). Errno results are
 *    thrown as shared, stackless FsErrors (errors.ts fsErr): they are control flow, not failures.
 */
export class Filesystem implements FsCore {
  readonly store: FsStore;
  readonly readOnly: boolean;
  readonly blockSize: number;
  readonly inlineMax: number;
  onInvalidate?: (ev: InvalidateEvent) => void;
  /** Bytes served by reads and taken by writes since the mount (status panels). */
  readonly io: { bytesRead: number; bytesWritten: number };

  /** The state and shared helpers the operation groups work on (core-state.ts). */
  private readonly core: CoreState;

  /** Opens a filesystem over `store`, creating (and durably committing) the root directory if the store is empty. */
  static async open(store: FsStore, opts: FilesystemOptions = {}): Promise<Filesystem> {
    const fs = new Filesystem(store, opts);
    if (fs.core.committer.hasDirt && !fs.readOnly) await fs.core.committer.durable();
    return fs;
  }

  /** Synchronous construction; a missing root is created in memory and committed with the next batch. */
  constructor(store: FsStore, opts: FilesystemOptions = {}) {
    const core = new CoreState(store, opts);
    this.core = core;
    this.store = store;
    this.readOnly = core.readOnly;
    this.blockSize = core.blockSize;
    this.inlineMax = core.inlineMax;
    this.io = core.io;

    let root = store.getInode(ROOT_INO);
    if (!root) {
      if (this.readOnly) throw fsErr('EROFS', 'empty read-only store has no root directory');
      const t = this.core.now();
      root = {
        ino: ROOT_INO, generation: 1, mode: S_IFDIR | ((opts.rootMode ?? 0o755) & 0o7777),
        uid: opts.rootUid ?? process.getuid?.() ?? 0, gid: opts.rootGid ?? process.getgid?.() ?? 0,
        rdev: 0, nlink: 2, size: 0, atime: t, mtime: t, ctime: t, xattrs: {}, parent: ROOT_INO,
      };
      const inode = this.core.table.adopt(root);
      inode.dir = new DirIndex();
      this.core.committer.markInode(inode);
    }
    const r = this.core.table.get(ROOT_INO);
    r.parent = ROOT_INO;
    r.lookups = Number.POSITIVE_INFINITY; // the root is never forgotten
    store.onRemoteChange = (batch) => remote.applyRemote(core, this.onInvalidate, batch);
  }

  /** Commit counters and the last commit error (status panel). */
  get commitStats(): CommitStats { return this.core.committer.stats; }
  get dirtyBytes(): number { return this.core.committer.dirtyByteCount; }
  /** Changes in memory no commit has persisted (status, and what a failed unmount loses). */
  get uncommitted(): Uncommitted { return this.core.committer.uncommitted(); }
  /** Changes not committed yet, or a commit in flight (stats: "has the last change landed?"). */
  get commitUnsettled(): boolean { return this.core.committer.unsettled; }

  /**
   * Write backpressure for transports that can wait before replying: null normally, a promise
   * while dirty data is above twice maxDirtyBytes (commits slower than writes).
   */
  backpressure(): Promise<void> | null { return this.core.committer.backpressure(); }

  /** Inodes currently held in memory (tests, status). */
  get cachedInodes(): number { return this.core.table.size; }

  /** Starts a background commit now (tests, memory pressure from outside). */
  commitSoon(): void { this.core.committer.kick(); }
  /** Resolves once everything dirty now is committed durably. */
  sync(): Promise<void> { return this.core.committer.durable(); }

  // ------------------------------------------------------------------ names

  lookup(ctx: Ctx, parent: Ino, name: Buffer): Entry { return names.lookup(this.core, ctx, parent, name); }
  forget(ino: Ino, nlookup: number): void { names.forget(this.core, ino, nlookup); }

  // ------------------------------------------------------------------ attributes

  getattr(_ctx: Ctx, ino: Ino): Attr { return attrs.getattr(this.core, _ctx, ino); }
  setattr(ctx: Ctx, ino: Ino, set: SetAttr, fh?: Fh): Attr { return attrs.setattr(this.core, ctx, ino, set, fh); }
  access(ctx: Ctx, ino: Ino, mask: number): void { attrs.access(this.core, ctx, ino, mask); }

  // ------------------------------------------------------------------ namespace

  readlink(_ctx: Ctx, ino: Ino): Buffer { return names.readlink(this.core, _ctx, ino); }
  mknod(ctx: Ctx, parent: Ino, name: Buffer, mode: number, rdev: number): Entry { return names.mknod(this.core, ctx, parent, name, mode, rdev); }
  mkdir(ctx: Ctx, parent: Ino, name: Buffer, mode: number): Entry { return names.mkdir(this.core, ctx, parent, name, mode); }
  symlink(ctx: Ctx, parent: Ino, name: Buffer, target: Buffer): Entry { return names.symlink(this.core, ctx, parent, name, target); }
  link(ctx: Ctx, ino: Ino, newParent: Ino, newName: Buffer): Entry { return names.link(this.core, ctx, ino, newParent, newName); }
  unlink(ctx: Ctx, parent: Ino, name: Buffer): void { names.unlink(this.core, ctx, parent, name); }
  rmdir(ctx: Ctx, parent: Ino, name: Buffer): void { names.rmdir(this.core, ctx, parent, name); }
  rename(ctx: Ctx, parent: Ino, name: Buffer, newParent: Ino, newName: Buffer, flags: number): void {
    names.rename(this.core, ctx, parent, name, newParent, newName, flags);
  }

  // ------------------------------------------------------------------ files

  private handle(ino: Ino, fh: Fh): Handle {
    const h = this.core.handles.get(fh);
    if (h === undefined || h.inode.ino !== ino) throw fsErr('EBADF');
    return h;
  }

  create(ctx: Ctx, parent: Ino, name: Buffer, mode: number, flags: number): { entry: Entry; open: OpenResult } {
    this.core.table.maybeEvict();
    this.core.rw();
    const p = this.core.parentDir(ctx, parent);
    const key = this.core.checkName(name);
    checkAccess(ctx, p, 1);
    const existing = this.core.dirOf(p).get(key);
    if (existing !== undefined) {
      if ((flags & O_EXCL) !== 0) throw fsErr('EEXIST');
      const inode = this.core.table.get(existing.ino);
      if (inode.isDir) throw fsErr('EISDIR');
      const open = this.open(ctx, inode.ino, flags);
      return { entry: this.core.entry(inode), open };
    }
    const inode = names.makeNode(this.core, ctx, parent, name, S_IFREG | (mode & 0o7777), 0);
    // The creator may open what it just created whatever the mode says (open(O_CREAT, 0444) for writing).
    const fh = this.core.newHandle(inode, flags, false);
    return { entry: this.core.entry(inode), open: { fh, keepCache: true } };
  }

  open(ctx: Ctx, ino: Ino, flags: number): OpenResult {
    const inode = this.core.table.get(ino);
    const acc = flags & O_ACCMODE;
    const writes = acc !== O_RDONLY;
    if (inode.isDir && (writes || (flags & O_TRUNC) !== 0)) throw fsErr('EISDIR');
    if (inode.isSymlink) throw fsErr('ELOOP');
    // FIFOs and devices may be opened for writing on a read-only filesystem: nothing is stored.
    if (inode.isReg && (writes || (flags & O_TRUNC) !== 0)) {
      this.core.rw();
      this.core.changeable(inode);
    }
    let mask = 0;
    if (acc === O_RDONLY || acc === 2) mask |= 4;
    if (writes || (flags & O_TRUNC) !== 0) mask |= 2;
    checkAccess(ctx, inode, mask);
    if ((flags & O_TRUNC) !== 0 && inode.isReg) {
      const t = this.core.now();
      this.core.content.truncate(inode, 0);
      inode.mtime = t;
      inode.ctime = t;
      if (ctx.uid !== 0) clearSuidgid(inode);
      this.core.touch(inode);
    }
    return { fh: this.core.newHandle(inode, flags, false), keepCache: true };
  }

  read(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Buffer {
    const h = this.handle(ino, fh);
    if ((h.flags & O_ACCMODE) === O_WRONLY) throw fsErr('EBADF');
    const inode = h.inode;
    if (inode.isDir) throw fsErr('EISDIR');
    if (offset < 0) throw fsErr('EINVAL');
    const out = this.core.content.read(inode, offset, size);
    this.readAtime(inode);
    this.io.bytesRead += out.length;
    return out;
  }

  /** The access time a read moves (relatime / strict; nothing for noatime or read-only mounts). */
  private readAtime(inode: Inode): void {
    if (this.core.atimePolicy === 'noatime' || this.readOnly) return;
    const a = inode.atime;
    if (this.core.atimePolicy === 'relatime' && !tsLe(a, inode.mtime) && !tsLe(a, inode.ctime)) {
      const t = this.core.now();
      if (t.sec - a.sec < 86400) return;
      inode.atime = t;
    } else inode.atime = this.core.now();
    this.core.committer.markAtime(inode);
  }

  /**
   * A large read a transport can hand to worker threads whole: every block it touches is committed,
   * clean (not dirty, not in the decrypted cache) and sealed on disk (FsStore.blockSources). Returns
   * the sources of blocks first..last and where the read starts in the first, or null when read()
   * must serve it. Does what read() does besides the data (access mode check, atime).
   */
  readPlan(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): ReadPlan | null {
    const store = this.store;
    if (store.blockSources === undefined || size < READ_PLAN_MIN) return null;
    const r = this.readSpan(ino, fh, offset, size);
    if (r === null || (r.handle.flags & O_ACCMODE) === O_WRONLY || r.end - offset < READ_PLAN_MIN) return null;
    const { inode, bs, first, last, end } = r;
    const set = this.core.content.blockSet(inode);
    const pages = inode.pages;
    const indexes: number[] = [];
    for (let i = first; i <= last; i++) {
      if (!set.has(i) || (pages !== null && pages.has(i)) || this.core.cache.has(ino, i)) return null;
      indexes.push(i);
    }
    const sources = store.blockSources(ino, indexes);
    for (const src of sources) if (src === null) return null;
    this.readAtime(inode);
    this.io.bytesRead += end - offset;
    return { sources: sources as BlockSource[], blockSize: bs, from: offset - first * bs, length: end - offset };
  }

  /**
   * Makes a read cheap before it happens: blocks of [offset, offset + size) that are neither dirty
   * nor cached are fetched through the store's fetchBlocks (read and decrypted on worker threads),
   * and a sequential reader's next READAHEAD_BLOCKS blocks are fetched too, without waiting.
   * Returns a promise when the request must wait for blocks in flight (the transport then calls
   * read(), which finds them cached), null when read() can run at once. Never rejects: a block the
   * fetch could not deliver is read (and its error reported) by read() as usual.
   */
  readReady(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Promise<void> | null {
    if (this.store.fetchBlocks === undefined) return null;
    const r = this.readSpan(ino, fh, offset, size);
    if (r === null) return null;
    const { inode, bs, first, last, end } = r;
    const sequential = offset === inode.readNext || offset === 0;
    inode.readNext = end;
    const raLast = sequential ? Math.min(Math.floor((inode.size - 1) / bs), last + READAHEAD_BLOCKS) : last;
    const set = this.core.content.blockSet(inode);
    const waits: Promise<void>[] = [];
    const now: number[] = [];
    const ahead: number[] = [];
    for (let i = first; i <= raLast; i++) {
      if (!set.has(i) || inode.pages?.has(i) === true || this.core.cache.has(ino, i)) continue;
      const f = this.core.fetching.get(BlockCache.key(ino, i));
      if (f !== undefined) { if (i <= last) waits.push(f); continue; }
      (i <= last ? now : ahead).push(i);
    }
    // A small read (the first of a small file, say) is cheaper decrypted in place by read(); the
    // read-ahead of a stream that is already under way still goes to the workers.
    if (now.length >= FETCH_MIN_BLOCKS) waits.push(this.fetchBlocks(inode, now));
    if (ahead.length > 0 && offset > 0) void this.fetchBlocks(inode, ahead);
    if (waits.length === 0) return null;
    return waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => undefined);
  }

  /** The blocks [first, last] of a file in blocks that a read of [offset, end) through `fh` covers; null: none. */
  private readSpan(ino: Ino, fh: Fh, offset: number, size: number): { handle: Handle; inode: Inode; bs: number; first: number; last: number; end: number } | null {
    const h = this.core.handles.get(fh);
    if (h === undefined || h.inode.ino !== ino) return null;
    const inode = h.inode;
    const bs = inode.blockSize;
    if (bs === undefined || !inode.isReg || offset < 0 || size <= 0 || offset >= inode.size) return null;
    const end = Math.min(inode.size, offset + size);
    return { handle: h, inode, bs, first: Math.floor(offset / bs), last: Math.floor((end - 1) / bs), end };
  }

  private fetchBlocks(inode: Inode, indexes: number[]): Promise<void> {
    const ino = inode.ino;
    const gen = inode.contentGen;
    const p = this.store.fetchBlocks!(ino, indexes).then((bufs) => {
      // Only if nothing changed meanwhile: no write, no remote change, still the table's inode.
      if (inode.contentGen !== gen || inode.deleted || this.core.table.peek(ino) !== inode) return;
      for (let j = 0; j < indexes.length; j++) {
        const b = bufs[j];
        const i = indexes[j]!;
        if (b !== undefined && inode.pages?.has(i) !== true) this.core.cache.set(ino, i, b);
      }
    }, () => undefined).finally(() => {
      for (const i of indexes) this.core.fetching.delete(BlockCache.key(ino, i));
    });
    for (const i of indexes) this.core.fetching.set(BlockCache.key(ino, i), p);
    return p;
  }

  write(ctx: Ctx, ino: Ino, fh: Fh, offset: number, data: Buffer, killSuidgid?: boolean): number {
    const h = this.handle(ino, fh);
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw fsErr('EBADF');
    this.core.rw();
    const inode = h.inode;
    if (offset < 0) throw fsErr('EINVAL');
    if ((h.flags & O_APPEND) !== 0) offset = inode.size;
    this.core.content.write(inode, offset, data);
    const t = this.core.now();
    inode.mtime = t;
    inode.ctime = t;
    if ((ctx.uid !== 0 || killSuidgid) && (inode.mode & (S_ISUID | S_ISGID)) !== 0) clearSuidgid(inode);
    this.io.bytesWritten += data.length;
    return data.length;
  }

  flush(_ctx: Ctx, ino: Ino, fh: Fh, lockOwner?: bigint | number): void {
    if (lockOwner !== undefined) { this.core.locks.releaseOwner(ino, lockOwner); this.core.lockGone(ino); }
    // close(2) of a writer reports a failing commit that holds its data (as NFS reports writeback
    // errors): the data is still in memory, but nothing will persist it while commits fail.
    const h = this.core.handles.get(fh);
    if (h !== undefined && (h.flags & O_ACCMODE) !== O_RDONLY && this.core.committer.needsSync(h.inode)) {
      const failed = this.core.committer.failedWith;
      if (failed !== null) throw failed;
    }
  }

  release(ino: Ino, fh: Fh): void {
    const h = this.core.handles.get(fh);
    if (h === undefined || h.inode.ino !== ino) return;
    this.core.handles.delete(fh);
    if (h.lockOwners) { for (const o of h.lockOwners) this.core.locks.releaseOwner(ino, BigInt(o)); this.core.lockGone(ino); }
    h.inode.opens--;
    this.core.maybeReap(h.inode);
  }

  async fsync(ino: Ino, _fh: Fh, _datasync: boolean): Promise<void> {
    const inode = this.core.table.peek(ino);
    const pending = this.core.committer.pendingError;
    if (pending === null && (inode === undefined || !this.core.committer.needsSync(inode)) && !this.core.committer.hasDirt) return;
    await this.core.committer.durable();
    const err = this.core.committer.pendingError;
    if (err !== null) {
      this.core.committer.pendingError = null;
      throw err;
    }
  }

  fallocate(ctx: Ctx, ino: Ino, fh: Fh, mode: number, offset: number, length: number): void {
    const h = this.handle(ino, fh);
    checkFallocateArgs(mode, offset, length);
    if ((h.flags & O_ACCMODE) === O_RDONLY) throw fsErr('EBADF');
    this.core.rw();
    const inode = h.inode;
    if (inode.isDir) throw fsErr('EISDIR');
    if (!inode.isReg) throw fsErr('EOPNOTSUPP');
    const changed = applyFallocate(this.core.content, inode, mode, offset, length);
    const t = this.core.now();
    inode.ctime = t;
    if (changed) inode.mtime = t;
    if (ctx.uid !== 0) clearSuidgid(inode);
    this.core.touch(inode);
  }

  lseek(ino: Ino, fh: Fh, offset: number, whence: number): number {
    const h = this.handle(ino, fh);
    const inode = h.inode;
    switch (whence) {
      case SEEK_SET: if (offset < 0) throw fsErr('EINVAL'); return offset;
      case SEEK_END: { const r = inode.size + offset; if (r < 0) throw fsErr('EINVAL'); return r; }
      case SEEK_DATA: case SEEK_HOLE:
        if (!inode.isReg) throw fsErr('EINVAL');
        return this.core.content.seek(inode, offset, whence === SEEK_HOLE);
      default: throw fsErr('EINVAL');
    }
  }

  copyFileRange(ctx: Ctx, inIno: Ino, inFh: Fh, inOff: number, outIno: Ino, outFh: Fh, outOff: number, len: number): number {
    const hi = this.handle(inIno, inFh);
    const ho = this.handle(outIno, outFh);
    if ((hi.flags & O_ACCMODE) === O_WRONLY) throw fsErr('EBADF');
    if ((ho.flags & O_ACCMODE) === O_RDONLY || (ho.flags & O_APPEND) !== 0) throw fsErr('EBADF');
    this.core.rw();
    if (hi.inode.isDir || ho.inode.isDir) throw fsErr('EISDIR');
    if (!hi.inode.isReg || !ho.inode.isReg) throw fsErr('EINVAL');
    if (inOff < 0 || outOff < 0 || len < 0) throw fsErr('EINVAL');
    if (hi.inode === ho.inode && inOff < outOff + len && outOff < inOff + len) throw fsErr('EINVAL');
    // copy_file_range may copy less than asked (callers loop; cp asks for the whole file at once).
    // A call runs synchronously and leaves its copy dirty in memory: bounded, so commits and write
    // backpressure get a turn between calls instead of after gigabytes.
    len = Math.min(len, MAX_COPY_PER_CALL);
    let done = 0;
    const chunk = 4 * 1024 * 1024;
    while (done < len) {
      const data = this.core.content.read(hi.inode, inOff + done, Math.min(chunk, len - done));
      if (data.length === 0) break;
      this.write(ctx, outIno, outFh, outOff + done, data);
      done += data.length;
    }
    return done;
  }

  // ------------------------------------------------------------------ directories

  opendir(ctx: Ctx, ino: Ino, flags: number): OpenResult {
    const inode = this.core.table.get(ino);
    if (!inode.isDir) throw fsErr('ENOTDIR');
    checkAccess(ctx, inode, 4);
    return { fh: this.core.newHandle(inode, flags, true), keepCache: true };
  }

  /** A listed entry's inode: null when this mount holds no key for it, undefined when it cannot be loaded. */
  private listedInode(ino: Ino): Inode | null | undefined {
    try {
      return this.core.table.get(ino);
    } catch (e) {
      return isMissingKey(e) ? null : undefined;
    }
  }

  private listing(ino: Ino, fh: Fh, offset: number, maxEntries: number, plus: boolean): Array<DirEntry & { entry?: Entry | null }> {
    const h = this.core.handles.get(fh);
    const inode = h !== undefined && h.inode.ino === ino ? h.inode : this.core.table.get(ino);
    if (!inode.isDir) throw fsErr('ENOTDIR');
    const dir = this.core.dirOf(inode);
    const out: Array<DirEntry & { entry?: Entry | null }> = [];
    if (maxEntries <= 0) return out;
    const t = this.store.cacheTimeout;
    const dot = (name: string, target: Inode, cookie: number): void => {
      // "." and ".." count no lookup: the kernel ignores them in READDIRPLUS replies.
      const e: DirEntry & { entry?: Entry | null } = { name: Buffer.from(name), ino: target.ino, type: S_IFDIR, offset: cookie };
      if (plus) e.entry = { ino: target.ino, generation: target.generation, attr: this.core.attr(target), entryTimeout: 0, attrTimeout: 0 };
      out.push(e);
    };
    if (offset < 1) dot('.', inode, 1);
    if (offset < 2 && out.length < maxEntries) dot('..', this.core.table.peek(inode.parent || ROOT_INO) ?? this.core.table.tryGet(inode.parent) ?? inode, 2);
    const slots = dir.slots;
    for (let i = dir.positionAfter(offset < 2 ? 2 : offset); i < slots.length && out.length < maxEntries; i++) {
      const s = slots[i];
      if (s === null || s === undefined) continue;
      // An entry whose inode cannot be loaded (a replication race, a damaged store) is skipped
      // rather than failing the whole listing. One sealed for keys this mount does not hold (a
      // group member's 0600 file) is listed — its name is sealed under the directory's key, which
      // every reader of the directory holds — with an unknown type and no attributes: looking it
      // up is EACCES, as a file without read permission in a listable directory would be.
      if (plus) {
        const child = this.listedInode(s.ino);
        if (child === null) {
          out.push({ name: s.name, ino: s.ino, type: 0, offset: s.id, entry: null });
          continue;
        }
        if (child === undefined) continue;
        if (child.isDir && child.parent === 0) child.parent = inode.ino;
        if (s.type === 0) s.type = child.type;
        child.lookups++;
        out.push({ name: s.name, ino: s.ino, type: s.type, offset: s.id,
          entry: { ino: child.ino, generation: child.generation, attr: this.core.attr(child), entryTimeout: t, attrTimeout: t } });
      } else {
        if (s.type === 0) {
          const child = this.listedInode(s.ino);
          if (child === undefined) continue;
          if (child !== null) s.type = child.type;
        }
        out.push({ name: s.name, ino: s.ino, type: s.type, offset: s.id });
      }
    }
    return out;
  }

  readdir(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): DirEntry[] {
    return this.listing(ino, fh, offset, maxEntries, false);
  }

  readdirplus(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): Array<DirEntry & { entry: Entry | null }> {
    return this.listing(ino, fh, offset, maxEntries, true) as Array<DirEntry & { entry: Entry | null }>;
  }

  releasedir(ino: Ino, fh: Fh): void { this.release(ino, fh); }

  fsyncdir(ino: Ino, fh: Fh, datasync: boolean): Promise<void> { return this.fsync(ino, fh, datasync); }

  // ------------------------------------------------------------------ extended attributes

  setxattr(ctx: Ctx, ino: Ino, name: string, value: Buffer, flags: number): void {
    const inode = this.core.table.get(ino);
    const ns = xattrNamespace(name);
    this.core.rw();
    checkXattrValue(value);
    checkXattrWrite(ctx, inode, ns, name);
    this.core.changeable(inode);
    const exists = Object.hasOwn(inode.xattrs, name);
    if ((flags & XATTR_CREATE) !== 0 && exists) throw fsErr('EEXIST');
    if ((flags & XATTR_REPLACE) !== 0 && !exists) throw fsErr('ENODATA');
    // Replace the object: the previous one may be referenced by a batch in flight.
    inode.xattrs = { ...inode.xattrs, [name]: Buffer.from(value) };
    inode.ctime = this.core.now();
    this.core.touch(inode);
  }

  getxattr(ctx: Ctx, ino: Ino, name: string): Buffer {
    const inode = this.core.table.get(ino);
    const ns = xattrNamespace(name);
    if (!xattrVisible(ctx, ns)) throw fsErr('ENODATA');
    checkXattrRead(ctx, inode, ns);
    const xs = inode.xattrs;
    if (!Object.hasOwn(xs, name)) throw fsErr('ENODATA');
    return xs[name]!;
  }

  listxattr(ctx: Ctx, ino: Ino): string[] {
    const inode = this.core.table.get(ino);
    const names = Object.keys(inode.xattrs);
    return ctx.uid === 0 ? names : names.filter((n) => !n.startsWith('trusted.'));
  }

  removexattr(ctx: Ctx, ino: Ino, name: string): void {
    const inode = this.core.table.get(ino);
    const ns = xattrNamespace(name);
    this.core.rw();
    checkXattrWrite(ctx, inode, ns, name);
    this.core.changeable(inode);
    if (!Object.hasOwn(inode.xattrs, name)) throw fsErr('ENODATA');
    const next = { ...inode.xattrs };
    delete next[name];
    inode.xattrs = next;
    inode.ctime = this.core.now();
    this.core.touch(inode);
  }

  // ------------------------------------------------------------------ locks

  getlk(ino: Ino, _fh: Fh, owner: bigint | number, lock: PosixLock): PosixLock {
    this.core.table.get(ino);
    return this.core.locks.getlk(ino, owner, lock);
  }

  setlk(ino: Ino, fh: Fh, owner: bigint | number, lock: PosixLock, wait: boolean): Promise<void> {
    const h = this.core.handles.get(fh);
    if (h !== undefined) (h.lockOwners ??= new Set()).add(ownerKey(owner));
    const lease = this.store.lockLease;
    if (lease === undefined) return this.core.locks.setlk(ino, owner, lock, wait);
    return this.setlkLeased(lease, ino, owner, lock, wait);
  }

  /**
   * A replicated store's locks are seen by its other mounts: the first lock on an inode takes the
   * store's lease on it (one holder across all mounts; whole file, shared and exclusive alike),
   * released with the last one.
   */
  private async setlkLeased(lease: NonNullable<FsStore['lockLease']>, ino: Ino, owner: bigint | number, lock: PosixLock, wait: boolean): Promise<void> {
    try {
      if (lock.type !== F_UNLCK && !this.core.locks.hasLocks(ino)) {
        for (;;) {
          if (await lease.acquire(ino)) break;
          if (!wait) throw fsErr('EAGAIN');
          await new Promise((r) => setTimeout(r, 200));
          if (this.core.destroyed) throw fsErr('EINTR');
        }
      }
      await this.core.locks.setlk(ino, owner, lock, wait);
    } finally {
      this.core.lockGone(ino);
    }
  }

  /** Fails the pending (wait=true) lock requests of `owner` on `ino` with EINTR (FUSE INTERRUPT). */
  interruptLock(ino: Ino, owner: bigint | number): void {
    this.core.locks.interrupt(ino, owner);
  }

  // ------------------------------------------------------------------ whole filesystem

  statfs(_ino: Ino): StatFs {
    const s = this.store.stats();
    const frsize = 4096;
    const blocks = Math.floor((s.bytesUsed + s.bytesFree) / frsize);
    const bfree = Math.floor(s.bytesFree / frsize);
    const ffree = Math.max(0, 2 ** 32 - s.inodes);
    return {
      bsize: this.blockSize, frsize, blocks, bfree, bavail: bfree,
      files: s.inodes + ffree, ffree, favail: ffree, namemax: NAME_MAX,
    };
  }

  async destroy(): Promise<void> {
    if (this.core.destroyed) return;
    this.core.locks.cancelAll();
    if (!this.readOnly) await this.core.committer.durable();
    this.core.committer.stop();
    await this.core.committer.idle();
    this.core.destroyed = true;
  }
}
