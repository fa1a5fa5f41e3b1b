import { describe, it, expect } from 'vitest';
import { FloorCore } from '../../scripts/bench/lib/floor-core.js';

const ctx = { uid: 0, gid: 0, pid: 1 };
const b = (s: string): Buffer => Buffer.from(s);
const S_IFREG = 0o100000;

describe('kernel floor FsCore', () => {
  it('creates, writes across chunks, reads back, and truncates with zeros past the end', () => {
    const c = new FloorCore(60);
    const { entry, open } = c.create(ctx, 1, b('f'), S_IFREG | 0o644, 0);
    expect(entry.entryTimeout).toBe(60);
    const data = Buffer.alloc(1_500_000, 7);
    expect(c.write(ctx, entry.ino, open.fh, 1_000_000, data)).toBe(data.length);
    expect(c.getattr(ctx, entry.ino).size).toBe(2_500_000);
    expect(c.read(ctx, entry.ino, open.fh, 999_999, 3).equals(Buffer.from([0, 7, 7]))).toBe(true);
    expect(c.read(ctx, entry.ino, open.fh, 2_499_999, 10).equals(Buffer.from([7]))).toBe(true);
    c.setattr(ctx, entry.ino, { size: 1_000_010 });
    c.setattr(ctx, entry.ino, { size: 3_000_000 });
    const tail = c.read(ctx, entry.ino, open.fh, 1_000_000, 20);
    expect([...tail]).toEqual([...Array(10).fill(7), ...Array(10).fill(0)]);
  });

  it('keeps nlink and parents right through mkdir, rename and rmdir, with POSIX errors', () => {
    const c = new FloorCore();
    const a = c.mkdir(ctx, 1, b('a'), 0o755);
    const d = c.mkdir(ctx, 1, b('d'), 0o755);
    c.mkdir(ctx, a.ino, b('sub'), 0o755);
    expect(c.getattr(ctx, 1).nlink).toBe(4);
    expect(c.getattr(ctx, a.ino).nlink).toBe(3);
    expect(() => c.rename(ctx, 1, b('a'), a.ino, b('x'), 0)).toThrow(/EINVAL/);
    expect(() => c.rmdir(ctx, 1, b('a'))).toThrow(/ENOTEMPTY/);
    expect(() => c.rename(ctx, 1, b('d'), 1, b('a'), 0)).toThrow(/ENOTEMPTY/);
    c.rename(ctx, a.ino, b('sub'), d.ino, b('moved'), 0);
    expect(c.getattr(ctx, a.ino).nlink).toBe(2);
    expect(c.getattr(ctx, d.ino).nlink).toBe(3);
    expect(() => c.rename(ctx, 1, b('a'), 1, b('d'), 1 /* NOREPLACE */)).toThrow(/EEXIST/);
    c.rmdir(ctx, 1, b('a'));
    expect(() => c.lookup(ctx, 1, b('a'))).toThrow(/ENOENT/);
    expect(c.getattr(ctx, 1).nlink).toBe(3);
  });

  it('lists directories in pages that resume at the cookie, dots first', () => {
    const c = new FloorCore();
    for (let i = 0; i < 5; i++) c.create(ctx, 1, b(`f${i}`), S_IFREG | 0o644, 0);
    const { fh } = c.opendir(ctx, 1, 0);
    const first = c.readdir(ctx, 1, fh, 0, 3);
    expect(first.map((e) => e.name.toString())).toEqual(['.', '..', 'f0']);
    const rest = c.readdirplus(ctx, 1, fh, first[2]!.offset, 100);
    expect(rest.map((e) => e.name.toString())).toEqual(['f1', 'f2', 'f3', 'f4']);
    expect(rest.every((e) => e.entry.attr.ino === e.ino)).toBe(true);
    c.releasedir(1, fh);
  });

  it('drops an unlinked inode only when the kernel forgot it and the last handle closed', () => {
    const c = new FloorCore();
    const { entry, open } = c.create(ctx, 1, b('f'), S_IFREG | 0o644, 0);
    c.unlink(ctx, 1, b('f'));
    c.forget(entry.ino, 1);
    expect(c.getattr(ctx, entry.ino).nlink).toBe(0); // still open
    c.release(entry.ino, open.fh);
    expect(() => c.getattr(ctx, entry.ino)).toThrow(/ENOENT/);
  });

  it('supports user.* xattrs and refuses system.* (as atefs does)', () => {
    const c = new FloorCore();
    const { entry } = c.create(ctx, 1, b('f'), S_IFREG | 0o644, 0);
    c.setxattr(ctx, entry.ino, 'user.k', b('v'), 0);
    expect(c.getxattr(ctx, entry.ino, 'user.k').toString()).toBe('v');
    expect(() => c.setxattr(ctx, entry.ino, 'user.k', b('w'), 1)).toThrow(/EEXIST/);
    expect(() => c.getxattr(ctx, entry.ino, 'security.capability')).toThrow(/ENODATA/);
    expect(() => c.getxattr(ctx, entry.ino, 'system.posix_acl_access')).toThrow(/EOPNOTSUPP/);
    expect(c.listxattr(ctx, entry.ino)).toEqual(['user.k']);
  });
});
