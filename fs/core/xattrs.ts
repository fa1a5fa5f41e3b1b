import type { Ctx } from './api.js';
import { XATTR_NAME_MAX, XATTR_SIZE_MAX, S_ISVTX } from './constants.js';
import { FsError } from './errors.js';
import type { Inode } from './inode.js';
import { isOwnerOrRoot, permits } from './permissions.js';

/** Extended attribute namespaces and their permission rules (as Linux applies them). */
export const XattrNs = { User: 0, Trusted: 1, Security: 2 } as const;
export type XattrNs = 0 | 1 | 2;

export function xattrNamespace(name: string): XattrNs {
  let ns: XattrNs, plen: number;
  if (name.startsWith('user.')) { ns = XattrNs.User; plen = 5; }
  else if (name.startsWith('security.')) { ns = XattrNs.Security; plen = 9; }
  else if (name.startsWith('trusted.')) { ns = XattrNs.Trusted; plen = 8; }
  else throw new FsError('EOPNOTSUPP'); // system.* (ACLs) and unknown namespaces
  if (name.length > XATTR_NAME_MAX && Buffer.byteLength(name) > XATTR_NAME_MAX) throw new FsError('ERANGE');
  if (name.length === plen) throw new FsError('EINVAL');
  return ns;
}

/** May `ctx` see attributes of this namespace at all? (trusted.* is invisible to non-root.) */
export function xattrVisible(ctx: Ctx, ns: XattrNs): boolean {
  return ns !== XattrNs.Trusted || ctx.uid === 0;
}

export function checkXattrRead(ctx: Ctx, inode: Inode, ns: XattrNs): void {
  if (ns === XattrNs.User && !permits(ctx, inode, 4)) throw new FsError('EACCES');
}

export function checkXattrWrite(ctx: Ctx, inode: Inode, ns: XattrNs, name: string): void {
  if (ns === XattrNs.Trusted) { if (ctx.uid !== 0) throw new FsError('EPERM'); return; }
  if (ns === XattrNs.Security && name === 'security.capability' && ctx.uid !== 0) throw new FsError('EPERM');
  if (ns === XattrNs.User) {
    // user.* only on regular files and directories; sticky directories only by their owner.
    if (!inode.isReg && !inode.isDir) throw new FsError('EPERM');
    if (inode.isDir && (inode.mode & S_ISVTX) !== 0 && !isOwnerOrRoot(ctx, inode)) throw new FsError('EPERM');
  }
  if (!permits(ctx, inode, 2)) throw new FsError('EACCES');
}

export function checkXattrValue(value: Buffer): void {
  if (value.length > XATTR_SIZE_MAX) throw new FsError('E2BIG');
}
