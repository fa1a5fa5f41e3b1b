import { describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore, posix, type Ino } from '../../fs/core/index.js';
import { inoSpaceOf } from '../../fs/remote/ino-space.js';
import { ROOT, USER, b, errnoOf, makeFs, readFile, writeFile } from './fs-helpers.js';

const { O_APPEND, O_EXCL, O_TRUNC, O_CREAT, SEEK_DATA, SEEK_HOLE, SEEK_SET, SEEK_END, FALLOC_FL_KEEP_SIZE } = posix;

/** Deterministic PRNG (xorshift32): reproducible property tests. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

/**
 * A MemoryStore numbering inodes as a remote mount does (machine 7's range, from 7 * 2^32), that
 * counts the blocks the core reads from it and fetches blocks as a chain store does off-thread.
 */
class RangeStore extends MemoryStore {
  private next = inoSpaceOf(7).first;
  gets = 0;
  readonly fetched: number[] = [];
  override allocIno(): Ino { return this.next++; }
  override getBlock(ino: Ino, index: number): Buffer | undefined {
    this.gets++;
    return super.getBlock(ino, index);
  }
  async fetchBlocks(ino: Ino, indexes: readonly number[]): Promise<Array<Buffer | undefined>> {
    this.fetched.push(...indexes);
    return indexes.map((i) => super.getBlock(ino, i));
  }
}

function pattern(len: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(len);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < len; i++) { x = (x * 1103515245 + 12345) >>> 0; out[i] = x >>> 24; }
  return out;
}

