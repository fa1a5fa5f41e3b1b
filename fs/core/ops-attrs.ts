import type { Attr, Ctx, Fh, Ino, SetAttr, Timespec } from './api.js';
import { SETATTR_NOW } from './api.js';
import { fsErr } from './errors.js';
import { O_ACCMODE, O_RDONLY, S_IFMT, S_ISGID } from './constants.js';
import { checkAccess, inGroup, isOwnerOrRoot, permits } from './permissions.js';
import { type CoreState, clearSuidgid } from './core-state.js';

// Attributes: getattr, setattr (chmod, chown, truncate, utimens) and access — the operations of
// Filesystem (filesystem.ts) on an inode's attributes.

function validTs(t: Timespec): Timespec {
  if (!Number.isSafeInteger(t.sec) || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec > 999_999_999) throw fsErr('EINVAL');
  return { sec: t.sec, nsec: t.nsec };
}

export function getattr(core: CoreState, _ctx: Ctx, ino: Ino): Attr {
  core.table.maybeEvict();
  return core.attr(core.table.get(ino));
}

export function setattr(core: CoreState, ctx: Ctx, ino: Ino, set: SetAttr, fh?: Fh): Attr {
  core.rw();
  const inode = core.table.get(ino);
  core.changeable(inode);
  const root = ctx.uid === 0;
  const owner = isOwnerOrRoot(ctx, inode);
  // Check everything first, then apply: a refused setattr changes nothing.
  if (set.mode !== undefined && !owner) throw fsErr('EPERM');
  if (set.uid !== undefined && !root && (ctx.uid !== inode.uid || set.uid !== inode.uid)) throw fsErr('EPERM');
  if (set.gid !== undefined && !root && (ctx.uid !== inode.uid || (set.gid !== inode.gid && !inGroup(ctx, set.gid)))) {
    throw fsErr('EPERM');
  }
  // The keys have their say too (FsStore.mayChangeAcl): dropping suid/sgid stays anyone's.
  const oldBits = inode.mode & 0o7777;
  const modeChange = set.mode !== undefined && (set.mode & 0o7777) !== oldBits && (set.mode & 0o7777) !== (oldBits & ~0o6000);
  const ownerChange = (set.uid !== undefined && set.uid !== inode.uid) || (set.gid !== undefined && set.gid !== inode.gid);
  if ((modeChange || ownerChange) && core.store.mayChangeAcl !== undefined && !core.store.mayChangeAcl(ino)) throw fsErr('EPERM');
  const h = fh !== undefined ? core.handles.get(fh) : undefined;
  if (set.size !== undefined) {
    if (inode.isDir) throw fsErr('EISDIR');
    if (!inode.isReg) throw fsErr('EINVAL');
    if (set.size < 0) throw fsErr('EINVAL');
    const viaHandle = h !== undefined && h.inode === inode && (h.flags & O_ACCMODE) !== O_RDONLY;
    if (!viaHandle) checkAccess(ctx, inode, 2);
  }
  const explicitTime = (set.atime !== undefined && set.atime !== SETATTR_NOW) || (set.mtime !== undefined && set.mtime !== SETATTR_NOW);
  // An explicit ctime comes only from a writeback-cache kernel flushing times it keeps for a
  // writer: that writer needed write permission, not ownership.
  if (explicitTime && !owner && !(set.ctime !== undefined && permits(ctx, inode, 2))) throw fsErr('EPERM');
  if (!explicitTime && (set.atime === SETATTR_NOW || set.mtime === SETATTR_NOW) && !owner && !permits(ctx, inode, 2)) {
    throw fsErr('EACCES');
  }
  const atime = set.atime !== undefined && set.atime !== SETATTR_NOW ? validTs(set.atime) : undefined;
  const mtime = set.mtime !== undefined && set.mtime !== SETATTR_NOW ? validTs(set.mtime) : undefined;
  const ctime = set.ctime !== undefined ? validTs(set.ctime) : undefined;

  const now = core.now();
  if (set.size !== undefined) {
    core.content.truncate(inode, set.size);
    inode.mtime = now;
    if (!root) clearSuidgid(inode);
  }
  if (set.uid !== undefined || set.gid !== undefined) {
    if (set.uid !== undefined) inode.uid = set.uid;
    if (set.gid !== undefined) inode.gid = set.gid;
    // Linux drops suid/sgid on chown of anything but a directory, whoever does it.
    if (!inode.isDir) clearSuidgid(inode);
  }
  if (set.mode !== undefined) {
    let mode = (inode.mode & S_IFMT) | (set.mode & 0o7777);
    if (!root && (mode & S_ISGID) !== 0 && !inGroup(ctx, inode.gid)) mode &= ~S_ISGID;
    inode.mode = mode;
  }
  if (set.killSuidgid) clearSuidgid(inode);
  if (set.atime !== undefined) inode.atime = atime ?? now;
  if (set.mtime !== undefined) inode.mtime = mtime ?? now;
  inode.ctime = ctime ?? now;
  core.touch(inode);
  return core.attr(inode);
}

export function access(core: CoreState, ctx: Ctx, ino: Ino, mask: number): void {
  const inode = core.table.get(ino);
  if ((mask & 2) !== 0 && core.readOnly && (inode.isReg || inode.isDir || inode.isSymlink)) throw fsErr('EROFS');
  checkAccess(ctx, inode, mask & 7);
}
