import { describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore, posix } from '../../fs/core/index.js';
import { ROOT, USER, b, errnoOf, makeFs, readFile } from './fs-helpers.js';

const { SEEK_DATA, SEEK_HOLE, FALLOC_FL_KEEP_SIZE: KEEP, FALLOC_FL_PUNCH_HOLE: PUNCH, FALLOC_FL_ZERO_RANGE: ZERO } = posix;
const BS = 4096;

function filled(len: number, byte = 0x61): Buffer { return Buffer.alloc(len, byte); }

/** A file of `blocks` full blocks of 'a' (all allocated), committed to the store. */
async function blockFile(blocks: number, store = new MemoryStore()) {
  const { fs, clock } = makeFs({ blockSize: BS, inlineMax: 1024 }, store);
  const { entry, open } = fs.create(ROOT, 1, b('f'), 0o666, 2);
  fs.write(ROOT, entry.ino, open.fh, 0, filled(blocks * BS));
  await fs.sync();
  return { fs, clock, store, ino: entry.ino, fh: open.fh };
}

describe('fs core: fallocate PUNCH_HOLE and ZERO_RANGE', () => {
  it('PUNCH_HOLE|KEEP_SIZE frees whole blocks (holes, st_blocks, SEEK_HOLE), zeroes the partial ends, keeps the size', async () => {
    const { fs, clock, ino, fh, store } = await blockFile(8);
    const before = fs.getattr(ROOT, ino);
    expect(before.blocks).toBe(64);
    clock.tick();
    // From the middle of block 1 to the middle of block 5: blocks 2..4 go, 1 and 5 are zeroed in part.
    fs.fallocate(ROOT, ino, fh, PUNCH | KEEP, BS + 100, 4 * BS);
    const after = fs.getattr(ROOT, ino);
    expect(after.size).toBe(8 * BS);
    expect(after.blocks).toBe(64 - 3 * 8);
    expect(after.mtime).toEqual(clock.now());
    expect(after.ctime).toEqual(clock.now());
    const want = filled(8 * BS);
    want.fill(0, BS + 100, 5 * BS + 100);
    expect(fs.read(ROOT, ino, fh, 0, 8 * BS).equals(want)).toBe(true);
    expect(fs.lseek(ino, fh, 0, SEEK_HOLE)).toBe(2 * BS);
    expect(fs.lseek(ino, fh, 2 * BS, SEEK_DATA)).toBe(5 * BS);
    // Durable: after a commit and a reopen the holes and the zeroed bytes are still there.
    await fs.destroy();
    const fs2 = new Filesystem(store, { blockSize: BS, inlineMax: 1024 });
    expect(readFile(fs2, ROOT, ino).equals(want)).toBe(true);
    expect(fs2.getattr(ROOT, ino).blocks).toBe(40);
    const h = fs2.open(ROOT, ino, 0);
    expect(fs2.lseek(ino, h.fh, 0, SEEK_HOLE)).toBe(2 * BS);
  });

  it('PUNCH_HOLE: within one block, to the end of the file, past the end (no growth), on inline files', async () => {
    const { fs, ino, fh } = await blockFile(3);
    fs.setattr(ROOT, ino, { size: 2 * BS + 10 }, fh); // last block partial
    fs.fallocate(ROOT, ino, fh, PUNCH | KEEP, 10, 20); // inside block 0
    fs.fallocate(ROOT, ino, fh, PUNCH | KEEP, 2 * BS, 1 << 20); // the partial last block, and far past EOF
    const a = fs.getattr(ROOT, ino);
    expect(a.size).toBe(2 * BS + 10);
    expect(a.blocks).toBe(16); // blocks 0 and 1; the last one is a hole now
    expect(fs.lseek(ino, fh, 2 * BS, SEEK_HOLE)).toBe(2 * BS);
    const want = filled(2 * BS + 10);
    want.fill(0, 10, 30);
    want.fill(0, 2 * BS);
    expect(fs.read(ROOT, ino, fh, 0, 4 * BS).equals(want)).toBe(true);
    fs.fallocate(ROOT, ino, fh, PUNCH | KEEP, 1 << 20, 100); // wholly past EOF: nothing
    expect(fs.getattr(ROOT, ino).size).toBe(2 * BS + 10);
    // Blocks preallocated past the end (KEEP_SIZE) are freed by a punch that covers them.
    fs.fallocate(ROOT, ino, fh, KEEP, 4 * BS, 2 * BS);
    expect(fs.getattr(ROOT, ino).blocks).toBe(32);
    fs.fallocate(ROOT, ino, fh, PUNCH | KEEP, 3 * BS, 10 * BS);
    expect(fs.getattr(ROOT, ino).blocks).toBe(16);
    expect(fs.getattr(ROOT, ino).size).toBe(2 * BS + 10);

    const small = fs.create(ROOT, 1, b('inline'), 0o644, 2);
    fs.write(ROOT, small.entry.ino, small.open.fh, 0, b('abcdefgh'));
    fs.fallocate(ROOT, small.entry.ino, small.open.fh, PUNCH | KEEP, 2, 3);
    expect(fs.read(ROOT, small.entry.ino, small.open.fh, 0, 100).toString()).toBe('ab\0\0\0fgh');
  });

  it('ZERO_RANGE zeroes and keeps the range allocated; without KEEP_SIZE it grows the file', async () => {
    const { fs, clock, ino, fh } = await blockFile(4);
    clock.tick();
    fs.fallocate(ROOT, ino, fh, ZERO, BS - 1, 2 * BS + 2);
    const a = fs.getattr(ROOT, ino);
    expect(a.size).toBe(4 * BS);
    expect(a.blocks).toBe(32); // still allocated: no holes
    expect(fs.lseek(ino, fh, 0, SEEK_HOLE)).toBe(4 * BS);
    expect(a.mtime).toEqual(clock.now());
    const want = filled(4 * BS);
    want.fill(0, BS - 1, 3 * BS + 1);
    expect(fs.read(ROOT, ino, fh, 0, 4 * BS).equals(want)).toBe(true);
    // Past the end: grows to cover the range (allocated zeros)...
    fs.fallocate(ROOT, ino, fh, ZERO, 4 * BS - 5, 2 * BS);
    expect(fs.getattr(ROOT, ino).size).toBe(6 * BS - 5);
    expect(fs.getattr(ROOT, ino).blocks).toBe(48);
    want.fill(0, 4 * BS - 5);
    expect(fs.read(ROOT, ino, fh, 0, 8 * BS).equals(Buffer.concat([want, Buffer.alloc(2 * BS - 5)]))).toBe(true);
    // ...unless KEEP_SIZE: then it only allocates past the end.
    fs.fallocate(ROOT, ino, fh, ZERO | KEEP, 6 * BS, 2 * BS);
    expect(fs.getattr(ROOT, ino).size).toBe(6 * BS - 5);
    expect(fs.getattr(ROOT, ino).blocks).toBe(64);
    // A later write into a zeroed block does not see the shared zero block change.
    fs.write(ROOT, ino, fh, 2 * BS, b('zz'));
    expect(fs.read(ROOT, ino, fh, 2 * BS - 1, 4).equals(Buffer.from([0, 0x7a, 0x7a, 0]))).toBe(true);
    expect(fs.read(ROOT, ino, fh, 5 * BS, 2).equals(Buffer.alloc(2))).toBe(true);
  });

  it('argument and permission errors like Linux: EINVAL, EOPNOTSUPP, EBADF, EFBIG; non-root clears suid', () => {
    const { fs } = makeFs({ blockSize: BS, inlineMax: 1024 });
    const { entry, open } = fs.create(USER, 1, b('f'), 0o6755, 2);
    const ino = entry.ino;
    expect(errnoOf(() => fs.fallocate(USER, ino, open.fh, PUNCH | KEEP, -1, 10))).toBe('EINVAL');
    expect(errnoOf(() => fs.fallocate(USER, ino, open.fh, ZERO, 0, 0))).toBe('EINVAL');
    expect(errnoOf(() => fs.fallocate(USER, ino, open.fh, PUNCH, 0, 10))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => fs.fallocate(USER, ino, open.fh, ZERO, 2 ** 50, 1))).toBe('EFBIG');
    const ro = fs.open(USER, ino, 0);
    expect(errnoOf(() => fs.fallocate(USER, ino, ro.fh, ZERO, 0, 10))).toBe('EBADF');
    fs.write(USER, ino, open.fh, 0, b('data'));
    fs.setattr(ROOT, ino, { mode: 0o6755 });
    fs.fallocate(USER, ino, open.fh, PUNCH | KEEP, 0, 2);
    expect(fs.getattr(ROOT, ino).mode & 0o7777).toBe(0o755);
    expect(fs.read(USER, ino, open.fh, 0, 10).toString()).toBe('\0\0ta');
  });

  it('a punch over a huge sparse file costs what is allocated, not the range', () => {
    const { fs } = makeFs();
    const { entry, open } = fs.create(ROOT, 1, b('huge'), 0o644, 2);
    fs.write(ROOT, entry.ino, open.fh, 2 ** 48, b('x'));
    fs.write(ROOT, entry.ino, open.fh, 0, b('y'));
    // A loop over the 2^33 block indexes of the range would not end within the test's timeout.
    fs.fallocate(ROOT, entry.ino, open.fh, PUNCH | KEEP, 0, 2 ** 49);
    expect(fs.getattr(ROOT, entry.ino).blocks).toBe(0);
    expect(fs.getattr(ROOT, entry.ino).size).toBe(2 ** 48 + 1);
  });
});
