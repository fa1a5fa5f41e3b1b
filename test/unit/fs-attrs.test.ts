import { describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore, SETATTR_NOW, posix } from '../../fs/core/index.js';
import { OTHER, ROOT, USER, b, errnoOf, makeFs, readFile, writeFile } from './fs-helpers.js';

const { S_IFREG, S_IFDIR, S_ISUID, S_ISGID } = posix;

describe('fs core: chmod / chown', () => {
  it('only the owner or root may chmod; chmod touches ctime only', () => {
    const { fs, clock } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o644);
    const before = fs.getattr(ROOT, f);
    clock.tick();
    expect(fs.setattr(USER, f, { mode: 0o600 }).mode).toBe(S_IFREG | 0o600);
    const after = fs.getattr(ROOT, f);
    expect(after.ctime).toEqual(clock.now());
    expect(after.mtime).toEqual(before.mtime);
    expect(errnoOf(() => fs.setattr(OTHER, f, { mode: 0o777 }))).toBe('EPERM');
    expect(fs.setattr(ROOT, f, { mode: 0o4755 | S_IFDIR }).mode).toBe(S_IFREG | 0o4755); // type bits ignored
  });

  it('non-root chmod to a group he is not in clears setgid', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o644);
    fs.setattr(ROOT, f, { gid: 50 });
    expect(fs.setattr(USER, f, { mode: 0o2755 }).mode).toBe(S_IFREG | 0o755);
    expect(fs.setattr(USER, f, { mode: 0o4755 }).mode).toBe(S_IFREG | 0o4755);
    expect(fs.setattr(ROOT, f, { mode: 0o2755 }).mode).toBe(S_IFREG | 0o2755);
    const g = writeFile(fs, USER, 1, 'g', 'x', 0o644);
    expect(fs.setattr(USER, g, { mode: 0o2755 }).mode).toBe(S_IFREG | 0o2755); // own group
  });

  it('chown: root anything; owner only chgrp to his group; others EPERM', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o644);
    expect(errnoOf(() => fs.setattr(USER, f, { uid: 2000 }))).toBe('EPERM');
    expect(errnoOf(() => fs.setattr(USER, f, { gid: 2000 }))).toBe('EPERM');
    expect(errnoOf(() => fs.setattr(OTHER, f, { gid: 1000 }))).toBe('EPERM');
    expect(errnoOf(() => fs.setattr(OTHER, f, { uid: 1000 }))).toBe('EPERM');
    expect(fs.setattr(USER, f, { uid: 1000, gid: 1000 }).uid).toBe(1000); // no-op chown by owner
    fs.setattr(ROOT, f, { gid: 3000 });
    expect(fs.setattr({ uid: 1000, gid: 3000, pid: 9 }, f, { gid: 3000 }).gid).toBe(3000);
    expect(fs.setattr({ uid: 1000, gid: 1000, pid: 9 }, f, { gid: 1000 }).gid).toBe(1000);
    const a = fs.setattr(ROOT, f, { uid: 42, gid: 43 });
    expect([a.uid, a.gid]).toEqual([42, 43]);
    // A refused setattr changes nothing, even the parts that would have been allowed.
    const g = writeFile(fs, USER, 1, 'g', 'x', 0o644);
    expect(errnoOf(() => fs.setattr(USER, g, { mode: 0o600, uid: 0 }))).toBe('EPERM');
    expect(fs.getattr(ROOT, g).mode).toBe(S_IFREG | 0o644);
  });

  it('chown clears suid, and sgid when group-executable, on non-directories', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x', 0o6755);
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o6755);
    expect(fs.setattr(ROOT, f, { uid: 5 }).mode).toBe(S_IFREG | 0o755);
    const g = writeFile(fs, ROOT, 1, 'g', 'x', 0o6745); // sgid without group x: mandatory-locking marker, kept
    expect(fs.setattr(ROOT, g, { gid: 5 }).mode).toBe(S_IFREG | 0o2745);
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    fs.setattr(ROOT, d.ino, { mode: 0o2755 });
    expect(fs.setattr(ROOT, d.ino, { uid: 5 }).mode).toBe(S_IFDIR | 0o2755);
    const u = writeFile(fs, USER, 1, 'u', 'x', 0o4755);
    expect(fs.setattr(USER, u, { gid: 1000 }).mode).toBe(S_IFREG | 0o755);
  });
});

