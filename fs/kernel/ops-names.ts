// Requests about names: LOOKUP and the kernel's FORGETs, creating nodes other than regular files
// (MKNOD, MKDIR, SYMLINK, LINK), UNLINK, RMDIR and RENAME.
import { constants as osc } from 'node:os';
import type { Entry } from '../core/api.js';
import { toErrno } from '../core/errors.js';
import { cstrEnd, readU64, writeNegativeEntry } from './codec.js';
import { ENTRY_OUT_SIZE, OUT_HEADER_SIZE, Op } from './protocol.js';
import type { OpHandler } from './session-types.js';

const ENOENT = osc.errno.ENOENT;

export const lookup: OpHandler = (s, b, unique, nodeid, p, end) => {
  const name = b.subarray(p, cstrEnd(b, p, end));
  if (nodeid === 1 && s.opts.wakeName !== null && name.equals(s.opts.wakeName)) {
    s.hooks.onWake();
    s.out.err(unique, ENOENT);
    return;
  }
  let e: Entry;
  try {
    e = s.core.lookup(s.ctx, nodeid, name);
  } catch (err) {
    const errno = toErrno(err);
    if (errno === ENOENT && s.opts.negativeTimeout > 0) {
      writeNegativeEntry(s.out.buf, OUT_HEADER_SIZE, s.opts.negativeTimeout);
      s.out.ok(unique, ENTRY_OUT_SIZE);
      return;
    }
    throw err;
  }
  s.replyEntry(unique, e);
};

export const forget: OpHandler = (s, b, _unique, nodeid, p) => {
  const nl = readU64(b, p);
  s.lookupsOutstanding -= nl;
  s.core.forget(nodeid, nl);
};

export const batchForget: OpHandler = (s, b, _unique, _nodeid, p, end) => {
  const count = b.readUInt32LE(p);
  let o = p + 8;
  for (let i = 0; i < count && o + 16 <= end; i++, o += 16) {
    const ino = readU64(b, o);
    const nl = readU64(b, o + 8);
    s.lookupsOutstanding -= nl;
    try { s.core.forget(ino, nl); } catch { /* one bad forget must not drop the rest */ }
  }
};

export const symlink: OpHandler = (s, b, unique, nodeid, p, end) => {
  const nameEnd = cstrEnd(b, p, end);
  const name = b.subarray(p, nameEnd);
  const target = b.subarray(nameEnd + 1, cstrEnd(b, nameEnd + 1, end));
  s.replyEntry(unique, s.core.symlink(s.ctx, nodeid, name, target));
};

export const mknod: OpHandler = (s, b, unique, nodeid, p, end) => {
  const mode = b.readUInt32LE(p);
  const rdev = b.readUInt32LE(p + 4);
  s.ctx.umask = b.readUInt32LE(p + 8);
  const name = b.subarray(p + 16, cstrEnd(b, p + 16, end));
  s.replyEntry(unique, s.core.mknod(s.ctx, nodeid, name, mode, rdev));
};

export const mkdir: OpHandler = (s, b, unique, nodeid, p, end) => {
  const mode = b.readUInt32LE(p);
  s.ctx.umask = b.readUInt32LE(p + 4);
  const name = b.subarray(p + 8, cstrEnd(b, p + 8, end));
  s.replyEntry(unique, s.core.mkdir(s.ctx, nodeid, name, mode));
};

export const unlink: OpHandler = (s, b, unique, nodeid, p, end) => {
  s.core.unlink(s.ctx, nodeid, b.subarray(p, cstrEnd(b, p, end)));
  s.out.ok(unique, 0);
};

export const rmdir: OpHandler = (s, b, unique, nodeid, p, end) => {
  s.core.rmdir(s.ctx, nodeid, b.subarray(p, cstrEnd(b, p, end)));
  s.out.ok(unique, 0);
};

/** RENAME and RENAME2 (which adds flags: RENAME_NOREPLACE, RENAME_EXCHANGE). */
export const rename: OpHandler = (s, b, unique, nodeid, p, end, opcode) => {
  const newdir = readU64(b, p);
  const flags = opcode === Op.RENAME2 ? b.readUInt32LE(p + 8) : 0;
  const o = p + (opcode === Op.RENAME2 ? 16 : 8);
  const oldEnd = cstrEnd(b, o, end);
  const oldName = b.subarray(o, oldEnd);
  const newName = b.subarray(oldEnd + 1, cstrEnd(b, oldEnd + 1, end));
  s.core.rename(s.ctx, nodeid, oldName, newdir, newName, flags);
  s.out.ok(unique, 0);
};

export const link: OpHandler = (s, b, unique, nodeid, p, end) => {
  const oldnode = readU64(b, p);
  const name = b.subarray(p + 8, cstrEnd(b, p + 8, end));
  s.replyEntry(unique, s.core.link(s.ctx, oldnode, nodeid, name));
};
