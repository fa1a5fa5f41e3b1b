// Access times are lazy (like Linux's lazytime): a read that only moves atime commits nothing by
// itself; the new atime goes out with the inode's next other change, or with fsync / sync / unmount.
import { describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore } from '../../fs/core/index.js';
import type { Durability, FsBatch } from '../../fs/core/store.js';
import { ROOT, b, makeFs, writeFile } from './fs-helpers.js';

/** A MemoryStore that records the inode records of every commit. */
class CountingStore extends MemoryStore {
  commits: Array<{ inodes: number[]; durability: Durability }> = [];
  override commit(batch: FsBatch, durability: Durability): Promise<void> {
    this.commits.push({ inodes: batch.inodes.map((r) => r.ino), durability });
    return super.commit(batch, durability);
  }
}

describe('lazy atime', () => {
  it('a read commits no atime by itself; sync persists it', async () => {
    const store = new CountingStore();
    const { fs, clock } = makeFs({ commitDelayMs: 10 }, store);
    const f = writeFile(fs, ROOT, 1, 'f', 'hello');
    await fs.sync();
    const before = store.commits.length;
    clock.tick();
    const h = fs.open(ROOT, f, 0);
    fs.read(ROOT, f, h.fh, 0, 5); // atime <= mtime: relatime moves it
    const atime = fs.getattr(ROOT, f).atime;
    expect(atime).toEqual(clock.now());
    fs.commitSoon();
    await new Promise((r) => setTimeout(r, 50));
    expect(store.commits.length).toBe(before);
    expect(store.getInode(f)!.atime).not.toEqual(atime);
    await fs.sync();
    expect(store.commits.slice(before).some((c) => c.durability === 'durable' && c.inodes.includes(f))).toBe(true);
    expect(store.getInode(f)!.atime).toEqual(atime);
    fs.release(f, h.fh);
  });

  it('fsync of the file, another change, and unmount (destroy) all carry the atime', async () => {
    const store = new CountingStore();
    const { fs, clock } = makeFs({ commitDelayMs: 10 }, store);
    const f = writeFile(fs, ROOT, 1, 'f', 'abc');
    const g = writeFile(fs, ROOT, 1, 'g', 'xyz');
    await fs.sync();
    clock.tick();
    const hf = fs.open(ROOT, f, 2);
    fs.read(ROOT, f, hf.fh, 0, 3);
    await fs.fsync(f, hf.fh, false);
    expect(store.getInode(f)!.atime).toEqual(clock.now());
    clock.tick();
    const hg = fs.open(ROOT, g, 2);
    fs.read(ROOT, g, hg.fh, 0, 3);
    const ga = clock.now();
    clock.tick();
    fs.setxattr(ROOT, g, 'user.k', b('v'), 0); // another change of g: its record goes out with the atime
    fs.commitSoon();
    await new Promise((r) => setTimeout(r, 50));
    expect(store.getInode(g)!.atime).toEqual(ga);
    clock.sec += 86_400;
    fs.read(ROOT, f, hf.fh, 0, 3);
    const fa = fs.getattr(ROOT, f).atime;
    fs.release(f, hf.fh);
    fs.release(g, hg.fh);
    await fs.destroy();
    expect(store.getInode(f)!.atime).toEqual(fa);
    // What the store holds reopens with it.
    const again = new Filesystem(store, {});
    expect(again.getattr(ROOT, f).atime).toEqual(fa);
  });
});