describe('fs core: suid/sgid on write and truncate', () => {
  it('a non-root writer clears suid (and sgid with g+x); root does not', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'x', 0o6777);
    const root = fs.open(ROOT, f, 2);
    fs.write(ROOT, f, root.fh, 0, b('r'));
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o6777);
    fs.write(ROOT, f, root.fh, 0, b('r'), true); // FUSE_WRITE_KILL_SUIDGID
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o777);
    fs.setattr(ROOT, f, { mode: 0o6777 });
    const u = fs.open(USER, f, 2);
    fs.write(USER, f, u.fh, 0, b('u'));
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o777);
    fs.setattr(ROOT, f, { mode: 0o6767 });
    fs.write(USER, f, u.fh, 0, b('u'));
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o2767);
  });

  it('truncate by non-root clears suid; killSuidgid clears it for anyone', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'xxxx', 0o6777);
    fs.setattr(ROOT, f, { size: 2 });
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o6777);
    fs.setattr(USER, f, { size: 1 });
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o777);
    fs.setattr(ROOT, f, { mode: 0o6777 });
    fs.setattr(ROOT, f, { killSuidgid: true });
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o777);
    fs.setattr(ROOT, f, { mode: 0o4777 });
    const h = fs.open(USER, f, 2 | posix.O_TRUNC);
    expect(fs.getattr(ROOT, f).mode).toBe(S_IFREG | 0o777);
    fs.release(f, h.fh);
  });
});

