import { describe, expect, it } from 'vitest';
import { RENAME_EXCHANGE, RENAME_NOREPLACE, posix } from '../../fs/core/index.js';
import { OTHER, ROOT, USER, b, errnoOf, makeFs, names, readFile, writeFile } from './fs-helpers.js';

const { S_IFDIR, S_IFREG, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK, S_ISGID, S_ISVTX } = posix;

describe('fs core: lookup', () => {
  it('finds entries, "." and "..", and reports ENOENT / ENOTDIR / ENAMETOOLONG', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    const f = writeFile(fs, ROOT, d.ino, 'f', 'x');
    expect(fs.lookup(ROOT, d.ino, b('f')).ino).toBe(f);
    expect(fs.lookup(ROOT, d.ino, b('.')).ino).toBe(d.ino);
    expect(fs.lookup(ROOT, d.ino, b('..')).ino).toBe(1);
    expect(fs.lookup(ROOT, 1, b('..')).ino).toBe(1);
    expect(errnoOf(() => fs.lookup(ROOT, d.ino, b('g')))).toBe('ENOENT');
    expect(errnoOf(() => fs.lookup(ROOT, f, b('g')))).toBe('ENOTDIR');
    expect(errnoOf(() => fs.lookup(ROOT, d.ino, Buffer.alloc(256, 'a')))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.lookup(ROOT, 999, b('g')))).toBe('ENOENT');
  });

  it('names are bytes: non-UTF-8 names and 255-byte names work', () => {
    const { fs } = makeFs();
    const weird = Buffer.from([0xff, 0xfe, 0x80, 0x41]);
    const ino = writeFile(fs, ROOT, 1, weird.toString('latin1'), 'x');
    // writeFile took a string; create the byte name directly too.
    const e = fs.create(ROOT, 1, weird, 0o644, 2);
    fs.release(e.entry.ino, e.open.fh);
    expect(fs.lookup(ROOT, 1, weird).ino).toBe(e.entry.ino);
    expect(e.entry.ino).not.toBe(ino);
    const long = Buffer.alloc(255, 'n');
    const l = fs.mkdir(ROOT, 1, long, 0o755);
    expect(fs.lookup(ROOT, 1, long).ino).toBe(l.ino);
    expect(errnoOf(() => fs.mkdir(ROOT, 1, Buffer.alloc(256, 'n'), 0o755))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.mkdir(ROOT, 1, b('a/b'), 0o755))).toBe('EINVAL');
  });

  it('needs search permission on the directory', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('private'), 0o700);
    writeFile(fs, ROOT, d.ino, 'f', 'x');
    expect(errnoOf(() => fs.lookup(USER, d.ino, b('f')))).toBe('EACCES');
    expect(fs.lookup(ROOT, d.ino, b('f')).ino).toBeGreaterThan(1);
    fs.setattr(ROOT, d.ino, { mode: 0o701 });
    expect(fs.lookup(USER, d.ino, b('f')).ino).toBeGreaterThan(1);
  });
});

