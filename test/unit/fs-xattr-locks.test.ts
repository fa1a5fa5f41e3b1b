import { describe, expect, it } from 'vitest';
import { posix } from '../../fs/core/index.js';
import { OTHER, ROOT, USER, b, errnoOf, errnoOfAsync, makeFs, writeFile } from './fs-helpers.js';

const { XATTR_CREATE, XATTR_REPLACE, F_RDLCK, F_WRLCK, F_UNLCK, OFFSET_MAX } = posix;

describe('fs core: extended attributes', () => {
  it('set, get, list, remove; CREATE/REPLACE flags; ENODATA', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o644);
    expect(errnoOf(() => fs.getxattr(USER, f, 'user.a'))).toBe('ENODATA');
    fs.setxattr(USER, f, 'user.a', b('1'), 0);
    fs.setxattr(USER, f, 'user.b', Buffer.from([0, 255, 0]), XATTR_CREATE);
    expect(fs.getxattr(USER, f, 'user.a').toString()).toBe('1');
    expect(fs.getxattr(OTHER, f, 'user.b').equals(Buffer.from([0, 255, 0]))).toBe(true);
    expect(fs.listxattr(USER, f).sort()).toEqual(['user.a', 'user.b']);
    expect(errnoOf(() => fs.setxattr(USER, f, 'user.a', b('2'), XATTR_CREATE))).toBe('EEXIST');
    expect(errnoOf(() => fs.setxattr(USER, f, 'user.c', b('2'), XATTR_REPLACE))).toBe('ENODATA');
    fs.setxattr(USER, f, 'user.a', b('22'), XATTR_REPLACE);
    expect(fs.getxattr(USER, f, 'user.a').toString()).toBe('22');
    fs.setxattr(USER, f, 'user.empty', Buffer.alloc(0), 0);
    expect(fs.getxattr(USER, f, 'user.empty').length).toBe(0);
    fs.removexattr(USER, f, 'user.a');
    expect(errnoOf(() => fs.getxattr(USER, f, 'user.a'))).toBe('ENODATA');
    expect(errnoOf(() => fs.removexattr(USER, f, 'user.a'))).toBe('ENODATA');
    expect(fs.listxattr(USER, f).sort()).toEqual(['user.b', 'user.empty']);
    // The value passed in may be reused by the caller.
    const v = Buffer.from('value');
    fs.setxattr(USER, f, 'user.v', v, 0);
    v.fill(0);
    expect(fs.getxattr(USER, f, 'user.v').toString()).toBe('value');
  });

  it('limits: name > 255 bytes ERANGE, value > 64 KiB E2BIG, unknown namespaces EOPNOTSUPP', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    fs.setxattr(ROOT, f, 'user.' + 'n'.repeat(250), b('ok'), 0);
    expect(errnoOf(() => fs.setxattr(ROOT, f, 'user.' + 'n'.repeat(251), b('x'), 0))).toBe('ERANGE');
    expect(errnoOf(() => fs.getxattr(ROOT, f, 'user.' + 'n'.repeat(251)))).toBe('ERANGE');
    expect(errnoOf(() => fs.setxattr(ROOT, f, 'user.' + 'é'.repeat(126), b('x'), 0))).toBe('ERANGE'); // 257 bytes
    fs.setxattr(ROOT, f, 'user.big', Buffer.alloc(65536, 1), 0);
    expect(fs.getxattr(ROOT, f, 'user.big').length).toBe(65536);
    expect(errnoOf(() => fs.setxattr(ROOT, f, 'user.big', Buffer.alloc(65537), 0))).toBe('E2BIG');
    expect(errnoOf(() => fs.setxattr(ROOT, f, 'system.posix_acl_access', b('x'), 0))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => fs.getxattr(ROOT, f, 'system.posix_acl_access'))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => fs.setxattr(ROOT, f, 'foo.bar', b('x'), 0))).toBe('EOPNOTSUPP');
    expect(errnoOf(() => fs.setxattr(ROOT, f, 'user.', b('x'), 0))).toBe('EINVAL');
    expect(errnoOf(() => fs.getxattr(ROOT, f, 'security.capability'))).toBe('ENODATA');
  });

  it('permissions: user.* needs read/write permission, trusted.* is root-only, user.* only on files and dirs', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x', 0o640);
    fs.setxattr(ROOT, f, 'user.a', b('1'), 0);
    expect(errnoOf(() => fs.getxattr(OTHER, f, 'user.a'))).toBe('EACCES');
    expect(errnoOf(() => fs.setxattr(OTHER, f, 'user.b', b('1'), 0))).toBe('EACCES');
    expect(errnoOf(() => fs.removexattr(OTHER, f, 'user.a'))).toBe('EACCES');
    fs.setxattr(ROOT, f, 'trusted.t', b('secret'), 0);
    expect(errnoOf(() => fs.setxattr(USER, f, 'trusted.x', b('1'), 0))).toBe('EPERM');
    expect(errnoOf(() => fs.getxattr(OTHER, f, 'trusted.t'))).toBe('ENODATA');
    expect(fs.listxattr(OTHER, f)).toEqual(['user.a']);
    expect(fs.listxattr(ROOT, f).sort()).toEqual(['trusted.t', 'user.a']);
    expect(errnoOf(() => fs.setxattr(USER, writeFile(fs, USER, 1, 'u', ''), 'security.capability', b('x'), 0))).toBe('EPERM');
    fs.setxattr(ROOT, f, 'security.selinux', b('ctx'), 0);
    expect(fs.getxattr(OTHER, f, 'security.selinux').toString()).toBe('ctx');
    const ln = fs.symlink(ROOT, 1, b('ln'), b('f'));
    expect(errnoOf(() => fs.setxattr(ROOT, ln.ino, 'user.a', b('1'), 0))).toBe('EPERM');
    fs.setxattr(ROOT, ln.ino, 'trusted.a', b('1'), 0);
    const fifo = fs.mknod(ROOT, 1, b('p'), posix.S_IFIFO | 0o666, 0);
    expect(errnoOf(() => fs.setxattr(ROOT, fifo.ino, 'user.a', b('1'), 0))).toBe('EPERM');
    const d = fs.mkdir(ROOT, 1, b('d'), 0o777);
    fs.setxattr(USER, d.ino, 'user.dir', b('1'), 0);
    const sticky = fs.mkdir(ROOT, 1, b('sticky'), 0o1777);
    expect(errnoOf(() => fs.setxattr(USER, sticky.ino, 'user.x', b('1'), 0))).toBe('EPERM');
  });
});

