// Requests about attributes: GETATTR, SETATTR, ACCESS, READLINK, STATFS.
import type { SetAttr } from '../core/api.js';
import { readI64, readU64, writeAttrOut, writeStatfs } from './codec.js';
import { ATTR_OUT_SIZE, FATTR, FUSE_GETATTR_FH, KSTATFS_SIZE, OUT_HEADER_SIZE } from './protocol.js';
import type { OpHandler } from './session-types.js';

export const getattr: OpHandler = (s, b, unique, nodeid, p) => {
  const flags = b.readUInt32LE(p);
  // The core answers from the inode; the handle only matters for unlinked-but-open files,
  // which the core keeps by inode too.
  void (flags & FUSE_GETATTR_FH);
  const a = s.core.getattr(s.ctx, nodeid);
  writeAttrOut(s.out.buf, OUT_HEADER_SIZE, a, s.attrTimeout);
  s.out.ok(unique, ATTR_OUT_SIZE);
};

export const setattr: OpHandler = (s, b, unique, nodeid, p) => {
  const valid = b.readUInt32LE(p);
  if (s.opts.debug) process.stderr.write(`kernel:   setattr valid=0x${valid.toString(16)}\n`);
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
  const a = s.core.setattr(s.ctx, nodeid, set, fh);
  writeAttrOut(s.out.buf, OUT_HEADER_SIZE, a, s.attrTimeout);
  s.out.ok(unique, ATTR_OUT_SIZE);
};

export const access: OpHandler = (s, b, unique, nodeid, p) => {
  s.core.access(s.ctx, nodeid, b.readUInt32LE(p));
  s.out.ok(unique, 0);
};

export const readlink: OpHandler = (s, _b, unique, nodeid) => {
  s.out.data(unique, s.core.readlink(s.ctx, nodeid));
};

export const statfs: OpHandler = (s, _b, unique, nodeid) => {
  writeStatfs(s.out.buf, OUT_HEADER_SIZE, s.core.statfs(nodeid));
  s.out.ok(unique, KSTATFS_SIZE);
};
