// FsStore.mayChangeAcl: a store whose keys may write an inode but not change who may read or
// write it (a group member and another member's 0660 file) answers chmod and chown with EPERM —
// for root too — while content, times and dropping suid/sgid stay allowed.
import { describe, expect, it } from 'vitest';
import type { FsStore } from '../../fs/core/store.js';
import { ROOT, USER, b, errnoOf, makeFs, writeFile } from './fs-helpers.js';

describe('fs core: chmod/chown need the keys that may change an inode\'s ACLs', () => {
  it('EPERM for a mode or owner change the store\'s keys refuse; content, times and suid dropping pass', () => {
    const { fs, store } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'shared', 'v1', 0o6770);
    const open = writeFile(fs, ROOT, 1, 'mine', 'x', 0o660);
    const refused = new Set([f]);
    (store as typeof store & FsStore).mayChangeAcl = (ino) => !refused.has(ino);
    expect(errnoOf(() => fs.setattr(ROOT, f, { mode: 0o600 }))).toBe('EPERM');
    expect(errnoOf(() => fs.setattr(ROOT, f, { uid: 1000 }))).toBe('EPERM');
    expect(errnoOf(() => fs.setattr(ROOT, f, { gid: 1000 }))).toBe('EPERM');
    expect(fs.getattr(ROOT, f).mode & 0o7777).toBe(0o6770);
    // No change at all, times, size, and the kernel dropping suid/sgid on a write: allowed.
    expect(errnoOf(() => fs.setattr(ROOT, f, { mode: 0o6770, uid: 0, gid: 0 }))).toBeUndefined();
    expect(errnoOf(() => fs.setattr(ROOT, f, { mtime: { sec: 1, nsec: 0 }, size: 1 }))).toBeUndefined();
    expect(errnoOf(() => fs.setattr(ROOT, f, { mode: 0o0770 }))).toBeUndefined();
    expect(fs.getattr(ROOT, f).mode & 0o7777).toBe(0o770);
    // An inode the keys may administer changes as ever.
    expect(fs.setattr(ROOT, open, { mode: 0o600, uid: 1000 }).mode & 0o7777).toBe(0o600);
    expect(fs.getattr(USER, open).uid).toBe(1000);
    expect(errnoOf(() => fs.lookup(ROOT, 1, b('mine')))).toBeUndefined();
  });
});
