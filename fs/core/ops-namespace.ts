import type { Ctx, Entry, Ino } from './api.js';
import { RENAME_EXCHANGE, RENAME_NOREPLACE } from './api.js';
import type { InodeRecord } from './store.js';
import { fsErr } from './errors.js';
import {
  LINK_MAX, NAME_MAX, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, S_ISGID, S_IXGRP, SYMLINK_MAX,
} from './constants.js';
import type { Inode } from './inode.js';
import { ROOT_INO } from './inode-table.js';
import { DirIndex, nameKey, type DirSlot } from './dir-index.js';
import { checkAccess, checkSticky, inGroup, permits } from './permissions.js';
import { type CoreState, isDot } from './core-state.js';

// Names and the namespace: lookup/forget, and what adds, removes or moves names (mknod, mkdir,
// symlink, link, unlink, rmdir, rename) — the operations of Filesystem (filesystem.ts) over names.

const EMPTY_XATTRS: Record<string, Buffer> = Object.freeze({}) as Record<string, Buffer>;

export function lookup(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer): Entry {
  core.table.maybeEvict();
  const p = core.parentDir(ctx, parent);
  checkAccess(ctx, p, 1);
  if (name.length > NAME_MAX) throw fsErr('ENAMETOOLONG');
  const dot = isDot(name);
  if (dot === 1) return core.entry(p);
  if (dot === 2) return core.entry(core.table.get(p.parent || ROOT_INO));
  const slot = core.dirOf(p).get(nameKey(name));
  if (slot === undefined) throw fsErr('ENOENT');
  const child = core.table.get(slot.ino);
  if (child.isDir && child.parent === 0) child.parent = p.ino;
  return core.entry(child);
}

export function forget(core: CoreState, ino: Ino, nlookup: number): void {
  const inode = core.table.peek(ino);
  if (inode === undefined || ino === ROOT_INO) return;
  inode.lookups -= nlookup;
  if (inode.lookups < 0) inode.lookups = 0;
  if (inode.lookups === 0) core.maybeReap(inode);
}

export function readlink(core: CoreState, _ctx: Ctx, ino: Ino): Buffer {
  const inode = core.table.get(ino);
  if (!inode.isSymlink || inode.symlinkTarget === undefined) throw fsErr('EINVAL');
  return inode.symlinkTarget;
}

/** Common part of mknod/mkdir/symlink/create: checks, new inode, dentry, parent times. */
export function makeNode(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer, mode: number, rdev: number, target?: Buffer): Inode {
  core.rw();
  const p = core.parentDir(ctx, parent);
  const key = core.checkName(name);
  checkAccess(ctx, p, 1);
  if (p.nlink === 0) throw fsErr('ENOENT');
  const dir = core.dirOf(p);
  if (isDot(name) !== 0 || dir.get(key) !== undefined) throw fsErr('EEXIST');
  checkAccess(ctx, p, 3);
  core.changeable(p);
  const type = mode & S_IFMT;
  const isDir = type === S_IFDIR;
  if (isDir && p.nlink >= LINK_MAX) throw fsErr('EMLINK');
  // mkdir ignores suid/sgid in the mode (sgid comes only from a setgid parent), like Linux.
  let perm = isDir ? mode & 0o1777 : mode & 0o7777;
  if (ctx.umask !== undefined && type !== S_IFLNK) perm &= ~ctx.umask;
  let gid = core.creator?.gid ?? ctx.gid;
  if ((p.mode & S_ISGID) !== 0) {
    gid = p.gid;
    if (isDir) perm |= S_ISGID;
  }
  // Linux's mode_strip_sgid: a group-executable setgid file for a group its creator is not in.
  if (!isDir && (perm & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) && ctx.uid !== 0 && !inGroup(ctx, gid)) perm &= ~S_ISGID;
  const t = core.now();
  const ino = core.store.allocIno();
  const rec: InodeRecord = {
    ino, generation: 1, mode: type | perm, uid: core.creator?.uid ?? ctx.uid, gid, rdev: type === S_IFCHR || type === S_IFBLK ? rdev : 0,
    nlink: isDir ? 2 : 1, size: target ? target.length : 0, atime: t, mtime: t, ctime: t, xattrs: EMPTY_XATTRS,
  };
  if (target) rec.symlinkTarget = Buffer.from(target);
  if (isDir) rec.parent = p.ino;
  const inode = core.table.adopt(rec);
  if (isDir) {
    inode.dir = new DirIndex();
    p.nlink++;
  }
  core.committer.markInode(inode);
  const stored = Buffer.from(name);
  dir.add(stored, key, ino, type);
  core.committer.markDentry(p, stored, key);
  p.mtime = t;
  p.ctime = t;
  core.touch(p);
  return inode;
}

