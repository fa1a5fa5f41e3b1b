/**
 * One FUSE connection: decodes requests, calls the FsCore, encodes exactly one reply per request.
 *
 * Everything here runs on one thread and is synchronous except the few core calls that return a
 * Promise (fsync, fsyncdir, setlk, destroy); those are tracked in `pending` so the read loop knows
 * it must let the event loop run before it blocks on /dev/fuse again.
 */
import { writeSync, writevSync, write as writeAsync } from 'node:fs';
import { constants as osc } from 'node:os';
import type { Ctx, Entry, FsCore, InvalidateEvent, ReadPlan, SetAttr } from '../core/api.js';
import { CallerGroups } from './caller-groups.js';
import type { BulkCryptoPool } from '../../src/crypto/index.js';
import { toErrno } from '../core/errors.js';
import {
  cstrEnd, encodeDelete, encodeInvalEntry, encodeInvalInode, readI64, readLock, readU64, writeAttrOut,
  writeDirent, writeDirentplus, writeEntry, writeLock, writeNegativeEntry, writeOpenOut, writeOutHeader,
  writeStatfs, writeU64,
} from './codec.js';
import {
  ATTR_OUT_SIZE, ENTRY_OUT_SIZE, FATTR, FOPEN, FUSE_FSYNC_FDATASYNC, FUSE_GETATTR_FH, FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION, FUSE_LK_FLOCK, FUSE_WRITE_KILL_SUIDGID, IN_HEADER_SIZE, INIT, INIT_OUT_SIZE, KSTATFS_SIZE,
  Notify, Op, OP_NAMES, OPEN_OUT_SIZE, OUT_HEADER_SIZE, PAGE_SIZE,
} from './protocol.js';

const E = osc.errno;
/** Bulk reads in flight at most (each holds a reply buffer of max_write bytes). */
const BULK_BUFFERS = 8;
const ENOSYS = E.ENOSYS;
const EIO = E.EIO;
const ENOENT = E.ENOENT;
const ERANGE = E.ERANGE;
const EPROTO = E.EPROTO;
const EINTR = E.EINTR;
const F_UNLCK = 2;

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

interface Pending { opcode: number; interrupted: boolean; ino?: number; owner?: bigint }

/**
 * Optional trailing parameters fs/core's Filesystem accepts beyond the FsCore contract: the
 * HANDLE_KILLPRIV_V2 flag of a WRITE and the lock owner of a FLUSH. Extra arguments are harmless
 * for a core that ignores them.
 */
interface CoreExtensions {
  write(ctx: Ctx, ino: number, fh: number, offset: number, data: Buffer, killSuidgid?: boolean): number;
  flush(ctx: Ctx, ino: number, fh: number, lockOwner?: bigint): void;
  /** Fails the owner's pending lock waits on the inode with EINTR. */
  interruptLock?(ino: number, owner: bigint): void;
}

const DOT = 0x2e;
function isDotOrDotDot(n: Buffer): boolean {
  return (n.length === 1 && n[0] === DOT) || (n.length === 2 && n[0] === DOT && n[1] === DOT);
}

export class Session {
  readonly counts = new Float64Array(64);
  /** Net lookups handed to the kernel minus those it forgot (FORGET balance). */
  lookupsOutstanding = 0;
  writeBytes = 0;
  maxWriteSeen = 0;
  writesAtMax = 0;
  errors = 0;
  notifications = 0;
  notifyFailures = 0;
  /** Reads handed to the bulk workers and not finished (they write to our fd: it stays open meanwhile). */
  bulkInFlight = 0;
  /** Reads the workers answered / that came back to be served here. */
  bulkReads = 0;
  bulkFallbacks = 0;
  /** Reply buffers of bulk reads (shared with the workers), reused. */
  private readonly bulkBufs: SharedArrayBuffer[] = [];
  /** Requests whose reply is a Promise still running. The loop must not block while > 0. */
  pending = new Map<number, Pending>();
  /** Called once the last pending reply was sent (the loop goes back to reading itself). */
  onDrained: (() => void) | null = null;
  initialized = false;
  destroyed = false;
  /** The core's final commit started by DESTROY: unmount() reports its failure. */
  destroyResult: Promise<void> | null = null;
  /** Negotiated protocol: our minor if the kernel's is newer; INIT flags both sides agreed on. */
  proto = { major: 0, minor: 0, kernelMinor: 0, flags: 0, maxReadahead: 0 };

  private readonly reply: Buffer;
  private readonly hdr = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  private readonly iov: Buffer[] = [this.hdr, this.hdr];
  private readonly ctx: Ctx = { uid: 0, gid: 0, pid: 0 };
  /** Supplementary groups of callers, read from /proc when a group rule needs them. */
  private readonly callerGroups = new CallerGroups();
  private attrTimeout: number;
  /** Lock owners that ever took a lock: FLUSH releases their POSIX locks on close. */
  private readonly lockOwners = new Set<bigint>();