describe('fs core: truncate through setattr', () => {
  it('needs write permission unless done through a writable handle; EISDIR/EINVAL', () => {
    const { fs } = makeFs();
    const { entry, open } = fs.create(USER, 1, b('ro'), 0o444, 2);
    fs.write(USER, entry.ino, open.fh, 0, b('hello'));
    expect(fs.setattr(USER, entry.ino, { size: 2 }, open.fh).size).toBe(2); // ftruncate on the creating fd
    expect(errnoOf(() => fs.setattr(USER, entry.ino, { size: 1 }))).toBe('EACCES');
    expect(errnoOf(() => fs.setattr(OTHER, entry.ino, { size: 1 }))).toBe('EACCES');
    expect(fs.setattr(ROOT, entry.ino, { size: 1 }).size).toBe(1);
    expect(errnoOf(() => fs.setattr(ROOT, 1, { size: 0 }))).toBe('EISDIR');
    const fifo = fs.mknod(ROOT, 1, b('p'), posix.S_IFIFO | 0o666, 0);
    expect(errnoOf(() => fs.setattr(ROOT, fifo.ino, { size: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => fs.setattr(ROOT, entry.ino, { size: -1 }))).toBe('EINVAL');
  });
});

describe('fs core: timestamps', () => {
  it('utimens: explicit ns times, UTIME_NOW, UTIME_OMIT, and who may do what', () => {
    const { fs, clock } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o666);
    clock.tick(7);
    const a = fs.setattr(USER, f, { atime: { sec: 1000, nsec: 123_456_789 }, mtime: { sec: 2000, nsec: 999_999_999 } });
    expect(a.atime).toEqual({ sec: 1000, nsec: 123_456_789 });
    expect(a.mtime).toEqual({ sec: 2000, nsec: 999_999_999 });
    expect(a.ctime).toEqual(clock.now());
    clock.tick();
    const omit = fs.setattr(USER, f, { mtime: { sec: 3000, nsec: 1 } }); // atime omitted
    expect(omit.atime).toEqual({ sec: 1000, nsec: 123_456_789 });
    expect(omit.mtime).toEqual({ sec: 3000, nsec: 1 });
    clock.tick();
    const now = fs.setattr(OTHER, f, { atime: SETATTR_NOW, mtime: SETATTR_NOW }); // writable by others: allowed
    expect(now.atime).toEqual(clock.now());
    expect(now.mtime).toEqual(clock.now());
    expect(errnoOf(() => fs.setattr(OTHER, f, { mtime: { sec: 1, nsec: 0 } }))).toBe('EPERM');
    fs.setattr(USER, f, { mode: 0o644 });
    expect(errnoOf(() => fs.setattr(OTHER, f, { mtime: SETATTR_NOW }))).toBe('EACCES');
    expect(fs.setattr(ROOT, f, { mtime: { sec: 5, nsec: 5 } }).mtime).toEqual({ sec: 5, nsec: 5 });
    expect(errnoOf(() => fs.setattr(USER, f, { mtime: { sec: 5, nsec: 1e9 } }))).toBe('EINVAL');
    // Negative times (before 1970) are valid.
    expect(fs.setattr(USER, f, { mtime: { sec: -5, nsec: 0 } }).mtime).toEqual({ sec: -5, nsec: 0 });
    // An explicit ctime (writeback-cache transports) is taken as given.
    expect(fs.setattr(ROOT, f, { ctime: { sec: 77, nsec: 7 } }).ctime).toEqual({ sec: 77, nsec: 7 });
    // A writeback-cache kernel flushing a writer's times (mtime + ctime) needs write permission only.
    fs.setattr(USER, f, { mode: 0o666 });
    const wb = fs.setattr(OTHER, f, { mtime: { sec: 9, nsec: 9 }, ctime: { sec: 9, nsec: 9 } });
    expect(wb.mtime).toEqual({ sec: 9, nsec: 9 });
    fs.setattr(USER, f, { mode: 0o644 });
    expect(errnoOf(() => fs.setattr(OTHER, f, { mtime: { sec: 9, nsec: 9 }, ctime: { sec: 9, nsec: 9 } }))).toBe('EPERM');
  });

  it('create sets all three times and parent mtime/ctime', () => {
    const { fs, clock } = makeFs();
    clock.tick(3);
    const t = clock.now();
    const f = writeFile(fs, ROOT, 1, 'f', '');
    const a = fs.getattr(ROOT, f);
    expect([a.atime, a.mtime, a.ctime]).toEqual([t, t, t]);
    expect(fs.getattr(ROOT, 1).mtime).toEqual(t);
    expect(fs.getattr(ROOT, 1).ctime).toEqual(t);
  });

  it('write updates mtime and ctime; read updates atime (relatime); truncate mtime+ctime', () => {
    const { fs, clock } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'abc');
    const t0 = fs.getattr(ROOT, f);
    clock.tick();
    const h = fs.open(ROOT, f, 2);
    fs.write(ROOT, f, h.fh, 0, b('x'));
    const t1 = fs.getattr(ROOT, f);
    expect(t1.mtime).toEqual(clock.now());
    expect(t1.ctime).toEqual(clock.now());
    expect(t1.atime).toEqual(t0.atime);
    clock.tick();
    fs.read(ROOT, f, h.fh, 0, 3);
    expect(fs.getattr(ROOT, f).atime).toEqual(clock.now()); // atime <= mtime: updated
    const tRead = clock.now();
    clock.tick();
    fs.read(ROOT, f, h.fh, 0, 3);
    expect(fs.getattr(ROOT, f).atime).toEqual(tRead); // relatime: not again within a day
    clock.sec += 86_400;
    fs.read(ROOT, f, h.fh, 0, 3);
    expect(fs.getattr(ROOT, f).atime).toEqual(clock.now());
    clock.tick();
    fs.setattr(ROOT, f, { size: 1 });
    const t2 = fs.getattr(ROOT, f);
    expect(t2.mtime).toEqual(clock.now());
    expect(t2.ctime).toEqual(clock.now());
    fs.release(f, h.fh);
  });

  it('atime policies: strict updates on every read, noatime never', () => {
    for (const policy of ['strict', 'noatime'] as const) {
      const { fs, clock } = makeFs({ atime: policy });
      const f = writeFile(fs, ROOT, 1, 'f', 'abc');
      const h = fs.open(ROOT, f, 0);
      const before = fs.getattr(ROOT, f).atime;
      clock.tick();
      fs.read(ROOT, f, h.fh, 0, 3);
      clock.tick();
      fs.read(ROOT, f, h.fh, 0, 3);
      expect(fs.getattr(ROOT, f).atime).toEqual(policy === 'strict' ? clock.now() : before);
    }
  });

  it('link, unlink, rmdir, mkdir, symlink, setxattr touch the right times', () => {
    const { fs, clock } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    const fm = fs.getattr(ROOT, f).mtime;
    clock.tick();
    fs.link(ROOT, f, d.ino, b('l'));
    expect(fs.getattr(ROOT, f).ctime).toEqual(clock.now());
    expect(fs.getattr(ROOT, f).mtime).toEqual(fm);
    expect(fs.getattr(ROOT, d.ino).mtime).toEqual(clock.now());
    clock.tick();
    fs.unlink(ROOT, d.ino, b('l'));
    expect(fs.getattr(ROOT, f).ctime).toEqual(clock.now());
    expect(fs.getattr(ROOT, d.ino).ctime).toEqual(clock.now());
    clock.tick();
    fs.symlink(ROOT, d.ino, b('s'), b('x'));
    expect(fs.getattr(ROOT, d.ino).mtime).toEqual(clock.now());
    clock.tick();
    fs.mkdir(ROOT, d.ino, b('sub'), 0o755);
    expect(fs.getattr(ROOT, d.ino).mtime).toEqual(clock.now());
    clock.tick();
    fs.rmdir(ROOT, d.ino, b('sub'));
    expect(fs.getattr(ROOT, d.ino).mtime).toEqual(clock.now());
    clock.tick();
    fs.setxattr(ROOT, f, 'user.k', b('v'), 0);
    expect(fs.getattr(ROOT, f).ctime).toEqual(clock.now());
    expect(fs.getattr(ROOT, f).mtime).toEqual(fm);
    clock.tick();
    fs.removexattr(ROOT, f, 'user.k');
    expect(fs.getattr(ROOT, f).ctime).toEqual(clock.now());
  });

  it('the default clock is the wall clock', () => {
    const fs = new Filesystem(new MemoryStore(), { rootUid: 0, rootGid: 0 });
    const before = Date.now();
    const f = writeFile(fs, ROOT, 1, 'f', 'x');
    const after = Date.now();
    const m = fs.getattr(ROOT, f).mtime;
    const ms = m.sec * 1000 + m.nsec / 1e6;
    expect(ms).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(ms).toBeLessThan(after + 1); // Date.now() drops the sub-millisecond part the clock keeps
    expect(Number.isInteger(m.nsec)).toBe(true);
  });
});

