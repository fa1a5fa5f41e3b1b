import { describe, expect, it } from 'vitest';
import { posix } from '../../fs/core/index.js';
import { ROOT, USER, b, errnoOf, makeFs, names, readFile, writeFile } from './fs-helpers.js';

describe('fs core: basic operations over MemoryStore', () => {
  it('starts with a root directory', () => {
    const { fs } = makeFs({ rootMode: 0o755 });
    const a = fs.getattr(ROOT, 1);
    expect(a.mode).toBe(posix.S_IFDIR | 0o755);
    expect(a.nlink).toBe(2);
    expect(a.ino).toBe(1);
    expect(names(fs, ROOT, 1)).toEqual(['.', '..']);
  });

  it('mkdir, create, write, read, lookup, readdir', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('dir'), 0o755);
    expect(d.attr.mode).toBe(posix.S_IFDIR | 0o755);
    expect(fs.getattr(ROOT, 1).nlink).toBe(3);
    const ino = writeFile(fs, ROOT, d.ino, 'f.txt', 'hello world');
    expect(fs.lookup(ROOT, d.ino, b('f.txt')).ino).toBe(ino);
    expect(readFile(fs, ROOT, ino).toString()).toBe('hello world');
    expect(fs.getattr(ROOT, ino).size).toBe(11);
    expect(names(fs, ROOT, d.ino)).toEqual(['.', '..', 'f.txt']);
    expect(errnoOf(() => fs.lookup(ROOT, d.ino, b('nope')))).toBe('ENOENT');
  });

  it('unlink, rmdir, rename', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    const f = writeFile(fs, ROOT, 1, 'a', 'x');
    fs.rename(ROOT, 1, b('a'), d.ino, b('b'), 0);
    expect(fs.lookup(ROOT, d.ino, b('b')).ino).toBe(f);
    expect(errnoOf(() => fs.rmdir(ROOT, 1, b('d')))).toBe('ENOTEMPTY');
    fs.unlink(ROOT, d.ino, b('b'));
    fs.rmdir(ROOT, 1, b('d'));
    expect(names(fs, ROOT, 1)).toEqual(['.', '..']);
    expect(fs.getattr(ROOT, 1).nlink).toBe(2);
  });

  it('large writes across blocks read back', () => {
    const { fs } = makeFs({ blockSize: 4096, inlineMax: 512 });
    const data = Buffer.alloc(50_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 255;
    const ino = writeFile(fs, ROOT, 1, 'big', data);
    expect(readFile(fs, ROOT, ino).equals(data)).toBe(true);
    fs.setattr(ROOT, ino, { size: 10_000 });
    expect(readFile(fs, ROOT, ino).equals(data.subarray(0, 10_000))).toBe(true);
    fs.setattr(ROOT, ino, { size: 20_000 });
    const back = readFile(fs, ROOT, ino);
    expect(back.subarray(0, 10_000).equals(data.subarray(0, 10_000))).toBe(true);
    expect(back.subarray(10_000).every((x) => x === 0)).toBe(true);
    void USER;
  });

  it('persists through destroy and a new Filesystem over the same store', async () => {
    const { fs, store } = makeFs({ blockSize: 4096, inlineMax: 512 });
    const d = fs.mkdir(ROOT, 1, b('d'), 0o700);
    const data = Buffer.alloc(30_000, 'q');
    writeFile(fs, ROOT, d.ino, 'x', data);
    writeFile(fs, ROOT, 1, 'small', 'tiny');
    await fs.destroy();
    const { fs: fs2 } = makeFs({ blockSize: 4096, inlineMax: 512 }, store);
    const e = fs2.lookup(ROOT, 1, b('d'));
    expect(e.attr.mode).toBe(posix.S_IFDIR | 0o700);
    const x = fs2.lookup(ROOT, e.ino, b('x'));
    expect(readFile(fs2, ROOT, x.ino).equals(data)).toBe(true);
    expect(readFile(fs2, ROOT, fs2.lookup(ROOT, 1, b('small')).ino).toString()).toBe('tiny');
  });
});
