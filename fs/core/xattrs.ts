import type { Ctx } from './api.js';
import { XATTR_NAME_MAX, XATTR_SIZE_MAX, S_ISVTX } from './constants.js';
import { fsErr } from './errors.js';
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
  else throw fsErr('EOPNOTSUPP'); // system.* (ACLs) and unknown namespaces
  // UTF-16 length <= 85 cannot exceed 255 UTF-8 bytes: skip the byte count on the hot path.
  if (name.length > 85 && Buffer.byteLength(name) > XATTR_NAME_MAX) throw fsErr('ERANGE');
  if (name.length === plen) throw fsErr('EINVAL');
  return ns;
}

/** May `ctx` see attributes of this namespace at all? (trusted.* is invisible to non-root.) */
export function xattrVisible(ctx: Ctx, ns: XattrNs): boolean {
  return ns !== XattrNs.Trusted || ctx.uid === 0;
}

export function checkXattrRead(ctx: Ctx, inode: Inode, ns: XattrNs): void {
  if (ns === XattrNs.User && !permits(ctx, inode, 4)) throw fsErr('EACCES');
}

export function checkXattrWrite(ctx: Ctx, inode: Inode, ns: XattrNs, name: string): void {
  if (ns === XattrNs.Trusted) { if (ctx.uid !== 0) throw fsErr('EPERM'); return; }
  if (ns === XattrNs.Security && name === 'security.capability' && ctx.uid !== 0) throw fsErr('EPERM');
  if (ns === XattrNs.User) {
    // user.* only on regular files and directories; sticky directories only by their owner.
    if (!inode.isReg && !inode.isDir) throw fsErr('EPERM');
    if (inode.isDir && (inode.mode & S_ISVTX) !== 0 && !isOwnerOrRoot(ctx, inode)) throw fsErr('EPERM');
  }
  if (!permits(ctx, inode, 2)) throw fsErr('EACCES');
}

export function checkXattrValue(value: Buffer): void {
  if (value.length > XATTR_SIZE_MAX) throw fsErr('E2BIG');
}
