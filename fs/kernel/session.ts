/**
 * One FUSE connection: decodes requests, calls the FsCore, encodes exactly one reply per request.
 *
 * Everything here runs on one thread and is synchronous except the few core calls that return a
 * Promise (fsync, fsyncdir, setlk, destroy); those are tracked in `pending` so the read loop knows
 * it must let the event loop run before it blocks on /dev/fuse again.
 *
 * The requests are handled in ops-*.ts, one group of operations a file (names, attributes, open
 * files, directories, extended attributes, locks); replies.ts writes the replies, notifier.ts the
 * notifications, init.ts answers INIT.
 */
import { constants as osc } from 'node:os';
import type { Ctx, Entry, FsCore, InvalidateEvent } from '../core/api.js';
import { CallerGroups } from './caller-groups.js';
import { toErrno } from '../core/errors.js';
import { readU64, writeEntry } from './codec.js';
import { answerInit, type Proto } from './init.js';
import { Notifier } from './notifier.js';
import * as attrs from './ops-attrs.js';
import * as dirs from './ops-dirs.js';
import * as files from './ops-files.js';
import * as locks from './ops-locks.js';
import * as names from './ops-names.js';
import * as xattr from './ops-xattr.js';
import { ENTRY_OUT_SIZE, IN_HEADER_SIZE, Op, OP_NAMES, OUT_HEADER_SIZE } from './protocol.js';
import { PendingReplies, Replies } from './replies.js';
import type { OpHandler, OpHost, Pending, SessionHooks, SessionOptions } from './session-types.js';

export type { SessionHooks, SessionOptions } from './session-types.js';

const ENOSYS = osc.errno.ENOSYS;
const EIO = osc.errno.EIO;

/** The handler of each opcode; INIT and DESTROY change the session itself (Session.dispatch). */
const HANDLERS: Array<OpHandler | undefined> = [];
const on = (ops: number[], h: OpHandler) => { for (const op of ops) HANDLERS[op] = h; };
on([Op.LOOKUP], names.lookup);
on([Op.FORGET], names.forget);
on([Op.BATCH_FORGET], names.batchForget);
on([Op.SYMLINK], names.symlink);
on([Op.MKNOD], names.mknod);
on([Op.MKDIR], names.mkdir);
on([Op.UNLINK], names.unlink);
on([Op.RMDIR], names.rmdir);
on([Op.RENAME, Op.RENAME2], names.rename);
on([Op.LINK], names.link);
on([Op.GETATTR], attrs.getattr);
on([Op.SETATTR], attrs.setattr);
on([Op.ACCESS], attrs.access);
on([Op.READLINK], attrs.readlink);
on([Op.STATFS], attrs.statfs);
on([Op.OPEN], files.open);
on([Op.CREATE], files.create);
on([Op.READ], files.read);
on([Op.WRITE], files.write);
on([Op.COPY_FILE_RANGE], files.copyFileRange);
on([Op.FLUSH], files.flush);
on([Op.RELEASE], files.release);
on([Op.FSYNC], files.fsync);
on([Op.FALLOCATE], files.fallocate);
on([Op.LSEEK], files.lseek);
on([Op.OPENDIR], dirs.opendir);
on([Op.READDIR], dirs.readdir);
on([Op.READDIRPLUS], dirs.readdirplus);
on([Op.RELEASEDIR], dirs.releasedir);
on([Op.FSYNCDIR], dirs.fsyncdir);
on([Op.SETXATTR], xattr.setxattr);
on([Op.GETXATTR], xattr.getxattr);
on([Op.LISTXATTR], xattr.listxattr);
on([Op.REMOVEXATTR], xattr.removexattr);
on([Op.GETLK], locks.getlk);
on([Op.SETLK, Op.SETLKW], locks.setlk);
on([Op.INTERRUPT], locks.interrupt);

