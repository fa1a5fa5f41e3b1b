// What a FUSE session is configured with, and what its request handlers (ops-*.ts) may use of it.
import type { Ctx, Entry, FsCore } from '../core/api.js';
import type { BulkCryptoPool } from '../../src/crypto/index.js';
import type { PendingReplies, Replies } from './replies.js';

export interface SessionOptions {
  /** Kernel writeback cache: faster writes, the kernel owns mtime/size while pages are dirty. */
  writebackCache: boolean;
  /** Largest WRITE the kernel may send (bytes, multiple of the page size). */
  maxWrite: number;
  /** Seconds the kernel may cache a failed lookup. 0 disables negative caching. */
  negativeTimeout: number;
  /** Seconds the kernel may cache attributes returned by GETATTR/SETATTR (entries carry their own). */
  attrTimeout: number;
  /** Lets the kernel cache directory listings between opens (FOPEN_CACHE_DIR + KEEP_CACHE). */
  cacheDir: boolean;
  /** flock(2) locks come here (FUSE_FLOCK_LOCKS: whole-file locks of the open file) instead of staying in the kernel. */
  flockLocks?: boolean;
  /** fcntl record locks come here (FUSE_POSIX_LOCKS) instead of staying in the kernel (default true). */
  posixLocks?: boolean;
  /** Name a LOOKUP in the root uses to wake a blocked reader (see loop.ts); never a real file. */
  wakeName: Buffer | null;
  /** Workers that serve large reads whole (core.readPlan); null: every read is served here. */
  bulk?: BulkCryptoPool | null;
  debug: boolean;
}

/** What the loop needs to know after each request. */
export interface SessionHooks {
  onInit(): void;
  onWake(): void;
  onDestroyed(): void;
}

/** A request whose reply waits on a Promise. */
export interface Pending { opcode: number; interrupted: boolean; ino?: number; owner?: bigint }

/**
 * Optional trailing parameters fs/core's Filesystem accepts beyond the FsCore contract: the
 * HANDLE_KILLPRIV_V2 flag of a WRITE and the lock owner of a FLUSH. Extra arguments are harmless
 * for a core that ignores them.
 */
export interface CoreExtensions {
  write(ctx: Ctx, ino: number, fh: number, offset: number, data: Buffer, killSuidgid?: boolean): number;
  flush(ctx: Ctx, ino: number, fh: number, lockOwner?: bigint): void;
  /** Fails the owner's pending lock waits on the inode with EINTR. */
  interruptLock?(ino: number, owner: bigint): void;
}

/** The session as its request handlers see it (Session implements it). */
export interface OpHost {
  readonly core: FsCore;
  /** The caller of the request being handled: reused for every request, copy it to keep it past an await. */
  readonly ctx: Ctx;
  readonly opts: SessionOptions;
  readonly hooks: SessionHooks;
  readonly out: Replies;
  readonly waits: PendingReplies;
  /** Net lookups handed to the kernel minus those it forgot (FORGET balance). */
  lookupsOutstanding: number;
  /** The attribute timeout GETATTR/SETATTR replies carry: the last one an entry reply gave. */
  attrTimeout: number;
  /** Lock owners that ever took a lock: FLUSH releases their POSIX locks on close. */
  readonly lockOwners: Set<bigint>;
  writeBytes: number;
  maxWriteSeen: number;
  writesAtMax: number;
  /** Reads handed to the bulk workers and not finished (they write to our fd: it stays open meanwhile). */
  bulkInFlight: number;
  /** Reads the workers answered / that came back to be served here. */
  bulkReads: number;
  bulkFallbacks: number;
  /** Reply buffers of bulk reads (shared with the workers), reused. */
  readonly bulkBufs: SharedArrayBuffer[];
  /** An entry reply; counts the lookup once the kernel has it, undoes the core's count if not. */
  replyEntry(unique: number, e: Entry): void;
}

/** One request's handler: the request is b[p, end) after the header. */
export type OpHandler = (s: OpHost, b: Buffer, unique: number, nodeid: number, p: number, end: number, opcode: number) => void;
