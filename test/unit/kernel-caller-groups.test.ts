import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CallerGroups, parseStatusGroups } from '../../fs/kernel/caller-groups.js';
import { posix } from '../../fs/core/index.js';
import { OTHER, ROOT, USER, b, errnoOf, makeFs, readFile, writeFile } from './fs-helpers.js';

const { S_IFREG, S_ISGID } = posix;

describe('kernel transport: the caller\'s supplementary groups', () => {
  it('parses the Groups: line of /proc/<pid>/status (none, one, many)', () => {
    expect([...parseStatusGroups('Name:\tx\nGroups:\t\nNStgid:\t1\n')]).toEqual([]);
    expect([...parseStatusGroups('Groups:\t4242 \n')]).toEqual([4242]);
    expect([...parseStatusGroups('Uid:\t0\nGroups:\t4 24 27 1000 \nNgid:\t0\n')]).toEqual([4, 24, 27, 1000]);
    expect([...parseStatusGroups('no such line')]).toEqual([]);
  });

  it('reads this process\'s groups from the real /proc', () => {
    const mine = new CallerGroups().groups(process.pid);
    // Node's getgroups() adds the effective gid when getgroups(2) does not list it.
    const node = new Set(process.getgroups!());
    for (const g of mine) expect(node.has(g)).toBe(true);
    for (const g of node) expect(mine.has(g) || g === process.getegid!()).toBe(true);
  });

  it('caches per pid for a second; an exited process or pid 0 has no groups', () => {
    const root = mkdtempSync(join(tmpdir(), 'atefs-proc-'));
    try {
      mkdirSync(join(root, '77'));
      writeFileSync(join(root, '77', 'status'), 'Groups:\t10 20\n');
      let now = 1000;
      const g = new CallerGroups(root, () => now);
      expect(g.has(77, 20)).toBe(true);
      writeFileSync(join(root, '77', 'status'), 'Groups:\t30\n');
      expect(g.has(77, 20)).toBe(true); // cached
      expect(g.reads).toBe(1);
      now += 1000;
      expect(g.has(77, 20)).toBe(false);
      expect(g.has(77, 30)).toBe(true);
      expect(g.reads).toBe(2);
      expect(g.has(78, 10)).toBe(false); // no such process
      expect(g.has(0, 10)).toBe(false);
      expect(g.reads).toBe(3);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('fs core: group rules with supplementary groups (ctx.inGroup)', () => {
  const MEMBER = { ...USER, inGroup: (gid: number) => gid === 50 };

  it('the owner may chgrp to a supplementary group, not to others', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o644);
    expect(errnoOf(() => fs.setattr(USER, f, { gid: 50 }))).toBe('EPERM');
    expect(fs.setattr(MEMBER, f, { gid: 50 }).gid).toBe(50);
    expect(errnoOf(() => fs.setattr(MEMBER, f, { gid: 51 }))).toBe('EPERM');
  });

  it('chmod keeps S_ISGID for a supplementary member of the file\'s group', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, USER, 1, 'f', 'x', 0o644);
    fs.setattr(ROOT, f, { gid: 50 });
    expect(fs.setattr(USER, f, { mode: 0o2755 }).mode).toBe(S_IFREG | 0o755);
    expect(fs.setattr(MEMBER, f, { mode: 0o2755 }).mode).toBe(S_IFREG | 0o2755);
  });

  it('group permission bits apply through a supplementary group', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', 'secret', 0o640);
    fs.setattr(ROOT, f, { gid: 50 });
    expect(errnoOf(() => fs.open(USER, f, 0))).toBe('EACCES');
    expect(readFile(fs, MEMBER, f).toString()).toBe('secret');
    expect(errnoOf(() => fs.open(MEMBER, f, 1))).toBe('EACCES'); // no group write bit
    const other = { ...OTHER, inGroup: () => true };
    fs.setattr(ROOT, f, { mode: 0o604 }); // group bits none, other bits read: others read, the group does not
    expect(errnoOf(() => fs.open(other, f, 0))).toBe('EACCES');
  });

  it('a file made with S_ISGID in a setgid directory keeps it only for a member of its group', () => {
    const { fs } = makeFs();
    const dir = fs.mkdir(ROOT, 1, b('shared'), 0o777).ino;
    fs.setattr(ROOT, dir, { gid: 50, mode: 0o2777 });
    const a = fs.create(USER, dir, b('a'), 0o2755, 2).entry.attr;
    expect([a.gid, a.mode & 0o7777]).toEqual([50, 0o755]);
    const m = fs.create(MEMBER, dir, b('m'), 0o2755, 2).entry.attr;
    expect([m.gid, m.mode & S_ISGID]).toEqual([50, S_ISGID]);
    // Without group execute the bit is not a privilege (mandatory-locking mark): Linux keeps it.
    const l = fs.create(USER, dir, b('l'), 0o2644, 2).entry.attr;
    expect(l.mode & 0o7777).toBe(0o2644);
  });
});
