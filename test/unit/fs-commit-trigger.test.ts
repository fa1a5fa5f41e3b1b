import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Filesystem, MemoryStore } from '../../fs/core/index.js';
import { MAX_COPY_PER_CALL } from '../../fs/core/filesystem.js';
import { ROOT, b, makeFs, readFile, writeFile } from './fs-helpers.js';

/**
 * A write that pushes dirty bytes over maxDirtyBytes starts a commit. That commit must snapshot
 * the state AFTER the write, never from inside it: a snapshot taken between "page registered as
 * dirty" and "data copied in, size updated" stored the block trimmed to the old size (an empty
 * block: the file read back as zeros once its clean page left the block cache) and let the write
 * mutate a buffer the store already held. Seen as one all-zero file after `cp -a` into a mount.
 */
describe('commits started by the dirty-bytes limit', () => {
  it('a write that crosses maxDirtyBytes is committed whole (new file, first block)', async () => {
    // cacheBytes 0: a committed page is not kept in the core, every read after the commit goes to the store.
    const { fs, store } = makeFs({ maxDirtyBytes: 256 * 1024, cacheBytes: 0, blockSize: 65536 });
    const first = randomBytes(200 * 1024);
    const second = randomBytes(100 * 1024); // its first page takes dirty bytes past 256 KiB
    const a = writeFile(fs, ROOT, 1, 'a', first);
    const c = writeFile(fs, ROOT, 1, 'c', second);
    await fs.sync();
    expect(readFile(fs, ROOT, a).equals(first)).toBe(true);
    expect(readFile(fs, ROOT, c).equals(second)).toBe(true);
    await fs.destroy();
    const again = new Filesystem(store, { commitDelayMs: 60_000, cacheBytes: 0 });
    const e = again.lookup(ROOT, 1, b('c'));
    expect(e.attr.size).toBe(second.length);
    expect(readFile(again, ROOT, e.ino).equals(second)).toBe(true);
    await again.destroy();
  });

  it('a write that crosses maxDirtyBytes in the middle of a file keeps every byte', async () => {
    const { fs, store } = makeFs({ maxDirtyBytes: 300 * 1024, cacheBytes: 0, blockSize: 65536 });
    const data = randomBytes(1024 * 1024);
    const { entry, open } = fs.create(ROOT, 1, b('big'), 0o600, 2);
    // 128 KiB chunks, as cp/libfuse write: the limit is crossed by a block of the third chunk.
    for (let off = 0; off < data.length; off += 128 * 1024) fs.write(ROOT, entry.ino, open.fh, off, data.subarray(off, off + 128 * 1024));
    fs.release(entry.ino, open.fh);
    fs.setattr(ROOT, entry.ino, { mode: 0o644 });
    await fs.sync();
    expect(readFile(fs, ROOT, entry.ino).equals(data)).toBe(true);
    await fs.destroy();
    const again = new Filesystem(store, { commitDelayMs: 60_000, cacheBytes: 0 });
    expect(readFile(again, ROOT, entry.ino).equals(data)).toBe(true);
    await again.destroy();
  });

  it('the store is never handed a buffer the core writes to afterwards', async () => {
    // A store that checks, at commit time and when the commit completes, that the blocks it was
    // given still hold the bytes they held when commit() was called.
    class CheckingStore extends MemoryStore {
      mutated = 0;
      override async commit(batch: Parameters<MemoryStore['commit']>[0], d: Parameters<MemoryStore['commit']>[1]): Promise<void> {
        const copies = batch.blocks.map((bl) => (bl.data ? Buffer.from(bl.data) : null));
        await new Promise((r) => setImmediate(r));
        batch.blocks.forEach((bl, i) => { if (bl.data && !bl.data.equals(copies[i]!)) this.mutated++; });
        return super.commit(batch, d);
      }
    }
    const store = new CheckingStore();
    const { fs } = makeFs({ maxDirtyBytes: 100 * 1024, cacheBytes: 0, blockSize: 65536 }, store);
    const files: Array<[number, Buffer]> = [];
    for (let i = 0; i < 40; i++) {
      const data = randomBytes(10_000 + i * 7_919);
      files.push([writeFile(fs, ROOT, 1, `f${i}`, data), data]);
    }
    await fs.sync();
    expect(store.mutated).toBe(0);
    for (const [ino, data] of files) expect(readFile(fs, ROOT, ino).equals(data)).toBe(true);
    await fs.destroy();
  });

  it('copy_file_range copies a bounded amount per call, so commits run between the calls of a big copy', async () => {
    const { fs, store } = makeFs({ maxDirtyBytes: 4 * 1024 * 1024, cacheBytes: 0 });
    const size = 2 * MAX_COPY_PER_CALL + 12_345;
    const data = randomBytes(size);
    const src = writeFile(fs, ROOT, 1, 'src', data);
    await fs.sync();
    const hs = fs.open(ROOT, src, 0);
    const { entry, open } = fs.create(ROOT, 1, b('dst'), 0o644, 2);
    let off = 0;
    let calls = 0;
    let maxDirty = 0;
    while (off < size) {
      // cp asks for everything that is left in one call.
      const n = fs.copyFileRange(ROOT, src, hs.fh, off, entry.ino, open.fh, off, size - off);
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(MAX_COPY_PER_CALL);
      maxDirty = Math.max(maxDirty, fs.dirtyBytes);
      off += n;
      calls++;
      await fs.backpressure();
    }
    expect(calls).toBe(3);
    expect(maxDirty).toBeLessThanOrEqual(MAX_COPY_PER_CALL + 8 * 1024 * 1024);
    fs.release(entry.ino, open.fh);
    fs.release(src, hs.fh);
    await fs.destroy();
    const again = new Filesystem(store, { commitDelayMs: 60_000, cacheBytes: 0 });
    expect(readFile(again, ROOT, entry.ino).equals(data)).toBe(true);
    await again.destroy();
  });
});

describe('the store\'s write brake (FsStore.writeBrake: a local chain\'s space bound)', () => {
  it('backpressure after a write asks the store with the bytes written, and waits for what it returns', async () => {
    const { fs, store } = makeFs({ maxDirtyBytes: 64 * 1024 * 1024 });
    const asked: number[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    (store as MemoryStore & { writeBrake?: (bytes: number) => Promise<void> | null }).writeBrake = (bytes) => {
      asked.push(bytes);
      return bytes >= 4096 ? held : null;
    };
    const { entry, open } = fs.create(ROOT, 1, b('db'), 0o644, 2);
    const n = fs.write(ROOT, entry.ino, open.fh, 0, randomBytes(4096));
    // No bytes (a caller that does not say): the brake is not asked.
    expect(fs.backpressure()).toBeNull();
    expect(fs.backpressure(100)).toBeNull();
    const bp = fs.backpressure(n);
    expect(bp).toBe(held);
    expect(asked).toEqual([100, 4096]);
    let done = false;
    void bp!.then(() => { done = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    release();
    await bp;
    expect(done).toBe(true);
    fs.release(entry.ino, open.fh);
    await fs.destroy();
  });
});