  constructor(
    private readonly fd: number,
    private readonly core: FsCore,
    private readonly opts: SessionOptions,
    private readonly hooks: SessionHooks,
  ) {
    this.reply = Buffer.allocUnsafe(OUT_HEADER_SIZE + Math.max(opts.maxWrite, 1 << 17) + PAGE_SIZE);
    this.attrTimeout = opts.attrTimeout;
    const ctx = this.ctx;
    ctx.inGroup = (gid) => this.callerGroups.has(ctx.pid, gid);
  }

  // ------------------------------------------------------------------ replies

  /** One write(2) per reply. false when the kernel no longer wants it (interrupted: ENOENT). */
  private send(buf: Buffer, len: number): boolean {
    try {
      writeSync(this.fd, buf, 0, len);
      return true;
    } catch (e) {
      if (this.opts.debug) process.stderr.write(`kernel: reply write failed: ${(e as Error).message}\n`);
      return false;
    }
  }

  private replyErr(unique: number, errno: number): void {
    const b = this.reply;
    writeOutHeader(b, OUT_HEADER_SIZE, -errno, unique);
    this.errors++;
    this.send(b, OUT_HEADER_SIZE);
  }

  /** Body already written at reply[16..16+len). */
  private replyOk(unique: number, bodyLen: number): boolean {
    const n = OUT_HEADER_SIZE + bodyLen;
    writeOutHeader(this.reply, n, 0, unique);
    return this.send(this.reply, n);
  }

  private replyEntry(unique: number, e: Entry): void {
    writeEntry(this.reply, OUT_HEADER_SIZE, e);
    this.attrTimeout = e.attrTimeout;
    if (this.replyOk(unique, ENTRY_OUT_SIZE)) this.lookupsOutstanding++;
    else this.core.forget(e.ino, 1); // the kernel never saw it: undo the core's lookup count
  }

  private replyData(unique: number, data: Buffer): void {
    const n = OUT_HEADER_SIZE + data.length;
    writeOutHeader(this.hdr, n, 0, unique);
    if (data.length === 0) { this.send(this.hdr, OUT_HEADER_SIZE); return; }
    this.iov[1] = data;
    try {
      writevSync(this.fd, this.iov);
    } catch (e) {
      if (this.opts.debug) process.stderr.write(`kernel: reply writev failed: ${(e as Error).message}\n`);
    }
    this.iov[1] = this.hdr;
  }

  /**
   * Replies that come back after an await (the shared reply buffer is free again by then): `send`
   * writes the reply once `p` resolves; a rejection, or an errno `send` throws, is the error reply.
   */
  private settleWith(unique: number, opcode: number, p: Promise<unknown>, send: () => void): void {
    const rec: Pending = { opcode, interrupted: false };
    this.pending.set(unique, rec);
    const fail = (err: unknown) => {
      const errno = toErrno(err);
      if (errno === EIO || this.opts.debug) process.stderr.write(`kernel: async reply failed: ${(err as Error)?.stack ?? String(err)}\n`);
      this.replyErr(unique, errno);
    };
    p.then(() => {
      this.pending.delete(unique);
      if (!rec.interrupted) {
        try {
          send();
        } catch (err) {
          fail(err);
        }
      }
      if (this.pending.size === 0) this.onDrained?.();
    }, (err: unknown) => {
      this.pending.delete(unique);
      if (!rec.interrupted) fail(err);
      if (this.pending.size === 0) this.onDrained?.();
    });
  }

  /** An empty-bodied or reply-buffer reply after an await; `ok` writes the body and returns its length. */
  private settle(unique: number, p: Promise<unknown>, ok: () => number): void {
    this.settleWith(unique, 0, p, () => this.replyOk(unique, ok()));
  }

  /**
   * Hands a planned read to the bulk workers, which read, decrypt and write the reply to the kernel
   * themselves (the header is written here first). false when no reply buffer is free (the caller
   * serves it). Should the workers fail (a block moved by compaction, tampered, I/O), the read is
   * served here with read(), which reports the error.
   */
  private serveBulk(unique: number, plan: ReadPlan, ctx: Ctx, nodeid: number, fh: number, offset: number, size: number): boolean {
    const need = OUT_HEADER_SIZE + plan.length;
    let sab = this.bulkBufs.pop();
    if (sab !== undefined && sab.byteLength < need) sab = undefined;
    if (sab === undefined) {
      if (this.bulkInFlight >= BULK_BUFFERS) return false;
      sab = new SharedArrayBuffer(Math.max(need, OUT_HEADER_SIZE + this.opts.maxWrite));
    }
    writeOutHeader(Buffer.from(sab, 0, OUT_HEADER_SIZE), need, 0, unique);
    this.bulkInFlight++;
    const c: Ctx = { uid: ctx.uid, gid: ctx.gid, pid: ctx.pid };
    const buf = sab;
    const done = (r: 'written' | 'failed') => {
      this.bulkInFlight--;
      if (this.bulkBufs.length < BULK_BUFFERS) this.bulkBufs.push(buf);
      if (r === 'written') { this.bulkReads++; return; }
      this.bulkFallbacks++;
      try {
        this.replyData(unique, this.core.read(c, nodeid, fh, offset, size));
      } catch (err) {
        this.replyErr(unique, toErrno(err));
      }
    };
    this.opts.bulk!.openRangesToFd(this.fd, sab, OUT_HEADER_SIZE, plan.sources, plan.blockSize, plan.from, plan.length)
      .then(done, () => done('failed'));
    return true;
  }