describe('fs core: mkdir / mknod / symlink', () => {
  it('mkdir: nlink accounting, EEXIST, umask, permissions', () => {
    const { fs } = makeFs();
    const a = fs.mkdir(ROOT, 1, b('a'), 0o777);
    expect(fs.getattr(ROOT, 1).nlink).toBe(3);
    expect(a.attr.nlink).toBe(2);
    fs.mkdir(ROOT, a.ino, b('x'), 0o755);
    fs.mkdir(ROOT, a.ino, b('y'), 0o755);
    writeFile(fs, ROOT, a.ino, 'file', '');
    expect(fs.getattr(ROOT, a.ino).nlink).toBe(4);
    expect(errnoOf(() => fs.mkdir(ROOT, a.ino, b('x'), 0o755))).toBe('EEXIST');
    expect(errnoOf(() => fs.mkdir(ROOT, a.ino, b('file'), 0o755))).toBe('EEXIST');
    expect(errnoOf(() => fs.mkdir(ROOT, a.ino, b('.'), 0o755))).toBe('EEXIST');
    const m = fs.mkdir({ ...USER, umask: 0o022 }, a.ino, b('masked'), 0o777);
    expect(m.attr.mode).toBe(S_IFDIR | 0o755);
    expect(m.attr.uid).toBe(1000);
    expect(m.attr.gid).toBe(1000);
    // mkdir ignores suid in the mode.
    expect(fs.mkdir(ROOT, a.ino, b('s'), 0o4755).attr.mode).toBe(S_IFDIR | 0o755);
    const ro = fs.mkdir(ROOT, 1, b('ro'), 0o755);
    expect(errnoOf(() => fs.mkdir(USER, ro.ino, b('z'), 0o755))).toBe('EACCES');
    expect(errnoOf(() => fs.mkdir(ROOT, 12345, b('z'), 0o755))).toBe('ENOENT');
    const f = writeFile(fs, ROOT, 1, 'plain', '');
    expect(errnoOf(() => fs.mkdir(ROOT, f, b('z'), 0o755))).toBe('ENOTDIR');
  });

  it('cannot create in a removed directory', () => {
    const { fs } = makeFs();
    const a = fs.mkdir(ROOT, 1, b('a'), 0o777);
    fs.rmdir(ROOT, 1, b('a'));
    expect(errnoOf(() => fs.mkdir(ROOT, a.ino, b('x'), 0o755))).toBe('ENOENT');
    expect(errnoOf(() => fs.create(ROOT, a.ino, b('x'), 0o644, 2))).toBe('ENOENT');
    writeFile(fs, ROOT, 1, 'file', 'x');
    expect(errnoOf(() => fs.rename(ROOT, 1, b('file'), a.ino, b('x'), 0))).toBe('ENOENT');
    expect(errnoOf(() => fs.link(ROOT, fs.lookup(ROOT, 1, b('file')).ino, a.ino, b('x')))).toBe('ENOENT');
    expect(fs.getattr(ROOT, a.ino).nlink).toBe(0);
    fs.forget(a.ino, 1);
    expect(errnoOf(() => fs.getattr(ROOT, a.ino))).toBe('ENOENT');
  });

  it('mknod: FIFOs, sockets, devices (root only) with rdev kept', () => {
    const { fs } = makeFs();
    expect(fs.mknod(USER, 1, b('fifo'), S_IFIFO | 0o644, 0).attr.mode).toBe(S_IFIFO | 0o644);
    expect(fs.mknod(USER, 1, b('sock'), S_IFSOCK | 0o755, 0).attr.mode).toBe(S_IFSOCK | 0o755);
    const c = fs.mknod(ROOT, 1, b('null'), S_IFCHR | 0o666, 0x0103);
    expect(c.attr.rdev).toBe(0x0103);
    expect(c.attr.mode).toBe(S_IFCHR | 0o666);
    const blk = fs.mknod(ROOT, 1, b('sda'), S_IFBLK | 0o660, 0x0800);
    expect(fs.getattr(ROOT, blk.ino).rdev).toBe(0x0800);
    expect(fs.mknod(USER, 1, b('reg'), S_IFREG | 0o600, 0).attr.mode).toBe(S_IFREG | 0o600);
    expect(fs.mknod(USER, 1, b('reg0'), 0o600, 0).attr.mode).toBe(S_IFREG | 0o600);
    expect(errnoOf(() => fs.mknod(USER, 1, b('c2'), S_IFCHR | 0o666, 1))).toBe('EPERM');
    expect(errnoOf(() => fs.mknod(USER, 1, b('b2'), S_IFBLK | 0o666, 1))).toBe('EPERM');
    expect(errnoOf(() => fs.mknod(ROOT, 1, b('d2'), S_IFDIR | 0o666, 0))).toBe('EPERM');
    expect(errnoOf(() => fs.mknod(ROOT, 1, b('bad'), 0o170000 | 0o666, 0))).toBe('EINVAL');
    expect(errnoOf(() => fs.mknod(ROOT, 1, b('fifo'), S_IFIFO | 0o644, 0))).toBe('EEXIST');
    expect(fs.getattr(ROOT, fs.lookup(ROOT, 1, b('fifo')).ino).rdev).toBe(0);
  });

  it('symlink: targets up to 4095 bytes, readlink, sizes', () => {
    const { fs } = makeFs();
    const s = fs.symlink(USER, 1, b('ln'), b('../some/where'));
    expect(s.attr.mode).toBe(S_IFLNK | 0o777);
    expect(s.attr.size).toBe(13);
    expect(s.attr.uid).toBe(1000);
    expect(fs.readlink(USER, s.ino).toString()).toBe('../some/where');
    const max = Buffer.alloc(4095, 'x');
    const m = fs.symlink(ROOT, 1, b('max'), max);
    expect(fs.readlink(ROOT, m.ino).equals(max)).toBe(true);
    expect(errnoOf(() => fs.symlink(ROOT, 1, b('toolong'), Buffer.alloc(4096, 'x')))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.symlink(ROOT, 1, b('empty'), Buffer.alloc(0)))).toBe('ENOENT');
    expect(errnoOf(() => fs.symlink(ROOT, 1, b('ln'), b('x')))).toBe('EEXIST');
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    expect(errnoOf(() => fs.readlink(ROOT, f))).toBe('EINVAL');
    expect(errnoOf(() => fs.open(ROOT, s.ino, 0))).toBe('ELOOP');
  });
});

