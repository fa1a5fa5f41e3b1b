/**
 * The protocol codec against the kernel's own header: a small C program compiled against
 * /usr/include/linux/fuse.h prints sizeof/offsetof of every structure we encode or decode, and the
 * tests check that our encoders put each field exactly there (and our decoders read it from there).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Attr, Entry } from '../../fs/core/api.js';
import {
  direntSize, direntplusSize, encodeDelete, encodeInvalEntry, encodeInvalInode, readAttr, readI64, readLock, readU64,
  writeAttr, writeAttrOut, writeDirent, writeDirentplus, writeEntry, writeI64, writeLock, writeNegativeEntry,
  writeOpenOut, writeOutHeader, writeStatfs, writeU64,
} from '../../fs/kernel/codec.js';
import * as P from '../../fs/kernel/protocol.js';
import { loadFuseLayout, type Layout } from './kernel-header.js';

let layout: Layout = { const: {} } as Layout;

beforeAll(() => { layout = loadFuseLayout(); });

const attr: Attr = {
  ino: 0x1_2345_6789, size: 2 ** 40 + 3, blocks: 77,
  atime: { sec: 1_700_000_001, nsec: 11 }, mtime: { sec: -5, nsec: 22 }, ctime: { sec: 1_700_000_003, nsec: 33 },
  mode: 0o100644, nlink: 3, uid: 1000, gid: 1001, rdev: 0x0801, blksize: 65536,
};

describe('kernel codec: layout from linux/fuse.h', () => {
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
