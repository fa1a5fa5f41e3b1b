import type { Ino, InvalidateEvent } from './api.js';
import type { FsBatch } from './store.js';
import type { Inode } from './inode.js';
import { nameKey } from './dir-index.js';
import type { CoreState } from './core-state.js';

// Remote changes: what a batch another mount committed does to this core's memory (Filesystem's
// store.onRemoteChange).

/**
 * A batch committed by someone else (replication) landed in the store: refresh what the core
 * caches and tell the transport which kernel caches to drop. Local dirty state wins over a
 * concurrent remote change of the same record (it is committed after it: last writer wins).
 * So does a batch in flight (taken from the dirty state, its commit not finished), records,
 * pages and names alike: the store
 * does not hold it yet, and the memory is the only copy of that newer state until it lands.
 * (A replicated store that rebuilds its view refreshes everything its re-made commits touched,
 * while the core's next batch, already taken, waits for it; overwriting memory from the store
 * there left the machine that wrote a file serving an older version of it for good.)
 * Inode events: offset -1 = attributes only, offset 0 / length 0 = attributes and all content.
 */
export function applyRemote(core: CoreState, notify: ((ev: InvalidateEvent) => void) | undefined, batch: FsBatch): Ino[] {
  const inFlight = (inode: Inode) => inode.commitSeq > core.committer.completedSeq;
  const contentChanged = new Set<Ino>();
  // Inodes whose content changed elsewhere while this mount holds uncommitted changes of it:
  // the store keeps both versions (conflict rules of a replicated store).
  const clashes = new Set<Ino>();
  for (const bl of batch.blocks) {
    core.cache.delete(bl.ino, bl.index);
    const inode = core.table.peek(bl.ino);
    if (inode !== undefined && (inode.dirty || (inode.dirtyBlocks?.size ?? 0) > 0)) clashes.add(bl.ino);
    if (inode !== undefined) inode.contentGen++;
    // A page in flight stays until its commit lands (the committer then moves it to the cache).
    if (inode !== undefined && !(inode.dirtyBlocks?.has(bl.index)) && !(inFlight(inode) && inode.pages?.has(bl.index))) {
      inode.pages?.delete(bl.index);
      inode.owned?.delete(bl.index);
      if (inode.blockSet !== null) {
        if (bl.data === null) inode.blockSet.delete(bl.index); else inode.blockSet.add(bl.index);
      }
    }
    contentChanged.add(bl.ino);
  }
  for (const rec of batch.inodes) {
    const inode = core.table.peek(rec.ino);
    if (inode !== undefined && inode.dirty && (inode.size !== rec.size || inode.inline !== rec.inline) && (inode.mode & 0o170000) === 0o100000) clashes.add(rec.ino);
    if (inode !== undefined && !inode.dirty && !inFlight(inode)) {
      const inlineChanged = inode.inline !== rec.inline || inode.blockSize !== rec.blockSize;
      inode.mode = rec.mode; inode.uid = rec.uid; inode.gid = rec.gid; inode.rdev = rec.rdev;
      inode.nlink = rec.nlink; inode.size = rec.size; inode.atime = rec.atime; inode.mtime = rec.mtime;
      inode.ctime = rec.ctime; inode.xattrs = rec.xattrs; inode.symlinkTarget = rec.symlinkTarget;
      inode.inline = rec.inline; inode.blockSize = rec.blockSize; inode.storedBlocks = rec.blocks;
      if (rec.parent) inode.parent = rec.parent;
      if (inlineChanged) { inode.blockSet = null; inode.contentGen++; contentChanged.add(rec.ino); }
    }
    if (!contentChanged.has(rec.ino)) notify?.({ kind: 'inode', ino: rec.ino, offset: -1, length: 0 });
  }
  for (const ino of contentChanged) notify?.({ kind: 'inode', ino, offset: 0, length: 0 });
  for (const d of batch.dentries) {
    const parent = core.table.peek(d.parent);
    const dir = parent?.dir;
    const key = nameKey(d.name);
    // A name changed here that no finished commit holds yet keeps what it names here (the same
    // rule as the records: the local change is committed after the other one).
    if (parent !== undefined && core.committer.nameUnsettled(parent, key)) {
      notify?.({ kind: 'entry', parent: d.parent, name: d.name });
      continue;
    }
    const slot = dir?.get(key);
    if (d.ino === null) {
      if (dir && slot) {
        dir.remove(slot);
        notify?.({ kind: 'delete', parent: d.parent, child: slot.ino, name: d.name });
      } else notify?.({ kind: 'entry', parent: d.parent, name: d.name });
      continue;
    }
    if (dir) {
      if (slot === undefined) dir.add(Buffer.from(d.name), key, d.ino, 0);
      else if (slot.ino !== d.ino) { slot.ino = d.ino; slot.type = 0; }
    }
    notify?.({ kind: 'entry', parent: d.parent, name: d.name });
  }
  for (const ino of batch.deletedInodes) {
    const inode = core.table.peek(ino);
    if (inode === undefined) continue;
    if (inode.lookups === 0 && inode.opens === 0 && !inode.dirty) core.table.delete(ino);
    else inode.nlink = 0;
    notify?.({ kind: 'inode', ino, offset: -1, length: 0 });
  }
  return [...clashes];
}