describe('fs core: link / unlink / rmdir', () => {
  it('hard links share the inode and count nlink', () => {
    const { fs, clock } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    const f = writeFile(fs, ROOT, 1, 'a', 'shared');
    const ctime0 = fs.getattr(ROOT, f).ctime;
    clock.tick();
    const e = fs.link(ROOT, f, d.ino, b('b'));
    expect(e.ino).toBe(f);
    expect(e.attr.nlink).toBe(2);
    expect(fs.getattr(ROOT, f).ctime).not.toEqual(ctime0);
    expect(fs.getattr(ROOT, d.ino).nlink).toBe(2); // links to files don't count in a dir's nlink
    fs.link(ROOT, f, 1, b('c'));
    expect(fs.getattr(ROOT, f).nlink).toBe(3);
    fs.unlink(ROOT, 1, b('a'));
    expect(fs.getattr(ROOT, f).nlink).toBe(2);
    expect(readFile(fs, ROOT, fs.lookup(ROOT, d.ino, b('b')).ino).toString()).toBe('shared');
    expect(errnoOf(() => fs.link(ROOT, d.ino, 1, b('dl')))).toBe('EPERM');
    expect(errnoOf(() => fs.link(ROOT, f, 1, b('c')))).toBe('EEXIST');
    const ro = fs.mkdir(ROOT, 1, b('ro'), 0o755);
    expect(errnoOf(() => fs.link(USER, f, ro.ino, b('x')))).toBe('EACCES');
    expect(errnoOf(() => fs.link(ROOT, f, 1, Buffer.alloc(256, 'l')))).toBe('ENAMETOOLONG');
  });

  it('unlink: EISDIR, ENOENT, permissions, sticky directories', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    expect(errnoOf(() => fs.unlink(ROOT, 1, b('d')))).toBe('EISDIR');
    expect(errnoOf(() => fs.unlink(ROOT, 1, b('nope')))).toBe('ENOENT');
    writeFile(fs, ROOT, d.ino, 'f', 'x');
    expect(errnoOf(() => fs.unlink(USER, d.ino, b('f')))).toBe('EACCES');
    const tmp = fs.mkdir(ROOT, 1, b('tmp'), 0o777 | S_ISVTX);
    expect(tmp.attr.mode).toBe(S_IFDIR | 0o1777);
    writeFile(fs, OTHER, tmp.ino, 'theirs', 'x');
    writeFile(fs, USER, tmp.ino, 'mine', 'x');
    expect(errnoOf(() => fs.unlink(USER, tmp.ino, b('theirs')))).toBe('EPERM');
    fs.unlink(USER, tmp.ino, b('mine'));
    fs.unlink(ROOT, tmp.ino, b('theirs'));
    // The sticky directory's owner may remove anything in it.
    const own = fs.mkdir(USER, 1, b('usertmp'), 0o1777);
    writeFile(fs, OTHER, own.ino, 'o', 'x');
    fs.unlink(USER, own.ino, b('o'));
    expect(names(fs, ROOT, own.ino)).toEqual(['.', '..']);
  });

  it('rmdir: ENOTDIR, ENOTEMPTY, EINVAL for ".", nlink', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    fs.mkdir(ROOT, d.ino, b('sub'), 0o755);
    writeFile(fs, ROOT, 1, 'f', 'x');
    expect(errnoOf(() => fs.rmdir(ROOT, 1, b('f')))).toBe('ENOTDIR');
    expect(errnoOf(() => fs.rmdir(ROOT, 1, b('d')))).toBe('ENOTEMPTY');
    expect(errnoOf(() => fs.rmdir(ROOT, d.ino, b('.')))).toBe('EINVAL');
    expect(errnoOf(() => fs.rmdir(ROOT, d.ino, b('..')))).toBe('ENOTEMPTY');
    expect(errnoOf(() => fs.rmdir(ROOT, 1, b('none')))).toBe('ENOENT');
    expect(errnoOf(() => fs.rmdir(USER, d.ino, b('sub')))).toBe('EACCES');
    expect(fs.getattr(ROOT, d.ino).nlink).toBe(3);
    fs.rmdir(ROOT, d.ino, b('sub'));
    expect(fs.getattr(ROOT, d.ino).nlink).toBe(2);
    fs.rmdir(ROOT, 1, b('d'));
    expect(fs.getattr(ROOT, 1).nlink).toBe(2);
    const sticky = fs.mkdir(ROOT, 1, b('sticky'), 0o1777);
    fs.mkdir(OTHER, sticky.ino, b('od'), 0o777);
    expect(errnoOf(() => fs.rmdir(USER, sticky.ino, b('od')))).toBe('EPERM');
  });

  it('unlink while open: content stays readable until release, then the inode is gone', async () => {
    const { fs, store } = makeFs({ blockSize: 4096, inlineMax: 256 });
    const data = Buffer.alloc(20_000, 'z');
    const ino = writeFile(fs, ROOT, 1, 'f', data);
    await fs.sync();
    expect(store.blockCount).toBe(5);
    const { fh } = fs.open(ROOT, ino, 2);
    fs.unlink(ROOT, 1, b('f'));
    expect(errnoOf(() => fs.lookup(ROOT, 1, b('f')))).toBe('ENOENT');
    expect(fs.getattr(ROOT, ino).nlink).toBe(0);
    expect(fs.read(ROOT, ino, fh, 0, 30_000).equals(data)).toBe(true);
    fs.write(ROOT, ino, fh, 20_000, b('more'));
    expect(fs.read(ROOT, ino, fh, 19_999, 10).toString()).toBe('zmore');
    await fs.sync();
    expect(store.getInode(ino)?.nlink).toBe(0);
    fs.forget(ino, 1); // the lookup create() counted
    expect(fs.getattr(ROOT, ino).nlink).toBe(0); // still open
    fs.release(ino, fh);
    expect(errnoOf(() => fs.getattr(ROOT, ino))).toBe('ENOENT');
    await fs.sync();
    expect(store.getInode(ino)).toBeUndefined();
    expect(store.blockCount).toBe(0);
  });

  it('an unlinked inode with a lookup count lives until forget', async () => {
    const { fs, store } = makeFs();
    const ino = writeFile(fs, ROOT, 1, 'f', 'data');
    fs.lookup(ROOT, 1, b('f')); // create counted one, this is the second
    fs.unlink(ROOT, 1, b('f'));
    expect(fs.getattr(ROOT, ino).nlink).toBe(0);
    fs.forget(ino, 1);
    expect(fs.getattr(ROOT, ino).size).toBe(4);
    fs.forget(ino, 1);
    expect(errnoOf(() => fs.getattr(ROOT, ino))).toBe('ENOENT');
    await fs.sync();
    expect(store.getInode(ino)).toBeUndefined();
  });
});

