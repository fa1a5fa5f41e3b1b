// Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.
import { cstrEnd } from './codec.js';
import type { OpHandler } from './session-types.js';

export const setxattr: OpHandler = (s, b, unique, nodeid, p, end) => {
  const size = b.readUInt32LE(p);
  const flags = b.readUInt32LE(p + 4);
  const o = p + 8; // fuse_setxattr_in without SETXATTR_EXT (not negotiated)
  const nameEnd = cstrEnd(b, o, end);
  const name = b.toString('utf8', o, nameEnd);
  const value = b.subarray(nameEnd + 1, Math.min(nameEnd + 1 + size, end));
  s.core.setxattr(s.ctx, nodeid, name, value, flags);
  s.out.ok(unique, 0);
};

export const getxattr: OpHandler = (s, b, unique, nodeid, p, end) => {
  const size = b.readUInt32LE(p);
  const name = b.toString('utf8', p + 8, cstrEnd(b, p + 8, end));
  if (s.opts.debug) process.stderr.write(`kernel:   getxattr ${name} size=${size}\n`);
  s.out.sized(unique, size, s.core.getxattr(s.ctx, nodeid, name));
};

export const listxattr: OpHandler = (s, b, unique, nodeid, p) => {
  const size = b.readUInt32LE(p);
  const names = s.core.listxattr(s.ctx, nodeid);
  let len = 0;
  for (const nm of names) len += Buffer.byteLength(nm) + 1;
  const v = Buffer.allocUnsafe(len);
  let o = 0;
  for (const nm of names) { o += v.write(nm, o); v[o++] = 0; }
  s.out.sized(unique, size, v);
};

export const removexattr: OpHandler = (s, b, unique, nodeid, p, end) => {
  s.core.removexattr(s.ctx, nodeid, b.toString('utf8', p, cstrEnd(b, p, end)));
  s.out.ok(unique, 0);
};