describe('fs core: POSIX record locks', () => {
  const lk = (type: number, start: number, end: number, pid = 1) => ({ type, start, end, pid });

  it('read locks share, write locks conflict, getlk reports the conflict', async () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    const h = fs.open(ROOT, f, 2);
    await fs.setlk(f, h.fh, 1n, lk(F_RDLCK, 0, 99, 11), false);
    await fs.setlk(f, h.fh, 2n, lk(F_RDLCK, 50, 149, 22), false);
    expect(await errnoOfAsync(() => fs.setlk(f, h.fh, 3n, lk(F_WRLCK, 90, 95, 33), false))).toBe('EAGAIN');
    const c = fs.getlk(f, h.fh, 3n, lk(F_WRLCK, 0, OFFSET_MAX, 33));
    expect(c.type).toBe(F_RDLCK);
    expect([11, 22]).toContain(c.pid);
    expect(fs.getlk(f, h.fh, 3n, lk(F_RDLCK, 0, OFFSET_MAX, 33)).type).toBe(F_UNLCK);
    expect(fs.getlk(f, h.fh, 1n, lk(F_WRLCK, 0, 10, 11)).type).toBe(F_UNLCK); // own locks never conflict
    await fs.setlk(f, h.fh, 3n, lk(F_WRLCK, 150, OFFSET_MAX, 33), false);
    expect(await errnoOfAsync(() => fs.setlk(f, h.fh, 1n, lk(F_RDLCK, 1000, 1000, 11), false))).toBe('EAGAIN');
    expect(await errnoOfAsync(() => fs.setlk(f, h.fh, 1n, lk(7, 0, 1), false))).toBe('EINVAL');
  });

  it('unlocking part of a range splits it; upgrading own lock works', async () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    const h = fs.open(ROOT, f, 2);
    await fs.setlk(f, h.fh, 1, lk(F_WRLCK, 0, 99), false);
    await fs.setlk(f, h.fh, 1, lk(F_UNLCK, 40, 59), false);
    await fs.setlk(f, h.fh, 2, lk(F_WRLCK, 40, 59), false);
    expect(await errnoOfAsync(() => fs.setlk(f, h.fh, 2, lk(F_WRLCK, 39, 40), false))).toBe('EAGAIN');
    expect(await errnoOfAsync(() => fs.setlk(f, h.fh, 2, lk(F_WRLCK, 59, 60), false))).toBe('EAGAIN');
    await fs.setlk(f, h.fh, 1, lk(F_RDLCK, 0, 39), false); // downgrade own part
    await fs.setlk(f, h.fh, 3, lk(F_RDLCK, 0, 39), false);
    expect(await errnoOfAsync(() => fs.setlk(f, h.fh, 1, lk(F_WRLCK, 0, 10), false))).toBe('EAGAIN');
  });

  it('a waiting lock is granted when the holder unlocks or closes', async () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    const h1 = fs.open(ROOT, f, 2);
    const h2 = fs.open(USER, f, 0);
    await fs.setlk(f, h1.fh, 1n, lk(F_WRLCK, 0, OFFSET_MAX), false);
    let granted = 0;
    const w1 = fs.setlk(f, h2.fh, 2n, lk(F_WRLCK, 0, 10), true).then(() => { granted++; });
    const w2 = fs.setlk(f, h2.fh, 3n, lk(F_RDLCK, 100, 200), true).then(() => { granted++; });
    await Promise.resolve();
    expect(granted).toBe(0);
    await fs.setlk(f, h1.fh, 1n, lk(F_UNLCK, 0, 50), false);
    await w1;
    expect(granted).toBe(1);
    fs.release(f, h1.fh); // closing drops the remaining locks of owner 1
    await w2;
    expect(granted).toBe(2);
    expect(fs.getlk(f, h2.fh, 9n, lk(F_WRLCK, 0, OFFSET_MAX)).type).toBe(F_WRLCK);
  });

  it('an interrupted wait fails with EINTR and leaves no lock behind', async () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    const h = fs.open(ROOT, f, 2);
    await fs.setlk(f, h.fh, 1n, lk(F_WRLCK, 0, 10), false);
    const waiting = errnoOfAsync(() => fs.setlk(f, h.fh, 2n, lk(F_WRLCK, 0, 10), true));
    fs.interruptLock(f, 2n);
    expect(await waiting).toBe('EINTR');
    await fs.setlk(f, h.fh, 1n, lk(F_UNLCK, 0, 10), false);
    expect(fs.getlk(f, h.fh, 3n, lk(F_WRLCK, 0, 10)).type).toBe(F_UNLCK);
  });

  it('flush with a lock owner releases that owner\'s locks', async () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    const h = fs.open(ROOT, f, 2);
    await fs.setlk(f, h.fh, 5n, lk(F_WRLCK, 0, 10), false);
    fs.flush(ROOT, f, h.fh, 4n);
    expect(fs.getlk(f, h.fh, 6n, lk(F_WRLCK, 0, 10)).type).toBe(F_WRLCK);
    fs.flush(ROOT, f, h.fh, 5n);
    expect(fs.getlk(f, h.fh, 6n, lk(F_WRLCK, 0, 10)).type).toBe(F_UNLCK);
  });
});