describe('fs core: rename', () => {
  function setup() {
    const r = makeFs();
    const { fs } = r;
    const a = fs.mkdir(ROOT, 1, b('a'), 0o777);
    const c = fs.mkdir(ROOT, 1, b('c'), 0o777);
    return { ...r, a: a.ino, c: c.ino };
  }

  it('moves files and replaces an existing file', () => {
    const { fs, a, c } = setup();
    const f = writeFile(fs, ROOT, a, 'f', 'new');
    const old = writeFile(fs, ROOT, c, 'g', 'old');
    const { fh } = fs.open(ROOT, old, 0);
    fs.rename(ROOT, a, b('f'), c, b('g'), 0);
    expect(fs.lookup(ROOT, c, b('g')).ino).toBe(f);
    expect(errnoOf(() => fs.lookup(ROOT, a, b('f')))).toBe('ENOENT');
    expect(fs.getattr(ROOT, old).nlink).toBe(0);
    expect(fs.read(ROOT, old, fh, 0, 10).toString()).toBe('old'); // replaced but still open
    fs.release(old, fh);
    expect(names(fs, ROOT, c)).toEqual(['.', '..', 'g']);
  });

  it('replaces an empty directory, refuses a non-empty one', () => {
    const { fs, a, c } = setup();
    const src = fs.mkdir(ROOT, a, b('src'), 0o755);
    fs.mkdir(ROOT, c, b('empty'), 0o755);
    const full = fs.mkdir(ROOT, c, b('full'), 0o755);
    writeFile(fs, ROOT, full.ino, 'x', 'x');
    expect(errnoOf(() => fs.rename(ROOT, a, b('src'), c, b('full'), 0))).toBe('ENOTEMPTY');
    expect(fs.getattr(ROOT, a).nlink).toBe(3);
    expect(fs.getattr(ROOT, c).nlink).toBe(4);
    fs.rename(ROOT, a, b('src'), c, b('empty'), 0);
    expect(fs.lookup(ROOT, c, b('empty')).ino).toBe(src.ino);
    expect(fs.getattr(ROOT, a).nlink).toBe(2);
    expect(fs.getattr(ROOT, c).nlink).toBe(4); // one subdir replaced another
    expect(fs.lookup(ROOT, src.ino, b('..')).ino).toBe(c);
  });

  it('EISDIR, ENOTDIR, EINVAL into own subtree, ENOENT', () => {
    const { fs, a, c } = setup();
    writeFile(fs, ROOT, a, 'f', 'x');
    const d = fs.mkdir(ROOT, a, b('d'), 0o755);
    const deep = fs.mkdir(ROOT, d.ino, b('deep'), 0o755);
    expect(errnoOf(() => fs.rename(ROOT, a, b('f'), a, b('d'), 0))).toBe('EISDIR');
    expect(errnoOf(() => fs.rename(ROOT, a, b('d'), a, b('f'), 0))).toBe('ENOTDIR');
    expect(errnoOf(() => fs.rename(ROOT, 1, b('a'), d.ino, b('x'), 0))).toBe('EINVAL');
    expect(errnoOf(() => fs.rename(ROOT, 1, b('a'), deep.ino, b('x'), 0))).toBe('EINVAL');
    expect(errnoOf(() => fs.rename(ROOT, a, b('d'), d.ino, b('self'), 0))).toBe('EINVAL');
    expect(errnoOf(() => fs.rename(ROOT, a, b('none'), c, b('x'), 0))).toBe('ENOENT');
    expect(errnoOf(() => fs.rename(ROOT, a, b('f'), c, Buffer.alloc(256, 'x'), 0))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.rename(ROOT, a, b('f'), c, b('x'), 8))).toBe('EINVAL');
    expect(errnoOf(() => fs.rename(ROOT, a, b('f'), c, b('x'), RENAME_EXCHANGE | RENAME_NOREPLACE))).toBe('EINVAL');
    // A directory may move to a sibling subtree.
    fs.rename(ROOT, a, b('d'), c, b('d2'), 0);
    expect(fs.lookup(ROOT, deep.ino, b('..')).ino).toBe(d.ino);
    expect(fs.lookup(ROOT, d.ino, b('..')).ino).toBe(c);
    expect(fs.getattr(ROOT, a).nlink).toBe(2);
    expect(fs.getattr(ROOT, c).nlink).toBe(3);
  });

  it('rename onto another link of the same inode does nothing', () => {
    const { fs, a } = setup();
    const f = writeFile(fs, ROOT, a, 'f', 'x');
    fs.link(ROOT, f, a, b('g'));
    fs.rename(ROOT, a, b('f'), a, b('g'), 0);
    expect(names(fs, ROOT, a).sort()).toEqual(['.', '..', 'f', 'g']);
    expect(fs.getattr(ROOT, f).nlink).toBe(2);
    fs.rename(ROOT, a, b('f'), a, b('f'), 0);
    expect(fs.lookup(ROOT, a, b('f')).ino).toBe(f);
  });

  it('RENAME_NOREPLACE', () => {
    const { fs, a, c } = setup();
    writeFile(fs, ROOT, a, 'f', '1');
    writeFile(fs, ROOT, c, 'g', '2');
    expect(errnoOf(() => fs.rename(ROOT, a, b('f'), c, b('g'), RENAME_NOREPLACE))).toBe('EEXIST');
    fs.rename(ROOT, a, b('f'), c, b('h'), RENAME_NOREPLACE);
    expect(names(fs, ROOT, c)).toEqual(['.', '..', 'g', 'h']);
  });

  it('RENAME_EXCHANGE swaps a file and a directory across parents', () => {
    const { fs, a, c } = setup();
    const f = writeFile(fs, ROOT, a, 'f', '1');
    const d = fs.mkdir(ROOT, c, b('d'), 0o755);
    expect(errnoOf(() => fs.rename(ROOT, a, b('f'), c, b('none'), RENAME_EXCHANGE))).toBe('ENOENT');
    fs.rename(ROOT, a, b('f'), c, b('d'), RENAME_EXCHANGE);
    expect(fs.lookup(ROOT, a, b('f')).ino).toBe(d.ino);
    expect(fs.lookup(ROOT, c, b('d')).ino).toBe(f);
    expect(fs.getattr(ROOT, a).nlink).toBe(3);
    expect(fs.getattr(ROOT, c).nlink).toBe(2);
    expect(fs.lookup(ROOT, d.ino, b('..')).ino).toBe(a);
    const types = fs.readdir(ROOT, a, fs.opendir(ROOT, a, 0).fh, 2, 10).map((e) => [e.name.toString(), e.type]);
    expect(types).toEqual([['f', S_IFDIR]]);
    // Exchanging a directory into its own subtree is refused.
    const sub = fs.mkdir(ROOT, d.ino, b('sub'), 0o755);
    writeFile(fs, ROOT, sub.ino, 'x', '');
    expect(errnoOf(() => fs.rename(ROOT, a, b('f'), sub.ino, b('x'), RENAME_EXCHANGE))).toBe('EINVAL');
  });

  it('permissions: write on both parents, sticky bit, moving a directory needs write on it', () => {
    const { fs, a } = setup();
    const ro = fs.mkdir(ROOT, 1, b('ro'), 0o755);
    writeFile(fs, ROOT, ro.ino, 'f', 'x');
    expect(errnoOf(() => fs.rename(USER, ro.ino, b('f'), a, b('g'), 0))).toBe('EACCES');
    writeFile(fs, USER, a, 'mine', 'x');
    expect(errnoOf(() => fs.rename(USER, a, b('mine'), ro.ino, b('g'), 0))).toBe('EACCES');
    const sticky = fs.mkdir(ROOT, 1, b('sticky'), 0o1777);
    writeFile(fs, OTHER, sticky.ino, 'theirs', 'x');
    writeFile(fs, USER, sticky.ino, 'mine', 'x');
    expect(errnoOf(() => fs.rename(USER, sticky.ino, b('theirs'), sticky.ino, b('t2'), 0))).toBe('EPERM');
    expect(errnoOf(() => fs.rename(USER, sticky.ino, b('mine'), sticky.ino, b('theirs'), 0))).toBe('EPERM');
    fs.rename(USER, sticky.ino, b('mine'), sticky.ino, b('mine2'), 0);
    // A directory owned by someone else, in a dir USER can write: moving it within the parent is
    // fine, moving it elsewhere needs write permission on it (its ".." changes).
    const other = fs.mkdir(OTHER, a, b('otherdir'), 0o755);
    fs.rename(USER, a, b('otherdir'), a, b('od'), 0);
    const c2 = fs.mkdir(USER, 1, b('c2'), 0o777);
    expect(errnoOf(() => fs.rename(USER, a, b('od'), c2.ino, b('od'), 0))).toBe('EACCES');
    fs.rename(OTHER, a, b('od'), c2.ino, b('od'), 0);
    expect(fs.lookup(ROOT, c2.ino, b('od')).ino).toBe(other.ino);
  });

  it('updates ctime of the moved inode and mtime/ctime of both parents', () => {
    const { fs, a, c, clock } = setup();
    const f = writeFile(fs, ROOT, a, 'f', 'x');
    clock.tick(5);
    const t = clock.now();
    fs.rename(ROOT, a, b('f'), c, b('g'), 0);
    expect(fs.getattr(ROOT, f).ctime).toEqual(t);
    expect(fs.getattr(ROOT, a).mtime).toEqual(t);
    expect(fs.getattr(ROOT, a).ctime).toEqual(t);
    expect(fs.getattr(ROOT, c).mtime).toEqual(t);
    expect(fs.getattr(ROOT, f).mtime).not.toEqual(t);
  });
});