  /** A data reply after an await; `produce` runs then (and may throw an errno). */
  private settleData(unique: number, p: Promise<void>, produce: () => Buffer): void {
    this.settleWith(unique, Op.READ, p, () => this.replyData(unique, produce()));
  }

  // ------------------------------------------------------------------ dispatch

  /** Handles one request read from /dev/fuse into `b[0..n)`. Never throws. */
  handle(b: Buffer, n: number): void {
    const opcode = b.readUInt32LE(4);
    const unique = readU64(b, 8);
    const nodeid = readU64(b, 16);
    const ctx = this.ctx;
    ctx.uid = b.readUInt32LE(24);
    ctx.gid = b.readUInt32LE(28);
    ctx.pid = b.readUInt32LE(32);
    ctx.umask = undefined;
    // Request extensions (security context, supplementary groups) sit at the end; we negotiate none.
    const end = n - b.readUInt16LE(36) * 8;
    if (opcode < 64) this.counts[opcode]!++;
    if (this.opts.debug) process.stderr.write(`kernel: ${OP_NAMES[opcode] ?? opcode} unique=${unique} node=${nodeid} len=${n}\n`);
    try {
      this.dispatch(b, opcode, unique, nodeid, IN_HEADER_SIZE, end);
    } catch (err) {
      if (opcode === Op.FORGET || opcode === Op.BATCH_FORGET || opcode === Op.INTERRUPT) return;
      const errno = toErrno(err);
      if (this.opts.debug || errno === EIO) {
        process.stderr.write(`kernel: ${OP_NAMES[opcode] ?? opcode} failed: ${(err as Error)?.stack ?? String(err)}\n`);
      }
      this.replyErr(unique, errno);
    }
  }

