/**
 * The filesystem core's contract, shaped like the FUSE low-level protocol.
 *
 * Transports (fuse-native adapter, the /dev/fuse kernel transport) call only this. Everything is
 * inode-based; names are raw bytes (Buffer) because Linux names are bytes, not strings.
 * Operations are synchronous where the state is in memory — it keeps the hot path free of
 * promise overhead and lets a blocking kernel loop call them directly — and return a Promise
 * only where durability is involved (fsync, flush of the committer, destroy).
 * Errors are thrown as FsError (fs/core/errors.ts) carrying an errno name; transports map it.
 */

export type Ino = number; // 1 is the root directory. Safe integers only: no BigInt on the hot path.
export type Fh = number;

/** Seconds + nanoseconds; never a float, so ns timestamps survive round trips. */
export interface Timespec { sec: number; nsec: number }

/** Who is asking, as the kernel tells us (request header uid/gid/pid). */
export interface Ctx {
  uid: number;
  gid: number;
  pid: number;
  umask?: number;
  /**
   * Whether the caller is in supplementary group `gid` (the primary one is `gid` above). Transports
   * that can tell supply it (the kernel transport reads /proc/<pid>/status); without it the
   * primary group is the caller's only group.
   */
  inGroup?: (gid: number) => boolean;
}

export interface Attr {
  ino: Ino;
  mode: number;      // file type bits | permission bits
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blocks: number;    // in 512-byte units
  blksize: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
}

export interface Entry {
  ino: Ino;
  generation: number;
  attr: Attr;
  /** Seconds the kernel may cache the entry / the attributes. Chosen by the core (local vs remote). */
  entryTimeout: number;
  attrTimeout: number;
}

export const SETATTR_NOW = 'now' as const;
export interface SetAttr {
  mode?: number;   // permission bits (type bits ignored)
  uid?: number;
  gid?: number;
  size?: number;
  atime?: Timespec | typeof SETATTR_NOW;
  mtime?: Timespec | typeof SETATTR_NOW;
  ctime?: Timespec;
  /** Set by transports when the kernel asks to clear suid/sgid (HANDLE_KILLPRIV_V2). */
  killSuidgid?: boolean;
}

export interface DirEntry {
  name: Buffer;
  ino: Ino;
  type: number;   // S_IFMT bits of the mode (S_IFREG, S_IFDIR, ...)
  /** Opaque cookie: pass it back as `offset` to continue after this entry. */
  offset: number;
}

export interface StatFs {
  bsize: number; frsize: number; blocks: number; bfree: number; bavail: number;
  files: number; ffree: number; favail: number; namemax: number;
}

export interface OpenResult { fh: Fh; directIo?: boolean; keepCache?: boolean }

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;

/** POSIX record lock (fcntl F_GETLK/F_SETLK). type: F_RDLCK 0, F_WRLCK 1, F_UNLCK 2. */
export interface PosixLock { start: number; end: number; type: number; pid: number }

