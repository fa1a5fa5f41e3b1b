// Record locks (GETLK, SETLK, SETLKW; flock(2) too when FUSE_FLOCK_LOCKS is on) and INTERRUPT,
// which only a lock wait needs: it is the one request that can block forever.
import { constants as osc } from 'node:os';
import { toErrno } from '../core/errors.js';
import { readLock, readU64, writeLock } from './codec.js';
import { FUSE_LK_FLOCK, OUT_HEADER_SIZE, Op } from './protocol.js';
import type { CoreExtensions, OpHandler, Pending } from './session-types.js';

const ENOSYS = osc.errno.ENOSYS;
const EINTR = osc.errno.EINTR;
const F_UNLCK = 2;

export const getlk: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  const owner = b.readBigUInt64LE(p + 8);
  const lk = readLock(b, p + 16);
  const r = s.core.getlk(nodeid, fh, owner, lk);
  writeLock(s.out.buf, OUT_HEADER_SIZE, r);
  s.out.ok(unique, 24);
};

/** SETLK and SETLKW (which waits for the lock). */
export const setlk: OpHandler = (s, b, unique, nodeid, p, _end, opcode) => {
  const core = s.core;
  const fh = readU64(b, p);
  const owner = b.readBigUInt64LE(p + 8);
  const lk = readLock(b, p + 16);
  const lkFlags = b.readUInt32LE(p + 40);
  if ((lkFlags & FUSE_LK_FLOCK) && !s.opts.flockLocks) { s.out.err(unique, ENOSYS); return; } // flock stays in the kernel
  if (lk.type !== F_UNLCK) s.lockOwners.add(owner);
  const wait = opcode === Op.SETLKW;
  const rec: Pending = { opcode, interrupted: false, ino: nodeid, owner };
  const pending = s.waits.map;
  pending.set(unique, rec);
  core.setlk(nodeid, fh, owner, lk, wait).then(() => {
    pending.delete(unique);
    if (rec.interrupted) {
      // The waiter gave up (signal) after we answered EINTR: drop what it was granted.
      void core.setlk(nodeid, fh, owner, { ...lk, type: F_UNLCK }, false).catch(() => undefined);
      return;
    }
    s.out.ok(unique, 0);
  }, (err: unknown) => {
    pending.delete(unique);
    if (!rec.interrupted) s.out.err(unique, toErrno(err));
  });
};

export const interrupt: OpHandler = (s, b, _unique, _nodeid, p) => {
  const target = readU64(b, p);
  const rec = s.waits.map.get(target);
  // Only a lock wait can block forever; fsync and friends finish on their own.
  if (rec && rec.opcode === Op.SETLKW && !rec.interrupted) {
    const ext = s.core as unknown as CoreExtensions;
    if (typeof ext.interruptLock === 'function') {
      ext.interruptLock(rec.ino!, rec.owner!); // the wait rejects with EINTR, answered above
    } else {
      rec.interrupted = true;
      s.out.err(target, EINTR);
    }
  }
  // INTERRUPT itself never gets a reply
};