  private dispatch(b: Buffer, opcode: number, unique: number, nodeid: number, p: number, end: number): void {
    const core = this.core;
    const ctx = this.ctx;
    switch (opcode) {
      case Op.LOOKUP: {
        const name = b.subarray(p, cstrEnd(b, p, end));
        if (nodeid === 1 && this.opts.wakeName !== null && name.equals(this.opts.wakeName)) {
          this.hooks.onWake();
          this.replyErr(unique, ENOENT);
          return;
        }
        let e: Entry;
        try {
          e = core.lookup(ctx, nodeid, name);
        } catch (err) {
          const errno = toErrno(err);
          if (errno === ENOENT && this.opts.negativeTimeout > 0) {
            writeNegativeEntry(this.reply, OUT_HEADER_SIZE, this.opts.negativeTimeout);
            this.replyOk(unique, ENTRY_OUT_SIZE);
            return;
          }
          throw err;
        }
        this.replyEntry(unique, e);
        return;
      }
      case Op.FORGET: {
        const nl = readU64(b, p);
        this.lookupsOutstanding -= nl;
        core.forget(nodeid, nl);
        return;
      }
      case Op.BATCH_FORGET: {
        const count = b.readUInt32LE(p);
        let o = p + 8;
        for (let i = 0; i < count && o + 16 <= end; i++, o += 16) {
          const ino = readU64(b, o);
          const nl = readU64(b, o + 8);
          this.lookupsOutstanding -= nl;
          try { core.forget(ino, nl); } catch { /* one bad forget must not drop the rest */ }
        }
        return;
      }
      case Op.GETATTR: {
        const flags = b.readUInt32LE(p);
        // The core answers from the inode; the handle only matters for unlinked-but-open files,
        // which the core keeps by inode too.
        void (flags & FUSE_GETATTR_FH);
        const a = core.getattr(ctx, nodeid);
        writeAttrOut(this.reply, OUT_HEADER_SIZE, a, this.attrTimeout);
        this.replyOk(unique, ATTR_OUT_SIZE);
        return;
      }
      case Op.SETATTR: {
        const valid = b.readUInt32LE(p);
        if (this.opts.debug) process.stderr.write(`kernel:   setattr valid=0x${valid.toString(16)}\n`);
        const set: SetAttr = {};
        if (valid & FATTR.MODE) set.mode = b.readUInt32LE(p + 68);
        if (valid & FATTR.UID) set.uid = b.readUInt32LE(p + 76);
        if (valid & FATTR.GID) set.gid = b.readUInt32LE(p + 80);
        if (valid & FATTR.SIZE) set.size = readU64(b, p + 16);
        if (valid & FATTR.ATIME) {
          set.atime = valid & FATTR.ATIME_NOW ? 'now' : { sec: readI64(b, p + 32), nsec: b.readUInt32LE(p + 56) };
        }
        if (valid & FATTR.MTIME) {
          set.mtime = valid & FATTR.MTIME_NOW ? 'now' : { sec: readI64(b, p + 40), nsec: b.readUInt32LE(p + 60) };
        }
        if (valid & FATTR.CTIME) set.ctime = { sec: readI64(b, p + 48), nsec: b.readUInt32LE(p + 64) };
        if (valid & FATTR.KILL_SUIDGID) set.killSuidgid = true;
        const fh = valid & FATTR.FH ? readU64(b, p + 8) : undefined;
        const a = core.setattr(ctx, nodeid, set, fh);
        writeAttrOut(this.reply, OUT_HEADER_SIZE, a, this.attrTimeout);
        this.replyOk(unique, ATTR_OUT_SIZE);
        return;
      }
      case Op.READLINK: {
        this.replyData(unique, core.readlink(ctx, nodeid));
        return;
      }
      case Op.SYMLINK: {
        const nameEnd = cstrEnd(b, p, end);
        const name = b.subarray(p, nameEnd);
        const target = b.subarray(nameEnd + 1, cstrEnd(b, nameEnd + 1, end));
        this.replyEntry(unique, core.symlink(ctx, nodeid, name, target));
        return;
      }
      case Op.MKNOD: {
        const mode = b.readUInt32LE(p);
        const rdev = b.readUInt32LE(p + 4);
        ctx.umask = b.readUInt32LE(p + 8);
        const name = b.subarray(p + 16, cstrEnd(b, p + 16, end));
        this.replyEntry(unique, core.mknod(ctx, nodeid, name, mode, rdev));
        return;
      }
      case Op.MKDIR: {
        const mode = b.readUInt32LE(p);
        ctx.umask = b.readUInt32LE(p + 4);
        const name = b.subarray(p + 8, cstrEnd(b, p + 8, end));
        this.replyEntry(unique, core.mkdir(ctx, nodeid, name, mode));
        return;
      }
      case Op.UNLINK: {
        core.unlink(ctx, nodeid, b.subarray(p, cstrEnd(b, p, end)));
        this.replyOk(unique, 0);
        return;
      }
      case Op.RMDIR: {
        core.rmdir(ctx, nodeid, b.subarray(p, cstrEnd(b, p, end)));
        this.replyOk(unique, 0);
        return;
      }
      case Op.RENAME:
      case Op.RENAME2: {
        const newdir = readU64(b, p);
        const flags = opcode === Op.RENAME2 ? b.readUInt32LE(p + 8) : 0;
        const o = p + (opcode === Op.RENAME2 ? 16 : 8);
        const oldEnd = cstrEnd(b, o, end);
        const oldName = b.subarray(o, oldEnd);
        const newName = b.subarray(oldEnd + 1, cstrEnd(b, oldEnd + 1, end));
        core.rename(ctx, nodeid, oldName, newdir, newName, flags);
        this.replyOk(unique, 0);
        return;
      }
      case Op.LINK: {
        const oldnode = readU64(b, p);
        const name = b.subarray(p + 8, cstrEnd(b, p + 8, end));
        this.replyEntry(unique, core.link(ctx, oldnode, nodeid, name));
        return;
      }
      case Op.OPEN: {
        const flags = b.readUInt32LE(p);
        const r = core.open(ctx, nodeid, flags);
        writeOpenOut(this.reply, OUT_HEADER_SIZE, r.fh,
          (r.directIo ? FOPEN.DIRECT_IO : 0) | (r.keepCache ? FOPEN.KEEP_CACHE : 0));
        if (!this.replyOk(unique, OPEN_OUT_SIZE)) core.release(nodeid, r.fh);
        return;
      }
      case Op.READ: {
        const fh = readU64(b, p);
        const offset = readU64(b, p + 8);
        const size = b.readUInt32LE(p + 16);
        if (this.opts.bulk) {
          const plan = core.readPlan?.(ctx, nodeid, fh, offset, size) ?? null;
          if (plan !== null && this.serveBulk(unique, plan, ctx, nodeid, fh, offset, size)) return;
        }
        const ready = core.readReady?.(ctx, nodeid, fh, offset, size) ?? null;
        if (ready !== null) {
          // Blocks are being decrypted on workers: reply when they are in, serve others meanwhile.
          const c: Ctx = { uid: ctx.uid, gid: ctx.gid, pid: ctx.pid }; // this.ctx is reused per request
          this.settleData(unique, ready, () => core.read(c, nodeid, fh, offset, size));
          return;
        }
        this.replyData(unique, core.read(ctx, nodeid, fh, offset, size));
        return;
      }
      case Op.WRITE: {
        const fh = readU64(b, p);
        const offset = readU64(b, p + 8);
        const size = b.readUInt32LE(p + 16);
        const wflags = b.readUInt32LE(p + 20);
        const data = b.subarray(p + 40, Math.min(p + 40 + size, end));
        const written = (wflags & FUSE_WRITE_KILL_SUIDGID) !== 0
          ? (core as unknown as CoreExtensions).write(ctx, nodeid, fh, offset, data, true)
          : core.write(ctx, nodeid, fh, offset, data);
        this.writeBytes += written;
        if (size > this.maxWriteSeen) this.maxWriteSeen = size;
        if (size === this.opts.maxWrite) this.writesAtMax++;
        // Dirty data far ahead of the committer, or the store pacing writers (its space bound):
        // hold this reply (the writer waits) while the loop keeps serving other requests.
        const bp = core.backpressure?.(written) ?? null;
        if (bp !== null) {
          this.settle(unique, bp.catch(() => undefined), () => { // commit errors surface at fsync
            this.reply.writeUInt32LE(written, OUT_HEADER_SIZE);
            this.reply.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
            return 8;
          });
          return;
        }
        const r = this.reply;
        r.writeUInt32LE(written, OUT_HEADER_SIZE);
        r.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
        this.replyOk(unique, 8);
        return;
      }
      case Op.STATFS: {
        writeStatfs(this.reply, OUT_HEADER_SIZE, core.statfs(nodeid));
        this.replyOk(unique, KSTATFS_SIZE);
        return;
      }
      case Op.RELEASE: {
        core.release(nodeid, readU64(b, p));
        this.replyOk(unique, 0);
        return;
      }
      case Op.FSYNC: {
        const fh = readU64(b, p);
        const datasync = (b.readUInt32LE(p + 8) & FUSE_FSYNC_FDATASYNC) !== 0;
        this.settle(unique, core.fsync(nodeid, fh, datasync), () => 0);
        return;
      }
      case Op.FSYNCDIR: {
        const fh = readU64(b, p);
        const datasync = (b.readUInt32LE(p + 8) & FUSE_FSYNC_FDATASYNC) !== 0;
        this.settle(unique, core.fsyncdir(nodeid, fh, datasync), () => 0);
        return;
      }
      case Op.SETXATTR: {
        const size = b.readUInt32LE(p);
        const flags = b.readUInt32LE(p + 4);
        const o = p + 8; // fuse_setxattr_in without SETXATTR_EXT (not negotiated)
        const nameEnd = cstrEnd(b, o, end);
        const name = b.toString('utf8', o, nameEnd);
        const value = b.subarray(nameEnd + 1, Math.min(nameEnd + 1 + size, end));
        core.setxattr(ctx, nodeid, name, value, flags);
        this.replyOk(unique, 0);
        return;
      }
      case Op.GETXATTR: {
        const size = b.readUInt32LE(p);
        const name = b.toString('utf8', p + 8, cstrEnd(b, p + 8, end));
        if (this.opts.debug) process.stderr.write(`kernel:   getxattr ${name} size=${size}\n`);
        const v = core.getxattr(ctx, nodeid, name);
        this.replySized(unique, size, v);
        return;
      }
      case Op.LISTXATTR: {
        const size = b.readUInt32LE(p);
        const names = core.listxattr(ctx, nodeid);
        let len = 0;
        for (const nm of names) len += Buffer.byteLength(nm) + 1;
        const v = Buffer.allocUnsafe(len);
        let o = 0;
        for (const nm of names) { o += v.write(nm, o); v[o++] = 0; }
        this.replySized(unique, size, v);
        return;
      }
      case Op.REMOVEXATTR: {
        core.removexattr(ctx, nodeid, b.toString('utf8', p, cstrEnd(b, p, end)));
        this.replyOk(unique, 0);
        return;
      }
      case Op.FLUSH: {
        const fh = readU64(b, p);
        // POSIX: closing any descriptor drops the owner's locks on the file. The kernel leaves that
        // to us when we handle locks: it sends the owner with FLUSH. Only owners that ever locked
        // are worth the BigInt.
        const owner = this.lockOwners.size > 0 ? b.readBigUInt64LE(p + 16) : undefined;
        if (owner !== undefined && this.lockOwners.has(owner)) {
          (core as unknown as CoreExtensions).flush(ctx, nodeid, fh, owner);
        } else {
          core.flush(ctx, nodeid, fh);
        }
        this.replyOk(unique, 0);
        return;
      }
      case Op.INIT: {
        this.init(b, unique, p);
        return;
      }
      case Op.OPENDIR: {
        const flags = b.readUInt32LE(p);
        const r = core.opendir(ctx, nodeid, flags);
        const of = this.opts.cacheDir ? FOPEN.CACHE_DIR | FOPEN.KEEP_CACHE : 0;
        writeOpenOut(this.reply, OUT_HEADER_SIZE, r.fh, of);
        if (!this.replyOk(unique, OPEN_OUT_SIZE)) core.releasedir(nodeid, r.fh);
        return;
      }
      case Op.READDIR: {
        const fh = readU64(b, p);
        const offset = readU64(b, p + 8);
        const size = Math.min(b.readUInt32LE(p + 16), this.reply.length - OUT_HEADER_SIZE);
        const list = core.readdir(ctx, nodeid, fh, offset, Math.max(1, size >>> 5));
        const r = this.reply;
        const limit = OUT_HEADER_SIZE + size;
        let o = OUT_HEADER_SIZE;
        for (let i = 0; i < list.length; i++) {
          const next = writeDirent(r, o, limit, list[i]!);
          if (next < 0) break;
          o = next;
        }
        this.replyOk(unique, o - OUT_HEADER_SIZE);
        return;
      }
      case Op.READDIRPLUS: {
        const fh = readU64(b, p);
        const offset = readU64(b, p + 8);
        const size = Math.min(b.readUInt32LE(p + 16), this.reply.length - OUT_HEADER_SIZE);
        // An entry is >= 160 bytes; asking for more than fit would count lookups we then undo.
        const list = core.readdirplus(ctx, nodeid, fh, offset, Math.max(1, Math.floor(size / 168)));
        const r = this.reply;
        const limit = OUT_HEADER_SIZE + size;
        let o = OUT_HEADER_SIZE;
        let i = 0;
        let linked = 0;
        for (; i < list.length; i++) {
          const d = list[i]!;
          const dots = isDotOrDotDot(d.name);
          const next = writeDirentplus(r, o, limit, d, dots ? null : d.entry);
          if (next < 0) break;
          // No entry (nodeid 0): the kernel lists the name and links nothing; a lookup follows.
          if (!dots && d.entry) { linked++; this.attrTimeout = d.entry.attrTimeout; }
          o = next;
        }
        // Entries that did not fit were counted by the core but never reach the kernel.
        for (let j = i; j < list.length; j++) {
          const d = list[j]!;
          if (!isDotOrDotDot(d.name) && d.entry) core.forget(d.entry.ino, 1);
        }
        if (this.replyOk(unique, o - OUT_HEADER_SIZE)) {
          this.lookupsOutstanding += linked;
        } else {
          for (let j = 0; j < i; j++) {
            const d = list[j]!;
            if (!isDotOrDotDot(d.name) && d.entry) core.forget(d.entry.ino, 1);
          }
        }
        return;
      }
      case Op.RELEASEDIR: {
        core.releasedir(nodeid, readU64(b, p));
        this.replyOk(unique, 0);
        return;
      }
      case Op.GETLK: {
        const fh = readU64(b, p);
        const owner = b.readBigUInt64LE(p + 8);
        const lk = readLock(b, p + 16);
        const r = core.getlk(nodeid, fh, owner, lk);
        writeLock(this.reply, OUT_HEADER_SIZE, r);
        this.replyOk(unique, 24);
        return;
      }
      case Op.SETLK:
      case Op.SETLKW: {
        const fh = readU64(b, p);
        const owner = b.readBigUInt64LE(p + 8);
        const lk = readLock(b, p + 16);
        const lkFlags = b.readUInt32LE(p + 40);
        if ((lkFlags & FUSE_LK_FLOCK) && !this.opts.flockLocks) { this.replyErr(unique, ENOSYS); return; } // flock stays in the kernel
        if (lk.type !== F_UNLCK) this.lockOwners.add(owner);
        const wait = opcode === Op.SETLKW;
        const rec: Pending = { opcode, interrupted: false, ino: nodeid, owner };
        this.pending.set(unique, rec);
        core.setlk(nodeid, fh, owner, lk, wait).then(() => {
          this.pending.delete(unique);
          if (rec.interrupted) {
            // The waiter gave up (signal) after we answered EINTR: drop what it was granted.
            void core.setlk(nodeid, fh, owner, { ...lk, type: F_UNLCK }, false).catch(() => undefined);
            return;
          }
          this.replyOk(unique, 0);
        }, (err: unknown) => {
          this.pending.delete(unique);
          if (!rec.interrupted) this.replyErr(unique, toErrno(err));
        });
        return;
      }
      case Op.ACCESS: {
        core.access(ctx, nodeid, b.readUInt32LE(p));
        this.replyOk(unique, 0);
        return;
      }
      case Op.CREATE: {
        const flags = b.readUInt32LE(p);
        const mode = b.readUInt32LE(p + 4);
        ctx.umask = b.readUInt32LE(p + 8);
        const name = b.subarray(p + 16, cstrEnd(b, p + 16, end));
        const { entry, open } = core.create(ctx, nodeid, name, mode, flags);
        writeEntry(this.reply, OUT_HEADER_SIZE, entry);
        writeOpenOut(this.reply, OUT_HEADER_SIZE + ENTRY_OUT_SIZE, open.fh,
          (open.directIo ? FOPEN.DIRECT_IO : 0) | (open.keepCache ? FOPEN.KEEP_CACHE : 0));
        this.attrTimeout = entry.attrTimeout;
        if (this.replyOk(unique, ENTRY_OUT_SIZE + OPEN_OUT_SIZE)) {
          this.lookupsOutstanding++;
        } else {
          core.release(entry.ino, open.fh);
          core.forget(entry.ino, 1);
        }
        return;
      }
      case Op.INTERRUPT: {
        const target = readU64(b, p);
        const rec = this.pending.get(target);
        // Only a lock wait can block forever; fsync and friends finish on their own.
        if (rec && rec.opcode === Op.SETLKW && !rec.interrupted) {
          const ext = core as unknown as CoreExtensions;
          if (typeof ext.interruptLock === 'function') {
            ext.interruptLock(rec.ino!, rec.owner!); // the wait rejects with EINTR, answered above
          } else {
            rec.interrupted = true;
            this.replyErr(target, EINTR);
          }
        }
        return; // INTERRUPT itself never gets a reply
      }
      case Op.DESTROY: {
        this.destroyed = true;
        this.destroyResult = this.core.destroy();
        this.settle(unique, this.destroyResult, () => 0);
        this.hooks.onDestroyed();
        return;
      }
      case Op.FALLOCATE: {
        const fh = readU64(b, p);
        const offset = readU64(b, p + 8);
        const length = readU64(b, p + 16);
        const mode = b.readUInt32LE(p + 24);
        core.fallocate(ctx, nodeid, fh, mode, offset, length);
        this.replyOk(unique, 0);
        return;
      }
      case Op.LSEEK: {
        const fh = readU64(b, p);
        const offset = readI64(b, p + 8);
        const whence = b.readUInt32LE(p + 16);
        const r = core.lseek(nodeid, fh, offset, whence);
        writeU64(this.reply, OUT_HEADER_SIZE, r);
        this.replyOk(unique, 8);
        return;
      }
      case Op.COPY_FILE_RANGE: {
        const fhIn = readU64(b, p);
        const offIn = readU64(b, p + 8);
        const nodeOut = readU64(b, p + 16);
        const fhOut = readU64(b, p + 24);
        const offOut = readU64(b, p + 32);
        const len = readU64(b, p + 40);
        const n = core.copyFileRange(ctx, nodeid, fhIn, offIn, nodeOut, fhOut, offOut, Math.min(len, 0xffffffff));
        // A copy dirties pages like a WRITE: hold the reply while dirty data is far ahead of commits.
        const bp = core.backpressure?.(n) ?? null;
        if (bp !== null) {
          this.settle(unique, bp.catch(() => undefined), () => {
            this.reply.writeUInt32LE(n >>> 0, OUT_HEADER_SIZE);
            this.reply.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
            return 8;
          });
          return;
        }
        this.reply.writeUInt32LE(n >>> 0, OUT_HEADER_SIZE);
        this.reply.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
        this.replyOk(unique, 8);
        return;
      }
      default:
        // BMAP, IOCTL, POLL, SYNCFS, TMPFILE, STATX...: the kernel remembers ENOSYS for most of them.
        this.replyErr(unique, ENOSYS);
    }
  }