describe('fs core: file content', () => {
  it('sparse files: holes read as zeros, st_blocks counts allocated blocks only, SEEK_DATA/SEEK_HOLE', () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 1024 });
    const { entry, open } = fs.create(ROOT, 1, b('sparse'), 0o644, 2);
    const ino = entry.ino;
    fs.write(ROOT, ino, open.fh, 1_000_000, b('end'));
    const a = fs.getattr(ROOT, ino);
    expect(a.size).toBe(1_000_003);
    expect(a.blocks).toBe(2); // one block, counted by its used part (579 bytes -> 2 sectors)
    expect(a.blksize).toBe(4096);
    expect(fs.read(ROOT, ino, open.fh, 0, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(fs.read(ROOT, ino, open.fh, 999_998, 10).equals(Buffer.from('\0\0end'))).toBe(true);
    const dataBlock = Math.floor(1_000_000 / 4096) * 4096;
    expect(fs.lseek(ino, open.fh, 0, SEEK_DATA)).toBe(dataBlock);
    expect(fs.lseek(ino, open.fh, 0, SEEK_HOLE)).toBe(0);
    expect(fs.lseek(ino, open.fh, 999_999, SEEK_DATA)).toBe(999_999);
    expect(fs.lseek(ino, open.fh, dataBlock, SEEK_HOLE)).toBe(1_000_003); // implicit hole at EOF
    expect(errnoOf(() => fs.lseek(ino, open.fh, 1_000_003, SEEK_DATA))).toBe('ENXIO');
    expect(errnoOf(() => fs.lseek(ino, open.fh, 2_000_000, SEEK_HOLE))).toBe('ENXIO');
    fs.write(ROOT, ino, open.fh, 8192, b('mid'));
    expect(fs.lseek(ino, open.fh, 0, SEEK_DATA)).toBe(8192);
    expect(fs.lseek(ino, open.fh, 8192, SEEK_HOLE)).toBe(12288);
    expect(fs.lseek(ino, open.fh, 12288, SEEK_DATA)).toBe(dataBlock);
    expect(fs.lseek(ino, open.fh, 5, SEEK_SET)).toBe(5);
    expect(fs.lseek(ino, open.fh, -3, SEEK_END)).toBe(1_000_000);
    expect(errnoOf(() => fs.lseek(ino, open.fh, 0, 9))).toBe('EINVAL');
    expect(fs.getattr(ROOT, ino).blocks).toBe(10);
  });

  it('small files stay inline; SEEK_DATA/HOLE on them; st_blocks', () => {
    const { fs, store } = makeFs({ blockSize: 4096, inlineMax: 1024 });
    const f = writeFile(fs, ROOT, 1, 'small', 'x'.repeat(600));
    expect(fs.getattr(ROOT, f).blocks).toBe(2);
    const h = fs.open(ROOT, f, 0);
    expect(fs.lseek(f, h.fh, 10, SEEK_DATA)).toBe(10);
    expect(fs.lseek(f, h.fh, 10, SEEK_HOLE)).toBe(600);
    return fs.sync().then(() => {
      expect(store.blockCount).toBe(0);
      expect(store.getInode(f)?.inline?.length).toBe(600);
    });
  });

  it('st_blocks: full blocks plus the used part of the last one', () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 1024 });
    const f = writeFile(fs, ROOT, 1, 'f', Buffer.alloc(10_000, 1));
    // 4096 + 4096 + 1808 (-> 2048) bytes = 20 sectors
    expect(fs.getattr(ROOT, f).blocks).toBe(20);
    fs.setattr(ROOT, f, { size: 100_000 });
    expect(fs.getattr(ROOT, f).blocks).toBe(24); // the grown part is a hole; block 2 now counts in full
    expect(fs.getattr(ROOT, 1).blocks).toBe(0);
  });

  it('truncate up and down across block boundaries keeps data and zeroes the tail', async () => {
    const { fs, store } = makeFs({ blockSize: 4096, inlineMax: 1024 });
    const data = pattern(20_000, 1);
    const f = writeFile(fs, ROOT, 1, 'f', data);
    await fs.sync();
    expect(store.blockCount).toBe(5);
    fs.setattr(ROOT, f, { size: 9000 }); // middle of block 2
    await fs.sync();
    expect(store.blockCount).toBe(3);
    fs.setattr(ROOT, f, { size: 30_000 });
    const back = readFile(fs, ROOT, f);
    expect(back.length).toBe(30_000);
    expect(back.subarray(0, 9000).equals(data.subarray(0, 9000))).toBe(true);
    expect(back.subarray(9000).equals(Buffer.alloc(21_000))).toBe(true);
    fs.setattr(ROOT, f, { size: 8192 }); // exactly on a boundary
    fs.setattr(ROOT, f, { size: 8193 });
    expect(readFile(fs, ROOT, f).subarray(8192).equals(Buffer.alloc(1))).toBe(true);
    fs.setattr(ROOT, f, { size: 500 }); // back to inline
    await fs.sync();
    expect(store.blockCount).toBe(0);
    expect(readFile(fs, ROOT, f).equals(data.subarray(0, 500))).toBe(true);
    fs.setattr(ROOT, f, { size: 0 });
    expect(readFile(fs, ROOT, f).length).toBe(0);
    fs.setattr(ROOT, f, { size: 5000 }); // growing from empty: a hole
    expect(readFile(fs, ROOT, f).equals(Buffer.alloc(5000))).toBe(true);
    expect(fs.getattr(ROOT, f).blocks).toBe(0);
  });

  it('random writes, truncates and reads match a Buffer model byte for byte', async () => {
    const configs = [
      [1, 4096, 1024, 8192, 4096 * 12], [2, 512, 0, 0, 512 * 12], [3, 65536, 4096, 1 << 20, 65536 * 12],
      [4, 4096, 2048, 0, 3000], // around the inline limit: inline <-> blocks transitions
    ] as const;
    for (const [seed, bs, inl, cache, maxSize] of configs) {
      const store = new MemoryStore();
      const fs = new Filesystem(store, { blockSize: bs, inlineMax: inl, cacheBytes: cache, commitDelayMs: 60_000 });
      const r = rng(seed);
      const { entry, open } = fs.create(ROOT, 1, b('model'), 0o644, 2);
      const ino = entry.ino;
      let model = Buffer.alloc(0);
      for (let step = 0; step < 600; step++) {
        const op = r(100);
        if (op < 55) {
          const off = r(maxSize);
          const len = 1 + r(Math.min(bs * 3, maxSize));
          const data = pattern(len, step + seed * 1000);
          fs.write(ROOT, ino, open.fh, off, data);
          if (off + len > model.length) { const m = Buffer.alloc(off + len); model.copy(m); model = m; }
          data.copy(model, off);
        } else if (op < 70) {
          const size = r(maxSize);
          fs.setattr(ROOT, ino, { size }, open.fh);
          const m = Buffer.alloc(size);
          model.copy(m, 0, 0, Math.min(size, model.length));
          model = m;
        } else if (op < 90) {
          const off = r(maxSize + bs);
          const len = r(bs * 4);
          const got = fs.read(ROOT, ino, open.fh, off, len);
          const want = model.subarray(Math.min(off, model.length), Math.min(off + len, model.length));
          if (!got.equals(want)) throw new Error(`seed ${seed} step ${step}: read(${off}, ${len}) differs`);
        } else if (op < 97) {
          await fs.sync(); // commits: pages become store blocks, later writes copy-on-write
        } else {
          // 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE, ZERO_RANGE|KEEP_SIZE
          const mode = [0, 1, 3, 0x10, 0x11][r(5)]!;
          const off = r(maxSize);
          const len = 1 + r(Math.min(bs * 3, maxSize));
          fs.fallocate(ROOT, ino, open.fh, mode, off, len);
          const size = fs.getattr(ROOT, ino).size;
          if (size > model.length) { const m = Buffer.alloc(size); model.copy(m); model = m; }
          if ((mode & 0x12) !== 0) model.fill(0, Math.min(off, model.length), Math.min(off + len, model.length));
          expect(size).toBe((mode & 1) !== 0 ? model.length : Math.max(model.length, off + len));
        }
        expect(fs.getattr(ROOT, ino).size).toBe(model.length);
      }
      expect(fs.read(ROOT, ino, open.fh, 0, model.length + 10).equals(model)).toBe(true);
      fs.release(ino, open.fh);
      await fs.destroy();
      const fs2 = new Filesystem(store, { blockSize: bs, inlineMax: inl, cacheBytes: cache });
      expect(readFile(fs2, ROOT, ino).equals(model)).toBe(true);
    }
  });

  it('1 MiB writes (kernel transport) and 128 KiB writes (libfuse) at the default block size', async () => {
    const { fs, store } = makeFs({ blockSize: undefined as never, inlineMax: undefined as never });
    const big = pattern(1 << 20, 9);
    const { entry, open } = fs.create(ROOT, 1, b('big'), 0o644, 2);
    for (let i = 0; i < 4; i++) expect(fs.write(ROOT, entry.ino, open.fh, i << 20, big)).toBe(1 << 20);
    for (let i = 0; i < 8; i++) fs.write(ROOT, entry.ino, open.fh, (4 << 20) + i * 131072, big.subarray(0, 131072));
    expect(fs.getattr(ROOT, entry.ino).size).toBe(5 << 20);
    expect(fs.getattr(ROOT, entry.ino).blksize).toBe(65536);
    await fs.sync();
    expect(store.blockCount).toBe(80);
    const back = fs.read(ROOT, entry.ino, open.fh, 3 << 20, 1 << 20);
    expect(back.equals(big)).toBe(true);
  });

  it('the write buffer may be reused by the caller after write returns', () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 100 });
    const { entry, open } = fs.create(ROOT, 1, b('f'), 0o644, 2);
    const buf = Buffer.alloc(10_000, 'a');
    fs.write(ROOT, entry.ino, open.fh, 0, buf);
    buf.fill('b');
    const small = Buffer.from('inline');
    const g = fs.create(ROOT, 1, b('g'), 0o644, 2);
    fs.write(ROOT, g.entry.ino, g.open.fh, 0, small);
    small.fill(0);
    expect(fs.read(ROOT, entry.ino, open.fh, 0, 10_000).equals(Buffer.alloc(10_000, 'a'))).toBe(true);
    expect(fs.read(ROOT, g.entry.ino, g.open.fh, 0, 100).toString()).toBe('inline');
  });

  it('a buffer returned by read is not changed by later writes', async () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 100 });
    const { entry, open } = fs.create(ROOT, 1, b('f'), 0o644, 2);
    fs.write(ROOT, entry.ino, open.fh, 0, Buffer.alloc(8192, 'a'));
    await fs.sync();
    const view = fs.read(ROOT, entry.ino, open.fh, 0, 100);
    fs.write(ROOT, entry.ino, open.fh, 0, Buffer.alloc(100, 'b'));
    expect(view.equals(Buffer.alloc(100, 'a'))).toBe(true);
    const dirtyView = fs.read(ROOT, entry.ino, open.fh, 0, 100);
    fs.write(ROOT, entry.ino, open.fh, 0, Buffer.alloc(100, 'c'));
    expect(dirtyView.equals(Buffer.alloc(100, 'b'))).toBe(true);
  });

  it('O_APPEND writes at the end whatever the offset', () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 10 });
    const f = writeFile(fs, ROOT, 1, 'log', 'start;');
    const h1 = fs.open(ROOT, f, 1 | O_APPEND);
    const h2 = fs.open(ROOT, f, 1 | O_APPEND);
    fs.write(ROOT, f, h1.fh, 0, b('one;'));
    fs.write(ROOT, f, h2.fh, 0, b('two;'));
    fs.write(ROOT, f, h1.fh, 3, b('three;'));
    expect(readFile(fs, ROOT, f).toString()).toBe('start;one;two;three;');
  });

  it('O_EXCL, O_TRUNC, create of an existing file, handle access modes', () => {
    const { fs, clock } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'content');
    expect(errnoOf(() => fs.create(ROOT, 1, b('f'), 0o644, O_CREAT | O_EXCL | 1))).toBe('EEXIST');
    const again = fs.create(ROOT, 1, b('f'), 0o600, O_CREAT | 2);
    expect(again.entry.ino).toBe(f);
    expect(again.entry.attr.mode & 0o777).toBe(0o644); // existing mode unchanged
    expect(fs.read(ROOT, f, again.open.fh, 0, 100).toString()).toBe('content');
    clock.tick();
    const t = fs.open(ROOT, f, 1 | O_TRUNC);
    expect(fs.getattr(ROOT, f).size).toBe(0);
    expect(fs.getattr(ROOT, f).mtime).toEqual(clock.now());
    expect(errnoOf(() => fs.read(ROOT, f, t.fh, 0, 1))).toBe('EBADF');
    const r = fs.open(ROOT, f, 0);
    expect(errnoOf(() => fs.write(ROOT, f, r.fh, 0, b('x')))).toBe('EBADF');
    expect(errnoOf(() => fs.read(ROOT, f, 999, 0, 1))).toBe('EBADF');
    expect(errnoOf(() => fs.read(ROOT, 1, r.fh, 0, 1))).toBe('EBADF'); // fh of another inode
    const d = fs.open(ROOT, 1, 0);
    expect(errnoOf(() => fs.read(ROOT, 1, d.fh, 0, 1))).toBe('EISDIR');
    expect(fs.read(ROOT, f, r.fh, 100, 10).length).toBe(0); // past EOF
    fs.release(f, r.fh);
    expect(errnoOf(() => fs.read(ROOT, f, r.fh, 0, 1))).toBe('EBADF');
    expect(errnoOf(() => fs.create(ROOT, 1, b('f'), 0o644, O_CREAT | 1 | O_TRUNC))).toBeUndefined();
    fs.mkdir(ROOT, 1, b('dir'), 0o755);
    expect(errnoOf(() => fs.create(ROOT, 1, b('dir'), 0o644, O_CREAT))).toBe('EISDIR');
  });

  it('create with a read-only mode still returns a writable handle to the creator', () => {
    const { fs } = makeFs();
    const { entry, open } = fs.create(USER, 1, b('ro'), 0o444, O_CREAT | 1);
    expect(fs.write(USER, entry.ino, open.fh, 0, b('x'))).toBe(1);
    expect(errnoOf(() => fs.open(USER, entry.ino, 1))).toBe('EACCES');
  });

  it('fallocate: mode 0 extends, KEEP_SIZE allocates without growing, unsupported modes EOPNOTSUPP', () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 1024 });
    const { entry, open } = fs.create(ROOT, 1, b('f'), 0o644, 2);
    const ino = entry.ino;
    fs.fallocate(ROOT, ino, open.fh, 0, 0, 10_000);
    expect(fs.getattr(ROOT, ino).size).toBe(10_000);
    expect(fs.getattr(ROOT, ino).blocks).toBe(20);
    expect(fs.read(ROOT, ino, open.fh, 0, 20_000).equals(Buffer.alloc(10_000))).toBe(true);
    expect(fs.lseek(ino, open.fh, 0, SEEK_HOLE)).toBe(10_000);
    fs.fallocate(ROOT, ino, open.fh, FALLOC_FL_KEEP_SIZE, 10_000, 10_000);
    expect(fs.getattr(ROOT, ino).size).toBe(10_000);
    expect(fs.getattr(ROOT, ino).blocks).toBe(36); // blocks 3 and 4 past EOF count in full
    fs.write(ROOT, ino, open.fh, 0, b('abc'));
    expect(fs.read(ROOT, ino, open.fh, 0, 4).toString()).toBe('abc\0');
    expect(errnoOf(() => fs.fallocate(ROOT, ino, open.fh, 2, 0, 10))).toBe('EOPNOTSUPP'); // PUNCH_HOLE without KEEP_SIZE
    expect(errnoOf(() => fs.fallocate(ROOT, ino, open.fh, 0x13, 0, 10))).toBe('EOPNOTSUPP'); // PUNCH_HOLE with ZERO_RANGE
    expect(errnoOf(() => fs.fallocate(ROOT, ino, open.fh, 0x08, 0, 10))).toBe('EOPNOTSUPP'); // COLLAPSE_RANGE
    expect(errnoOf(() => fs.fallocate(ROOT, ino, open.fh, 0x20, 0, 10))).toBe('EOPNOTSUPP'); // INSERT_RANGE
    expect(errnoOf(() => fs.fallocate(ROOT, ino, open.fh, 0, 0, 0))).toBe('EINVAL');
    const r = fs.open(ROOT, ino, 0);
    expect(errnoOf(() => fs.fallocate(ROOT, ino, r.fh, 0, 0, 10))).toBe('EBADF');
    const small = fs.create(ROOT, 1, b('s'), 0o644, 2);
    fs.fallocate(ROOT, small.entry.ino, small.open.fh, 0, 0, 100);
    expect(fs.getattr(ROOT, small.entry.ino).size).toBe(100);
  });

  it('copy_file_range copies between and within files', () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 1024 });
    const data = pattern(30_000, 4);
    const src = writeFile(fs, ROOT, 1, 'src', data);
    const hs = fs.open(ROOT, src, 2);
    const { entry, open } = fs.create(ROOT, 1, b('dst'), 0o644, 2);
    expect(fs.copyFileRange(ROOT, src, hs.fh, 1000, entry.ino, open.fh, 5000, 20_000)).toBe(20_000);
    const out = fs.read(ROOT, entry.ino, open.fh, 0, 100_000);
    expect(out.length).toBe(25_000);
    expect(out.subarray(0, 5000).equals(Buffer.alloc(5000))).toBe(true);
    expect(out.subarray(5000).equals(data.subarray(1000, 21_000))).toBe(true);
    expect(fs.copyFileRange(ROOT, src, hs.fh, 29_000, entry.ino, open.fh, 0, 5000)).toBe(1000); // short at EOF
    expect(fs.copyFileRange(ROOT, src, hs.fh, 40_000, entry.ino, open.fh, 0, 5000)).toBe(0);
    expect(fs.copyFileRange(ROOT, src, hs.fh, 0, src, hs.fh, 30_000, 1000)).toBe(1000); // same file, disjoint
    expect(errnoOf(() => fs.copyFileRange(ROOT, src, hs.fh, 0, src, hs.fh, 500, 1000))).toBe('EINVAL');
    const ro = fs.open(ROOT, entry.ino, 0);
    expect(errnoOf(() => fs.copyFileRange(ROOT, src, hs.fh, 0, entry.ino, ro.fh, 0, 10))).toBe('EBADF');
    const app = fs.open(ROOT, entry.ino, 1 | O_APPEND);
    expect(errnoOf(() => fs.copyFileRange(ROOT, src, hs.fh, 0, entry.ino, app.fh, 0, 10))).toBe('EBADF');
  });

  it('huge sparse files: SEEK_DATA/SEEK_HOLE cost what is allocated; fallocate beyond free space is ENOSPC', () => {
    const { fs } = makeFs({}, new MemoryStore({ capacityBytes: 1 << 30 }));
    const { entry, open } = fs.create(ROOT, 1, b('huge'), 0o644, 2);
    const ino = entry.ino;
    fs.write(ROOT, ino, open.fh, 2 ** 49, b('x'));
    fs.write(ROOT, ino, open.fh, 10, b('y'));
    expect(fs.lseek(ino, open.fh, 100_000, SEEK_DATA)).toBe(2 ** 49 - (2 ** 49 % 65536));
    expect(fs.lseek(ino, open.fh, 0, SEEK_HOLE)).toBe(65536);
    expect(fs.lseek(ino, open.fh, 2 ** 49, SEEK_HOLE)).toBe(2 ** 49 + 1);
    expect(fs.getattr(ROOT, ino).blocks).toBe(128 + 1);
    expect(errnoOf(() => fs.fallocate(ROOT, ino, open.fh, 0, 0, 2 ** 40))).toBe('ENOSPC');
  });

  it('blocks of inodes numbered from 2^32 (a remote mount\'s range) are cached and fetched ahead like others', async () => {
    const store = new RangeStore();
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 0 }, store);
    const data = pattern(8 * 4096, 3);
    const ino = writeFile(fs, ROOT, 1, 'f', data);
    expect(ino).toBeGreaterThanOrEqual(2 ** 32);
    await fs.sync();
    // Committed pages went to the decrypted-block cache: reading them back costs no store read.
    expect(readFile(fs, ROOT, ino).equals(data)).toBe(true);
    expect(store.gets).toBe(0);
    await fs.destroy();
    // A fresh core (nothing cached): a large read fetches its blocks off-thread first, then is
    // served from the cache.
    const { fs: fs2 } = makeFs({ blockSize: 4096, inlineMax: 0 }, store);
    const { fh } = fs2.open(ROOT, ino, 0);
    const ready = fs2.readReady(ROOT, ino, fh, 0, 4 * 4096);
    expect(ready).not.toBeNull();
    await ready;
    expect(store.fetched).toEqual([0, 1, 2, 3]);
    expect(fs2.read(ROOT, ino, fh, 0, 4 * 4096).equals(data.subarray(0, 4 * 4096))).toBe(true);
    expect(store.gets).toBe(0);
    fs2.release(ino, fh);
    await fs2.destroy();
  });

  it('EFBIG beyond the maximum file size', () => {
    const { fs } = makeFs();
    const { entry, open } = fs.create(ROOT, 1, b('f'), 0o644, 2);
    expect(errnoOf(() => fs.write(ROOT, entry.ino, open.fh, 2 ** 52, b('x')))).toBe('EFBIG');
    expect(errnoOf(() => fs.setattr(ROOT, entry.ino, { size: 2 ** 52 }))).toBe('EFBIG');
    expect(errnoOf(() => fs.write(ROOT, entry.ino, open.fh, -1, b('x')))).toBe('EINVAL');
  });
});