describe('fs core: setgid directories', () => {
  it('new entries inherit the gid, new subdirectories the setgid bit', () => {
    const { fs } = makeFs();
    const shared = fs.mkdir(ROOT, 1, b('shared'), 0o777);
    fs.setattr(ROOT, shared.ino, { gid: 50, mode: 0o2777 });
    expect(fs.getattr(ROOT, shared.ino).mode).toBe(S_IFDIR | 0o2777);
    const f = writeFile(fs, USER, shared.ino, 'f', 'x');
    expect(fs.getattr(ROOT, f).gid).toBe(50);
    expect(fs.getattr(ROOT, f).uid).toBe(1000);
    const sub = fs.mkdir(USER, shared.ino, b('sub'), 0o755);
    expect(sub.attr.gid).toBe(50);
    expect(sub.attr.mode).toBe(S_IFDIR | S_ISGID | 0o755);
    const deeper = fs.mkdir(USER, sub.ino, b('deeper'), 0o700);
    expect(deeper.attr.mode).toBe(S_IFDIR | S_ISGID | 0o700);
    expect(deeper.attr.gid).toBe(50);
    // A non-member creating a setgid file in it gets the bit cleared.
    const { entry } = fs.create(USER, shared.ino, b('sg'), 0o2755, 2);
    expect(entry.attr.mode).toBe(S_IFREG | 0o755);
    const rootSg = fs.create(ROOT, shared.ino, b('rsg'), 0o2755, 2).entry;
    expect(rootSg.attr.mode).toBe(S_IFREG | 0o2755);
    const n = fs.mknod(USER, shared.ino, b('fifo'), S_IFIFO | 0o600, 0);
    expect(n.attr.gid).toBe(50);
    const s = fs.symlink(USER, shared.ino, b('ln'), b('f'));
    expect(s.attr.gid).toBe(50);
  });

  it('outside setgid directories entries get the caller gid', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o777);
    fs.setattr(ROOT, d.ino, { gid: 50 });
    expect(fs.getattr(ROOT, writeFile(fs, USER, d.ino, 'f', 'x')).gid).toBe(1000);
  });
});

