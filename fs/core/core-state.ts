import type { Attr, Ctx, Entry, Fh, Ino, Timespec } from './api.js';
import type { FsStore } from './store.js';
import { fsErr } from './errors.js';
import { NAME_MAX, S_ISGID, S_ISUID, S_IXGRP } from './constants.js';
import type { Inode } from './inode.js';
import { InodeTable } from './inode-table.js';
import { DirIndex, nameKey } from './dir-index.js';
import { BlockCache, type BlockKey } from './block-cache.js';
import { FileContent } from './content.js';
import { Committer } from './committer.js';
import { nowTimespec } from './clock.js';
import { LockTable } from './locks.js';
import type { FilesystemOptions } from './filesystem.js';

/** An open file or directory: what a Fh stands for. */
export interface Handle {
  inode: Inode;
  flags: number;
  dir: boolean;
  lockOwners: Set<string> | null;
}

/**
 * The internals of a Filesystem (filesystem.ts), shared by its operation groups (ops-*.ts): the
 * state one filesystem owns and the helpers more than one group uses. A Filesystem keeps one
 * private CoreState and every operation hands it to its group's function, so the groups reach
 * the state through this type rather than through the class's private fields. Internal to
 * fs/core: index.ts does not export it.
 */
export class CoreState {
  readonly store: FsStore;
  readonly readOnly: boolean;
  readonly blockSize: number;
  readonly inlineMax: number;
  /** Bytes served by reads and taken by writes since the mount (status panels). */
  readonly io = { bytesRead: 0, bytesWritten: 0 };

  readonly table: InodeTable;
  readonly handles = new Map<Fh, Handle>();
  nextFh = 1;
  readonly cache: BlockCache;
  /** Blocks being fetched off-thread (BlockCache key -> settles when cached or given up). */
  readonly fetching = new Map<BlockKey, Promise<void>>();
  readonly content: FileContent;
  readonly committer: Committer;
  readonly locks = new LockTable();
  readonly now: () => Timespec;
  readonly atimePolicy: 'relatime' | 'noatime' | 'strict';
  destroyed = false;
  readonly creator: { uid: number; gid: number } | undefined;

  constructor(store: FsStore, opts: FilesystemOptions) {
    this.store = store;
    this.readOnly = !!opts.readOnly || store.readOnly;
    this.blockSize = opts.blockSize ?? 64 * 1024;
    if (this.blockSize < 512 || this.blockSize % 512 !== 0) throw new Error('blockSize must be a multiple of 512');
    this.inlineMax = Math.min(opts.inlineMax ?? 4096, this.blockSize);
    this.now = opts.now ?? nowTimespec;
    this.atimePolicy = opts.atime ?? 'relatime';
    this.creator = opts.creator;
    this.table = new InodeTable(store, Math.max(16, opts.maxInodes ?? 200_000), (inode) =>
      inode.lookups > 0 || inode.opens > 0 || inode.dirty || inode.lazyAtime || inode.commitSeq > this.committer.completedSeq
      || (inode.dirtyBlocks !== null && inode.dirtyBlocks.size > 0) || (inode.pages !== null && inode.pages.size > 0)
      || this.locks.hasLocks(inode.ino));
    this.cache = new BlockCache(opts.cacheBytes ?? 32 * 1024 * 1024);
    this.committer = new Committer(store, this.cache, {
      commitDelayMs: opts.commitDelayMs ?? 1000,
      maxDirtyBytes: opts.maxDirtyBytes ?? 64 * 1024 * 1024,
      ...(opts.commitBurst ? { burst: opts.commitBurst } : {}),
      stBlocks: (inode) => this.content.stBlocks(inode),
      ...(opts.onCommitError ? { onError: opts.onCommitError } : {}),
    });
    this.content = new FileContent(store, this.cache, this.committer, this.blockSize, this.inlineMax);
  }

  // ------------------------------------------------------------------ inode table

  dirOf(inode: Inode): DirIndex {
    const d = inode.dir;
    if (d !== null) return d;
    if (!inode.isDir) throw fsErr('ENOTDIR');
    const idx = new DirIndex();
    for (const r of this.store.listDentries(inode.ino)) idx.add(r.name, nameKey(r.name), r.ino, 0);
    inode.dir = idx;
    return idx;
  }

  entry(inode: Inode): Entry {
    inode.lookups++;
    const t = this.store.cacheTimeout;
    return { ino: inode.ino, generation: inode.generation, attr: this.attr(inode), entryTimeout: t, attrTimeout: t };
  }

  attr(inode: Inode): Attr {
    return inode.toAttr(this.content.stBlocks(inode), inode.blockSize ?? this.blockSize);
  }

  /** Deletes an inode nobody references any more (no links, no lookups, no handles). */
  maybeReap(inode: Inode): void {
    if (inode.nlink > 0 || inode.lookups > 0 || inode.opens > 0 || inode.deleted) return;
    if (inode.isReg) this.content.dropAllBlocks(inode);
    inode.deleted = true;
    inode.pages = null;
    inode.owned = null;
    inode.dir = null;
    this.table.delete(inode.ino);
    this.locks.releaseAll(inode.ino);
    this.lockGone(inode.ino);
    this.committer.markDeleted(inode);
  }

  rw(): void {
    if (this.readOnly) throw fsErr('EROFS');
    if (this.destroyed) throw fsErr('EIO', 'filesystem destroyed');
    const refused = this.committer.refusal;
    if (refused !== null) throw refused;
    const offline = this.store.refuseWrites?.();
    if (offline) throw fsErr('EROFS', offline);
  }

  touch(inode: Inode): void { this.committer.markInode(inode); }

  /** EACCES when the store's keys may not change `inode` (FsStore.mayChange: a key, not a mode bit). */
  changeable(inode: Inode): void {
    if (this.store.mayChange !== undefined && !this.store.mayChange(inode.ino)) throw fsErr('EACCES');
  }

  checkName(name: Buffer): string {
    if (name.length > NAME_MAX) throw fsErr('ENAMETOOLONG');
    if (name.length === 0) throw fsErr('ENOENT');
    if (name.indexOf(0x2f) >= 0 || name.indexOf(0) >= 0) throw fsErr('EINVAL');
    return nameKey(name);
  }

  parentDir(ctx: Ctx, parent: Ino): Inode {
    const p = this.table.get(parent);
    if (!p.isDir) throw fsErr('ENOTDIR');
    return p;
  }

  newHandle(inode: Inode, flags: number, dir: boolean): Fh {
    const fh = this.nextFh++;
    this.handles.set(fh, { inode, flags, dir, lockOwners: null });
    inode.opens++;
    return fh;
  }

  /** The last lock of an inode is gone: a replicated store's lease on it goes too. */
  lockGone(ino: Ino): void {
    if (this.store.lockLease !== undefined && !this.locks.hasLocks(ino)) this.store.lockLease.release(ino);
  }
}

/** 1 for ".", 2 for "..", 0 for any other name. */
export function isDot(name: Buffer): number {
  if (name.length === 1 && name[0] === 0x2e) return 1;
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return 2;
  return 0;
}

/** Clears suid (and sgid when group-executable) — on write/truncate/chown as POSIX wants. */
export function clearSuidgid(inode: Inode): boolean {
  const m = inode.mode;
  let n = m & ~S_ISUID;
  if ((m & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP)) n &= ~S_ISGID;
  if (n === m) return false;
  inode.mode = n;
  return true;
}