  /** xattr replies: size 0 is a probe for the length; a too-small buffer is ERANGE. */
  private replySized(unique: number, size: number, v: Buffer): void {
    if (size === 0) {
      this.reply.writeUInt32LE(v.length, OUT_HEADER_SIZE);
      this.reply.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
      this.replyOk(unique, 8);
    } else if (size < v.length) {
      this.replyErr(unique, ERANGE);
    } else {
      this.replyData(unique, v);
    }
  }

  private init(b: Buffer, unique: number, p: number): void {
    const major = b.readUInt32LE(p);
    const minor = b.readUInt32LE(p + 4);
    const maxReadahead = b.readUInt32LE(p + 8);
    const kflags = b.readUInt32LE(p + 12);
    this.proto = { major, minor: Math.min(minor, FUSE_KERNEL_MINOR_VERSION), kernelMinor: minor, flags: kflags, maxReadahead };
    if (major !== FUSE_KERNEL_VERSION) {
      // Newer major: answer with ours and the kernel re-sends INIT; older: unsupported.
      if (major > FUSE_KERNEL_VERSION) {
        const r = this.reply;
        r.fill(0, OUT_HEADER_SIZE, OUT_HEADER_SIZE + 8);
        r.writeUInt32LE(FUSE_KERNEL_VERSION, OUT_HEADER_SIZE);
        this.replyOk(unique, 8);
      } else {
        this.replyErr(unique, EPROTO);
      }
      return;
    }
    let want = INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO
      | INIT.PARALLEL_DIROPS | INIT.HANDLE_KILLPRIV_V2 | INIT.MAX_PAGES | INIT.CACHE_SYMLINKS | INIT.ASYNC_DIO
      | INIT.AUTO_INVAL_DATA | INIT.ATOMIC_O_TRUNC;
    if (this.opts.writebackCache) want |= INIT.WRITEBACK_CACHE;
    if (this.opts.flockLocks) want |= INIT.FLOCK_LOCKS;
    if (this.opts.posixLocks !== false) want |= INIT.POSIX_LOCKS;
    const flags = (want & kflags) >>> 0;
    this.proto.flags = flags;
    const maxPages = Math.ceil(this.opts.maxWrite / PAGE_SIZE);
    const r = this.reply;
    const o = OUT_HEADER_SIZE;
    r.fill(0, o, o + INIT_OUT_SIZE);
    r.writeUInt32LE(FUSE_KERNEL_VERSION, o);
    r.writeUInt32LE(Math.min(minor, FUSE_KERNEL_MINOR_VERSION), o + 4);
    r.writeUInt32LE(maxReadahead, o + 8);
    r.writeUInt32LE(flags, o + 12);
    r.writeUInt16LE(64, o + 16);          // max_background
    r.writeUInt16LE(48, o + 18);          // congestion_threshold
    r.writeUInt32LE(this.opts.maxWrite, o + 20);
    r.writeUInt32LE(1, o + 24);           // time_gran: ns timestamps
    r.writeUInt16LE(maxPages, o + 28);
    this.initialized = true;
    this.replyOk(unique, minor < 23 ? 24 : INIT_OUT_SIZE);
    this.hooks.onInit();
  }

