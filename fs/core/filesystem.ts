import type {
  Attr, Ctx, DirEntry, Entry, Fh, FsCore, Ino, InvalidateEvent, OpenResult, PosixLock, ReadPlan, SetAttr, StatFs, Timespec,
} from './api.js';
import type { FsStore } from './store.js';
import { fsErr } from './errors.js';
import { NAME_MAX, S_IFDIR } from './constants.js';
import { ROOT_INO } from './inode-table.js';
import { DirIndex } from './dir-index.js';
import type { CommitStats } from './committer.js';
import type { Uncommitted } from './commit-failure.js';
import { CoreState } from './core-state.js';
import * as attrs from './ops-attrs.js';
import * as dirs from './ops-dirs.js';
import * as files from './ops-files.js';
import * as locks from './ops-locks.js';
import * as names from './ops-namespace.js';
import * as remote from './ops-remote.js';
import * as xattrs from './ops-xattr.js';

export { ROOT_INO };
export { MAX_COPY_PER_CALL } from './ops-files.js';

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
 *  - The operations live in one module per group (ops-namespace, ops-attrs, ops-files, ops-dirs,
 *    ops-xattr, ops-locks, ops-remote), as functions over the state and shared helpers this class
 *    owns in a CoreState (core-state.ts); each method here hands its call on, allocating nothing.
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
   * Write backpressure for transports that can wait before replying, asked after a write of
   * `bytes`: null normally, a promise while dirty data is above twice maxDirtyBytes (commits
   * slower than writes) or while the store paces writers (FsStore.writeBrake: its space bound).
   */
  backpressure(bytes = 0): Promise<void> | null {
    return this.core.committer.backpressure() ?? (bytes > 0 ? this.store.writeBrake?.(bytes) ?? null : null);
  }

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

  getattr(ctx: Ctx, ino: Ino): Attr { return attrs.getattr(this.core, ctx, ino); }
  setattr(ctx: Ctx, ino: Ino, set: SetAttr, fh?: Fh): Attr { return attrs.setattr(this.core, ctx, ino, set, fh); }
  access(ctx: Ctx, ino: Ino, mask: number): void { attrs.access(this.core, ctx, ino, mask); }

  // ------------------------------------------------------------------ namespace

  readlink(ctx: Ctx, ino: Ino): Buffer { return names.readlink(this.core, ctx, ino); }
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

  create(ctx: Ctx, parent: Ino, name: Buffer, mode: number, flags: number): { entry: Entry; open: OpenResult } {
    return files.create(this.core, ctx, parent, name, mode, flags);
  }
  open(ctx: Ctx, ino: Ino, flags: number): OpenResult { return files.open(this.core, ctx, ino, flags); }
  read(ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Buffer { return files.read(this.core, ctx, ino, fh, offset, size); }
  readPlan(ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): ReadPlan | null {
    return files.readPlan(this.core, ctx, ino, fh, offset, size);
  }
  readReady(ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Promise<void> | null {
    return files.readReady(this.core, ctx, ino, fh, offset, size);
  }
  write(ctx: Ctx, ino: Ino, fh: Fh, offset: number, data: Buffer, killSuidgid?: boolean): number {
    return files.write(this.core, ctx, ino, fh, offset, data, killSuidgid);
  }
  flush(ctx: Ctx, ino: Ino, fh: Fh, lockOwner?: bigint | number): void { files.flush(this.core, ctx, ino, fh, lockOwner); }
  release(ino: Ino, fh: Fh): void { files.release(this.core, ino, fh); }
  fsync(ino: Ino, fh: Fh, datasync: boolean): Promise<void> { return files.fsync(this.core, ino, fh, datasync); }
  fallocate(ctx: Ctx, ino: Ino, fh: Fh, mode: number, offset: number, length: number): void {
    files.fallocate(this.core, ctx, ino, fh, mode, offset, length);
  }
  lseek(ino: Ino, fh: Fh, offset: number, whence: number): number { return files.lseek(this.core, ino, fh, offset, whence); }
  copyFileRange(ctx: Ctx, inIno: Ino, inFh: Fh, inOff: number, outIno: Ino, outFh: Fh, outOff: number, len: number): number {
    return files.copyFileRange(this.core, ctx, inIno, inFh, inOff, outIno, outFh, outOff, len);
  }

  // ------------------------------------------------------------------ directories

  opendir(ctx: Ctx, ino: Ino, flags: number): OpenResult { return dirs.opendir(this.core, ctx, ino, flags); }
  readdir(ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): DirEntry[] {
    return dirs.readdir(this.core, ctx, ino, fh, offset, maxEntries);
  }
  readdirplus(ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): Array<DirEntry & { entry: Entry | null }> {
    return dirs.readdirplus(this.core, ctx, ino, fh, offset, maxEntries);
  }
  releasedir(ino: Ino, fh: Fh): void { this.release(ino, fh); }
  fsyncdir(ino: Ino, fh: Fh, datasync: boolean): Promise<void> { return this.fsync(ino, fh, datasync); }

  // ------------------------------------------------------------------ extended attributes

  setxattr(ctx: Ctx, ino: Ino, name: string, value: Buffer, flags: number): void { xattrs.setxattr(this.core, ctx, ino, name, value, flags); }
  getxattr(ctx: Ctx, ino: Ino, name: string): Buffer { return xattrs.getxattr(this.core, ctx, ino, name); }
  listxattr(ctx: Ctx, ino: Ino): string[] { return xattrs.listxattr(this.core, ctx, ino); }
  removexattr(ctx: Ctx, ino: Ino, name: string): void { xattrs.removexattr(this.core, ctx, ino, name); }

  // ------------------------------------------------------------------ locks

  getlk(ino: Ino, fh: Fh, owner: bigint | number, lock: PosixLock): PosixLock { return locks.getlk(this.core, ino, fh, owner, lock); }
  setlk(ino: Ino, fh: Fh, owner: bigint | number, lock: PosixLock, wait: boolean): Promise<void> {
    return locks.setlk(this.core, ino, fh, owner, lock, wait);
  }
  interruptLock(ino: Ino, owner: bigint | number): void { locks.interruptLock(this.core, ino, owner); }

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
