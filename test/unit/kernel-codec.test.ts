/**
 * The protocol codec against the kernel's own header: a small C program compiled against
 * /usr/include/linux/fuse.h prints sizeof/offsetof of every structure we encode or decode, and the
 * tests check that our encoders put each field exactly there (and our decoders read it from there).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Attr, Entry } from '../../fs/core/api.js';
import {
  direntSize, direntplusSize, encodeDelete, encodeInvalEntry, encodeInvalInode, readAttr, readI64, readLock, readU64,
  writeAttr, writeAttrOut, writeDirent, writeDirentplus, writeEntry, writeI64, writeLock, writeNegativeEntry,
  writeOpenOut, writeOutHeader, writeStatfs, writeU64,
} from '../../fs/kernel/codec.js';
import * as P from '../../fs/kernel/protocol.js';

const HEADER = '/usr/include/linux/fuse.h';
const haveGcc = spawnSync('gcc', ['--version']).status === 0 && existsSync(HEADER);

const FIELDS: Record<string, string[]> = {
  fuse_in_header: ['len', 'opcode', 'unique', 'nodeid', 'uid', 'gid', 'pid', 'total_extlen'],
  fuse_out_header: ['len', 'error', 'unique'],
  fuse_attr: ['ino', 'size', 'blocks', 'atime', 'mtime', 'ctime', 'atimensec', 'mtimensec', 'ctimensec', 'mode', 'nlink',
    'uid', 'gid', 'rdev', 'blksize', 'flags'],
  fuse_entry_out: ['nodeid', 'generation', 'entry_valid', 'attr_valid', 'entry_valid_nsec', 'attr_valid_nsec', 'attr'],
  fuse_attr_out: ['attr_valid', 'attr_valid_nsec', 'attr'],
  fuse_open_out: ['fh', 'open_flags'],
  fuse_kstatfs: ['blocks', 'bfree', 'bavail', 'files', 'ffree', 'bsize', 'namelen', 'frsize'],
  fuse_file_lock: ['start', 'end', 'type', 'pid'],
  fuse_dirent: ['ino', 'off', 'namelen', 'type', 'name'],
  fuse_direntplus: ['entry_out', 'dirent'],
  fuse_init_in: ['major', 'minor', 'max_readahead', 'flags', 'flags2'],
  fuse_init_out: ['major', 'minor', 'max_readahead', 'flags', 'max_background', 'congestion_threshold', 'max_write',
    'time_gran', 'max_pages', 'map_alignment', 'flags2'],
  fuse_setattr_in: ['valid', 'fh', 'size', 'lock_owner', 'atime', 'mtime', 'ctime', 'atimensec', 'mtimensec', 'ctimensec',
    'mode', 'uid', 'gid'],
  fuse_read_in: ['fh', 'offset', 'size', 'read_flags', 'lock_owner', 'flags'],
  fuse_write_in: ['fh', 'offset', 'size', 'write_flags', 'lock_owner', 'flags'],
  fuse_release_in: ['fh', 'flags', 'release_flags', 'lock_owner'],
  fuse_flush_in: ['fh', 'lock_owner'],
  fuse_lk_in: ['fh', 'owner', 'lk', 'lk_flags'],
  fuse_create_in: ['flags', 'mode', 'umask', 'open_flags'],
  fuse_mknod_in: ['mode', 'rdev', 'umask'],
  fuse_mkdir_in: ['mode', 'umask'],
  fuse_rename2_in: ['newdir', 'flags'],
  fuse_link_in: ['oldnodeid'],
  fuse_getxattr_in: ['size'],
  fuse_setxattr_in: ['size', 'flags'],
  fuse_fsync_in: ['fh', 'fsync_flags'],
  fuse_fallocate_in: ['fh', 'offset', 'length', 'mode'],
  fuse_lseek_in: ['fh', 'offset', 'whence'],
  fuse_copy_file_range_in: ['fh_in', 'off_in', 'nodeid_out', 'fh_out', 'off_out', 'len', 'flags'],
  fuse_batch_forget_in: ['count'],
  fuse_forget_one: ['nodeid', 'nlookup'],
  fuse_interrupt_in: ['unique'],
  fuse_notify_inval_inode_out: ['ino', 'off', 'len'],
  fuse_notify_inval_entry_out: ['parent', 'namelen', 'flags'],
  fuse_notify_delete_out: ['parent', 'child', 'namelen'],
};

let layout: Record<string, Record<string, number>> = {};
let dir = '';

beforeAll(() => {
  if (!haveGcc) return;
  dir = mkdtempSync(join(tmpdir(), 'atefs-fusehdr-'));
  const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/fuse.h>', 'int main(void) {'];
  for (const [s, fields] of Object.entries(FIELDS)) {
    lines.push(`printf("${s} sizeof %zu\\n", sizeof(struct ${s}));`);
    for (const f of fields) lines.push(`printf("${s} ${f} %zu\\n", offsetof(struct ${s}, ${f}));`);
  }
  lines.push('return 0; }');
  writeFileSync(join(dir, 'l.c'), lines.join('\n'));
  const cc = spawnSync('gcc', ['-o', join(dir, 'l'), join(dir, 'l.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(cc.stderr);
  const out = spawnSync(join(dir, 'l'), { encoding: 'utf8' }).stdout;
  layout = {};
  for (const line of out.trim().split('\n')) {
    const [s, f, v] = line.split(' ');
    (layout[s!] ??= {})[f!] = Number(v);
  }
});
afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

const attr: Attr = {
  ino: 0x1_2345_6789, size: 2 ** 40 + 3, blocks: 77,
  atime: { sec: 1_700_000_001, nsec: 11 }, mtime: { sec: -5, nsec: 22 }, ctime: { sec: 1_700_000_003, nsec: 33 },
  mode: 0o100644, nlink: 3, uid: 1000, gid: 1001, rdev: 0x0801, blksize: 65536,
};

describe.skipIf(!haveGcc)('kernel codec: layout from linux/fuse.h', () => {
  it('our sizes match the header', () => {
    expect(layout.fuse_in_header!.sizeof).toBe(P.IN_HEADER_SIZE);
    expect(layout.fuse_out_header!.sizeof).toBe(P.OUT_HEADER_SIZE);
    expect(layout.fuse_attr!.sizeof).toBe(P.ATTR_SIZE);
    expect(layout.fuse_entry_out!.sizeof).toBe(P.ENTRY_OUT_SIZE);
    expect(layout.fuse_attr_out!.sizeof).toBe(P.ATTR_OUT_SIZE);
    expect(layout.fuse_open_out!.sizeof).toBe(P.OPEN_OUT_SIZE);
    expect(layout.fuse_init_out!.sizeof).toBe(P.INIT_OUT_SIZE);
    expect(layout.fuse_kstatfs!.sizeof).toBe(P.KSTATFS_SIZE);
    expect(layout.fuse_file_lock!.sizeof).toBe(P.FILE_LOCK_SIZE);
    expect(layout.fuse_dirent!.name).toBe(P.DIRENT_HEADER_SIZE);
    expect(layout.fuse_direntplus!.dirent).toBe(P.ENTRY_OUT_SIZE);
    expect(layout.fuse_notify_inval_inode_out!.sizeof).toBe(P.NOTIFY_INVAL_INODE_SIZE);
    expect(layout.fuse_notify_inval_entry_out!.sizeof).toBe(P.NOTIFY_INVAL_ENTRY_SIZE);
    expect(layout.fuse_notify_delete_out!.sizeof).toBe(P.NOTIFY_DELETE_SIZE);
  });

  it('request offsets the session decodes match the header', () => {
    // The offsets hard-coded in session.ts, field by field.
    const used: Record<string, Record<string, number>> = {
      fuse_in_header: { len: 0, opcode: 4, unique: 8, nodeid: 16, uid: 24, gid: 28, pid: 32, total_extlen: 36 },
      fuse_setattr_in: { valid: 0, fh: 8, size: 16, atime: 32, mtime: 40, ctime: 48, atimensec: 56, mtimensec: 60,
        ctimensec: 64, mode: 68, uid: 76, gid: 80 },
      fuse_read_in: { fh: 0, offset: 8, size: 16 },
      fuse_write_in: { fh: 0, offset: 8, size: 16, write_flags: 20, sizeof: 40 },
      fuse_release_in: { fh: 0 },
      fuse_flush_in: { fh: 0, lock_owner: 16 },
      fuse_lk_in: { fh: 0, owner: 8, lk: 16, lk_flags: 40 },
      fuse_create_in: { flags: 0, mode: 4, umask: 8, sizeof: 16 },
      fuse_mknod_in: { mode: 0, rdev: 4, umask: 8, sizeof: 16 },
      fuse_mkdir_in: { mode: 0, umask: 4, sizeof: 8 },
      fuse_rename2_in: { newdir: 0, flags: 8, sizeof: 16 },
      fuse_link_in: { oldnodeid: 0, sizeof: 8 },
      fuse_getxattr_in: { size: 0, sizeof: 8 },
      fuse_setxattr_in: { size: 0, flags: 4 },
      fuse_fsync_in: { fh: 0, fsync_flags: 8 },
      fuse_fallocate_in: { fh: 0, offset: 8, length: 16, mode: 24 },
      fuse_lseek_in: { fh: 0, offset: 8, whence: 16 },
      fuse_copy_file_range_in: { fh_in: 0, off_in: 8, nodeid_out: 16, fh_out: 24, off_out: 32, len: 40 },
      fuse_batch_forget_in: { count: 0, sizeof: 8 },
      fuse_forget_one: { nodeid: 0, nlookup: 8, sizeof: 16 },
      fuse_interrupt_in: { unique: 0 },
      fuse_init_in: { major: 0, minor: 4, max_readahead: 8, flags: 12 },
      fuse_init_out: { major: 0, minor: 4, max_readahead: 8, flags: 12, max_background: 16, congestion_threshold: 18,
        max_write: 20, time_gran: 24, max_pages: 28 },
    };
    for (const [s, fields] of Object.entries(used)) {
      for (const [f, off] of Object.entries(fields)) expect([s, f, layout[s]![f]]).toEqual([s, f, off]);
    }
  });

  it('fuse_attr fields land at the header offsets', () => {
    const b = Buffer.alloc(200, 0xee);
    writeAttr(b, 8, attr);
    const L = layout.fuse_attr!;
    const at = (f: string) => 8 + L[f]!;
    expect(readU64(b, at('ino'))).toBe(attr.ino);
    expect(readU64(b, at('size'))).toBe(attr.size);
    expect(readU64(b, at('blocks'))).toBe(77);
    expect(readI64(b, at('atime'))).toBe(1_700_000_001);
    expect(readI64(b, at('mtime'))).toBe(-5);
    expect(b.readUInt32LE(at('ctimensec'))).toBe(33);
    expect(b.readUInt32LE(at('mode'))).toBe(0o100644);
    expect(b.readUInt32LE(at('nlink'))).toBe(3);
    expect(b.readUInt32LE(at('uid'))).toBe(1000);
    expect(b.readUInt32LE(at('gid'))).toBe(1001);
    expect(b.readUInt32LE(at('rdev'))).toBe(0x0801);
    expect(b.readUInt32LE(at('blksize'))).toBe(65536);
    expect(b.readUInt32LE(at('flags'))).toBe(0);
    expect(b[7]).toBe(0xee);
    expect(b[8 + P.ATTR_SIZE]).toBe(0xee);
    expect(readAttr(b, 8)).toEqual(attr);
  });

  it('fuse_entry_out, fuse_attr_out, fuse_open_out and the out header', () => {
    const e: Entry = { ino: 42, generation: 7, attr, entryTimeout: 1.5, attrTimeout: 2 };
    const b = Buffer.alloc(256);
    writeEntry(b, 0, e);
    const L = layout.fuse_entry_out!;
    expect(readU64(b, L.nodeid!)).toBe(42);
    expect(readU64(b, L.generation!)).toBe(7);
    expect(readU64(b, L.entry_valid!)).toBe(1);
    expect(b.readUInt32LE(L.entry_valid_nsec!)).toBe(500_000_000);
    expect(readU64(b, L.attr_valid!)).toBe(2);
    expect(b.readUInt32LE(L.attr_valid_nsec!)).toBe(0);
    expect(readAttr(b, L.attr!)).toEqual(attr);
    writeNegativeEntry(b, 0, 3);
    expect(readU64(b, L.nodeid!)).toBe(0);
    expect(readU64(b, L.entry_valid!)).toBe(3);

    const a = Buffer.alloc(200);
    writeAttrOut(a, 0, attr, 0.25);
    expect(readU64(a, layout.fuse_attr_out!.attr_valid!)).toBe(0);
    expect(a.readUInt32LE(layout.fuse_attr_out!.attr_valid_nsec!)).toBe(250_000_000);
    expect(readAttr(a, layout.fuse_attr_out!.attr!)).toEqual(attr);

    const o = Buffer.alloc(16);
    writeOpenOut(o, 0, 2 ** 33 + 5, P.FOPEN.KEEP_CACHE);
    expect(readU64(o, layout.fuse_open_out!.fh!)).toBe(2 ** 33 + 5);
    expect(o.readUInt32LE(layout.fuse_open_out!.open_flags!)).toBe(2);

    const h = Buffer.alloc(16);
    writeOutHeader(h, 99, -2, 2 ** 40 + 1);
    expect(h.readUInt32LE(layout.fuse_out_header!.len!)).toBe(99);
    expect(h.readInt32LE(layout.fuse_out_header!.error!)).toBe(-2);
    expect(readU64(h, layout.fuse_out_header!.unique!)).toBe(2 ** 40 + 1);
  });

  it('fuse_kstatfs and fuse_file_lock (OFFSET_MAX <-> MAX_SAFE_INTEGER)', () => {
    const b = Buffer.alloc(100);
    writeStatfs(b, 0, { bsize: 65536, frsize: 4096, blocks: 1000, bfree: 500, bavail: 400, files: 77, ffree: 66, favail: 66, namemax: 255 });
    const L = layout.fuse_kstatfs!;
    expect(readU64(b, L.blocks!)).toBe(1000);
    expect(readU64(b, L.bfree!)).toBe(500);
    expect(readU64(b, L.bavail!)).toBe(400);
    expect(readU64(b, L.files!)).toBe(77);
    expect(readU64(b, L.ffree!)).toBe(66);
    expect(b.readUInt32LE(L.bsize!)).toBe(65536);
    expect(b.readUInt32LE(L.namelen!)).toBe(255);
    expect(b.readUInt32LE(L.frsize!)).toBe(4096);

    const l = Buffer.alloc(24);
    writeLock(l, 0, { start: 10, end: Number.MAX_SAFE_INTEGER, type: 1, pid: 1234 });
    const K = layout.fuse_file_lock!;
    expect(l.readBigUInt64LE(K.end!)).toBe(0x7fffffffffffffffn);
    expect(readU64(l, K.start!)).toBe(10);
    expect(l.readUInt32LE(K.type!)).toBe(1);
    expect(l.readUInt32LE(K.pid!)).toBe(1234);
    expect(readLock(l, 0)).toEqual({ start: 10, end: Number.MAX_SAFE_INTEGER, type: 1, pid: 1234 });
    writeLock(l, 0, { start: 0, end: 99, type: 0, pid: 1 });
    expect(readLock(l, 0)).toEqual({ start: 0, end: 99, type: 0, pid: 1 });
  });

  it('dirents and direntplus records are 8-byte aligned with the name after the header', () => {
    const b = Buffer.alloc(512, 0xff);
    const name = Buffer.from('hello');
    const next = writeDirent(b, 0, 512, { name, ino: 9, type: 0o040000, offset: 17 });
    expect(next).toBe(direntSize(5));
    expect(next % 8).toBe(0);
    const D = layout.fuse_dirent!;
    expect(readU64(b, D.ino!)).toBe(9);
    expect(readU64(b, D.off!)).toBe(17);
    expect(b.readUInt32LE(D.namelen!)).toBe(5);
    expect(b.readUInt32LE(D.type!)).toBe(4); // DT_DIR
    expect(b.toString('utf8', D.name!, D.name! + 5)).toBe('hello');
    expect(b.subarray(D.name! + 5, next).every((x) => x === 0)).toBe(true);
    expect(writeDirent(b, 0, next - 1, { name, ino: 9, type: 0o040000, offset: 17 })).toBe(-1);

    const e: Entry = { ino: 9, generation: 1, attr, entryTimeout: 1, attrTimeout: 1 };
    const p = writeDirentplus(b, 0, 512, { name, ino: 9, type: 0o100000, offset: 3 }, e);
    expect(p).toBe(direntplusSize(5));
    expect(p % 8).toBe(0);
    const base = layout.fuse_direntplus!.dirent!;
    expect(readU64(b, layout.fuse_entry_out!.nodeid!)).toBe(9);
    expect(readU64(b, base + D.off!)).toBe(3);
    expect(b.readUInt32LE(base + D.type!)).toBe(8); // DT_REG
    expect(b.toString('utf8', base + D.name!, base + D.name! + 5)).toBe('hello');
    // "." / "..": nodeid 0, so the kernel links nothing and counts no lookup.
    writeDirentplus(b, 0, 512, { name: Buffer.from('.'), ino: 1, type: 0o040000, offset: 1 }, null);
    expect(readU64(b, 0)).toBe(0);
  });

  it('notifications: inval_inode, inval_entry and delete', () => {
    const b = Buffer.alloc(128);
    let n = encodeInvalInode(b, P.Notify.INVAL_INODE, 5, -1, 0);
    expect(n).toBe(P.OUT_HEADER_SIZE + layout.fuse_notify_inval_inode_out!.sizeof!);
    expect(b.readInt32LE(4)).toBe(2);
    expect(readU64(b, 8)).toBe(0);
    const I = layout.fuse_notify_inval_inode_out!;
    expect(readU64(b, 16 + I.ino!)).toBe(5);
    expect(readI64(b, 16 + I.off!)).toBe(-1);
    n = encodeInvalEntry(b, P.Notify.INVAL_ENTRY, 7, Buffer.from('abc'));
    const E = layout.fuse_notify_inval_entry_out!;
    expect(n).toBe(16 + E.sizeof! + 4);
    expect(readU64(b, 16 + E.parent!)).toBe(7);
    expect(b.readUInt32LE(16 + E.namelen!)).toBe(3);
    expect(b.toString('utf8', 16 + E.sizeof!, 16 + E.sizeof! + 4)).toBe('abc\0');
    n = encodeDelete(b, P.Notify.DELETE, 7, 8, Buffer.from('xy'));
    const Dl = layout.fuse_notify_delete_out!;
    expect(n).toBe(16 + Dl.sizeof! + 3);
    expect(b.readInt32LE(4)).toBe(6);
    expect(readU64(b, 16 + Dl.child!)).toBe(8);
    expect(b.toString('utf8', 16 + Dl.sizeof!, 16 + Dl.sizeof! + 3)).toBe('xy\0');
  });
});

describe('kernel codec: 64-bit numbers as two halves', () => {
  it('round-trips unsigned and signed values up to 2^53', () => {
    const b = Buffer.alloc(8);
    for (const v of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 123456789012345]) {
      writeU64(b, 0, v);
      expect(readU64(b, 0)).toBe(v);
      expect(b.readBigUInt64LE(0)).toBe(BigInt(v));
    }
    for (const v of [-1, -(2 ** 32), -(2 ** 40) - 7, 5, 2 ** 50]) {
      writeI64(b, 0, v);
      expect(readI64(b, 0)).toBe(v);
      expect(b.readBigInt64LE(0)).toBe(BigInt(v));
    }
  });
});
