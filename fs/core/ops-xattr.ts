import type { Ctx, Ino } from './api.js';
import { fsErr } from './errors.js';
import { XATTR_CREATE, XATTR_REPLACE } from './constants.js';
import { checkXattrRead, checkXattrValue, checkXattrWrite, xattrNamespace, xattrVisible } from './xattrs.js';
import type { CoreState } from './core-state.js';

// Extended attributes: setxattr, getxattr, listxattr and removexattr — the operations of Filesystem
// (filesystem.ts) on an inode's xattrs (namespace rules in xattrs.ts).

export function setxattr(core: CoreState, ctx: Ctx, ino: Ino, name: string, value: Buffer, flags: number): void {
  const inode = core.table.get(ino);
  const ns = xattrNamespace(name);
  core.rw();
  checkXattrValue(value);
  checkXattrWrite(ctx, inode, ns, name);
  core.changeable(inode);
  const exists = Object.hasOwn(inode.xattrs, name);
  if ((flags & XATTR_CREATE) !== 0 && exists) throw fsErr('EEXIST');
  if ((flags & XATTR_REPLACE) !== 0 && !exists) throw fsErr('ENODATA');
  // Replace the object: the previous one may be referenced by a batch in flight.
  inode.xattrs = { ...inode.xattrs, [name]: Buffer.from(value) };
  inode.ctime = core.now();
  core.touch(inode);
}

export function getxattr(core: CoreState, ctx: Ctx, ino: Ino, name: string): Buffer {
  const inode = core.table.get(ino);
  const ns = xattrNamespace(name);
  if (!xattrVisible(ctx, ns)) throw fsErr('ENODATA');
  checkXattrRead(ctx, inode, ns);
  const xs = inode.xattrs;
  if (!Object.hasOwn(xs, name)) throw fsErr('ENODATA');
  return xs[name]!;
}

export function listxattr(core: CoreState, ctx: Ctx, ino: Ino): string[] {
  const inode = core.table.get(ino);
  const names = Object.keys(inode.xattrs);
  return ctx.uid === 0 ? names : names.filter((n) => !n.startsWith('trusted.'));
}

export function removexattr(core: CoreState, ctx: Ctx, ino: Ino, name: string): void {
  const inode = core.table.get(ino);
  const ns = xattrNamespace(name);
  core.rw();
  checkXattrWrite(ctx, inode, ns, name);
  core.changeable(inode);
  if (!Object.hasOwn(inode.xattrs, name)) throw fsErr('ENODATA');
  const next = { ...inode.xattrs };
  delete next[name];
  inode.xattrs = next;
  inode.ctime = core.now();
  core.touch(inode);
}