  // ------------------------------------------------------------------ notifications

  /**
   * Tells the kernel to drop cached data/names. Written from the threadpool, never inline: the
   * kernel may hold page or directory locks while it processes a notification and wait on a
   * request that only this thread can answer.
   */
  notify(ev: InvalidateEvent): void {
    if (!this.initialized || this.destroyed) return;
    let buf: Buffer;
    let n: number;
    if (ev.kind === 'inode') {
      buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + 24);
      n = encodeInvalInode(buf, Notify.INVAL_INODE, ev.ino, ev.offset, ev.length);
    } else if (ev.kind === 'entry') {
      buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + 16 + ev.name.length + 1);
      n = encodeInvalEntry(buf, Notify.INVAL_ENTRY, ev.parent, ev.name);
    } else {
      buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + 24 + ev.name.length + 1);
      n = encodeDelete(buf, Notify.DELETE, ev.parent, ev.child, ev.name);
    }
    this.notifications++;
    this.notifyQueue.push({ buf, n, kind: ev.kind });
    this.pumpNotify();
  }

  /**
   * One notification in flight at a time. The kernel may block a notification until a request
   * it holds a lock for is answered (INVAL_ENTRY waits for the directory's lock, which an FSYNCDIR
   * holds while it waits for our reply); a burst of them written at once blocked every libuv
   * threadpool thread, and the reply they waited for needed one of those threads (the commit's file
   * I/O): a deadlock, seen with a replicated store applying another machine's untar.
   */
  private readonly notifyQueue: Array<{ buf: Buffer; n: number; kind: string }> = [];
  private notifyBusy = false;
  private pumpNotify(): void {
    if (this.notifyBusy || this.destroyed) return;
    const next = this.notifyQueue.shift();
    if (next === undefined) return;
    this.notifyBusy = true;
    writeAsync(this.fd, next.buf, 0, next.n, null, (err) => {
      this.notifyBusy = false;
      // ENOENT: the kernel does not know that inode/name (nothing cached) — fine.
      if (err && (err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.notifyFailures++;
        if (this.opts.debug) process.stderr.write(`kernel: notify ${next.kind} failed: ${err.message}\n`);
      }
      this.pumpNotify();
    });
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    let total = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i]!;
      if (c > 0) { out[OP_NAMES[i] ?? `OP${i}`] = c; total += c; }
    }
    out.requests = total;
    out.errors = this.errors;
    out.writeBytes = this.writeBytes;
    out.maxWrite = this.maxWriteSeen;
    out.writesAtMax = this.writesAtMax;
    out.lookupsOutstanding = this.lookupsOutstanding;
    out.bulkReads = this.bulkReads;
    out.bulkFallbacks = this.bulkFallbacks;
    out.notifications = this.notifications;
    out.notifyFailures = this.notifyFailures;
    out.pending = this.pending.size;
    return out;
  }
}