export function mknod(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer, mode: number, rdev: number): Entry {
  core.table.maybeEvict();
  let type = mode & S_IFMT;
  if (type === 0) type = S_IFREG;
  if (type === S_IFCHR || type === S_IFBLK) { if (ctx.uid !== 0) throw fsErr('EPERM'); }
  else if (type === S_IFDIR) throw fsErr('EPERM');
  else if (type !== S_IFREG && type !== S_IFIFO && type !== S_IFSOCK) throw fsErr('EINVAL');
  return core.entry(makeNode(core, ctx, parent, name, type | (mode & 0o7777), rdev));
}

export function mkdir(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer, mode: number): Entry {
  core.table.maybeEvict();
  return core.entry(makeNode(core, ctx, parent, name, S_IFDIR | (mode & 0o7777), 0));
}

export function symlink(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer, target: Buffer): Entry {
  core.table.maybeEvict();
  if (target.length === 0) throw fsErr('ENOENT');
  if (target.length > SYMLINK_MAX) throw fsErr('ENAMETOOLONG');
  return core.entry(makeNode(core, ctx, parent, name, S_IFLNK | 0o777, 0, target));
}

export function link(core: CoreState, ctx: Ctx, ino: Ino, newParent: Ino, newName: Buffer): Entry {
  core.rw();
  const inode = core.table.get(ino);
  const p = core.parentDir(ctx, newParent);
  const key = core.checkName(newName);
  checkAccess(ctx, p, 1);
  const dir = core.dirOf(p);
  // An existing name first, as Linux's linkat (its lookup of the new name precedes vfs_link).
  if (isDot(newName) !== 0 || dir.get(key) !== undefined) throw fsErr('EEXIST');
  if (inode.isDir) throw fsErr('EPERM');
  checkAccess(ctx, p, 3);
  core.changeable(p);
  core.changeable(inode);
  if (p.nlink === 0 || inode.nlink === 0) throw fsErr('ENOENT');
  if (inode.nlink >= LINK_MAX) throw fsErr('EMLINK');
  const t = core.now();
  const stored = Buffer.from(newName);
  dir.add(stored, key, inode.ino, inode.type);
  core.committer.markDentry(p, stored, key);
  inode.nlink++;
  inode.ctime = t;
  core.touch(inode);
  p.mtime = t;
  p.ctime = t;
  core.touch(p);
  return core.entry(inode);
}

/** Resolves an existing entry for removal: checks search+write on the parent and the sticky bit. */
function victim(core: CoreState, ctx: Ctx, p: Inode, name: Buffer): { dir: DirIndex; slot: DirSlot; child: Inode } {
  if (name.length > NAME_MAX) throw fsErr('ENAMETOOLONG');
  checkAccess(ctx, p, 1);
  const dir = core.dirOf(p);
  const slot = dir.get(nameKey(name));
  if (slot === undefined) throw fsErr('ENOENT');
  const child = core.table.get(slot.ino);
  checkAccess(ctx, p, 3);
  core.changeable(p);
  checkSticky(ctx, p, child);
  return { dir, slot, child };
}

export function unlink(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer): void {
  core.rw();
  const p = core.parentDir(ctx, parent);
  const dot = isDot(name);
  if (dot !== 0) throw fsErr(dot === 1 ? 'EISDIR' : 'EISDIR');
  const { dir, slot, child } = victim(core, ctx, p, name);
  if (child.isDir) throw fsErr('EISDIR');
  core.changeable(child);
  const t = core.now();
  dir.remove(slot);
  core.committer.markDentry(p, slot.name, slot.key);
  child.nlink--;
  child.ctime = t;
  core.touch(child);
  p.mtime = t;
  p.ctime = t;
  core.touch(p);
  core.maybeReap(child);
}

export function rmdir(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer): void {
  core.rw();
  const p = core.parentDir(ctx, parent);
  const dot = isDot(name);
  if (dot === 1) throw fsErr('EINVAL');
  if (dot === 2) throw fsErr('ENOTEMPTY');
  const { dir, slot, child } = victim(core, ctx, p, name);
  if (!child.isDir) throw fsErr('ENOTDIR');
  if (core.dirOf(child).size > 0) throw fsErr('ENOTEMPTY');
  const t = core.now();
  dir.remove(slot);
  core.committer.markDentry(p, slot.name, slot.key);
  child.nlink = 0;
  child.ctime = t;
  core.touch(child);
  p.nlink--;
  p.mtime = t;
  p.ctime = t;
  core.touch(p);
  core.maybeReap(child);
}

/** True if directory `ancestor` is `ino` or one of its ancestors. */
function isAncestor(core: CoreState, ancestor: Ino, ino: Ino): boolean {
  let cur = ino;
  for (let depth = 0; depth < 100_000; depth++) {
    if (cur === ancestor) return true;
    if (cur === ROOT_INO) return false;
    const next = core.table.get(cur).parent;
    if (!next || next === cur) return false;
    cur = next;
  }
  return false;
}

