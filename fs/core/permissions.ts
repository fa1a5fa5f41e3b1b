import type { Ctx } from './api.js';
import { fsErr } from './errors.js';
import { S_ISVTX, S_IXUGO } from './constants.js';
import type { Inode } from './inode.js';

/**
 * POSIX permission checks. The mount uses default_permissions, so the kernel checks too; the core
 * checks on its own so it is correct without a mount (tests, other transports).
 * The caller's groups are ctx.gid plus, where the transport knows them, its supplementary groups
 * (ctx.inGroup): asked only when a rule depends on a group other than the primary one.
 */

/** Whether the caller belongs to group `gid` (primary or supplementary). */
export function inGroup(ctx: Ctx, gid: number): boolean {
  return ctx.gid === gid || (ctx.inGroup !== undefined && ctx.inGroup(gid));
}

/** True if `ctx` may access `inode` with `mask` (R_OK 4 | W_OK 2 | X_OK 1). */
export function permits(ctx: Ctx, inode: Inode, mask: number): boolean {
  if (mask === 0) return true;
  const mode = inode.mode;
  if (ctx.uid === 0) {
    // root bypasses read/write; execute needs some x bit (directories are always searchable).
    if ((mask & 1) === 0 || inode.isDir) return true;
    return (mode & S_IXUGO) !== 0;
  }
  let bits: number;
  if (ctx.uid === inode.uid) bits = (mode >> 6) & 7;
  else {
    const group = (mode >> 3) & 7;
    const other = mode & 7;
    // Membership matters only when the group and other bits differ (saves a /proc read).
    bits = group !== other && inGroup(ctx, inode.gid) ? group : other;
  }
  return (bits & mask) === mask;
}

export function checkAccess(ctx: Ctx, inode: Inode, mask: number): void {
  if (!permits(ctx, inode, mask)) throw fsErr('EACCES');
}

export function isOwnerOrRoot(ctx: Ctx, inode: Inode): boolean {
  return ctx.uid === 0 || ctx.uid === inode.uid;
}

/** Sticky directories: only the entry's owner, the directory's owner or root may remove/rename it. */
export function checkSticky(ctx: Ctx, dir: Inode, victim: Inode): void {
  if ((dir.mode & S_ISVTX) === 0 || ctx.uid === 0) return;
  if (ctx.uid === victim.uid || ctx.uid === dir.uid) return;
  throw fsErr('EPERM');
}
