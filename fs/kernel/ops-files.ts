// Requests on open files: OPEN, CREATE, READ (here or on the bulk workers), WRITE,
// COPY_FILE_RANGE, FLUSH, RELEASE, FSYNC, FALLOCATE, LSEEK.
import type { Ctx, ReadPlan } from '../core/api.js';
import { toErrno } from '../core/errors.js';
import { cstrEnd, readI64, readU64, writeEntry, writeOpenOut, writeOutHeader, writeU64 } from './codec.js';
import {
  ENTRY_OUT_SIZE, FOPEN, FUSE_FSYNC_FDATASYNC, FUSE_WRITE_KILL_SUIDGID, OPEN_OUT_SIZE, OUT_HEADER_SIZE,
} from './protocol.js';
import type { CoreExtensions, OpHandler, OpHost } from './session-types.js';

/** Bulk reads in flight at most (each holds a reply buffer of max_write bytes). */
const BULK_BUFFERS = 8;

export const open: OpHandler = (s, b, unique, nodeid, p) => {
  const flags = b.readUInt32LE(p);
  const r = s.core.open(s.ctx, nodeid, flags);
  writeOpenOut(s.out.buf, OUT_HEADER_SIZE, r.fh,
    (r.directIo ? FOPEN.DIRECT_IO : 0) | (r.keepCache ? FOPEN.KEEP_CACHE : 0));
  if (!s.out.ok(unique, OPEN_OUT_SIZE)) s.core.release(nodeid, r.fh);
};

export const create: OpHandler = (s, b, unique, nodeid, p, end) => {
  const flags = b.readUInt32LE(p);
  const mode = b.readUInt32LE(p + 4);
  s.ctx.umask = b.readUInt32LE(p + 8);
  const name = b.subarray(p + 16, cstrEnd(b, p + 16, end));
  const { entry, open: o } = s.core.create(s.ctx, nodeid, name, mode, flags);
  writeEntry(s.out.buf, OUT_HEADER_SIZE, entry);
  writeOpenOut(s.out.buf, OUT_HEADER_SIZE + ENTRY_OUT_SIZE, o.fh,
    (o.directIo ? FOPEN.DIRECT_IO : 0) | (o.keepCache ? FOPEN.KEEP_CACHE : 0));
  s.attrTimeout = entry.attrTimeout;
  if (s.out.ok(unique, ENTRY_OUT_SIZE + OPEN_OUT_SIZE)) {
    s.lookupsOutstanding++;
  } else {
    s.core.release(entry.ino, o.fh);
    s.core.forget(entry.ino, 1);
  }
};

export const read: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  const offset = readU64(b, p + 8);
  const size = b.readUInt32LE(p + 16);
  const core = s.core;
  if (s.opts.bulk) {
    const plan = core.readPlan?.(s.ctx, nodeid, fh, offset, size) ?? null;
    if (plan !== null && serveBulk(s, unique, plan, nodeid, fh, offset, size)) return;
  }
  const ready = core.readReady?.(s.ctx, nodeid, fh, offset, size) ?? null;
  if (ready !== null) {
    // Blocks are being decrypted on workers: reply when they are in, serve others meanwhile.
    const c: Ctx = { uid: s.ctx.uid, gid: s.ctx.gid, pid: s.ctx.pid }; // s.ctx is reused per request
    s.waits.settleData(unique, ready, () => core.read(c, nodeid, fh, offset, size));
    return;
  }
  s.out.data(unique, core.read(s.ctx, nodeid, fh, offset, size));
};

/**
 * Hands a planned read to the bulk workers, which read, decrypt and write the reply to the kernel
 * themselves (the header is written here first). false when no reply buffer is free (the caller
 * serves it). Should the workers fail (a block moved by compaction, tampered, I/O), the read is
 * served here with read(), which reports the error.
 */
