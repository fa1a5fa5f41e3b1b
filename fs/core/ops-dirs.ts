import type { Ctx, DirEntry, Entry, Fh, Ino, OpenResult } from './api.js';
import { fsErr, isMissingKey } from './errors.js';
import { S_IFDIR } from './constants.js';
import type { Inode } from './inode.js';
import { ROOT_INO } from './inode-table.js';
import { checkAccess } from './permissions.js';
import type { CoreState } from './core-state.js';

// Directories: opendir, readdir and readdirplus — the operations of Filesystem (filesystem.ts) that
// list a directory (releasedir and fsyncdir are release and fsync, ops-files.ts).

export function opendir(core: CoreState, ctx: Ctx, ino: Ino, flags: number): OpenResult {
  const inode = core.table.get(ino);
  if (!inode.isDir) throw fsErr('ENOTDIR');
  checkAccess(ctx, inode, 4);
  return { fh: core.newHandle(inode, flags, true), keepCache: true };
}

/** A listed entry's inode: null when this mount holds no key for it, undefined when it cannot be loaded. */
function listedInode(core: CoreState, ino: Ino): Inode | null | undefined {
  try {
    return core.table.get(ino);
  } catch (e) {
    return isMissingKey(e) ? null : undefined;
  }
}

function listing(core: CoreState, ino: Ino, fh: Fh, offset: number, maxEntries: number, plus: boolean): Array<DirEntry & { entry?: Entry | null }> {
  const h = core.handles.get(fh);
  const inode = h !== undefined && h.inode.ino === ino ? h.inode : core.table.get(ino);
  if (!inode.isDir) throw fsErr('ENOTDIR');
  const dir = core.dirOf(inode);
  const out: Array<DirEntry & { entry?: Entry | null }> = [];
  if (maxEntries <= 0) return out;
  const t = core.store.cacheTimeout;
  const dot = (name: string, target: Inode, cookie: number): void => {
    // "." and ".." count no lookup: the kernel ignores them in READDIRPLUS replies.
    const e: DirEntry & { entry?: Entry | null } = { name: Buffer.from(name), ino: target.ino, type: S_IFDIR, offset: cookie };
    if (plus) e.entry = { ino: target.ino, generation: target.generation, attr: core.attr(target), entryTimeout: 0, attrTimeout: 0 };
    out.push(e);
  };
  if (offset < 1) dot('.', inode, 1);
  if (offset < 2 && out.length < maxEntries) dot('..', core.table.peek(inode.parent || ROOT_INO) ?? core.table.tryGet(inode.parent) ?? inode, 2);
  const slots = dir.slots;
  for (let i = dir.positionAfter(offset < 2 ? 2 : offset); i < slots.length && out.length < maxEntries; i++) {
    const s = slots[i];
    if (s === null || s === undefined) continue;
    // An entry whose inode cannot be loaded (a replication race, a damaged store) is skipped
    // rather than failing the whole listing. One sealed for keys this mount does not hold (a
    // group member's 0600 file) is listed — its name is sealed under the directory's key, which
    // every reader of the directory holds — with an unknown type and no attributes: looking it
    // up is EACCES, as a file without read permission in a listable directory would be.
    if (plus) {
      const child = listedInode(core, s.ino);
      if (child === null) {
        out.push({ name: s.name, ino: s.ino, type: 0, offset: s.id, entry: null });
        continue;
      }
      if (child === undefined) continue;
      if (child.isDir && child.parent === 0) child.parent = inode.ino;
      if (s.type === 0) s.type = child.type;
      child.lookups++;
      out.push({ name: s.name, ino: s.ino, type: s.type, offset: s.id,
        entry: { ino: child.ino, generation: child.generation, attr: core.attr(child), entryTimeout: t, attrTimeout: t } });
    } else {
      if (s.type === 0) {
        const child = listedInode(core, s.ino);
        if (child === undefined) continue;
        if (child !== null) s.type = child.type;
      }
      out.push({ name: s.name, ino: s.ino, type: s.type, offset: s.id });
    }
  }
  return out;
}

export function readdir(core: CoreState, _ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): DirEntry[] {
  return listing(core, ino, fh, offset, maxEntries, false);
}

export function readdirplus(
  core: CoreState, _ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number,
): Array<DirEntry & { entry: Entry | null }> {
  return listing(core, ino, fh, offset, maxEntries, true) as Array<DirEntry & { entry: Entry | null }>;
}