export function rename(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer, newParent: Ino, newName: Buffer, flags: number): void {
  core.rw();
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0) throw fsErr('EINVAL');
  if ((flags & RENAME_NOREPLACE) !== 0 && (flags & RENAME_EXCHANGE) !== 0) throw fsErr('EINVAL');
  const p = core.parentDir(ctx, parent);
  const np = core.parentDir(ctx, newParent);
  if (name.length > NAME_MAX || newName.length > NAME_MAX) throw fsErr('ENAMETOOLONG');
  if (isDot(name) !== 0 || isDot(newName) !== 0) throw fsErr('EBUSY');
  const nkey = core.checkName(newName);
  checkAccess(ctx, p, 1);
  checkAccess(ctx, np, 1);
  const sdir = core.dirOf(p);
  const ddir = core.dirOf(np);
  const slot = sdir.get(nameKey(name));
  if (slot === undefined) throw fsErr('ENOENT');
  const src = core.table.get(slot.ino);
  const dslot = ddir.get(nkey);
  const dst = dslot !== undefined ? core.table.get(dslot.ino) : undefined;
  if ((flags & RENAME_NOREPLACE) !== 0 && dst !== undefined) throw fsErr('EEXIST');
  const exchange = (flags & RENAME_EXCHANGE) !== 0;
  if (exchange && dst === undefined) throw fsErr('ENOENT');
  checkAccess(ctx, p, 3);
  core.changeable(p);
  checkAccess(ctx, np, 3);
  core.changeable(np);
  checkSticky(ctx, p, src);
  if (dst !== undefined) checkSticky(ctx, np, dst);
  if (dst !== undefined && dst === src) return; // same inode (hard links or same entry): POSIX says do nothing
  core.changeable(src);
  if (dst !== undefined) core.changeable(dst);
  if (src.isDir && p !== np) {
    if (!permits(ctx, src, 2)) throw fsErr('EACCES');
    if (isAncestor(core, src.ino, np.ino)) throw fsErr('EINVAL');
  }
  // A target that is an ancestor of the source holds it: not empty, whatever the source's type
  // (Linux's do_renameat2 checks this before the types of source and target).
  if (!exchange && dst !== undefined && dst.isDir && p !== np && isAncestor(core, dst.ino, p.ino)) throw fsErr('ENOTEMPTY');
  if (exchange) {
    const d = dst!;
    if (d.isDir && p !== np) {
      if (!permits(ctx, d, 2)) throw fsErr('EACCES');
      if (isAncestor(core, d.ino, p.ino)) throw fsErr('EINVAL');
    }
  } else if (dst !== undefined) {
    if (src.isDir && !dst.isDir) throw fsErr('ENOTDIR');
    if (!src.isDir && dst.isDir) throw fsErr('EISDIR');
    if (dst.isDir && core.dirOf(dst).size > 0) throw fsErr('ENOTEMPTY');
  }
  if (np.nlink === 0) throw fsErr('ENOENT'); // the target directory was removed
  if (src.isDir && dst === undefined && p !== np && np.nlink >= LINK_MAX) throw fsErr('EMLINK');

  const t = core.now();
  if (exchange) {
    const d = dst!;
    slot.ino = d.ino; slot.type = d.type;
    dslot!.ino = src.ino; dslot!.type = src.type;
    if (p !== np) {
      if (src.isDir) { src.parent = np.ino; p.nlink--; np.nlink++; }
      if (d.isDir) { d.parent = p.ino; np.nlink--; p.nlink++; }
    }
    core.committer.markDentry(p, slot.name, slot.key);
    core.committer.markDentry(np, dslot!.name, dslot!.key);
    d.ctime = t;
    core.touch(d);
  } else {
    if (dst !== undefined) {
      ddir.remove(dslot!);
      if (dst.isDir) { dst.nlink = 0; np.nlink--; } else dst.nlink--;
      dst.ctime = t;
      core.touch(dst);
    }
    sdir.remove(slot);
    core.committer.markDentry(p, slot.name, slot.key);
    const stored = Buffer.from(newName);
    ddir.add(stored, nkey, src.ino, src.type);
    core.committer.markDentry(np, stored, nkey);
    if (src.isDir && p !== np) { p.nlink--; np.nlink++; src.parent = np.ino; }
  }
  src.ctime = t;
  core.touch(src);
  p.mtime = t; p.ctime = t;
  core.touch(p);
  if (np !== p) { np.mtime = t; np.ctime = t; core.touch(np); }
  if (!exchange && dst !== undefined) core.maybeReap(dst);
}
