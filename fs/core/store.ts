import type { Ino, Timespec } from './api.js';

/**
 * What the fs core persists, and how. The core owns POSIX semantics, caches and dirty state;
 * a store only loads and atomically applies batches of records. MemoryStore (tests, the
 * transport floor, --temp) and the chain-backed store (inode, dentry and block DAOs in a signed,
 * encrypted chain) implement it.
 */

export type Durability = 'none' | 'local' | 'durable';

/** An inode DAO: everything but the name, which lives in dentries (hard links). */
export interface InodeRecord {
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
  /** user.* / trusted.* / security.* xattrs, values as bytes. */
  xattrs: Record<string, Buffer>;
  symlinkTarget?: Buffer;
  /** Small files live inline in the inode (one record, one read). Absent when content is in blocks. */
  inline?: Buffer;
  /** Block size content is split into, fixed per inode when its first block is written. */
  blockSize?: number;
  /** Directories: the parent directory (for ".." and rename checks). Added by the core; optional. */
  parent?: Ino;
  /** Regular files: st_blocks (512-byte units) so getattr needs no block scan. Optional. */
  blocks?: number;
}

export interface DentryRecord { parent: Ino; name: Buffer; ino: Ino }

/** A sealed block on disk (AES-256-GCM layout of src/crypto): see FsStore.blockSources. */
export interface BlockSource { path: string; offset: number; length: number; key: Buffer; aad: Buffer }

/**
 * One atomic commit: upserts and deletions of inodes, dentries and blocks. A store applies it as
 * if in this order: inode upserts, entries, blocks, inode deletions. So an entry or block may be
 * stored only under an inode the store holds or this batch stores (else the batch is invalid and
 * rejected), while deleting an entry or block that does not exist — also under a directory the
 * store never held — is a no-op: between two commits names and whole directories come and go.
 */
export interface FsBatch {
  inodes: InodeRecord[];
  deletedInodes: Ino[];
  /** ino === null deletes the entry. */
  dentries: Array<{ parent: Ino; name: Buffer; ino: Ino | null }>;
  /** data === null deletes the block. Blocks are full plaintext blocks; the store encrypts. */
  blocks: Array<{ ino: Ino; index: number; data: Buffer | null }>;
}

export interface StoreStats {
  /** Bytes of live data (statfs used): not what was written and since deleted. */
  bytesUsed: number;
  bytesFree: number;
  inodes: number;
  /** Bytes the store's log takes on disk, deleted data included until compaction (log-structured stores). */
  logBytes?: number;
}

/**
 * What the core (fs/core/filesystem.ts) assumes of a store, beyond the signatures:
 *  - commit() calls are never concurrent: the core waits for one before starting the next, and a
 *    'durable' commit makes every earlier commit durable too (fsync of a log). The core may send
 *    an EMPTY batch with 'durable' to make earlier 'local' commits durable.
 *  - Once a record or buffer is passed in a batch, the core never mutates it (it copies on write),
 *    so a store may keep references, encode later or hand them back from getInode/getBlock.
 *  - A block may be shorter than the inode's blockSize (the core trims the last block to the
 *    file size, or stores an empty block for space allocated past EOF): missing bytes read as zeros.
 *  - Reads (getInode, getBlock, ...) reflect every commit whose promise resolved; the core serves
 *    data of a commit still in flight from memory.
 *  - allocIno() never returns 1 (the root).
 *  - onRemoteChange is set by the core (the Filesystem constructor) and called by the store after
 *    a batch made elsewhere is applied.
 */
export interface FsStore {
  readonly readOnly: boolean;
  /** Seconds the kernel may cache entries/attrs (long for local chains, short for replicated ones). */
  readonly cacheTimeout: number;
  getInode(ino: Ino): InodeRecord | undefined;
  lookupDentry(parent: Ino, name: Buffer): Ino | undefined;
  /** All entries of a directory, in a stable order (readdir offsets are positions in it). */
  listDentries(parent: Ino): DentryRecord[];
  getBlock(ino: Ino, index: number): Buffer | undefined;
  /**
   * Optional: blocks fetched off the calling thread (read and decrypted on worker threads), for
   * sequential reads. One entry per index; undefined where this path could not deliver the block —
   * the caller's getBlock then handles (and reports) that case.
   */
  fetchBlocks?(ino: Ino, indexes: readonly number[]): Promise<Array<Buffer | undefined>>;
  /**
   * Optional: where committed blocks are sealed on disk (path, offset, length, key, associated
   * data: crypto's OpenItem), for a transport that has worker threads read, open and send them
   * itself. null for a block that must go through getBlock.
   */
  blockSources?(ino: Ino, indexes: readonly number[]): Array<BlockSource | null>;
  /** Indexes of the blocks that exist for an inode, ascending (SEEK_DATA/SEEK_HOLE, truncate). */
  blockIndexes(ino: Ino): number[];
  /** A fresh inode number, never reused within this store's life. */
  allocIno(): Ino;
  commit(batch: FsBatch, durability: Durability): Promise<void>;
  /**
   * Optional: a brake on writers while the store's space bound needs them slower (a local chain's
   * space runs, compaction-scheduler.ts pace). Called after each write of `bytes`; null to reply
   * at once, else a short promise (a few ms) the transport waits for before it replies. It paces
   * writers by holding many calls briefly instead of one call long: the writer-stall goal is per call.
   */
  writeBrake?(bytes: number): Promise<void> | null;
  stats(): StoreStats;
  close(): Promise<void>;
  /**
   * Optional: whether an error of commit() can clear by itself ('transient': disk full, a lost
   * connection; retried) or means the batch can never commit ('permanent': the mount turns
   * read-only). Default: commit-failure.ts classifyCommitError (by error name and errno code).
   */
  commitErrorKind?(err: Error): 'transient' | 'permanent';
  /**
   * Changes the store received from elsewhere (replication), for cache invalidation. Returns the
   * inodes whose content changed there while this mount held uncommitted changes of them.
   */
  onRemoteChange?: (batch: FsBatch) => Ino[] | void;
  /**
   * Optional: why changes are refused right now (EROFS), or null. A replicated store in readonly
   * recovery mode refuses them while its server is unreachable.
   */
  refuseWrites?(): string | null;
  /**
   * Optional: whether this mount's keys may change inode `ino` as it is stored (its write ACL
   * admits one of them). A file whose keys say no is EACCES when opened for writing or changed,
   * as a mode bit would make it, instead of a commit that fails later and turns the mount
   * read-only. Inodes not in the store yet are always changeable.
   */
  mayChange?(ino: Ino): boolean;
  /**
   * Optional: whether this mount's keys may change who may read or write inode `ino` (its admin
   * ACL: in a group chain its owner's and the group managers' keys). A chmod or chown its keys do
   * not allow is EPERM, as the kernel makes it for anyone but the owner — for root too, whose
   * local privilege is no key of the group.
   */
  mayChangeAcl?(ino: Ino): boolean;
  /**
   * Optional: locks seen by other mounts of a replicated store. acquire(ino) resolves true when
   * this mount now holds the inode's lease (or it cannot be checked: offline), false when another
   * mount holds it; release(ino) gives it back (the last local lock on the inode is gone).
   */
  lockLease?: { acquire(ino: Ino): Promise<boolean>; release(ino: Ino): void };
}