describe('fs core: lookup counting and limits', () => {
  it('lookup, create, mkdir, mknod, symlink and link each count one lookup', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o777);
    const made = [
      fs.create(ROOT, d.ino, b('c'), 0o644, 2),
      fs.mknod(ROOT, d.ino, b('n'), S_IFIFO | 0o644, 0),
      fs.symlink(ROOT, d.ino, b('s'), b('t')),
      fs.mkdir(ROOT, d.ino, b('m'), 0o755),
    ];
    const c = made[0] as { entry: { ino: number }; open: { fh: number } };
    fs.release(c.entry.ino, c.open.fh);
    const inos = [c.entry.ino, ...made.slice(1).map((e) => (e as { ino: number }).ino)];
    const target = writeFile(fs, ROOT, d.ino, 'target', 'x');
    fs.link(ROOT, target, d.ino, b('l')); // target: create + link = 2 lookups
    fs.lookup(ROOT, d.ino, b('c')); // c: create + lookup = 2
    for (const name of ['c', 'n', 's', 'target', 'l']) fs.unlink(ROOT, d.ino, b(name));
    fs.rmdir(ROOT, d.ino, b('m'));
    for (const ino of inos) expect(fs.getattr(ROOT, ino).nlink).toBe(0);
    fs.forget(inos[0]!, 1);
    expect(fs.getattr(ROOT, inos[0]!).nlink).toBe(0); // one left
    for (const ino of inos) fs.forget(ino, 1);
    for (const ino of inos) expect(errnoOf(() => fs.getattr(ROOT, ino))).toBe('ENOENT');
    fs.forget(target, 1);
    expect(fs.getattr(ROOT, target).nlink).toBe(0);
    fs.forget(target, 1);
    expect(errnoOf(() => fs.getattr(ROOT, target))).toBe('ENOENT');
    fs.forget(1, 1000); // the root is never forgotten
    expect(fs.getattr(ROOT, 1).ino).toBe(1);
  });

  it('EMLINK past the link limit; ENAMETOOLONG on every creator', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', '');
    const d = fs.mkdir(ROOT, 1, b('links'), 0o755);
    let err: string | undefined;
    for (let i = 0; i < 70_000 && err === undefined; i++) err = errnoOf(() => fs.forget(fs.link(ROOT, f, d.ino, b(`l${i}`)).ino, 1));
    expect(err).toBe('EMLINK');
    expect(fs.getattr(ROOT, f).nlink).toBe(posix.LINK_MAX);
    const long = Buffer.alloc(256, 'x');
    expect(errnoOf(() => fs.create(ROOT, 1, long, 0o644, 2))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.mknod(ROOT, 1, long, S_IFIFO | 0o644, 0))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.symlink(ROOT, 1, long, b('t')))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.unlink(ROOT, 1, long))).toBe('ENAMETOOLONG');
    expect(errnoOf(() => fs.rmdir(ROOT, 1, long))).toBe('ENAMETOOLONG');
  });
});