describe('fs core: access', () => {
  it('checks mode bits against the caller; root bypasses except execute', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o640);
    fs.setattr(ROOT, f, { gid: 2000 });
    expect(errnoOf(() => fs.access(USER, f, 6))).toBeUndefined();
    expect(errnoOf(() => fs.access(USER, f, 1))).toBe('EACCES');
    expect(errnoOf(() => fs.access(OTHER, f, 4))).toBeUndefined(); // group read
    expect(errnoOf(() => fs.access(OTHER, f, 2))).toBe('EACCES');
    expect(errnoOf(() => fs.access({ uid: 3000, gid: 3000, pid: 1 }, f, 4))).toBe('EACCES');
    expect(errnoOf(() => fs.access({ uid: 3000, gid: 3000, pid: 1 }, f, 0))).toBeUndefined();
    expect(errnoOf(() => fs.access(ROOT, f, 6))).toBeUndefined();
    expect(errnoOf(() => fs.access(ROOT, f, 1))).toBe('EACCES');
    fs.setattr(ROOT, f, { mode: 0o001 });
    expect(errnoOf(() => fs.access(ROOT, f, 7))).toBeUndefined();
    expect(errnoOf(() => fs.access(USER, f, 4))).toBe('EACCES'); // owner bits apply, not other's
    const d = fs.mkdir(ROOT, 1, b('d'), 0o000);
    expect(errnoOf(() => fs.access(ROOT, d.ino, 7))).toBeUndefined();
    expect(errnoOf(() => fs.access(USER, d.ino, 1))).toBe('EACCES');
    expect(errnoOf(() => fs.access(ROOT, 4242, 0))).toBe('ENOENT');
  });

  it('permission-checked open', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'secret', 0o600);
    expect(errnoOf(() => fs.open(USER, f, 0))).toBe('EACCES');
    expect(errnoOf(() => fs.open(USER, f, 1))).toBe('EACCES');
    fs.setattr(ROOT, f, { mode: 0o604 });
    expect(readFile(fs, USER, f).toString()).toBe('secret');
    expect(errnoOf(() => fs.open(USER, f, 2))).toBe('EACCES');
    expect(errnoOf(() => fs.open(USER, f, posix.O_TRUNC))).toBe('EACCES');
    expect(errnoOf(() => fs.open(ROOT, 1, 1))).toBe('EISDIR');
  });
});