export class Session implements OpHost {
  readonly counts = new Float64Array(64);
  lookupsOutstanding = 0;
  writeBytes = 0;
  maxWriteSeen = 0;
  writesAtMax = 0;
  bulkInFlight = 0;
  bulkReads = 0;
  bulkFallbacks = 0;
  readonly bulkBufs: SharedArrayBuffer[] = [];
  initialized = false;
  destroyed = false;
  /** The core's final commit started by DESTROY: unmount() reports its failure. */
  destroyResult: Promise<void> | null = null;
  /** Negotiated protocol: our minor if the kernel's is newer; INIT flags both sides agreed on. */
  proto: Proto = { major: 0, minor: 0, kernelMinor: 0, flags: 0, maxReadahead: 0 };

  readonly out: Replies;
  readonly waits: PendingReplies;
  readonly ctx: Ctx = { uid: 0, gid: 0, pid: 0 };
  attrTimeout: number;
  readonly lockOwners = new Set<bigint>();
  /** Supplementary groups of callers, read from /proc when a group rule needs them. */
  private readonly callerGroups = new CallerGroups();
  private readonly notifier: Notifier;

  constructor(
    fd: number,
    readonly core: FsCore,
    readonly opts: SessionOptions,
    readonly hooks: SessionHooks,
  ) {
    this.out = new Replies(fd, opts.maxWrite, opts.debug);
    this.waits = new PendingReplies(this.out, opts.debug);
    this.notifier = new Notifier(fd, () => this.initialized && !this.destroyed, opts.debug);
    this.attrTimeout = opts.attrTimeout;
    const ctx = this.ctx;
    ctx.inGroup = (gid) => this.callerGroups.has(ctx.pid, gid);
  }

  /** Requests whose reply is a Promise still running. The loop must not block while any is. */
  get pending(): Map<number, Pending> {
    return this.waits.map;
  }

  /** Called once the last pending reply was sent (the loop goes back to reading itself). */
  get onDrained(): (() => void) | null {
    return this.waits.onDrained;
  }
  set onDrained(fn: (() => void) | null) {
    this.waits.onDrained = fn;
  }

  replyEntry(unique: number, e: Entry): void {
    writeEntry(this.out.buf, OUT_HEADER_SIZE, e);
    this.attrTimeout = e.attrTimeout;
    if (this.out.ok(unique, ENTRY_OUT_SIZE)) this.lookupsOutstanding++;
    else this.core.forget(e.ino, 1); // the kernel never saw it: undo the core's lookup count
  }

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
      this.out.err(unique, errno);
    }
  }

  private dispatch(b: Buffer, opcode: number, unique: number, nodeid: number, p: number, end: number): void {
    const h = HANDLERS[opcode];
    if (h !== undefined) {
      h(this, b, unique, nodeid, p, end, opcode);
      return;
    }
    if (opcode === Op.INIT) {
      const r = answerInit(this.out, this.opts, b, unique, p);
      this.proto = r.proto;
      if (r.initialized) {
        this.initialized = true;
        this.hooks.onInit();
      }
      return;
    }
    if (opcode === Op.DESTROY) {
      this.destroyed = true;
      this.destroyResult = this.core.destroy();
      this.waits.settle(unique, this.destroyResult, () => 0);
      this.hooks.onDestroyed();
      return;
    }
    // BMAP, IOCTL, POLL, SYNCFS, TMPFILE, STATX...: the kernel remembers ENOSYS for most of them.
    this.out.err(unique, ENOSYS);
  }

  /** Tells the kernel to drop what it cached of a change made elsewhere (notifier.ts). */
  notify(ev: InvalidateEvent): void {
    this.notifier.notify(ev);
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    let total = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i]!;
      if (c > 0) { out[OP_NAMES[i] ?? `OP${i}`] = c; total += c; }
    }
    out.requests = total;
    out.errors = this.out.errors;
    out.writeBytes = this.writeBytes;
    out.maxWrite = this.maxWriteSeen;
    out.writesAtMax = this.writesAtMax;
    out.lookupsOutstanding = this.lookupsOutstanding;
    out.bulkReads = this.bulkReads;
    out.bulkFallbacks = this.bulkFallbacks;
    out.notifications = this.notifier.notifications;
    out.notifyFailures = this.notifier.notifyFailures;
    out.pending = this.pending.size;
    return out;
  }
}
