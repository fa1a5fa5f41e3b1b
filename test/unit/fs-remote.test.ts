import { describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore, type FsBatch, type InvalidateEvent } from '../../fs/core/index.js';
import { ROOT, b, errnoOf, names, readFile, writeFile } from './fs-helpers.js';

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

  // A replicated store that rebuilt its view (remote-store.ts resync) refreshes the core with
  // everything its re-made commits touched — older versions of what the core's next batch, already
  // taken, carries. That batch is the only copy of the newer state until it lands: kept.
  it('keeps a batch in flight (records, pages, names) over a refresh with older versions', async () => {
    const store = new MemoryStore();
    const fs = new Filesystem(store, { rootUid: 0, rootGid: 0, blockSize: 4096, inlineMax: 100, commitDelayMs: 60_000 });
    const f = writeFile(fs, ROOT, 1, 'f', Buffer.alloc(5000, 'a'));
    await fs.sync();
    const older = { inode: store.getInode(f)!, block0: store.getBlock(f, 0)! };
    const { fh } = fs.open(ROOT, f, 2);
    const newer = Buffer.alloc(9000, 'b');
    fs.write(ROOT, f, fh, 0, newer);
    fs.release(f, fh);
    fs.rename(ROOT, 1, b('f'), 1, b('g'), 0);
    // The store takes its time with the next batch: in flight until the gate opens.
    const commit = store.commit.bind(store);
    let open: (() => void) | undefined;
    store.commit = async (batch, d) => {
      store.commit = commit;
      await new Promise<void>((r) => { open = r; });
      return commit(batch, d);
    };
    fs.commitSoon();
    for (let i = 0; i < 100 && !open; i++) await new Promise((r) => setTimeout(r, 1));
    expect(open).toBeDefined();
    const clashes = store.onRemoteChange!({
      inodes: [older.inode], deletedInodes: [],
      dentries: [{ parent: 1, name: b('f'), ino: f }], blocks: [{ ino: f, index: 0, data: older.block0 }],
    });
    expect(clashes).toEqual([]);
    const check = () => {
      expect(fs.getattr(ROOT, f).size).toBe(9000);
      expect(readFile(fs, ROOT, f).equals(newer)).toBe(true);
      expect(names(fs, ROOT, 1).filter((n) => n !== '.' && n !== '..')).toEqual(['g']);
    };
    check();
    open!();
    await fs.sync();
    check();
    expect(store.getInode(f)!.size).toBe(9000);
    expect(store.lookupDentry(1, b('f'))).toBeUndefined();
    // Once it landed, changes from elsewhere apply again.
    await remote(store, { inodes: [{ ...store.getInode(f)!, mode: 0o100600 }] });
    expect(fs.getattr(ROOT, f).mode).toBe(0o100600);
  });
});
