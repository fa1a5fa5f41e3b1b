import { describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore, type FsBatch, type InvalidateEvent } from '../../fs/core/index.js';
import { ROOT, b, errnoOf, readFile, writeFile } from './fs-helpers.js';

/** Applies a batch to the store as another writer would, then tells the core (replication). */
async function remote(store: MemoryStore, batch: Partial<FsBatch>): Promise<void> {
  const full: FsBatch = { inodes: [], deletedInodes: [], dentries: [], blocks: [], ...batch };
  await store.commit(full, 'local');
  store.onRemoteChange!(full);
}

describe('fs core: changes from elsewhere', () => {
  it('refreshes cached inodes, directories and blocks and emits invalidations', async () => {
    const store = new MemoryStore();
    const fs = new Filesystem(store, { rootUid: 0, rootGid: 0, blockSize: 4096, inlineMax: 100 });
    const events: InvalidateEvent[] = [];
    fs.onInvalidate = (ev) => events.push(ev);
    const f = writeFile(fs, ROOT, 1, 'f', Buffer.alloc(5000, 'a'));
    expect(readFile(fs, ROOT, f).subarray(0, 2).toString()).toBe('aa');
    await fs.sync();
    {
      const rec = { ...store.getInode(f)!, mode: 0o100600, size: 5000 };
      await remote(store, { inodes: [rec], blocks: [{ ino: f, index: 0, data: Buffer.alloc(4096, 'r') }] });
      expect(fs.getattr(ROOT, f).mode).toBe(0o100600);
      expect(readFile(fs, ROOT, f).subarray(0, 2).toString()).toBe('rr');
      expect(events).toContainEqual({ kind: 'inode', ino: f, offset: 0, length: 0 });
    }
    // A new entry from elsewhere appears in a loaded directory; a removed one disappears.
    const t = { sec: 5, nsec: 0 };
    const newIno = store.allocIno();
    await remote(store, {
      inodes: [{ ino: newIno, generation: 1, mode: 0o100644, uid: 0, gid: 0, rdev: 0, nlink: 1, size: 3,
        atime: t, mtime: t, ctime: t, xattrs: {}, inline: b('new') }],
      dentries: [{ parent: 1, name: b('remote'), ino: newIno }, { parent: 1, name: b('f'), ino: null }],
    });
    expect(readFile(fs, ROOT, fs.lookup(ROOT, 1, b('remote')).ino).toString()).toBe('new');
    expect(errnoOf(() => fs.lookup(ROOT, 1, b('f')))).toBe('ENOENT');
    expect(events).toContainEqual({ kind: 'entry', parent: 1, name: b('remote') });
    expect(events).toContainEqual({ kind: 'delete', parent: 1, child: f, name: b('f') });
  });
});