export interface FsCore {
  // --- names
  lookup(ctx: Ctx, parent: Ino, name: Buffer): Entry;     // counts one lookup on success
  forget(ino: Ino, nlookup: number): void;
  // --- attributes
  getattr(ctx: Ctx, ino: Ino): Attr;
  setattr(ctx: Ctx, ino: Ino, set: SetAttr, fh?: Fh): Attr;
  access(ctx: Ctx, ino: Ino, mask: number): void;
  // --- namespace
  readlink(ctx: Ctx, ino: Ino): Buffer;
  mknod(ctx: Ctx, parent: Ino, name: Buffer, mode: number, rdev: number): Entry;
  mkdir(ctx: Ctx, parent: Ino, name: Buffer, mode: number): Entry;
  symlink(ctx: Ctx, parent: Ino, name: Buffer, target: Buffer): Entry;
  link(ctx: Ctx, ino: Ino, newParent: Ino, newName: Buffer): Entry;
  unlink(ctx: Ctx, parent: Ino, name: Buffer): void;
  rmdir(ctx: Ctx, parent: Ino, name: Buffer): void;
  rename(ctx: Ctx, parent: Ino, name: Buffer, newParent: Ino, newName: Buffer, flags: number): void;
  // --- files
  create(ctx: Ctx, parent: Ino, name: Buffer, mode: number, flags: number): { entry: Entry; open: OpenResult };
  open(ctx: Ctx, ino: Ino, flags: number): OpenResult;
  read(ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Buffer;
  /**
   * `data` is only valid during the call: the core copies what it keeps. Returns bytes written.
   * `killSuidgid` (optional, FUSE_WRITE_KILL_SUIDGID): clear suid/sgid even when the writer is root.
   */
  write(ctx: Ctx, ino: Ino, fh: Fh, offset: number, data: Buffer, killSuidgid?: boolean): number;
  /** `lockOwner` (optional): POSIX locks of that owner on the inode are released (close semantics). */
  flush(ctx: Ctx, ino: Ino, fh: Fh, lockOwner?: bigint | number): void;
  release(ino: Ino, fh: Fh): void;
  /** Resolves only when the file's data (and, unless datasync, metadata) is durable. */
  fsync(ino: Ino, fh: Fh, datasync: boolean): Promise<void>;
  fallocate(ctx: Ctx, ino: Ino, fh: Fh, mode: number, offset: number, length: number): void;
  lseek(ino: Ino, fh: Fh, offset: number, whence: number): number; // SEEK_DATA 3 / SEEK_HOLE 4
  copyFileRange(ctx: Ctx, inIno: Ino, inFh: Fh, inOff: number, outIno: Ino, outFh: Fh, outOff: number, len: number): number;
  // --- directories
  opendir(ctx: Ctx, ino: Ino, flags: number): OpenResult;
  /** Entries after `offset` (0 = from the start, including "." and ".."). `plus` also counts lookups. */
  readdir(ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): DirEntry[];
  /** `entry` null: an entry listed without attributes (sealed for keys this mount lacks; its lookup is EACCES). */
  readdirplus(ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): Array<DirEntry & { entry: Entry | null }>;
  releasedir(ino: Ino, fh: Fh): void;
  fsyncdir(ino: Ino, fh: Fh, datasync: boolean): Promise<void>;
  // --- extended attributes
  setxattr(ctx: Ctx, ino: Ino, name: string, value: Buffer, flags: number): void; // XATTR_CREATE 1 / XATTR_REPLACE 2
  getxattr(ctx: Ctx, ino: Ino, name: string): Buffer;
  listxattr(ctx: Ctx, ino: Ino): string[];
  removexattr(ctx: Ctx, ino: Ino, name: string): void;
  // --- locks
  getlk(ino: Ino, fh: Fh, owner: bigint | number, lock: PosixLock): PosixLock;
  setlk(ino: Ino, fh: Fh, owner: bigint | number, lock: PosixLock, wait: boolean): Promise<void>;
  // --- whole filesystem
  statfs(ino: Ino): StatFs;
  /** Commits everything dirty and makes it durable (unmount, DESTROY). Does not close the store. */
  destroy(): Promise<void>;

  // --- optional extras (Filesystem implements them; transports may use them when present)
  /** Fails pending wait=true setlk requests of `owner` on `ino` with EINTR (FUSE INTERRUPT). */
  interruptLock?(ino: Ino, owner: bigint | number): void;
  /** A large read of clean committed blocks that worker threads can serve whole (see ReadPlan); null: call read(). */
  readPlan?(ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): ReadPlan | null;
  /**
   * Read preparation: null when read() can run now, else a promise (never rejecting) to await
   * before calling read() — blocks are being fetched off the main thread.
   */
  readReady?(ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Promise<void> | null;
  /**
   * Write backpressure, asked after a write of `bytes`: null normally, a promise while dirty data
   * far exceeds the commit rate or the store paces writers (FsStore.writeBrake).
   */
  backpressure?(bytes?: number): Promise<void> | null;

  /**
   * Invalidation hooks for transports that can tell the kernel (INVAL_INODE / INVAL_ENTRY / DELETE).
   * The core calls these when a change it did not make itself (another writer, replication) lands.
   */
  onInvalidate?: (ev: InvalidateEvent) => void;
}

/**
 * The data of a read: bytes [from, from + length) of the concatenated plaintexts of `sources`
 * (consecutive blocks of `blockSize` bytes, the last one possibly shorter). If the sources cannot
 * be opened, the transport calls read() instead (which reports the error).
 */
export interface ReadPlan {
  sources: Array<{ path: string; offset: number; length: number; key: Buffer; aad: Buffer }>;
  blockSize: number;
  from: number;
  length: number;
}

/** 'inode': offset -1 = attributes only; offset >= 0 with length 0 = attributes and content from offset on. */
export type InvalidateEvent =
  | { kind: 'inode'; ino: Ino; offset: number; length: number }
  | { kind: 'entry'; parent: Ino; name: Buffer }
  | { kind: 'delete'; parent: Ino; child: Ino; name: Buffer };