function serveBulk(s: OpHost, unique: number, plan: ReadPlan, nodeid: number, fh: number, offset: number, size: number): boolean {
  const need = OUT_HEADER_SIZE + plan.length;
  let sab = s.bulkBufs.pop();
  if (sab !== undefined && sab.byteLength < need) sab = undefined;
  if (sab === undefined) {
    if (s.bulkInFlight >= BULK_BUFFERS) return false;
    sab = new SharedArrayBuffer(Math.max(need, OUT_HEADER_SIZE + s.opts.maxWrite));
  }
  writeOutHeader(Buffer.from(sab, 0, OUT_HEADER_SIZE), need, 0, unique);
  s.bulkInFlight++;
  const c: Ctx = { uid: s.ctx.uid, gid: s.ctx.gid, pid: s.ctx.pid };
  const buf = sab;
  const done = (r: 'written' | 'failed') => {
    s.bulkInFlight--;
    if (s.bulkBufs.length < BULK_BUFFERS) s.bulkBufs.push(buf);
    if (r === 'written') { s.bulkReads++; return; }
    s.bulkFallbacks++;
    try {
      s.out.data(unique, s.core.read(c, nodeid, fh, offset, size));
    } catch (err) {
      s.out.err(unique, toErrno(err));
    }
  };
  s.opts.bulk!.openRangesToFd(s.out.fd, sab, OUT_HEADER_SIZE, plan.sources, plan.blockSize, plan.from, plan.length)
    .then(done, () => done('failed'));
  return true;
}

/** The reply of a WRITE or COPY_FILE_RANGE of `n` bytes: now, or once the core lets the writer go on. */
function replyWritten(s: OpHost, unique: number, n: number): void {
  // Dirty data far ahead of the committer, or the store pacing writers (its space bound): hold
  // this reply (the writer waits) while the loop keeps serving other requests.
  const bp = s.core.backpressure?.(n) ?? null;
  if (bp !== null) {
    // Commit errors surface at fsync.
    s.waits.settle(unique, bp.catch(() => undefined), () => s.out.putU32(n));
    return;
  }
  s.out.okU32(unique, n);
}

export const write: OpHandler = (s, b, unique, nodeid, p, end) => {
  const fh = readU64(b, p);
  const offset = readU64(b, p + 8);
  const size = b.readUInt32LE(p + 16);
  const wflags = b.readUInt32LE(p + 20);
  const data = b.subarray(p + 40, Math.min(p + 40 + size, end));
  const written = (wflags & FUSE_WRITE_KILL_SUIDGID) !== 0
    ? (s.core as unknown as CoreExtensions).write(s.ctx, nodeid, fh, offset, data, true)
    : s.core.write(s.ctx, nodeid, fh, offset, data);
  s.writeBytes += written;
  if (size > s.maxWriteSeen) s.maxWriteSeen = size;
  if (size === s.opts.maxWrite) s.writesAtMax++;
  replyWritten(s, unique, written);
};

export const copyFileRange: OpHandler = (s, b, unique, nodeid, p) => {
  const fhIn = readU64(b, p);
  const offIn = readU64(b, p + 8);
  const nodeOut = readU64(b, p + 16);
  const fhOut = readU64(b, p + 24);
  const offOut = readU64(b, p + 32);
  const len = readU64(b, p + 40);
  const n = s.core.copyFileRange(s.ctx, nodeid, fhIn, offIn, nodeOut, fhOut, offOut, Math.min(len, 0xffffffff));
  // A copy dirties pages like a WRITE: hold the reply while dirty data is far ahead of commits.
  replyWritten(s, unique, n);
};

export const flush: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  // POSIX: closing any descriptor drops the owner's locks on the file. The kernel leaves that
  // to us when we handle locks: it sends the owner with FLUSH. Only owners that ever locked
  // are worth the BigInt.
  const owner = s.lockOwners.size > 0 ? b.readBigUInt64LE(p + 16) : undefined;
  if (owner !== undefined && s.lockOwners.has(owner)) {
    (s.core as unknown as CoreExtensions).flush(s.ctx, nodeid, fh, owner);
  } else {
    s.core.flush(s.ctx, nodeid, fh);
  }
  s.out.ok(unique, 0);
};

export const release: OpHandler = (s, b, unique, nodeid, p) => {
  s.core.release(nodeid, readU64(b, p));
  s.out.ok(unique, 0);
};

export const fsync: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  const datasync = (b.readUInt32LE(p + 8) & FUSE_FSYNC_FDATASYNC) !== 0;
  s.waits.settle(unique, s.core.fsync(nodeid, fh, datasync), () => 0);
};

export const fallocate: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  const offset = readU64(b, p + 8);
  const length = readU64(b, p + 16);
  const mode = b.readUInt32LE(p + 24);
  s.core.fallocate(s.ctx, nodeid, fh, mode, offset, length);
  s.out.ok(unique, 0);
};

export const lseek: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  const offset = readI64(b, p + 8);
  const whence = b.readUInt32LE(p + 16);
  const r = s.core.lseek(nodeid, fh, offset, whence);
  writeU64(s.out.buf, OUT_HEADER_SIZE, r);
  s.out.ok(unique, 8);
};
