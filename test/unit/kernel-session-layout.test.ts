/**
 * The offsets session.ts decodes requests at, checked by behaviour: every request below is laid out
 * with the compiler's offsets and constants of <linux/fuse.h> (kernel-header.ts) — opcode, header,
 * body — and handed to the real Session over the real core; the replies are read back at the
 * header's offsets too. A field the session reads from the wrong place changes what the core does
 * (a wrong size, mode, owner, time, handle or name) and shows here. Nothing of session.ts or
 * protocol.ts is used to build or read the bytes.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore } from '../../fs/core/index.js';
import { Session } from '../../fs/kernel/session.js';
import { loadFuseLayout, type Layout } from './kernel-header.js';

let L: Layout;
beforeAll(() => { L = loadFuseLayout(); });

interface Reply { error: number; unique: bigint; body: Buffer }
let dir: string;
let fd: number;
let session: Session;
let readPos = 0;
let unique = 100n;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'atefs-klayout-'));
  fd = openSync(join(dir, 'replies'), 'w+');
  readPos = 0;
  session = new Session(fd, new Filesystem(new MemoryStore({ cacheTimeout: 5 })), {
    writebackCache: false, maxWrite: 1 << 20, negativeTimeout: 2, attrTimeout: 1, cacheDir: false,
    wakeName: Buffer.from('.wake'), debug: false,
  }, { onInit: () => undefined, onWake: () => undefined, onDestroyed: () => undefined });
});
afterEach(() => { closeSync(fd); rmSync(dir, { recursive: true, force: true }); });

type Field = [name: string, bytes: 2 | 4 | 8, value: number | bigint];

/** A struct of the header: each field at the compiler's offset, the rest zero. */
function struct(s: string, fields: Field[], size = L[s]!.sizeof!): Buffer {
  const b = Buffer.alloc(size);
  for (const [f, bytes, v] of fields) {
    const off = L[s]![f];
    if (off === undefined) throw new Error(`${s}.${f} is not in the layout`);
    if (bytes === 8) b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), off);
    else if (bytes === 4) b.writeUInt32LE(Number(v) >>> 0, off);
    else b.writeUInt16LE(Number(v), off);
  }
  return b;
}

const cstr = (...parts: string[]) => Buffer.concat(parts.map((p) => Buffer.from(`${p}\0`)));

function request(op: string, nodeid: number | bigint, body: Buffer, uid = 0, gid = 0): bigint {
  const u = (unique += 2n);
  const h = struct('fuse_in_header', [
    ['opcode', 4, L.const[`FUSE_${op}`]!], ['unique', 8, u], ['nodeid', 8, nodeid], ['uid', 4, uid], ['gid', 4, gid], ['pid', 4, 4242],
  ]);
  const b = Buffer.concat([h, body]);
  b.writeUInt32LE(b.length, L.fuse_in_header!.len!);
  session.handle(b, b.length);
  return u;
}

function replies(): Reply[] {
  const all = readFileSync(join(dir, 'replies'));
  const out: Reply[] = [];
  const H = L.fuse_out_header!;
  while (readPos + H.sizeof! <= all.length) {
    const len = all.readUInt32LE(readPos + H.len!);
    out.push({ error: all.readInt32LE(readPos + H.error!), unique: all.readBigUInt64LE(readPos + H.unique!), body: all.subarray(readPos + H.sizeof!, readPos + len) });
    readPos += len;
  }
  return out;
}

function ok(u: bigint): Buffer {
  const r = replies();
  expect(r.length).toBe(1);
  expect(r[0]!.unique).toBe(u);
  expect(r[0]!.error).toBe(0);
  return r[0]!.body;
}

/** fuse_attr of an entry_out or attr_out reply, read at the header's offsets. */
function attrAt(b: Buffer, at: number) {
  const A = L.fuse_attr!;
  return {
    ino: b.readBigUInt64LE(at + A.ino!), size: Number(b.readBigUInt64LE(at + A.size!)), mode: b.readUInt32LE(at + A.mode!),
    nlink: b.readUInt32LE(at + A.nlink!), uid: b.readUInt32LE(at + A.uid!), gid: b.readUInt32LE(at + A.gid!),
    atime: Number(b.readBigInt64LE(at + A.atime!)), atimensec: b.readUInt32LE(at + A.atimensec!),
    mtime: Number(b.readBigInt64LE(at + A.mtime!)), mtimensec: b.readUInt32LE(at + A.mtimensec!), rdev: b.readUInt32LE(at + A.rdev!),
  };
}
const entryAttr = (b: Buffer) => attrAt(b, L.fuse_entry_out!.attr!);
const entryIno = (b: Buffer) => b.readBigUInt64LE(L.fuse_entry_out!.nodeid!);

/** CREATE of `name` in the root: its inode and the open handle. */
function create(name: string, mode = 0o100644, uid = 0): { ino: bigint; fh: bigint } {
  const body = Buffer.concat([struct('fuse_create_in', [['flags', 4, 2 /* O_RDWR */], ['mode', 4, mode], ['umask', 4, 0]]), cstr(name)]);
  const r = ok(request('CREATE', 1, body, uid, uid));
  return { ino: entryIno(r), fh: r.readBigUInt64LE(L.fuse_entry_out!.sizeof! + L.fuse_open_out!.fh!) };
}

function write(ino: bigint, fh: bigint, offset: number, data: Buffer): number {
  const w = struct('fuse_write_in', [['fh', 8, fh], ['offset', 8, offset], ['size', 4, data.length]]);
  return ok(request('WRITE', ino, Buffer.concat([w, data]))).readUInt32LE(0);
}

function read(ino: bigint, fh: bigint, offset: number, size: number): Buffer {
  return ok(request('READ', ino, struct('fuse_read_in', [['fh', 8, fh], ['offset', 8, offset], ['size', 4, size]])));
}

describe('session.ts decodes requests at the offsets of <linux/fuse.h>', () => {
  it('MKDIR, MKNOD and CREATE: mode, rdev and the caller from the header; WRITE and READ: handle, offset, size', () => {
    // The root open to all, so another caller may create in it.
    ok(request('SETATTR', 1, struct('fuse_setattr_in', [['valid', 4, L.const.FATTR_MODE!], ['mode', 4, 0o040777]])));
    const d = ok(request('MKDIR', 1, Buffer.concat([struct('fuse_mkdir_in', [['mode', 4, 0o750], ['umask', 4, 0]]), cstr('d')]), 1000, 1001));
    expect(entryAttr(d)).toMatchObject({ mode: 0o040750, uid: 1000, gid: 1001, nlink: 2 });
    const n = ok(request('MKNOD', 1, Buffer.concat([struct('fuse_mknod_in', [['mode', 4, 0o020640], ['rdev', 4, 0x0103], ['umask', 4, 0]]), cstr('null')])));
    expect(entryAttr(n)).toMatchObject({ mode: 0o020640, rdev: 0x0103 });
    const { ino, fh } = create('f', 0o100604);
    expect(fh).not.toBe(0n);
    const data = Buffer.from('0123456789abcdef'.repeat(300));
    expect(write(ino, fh, 70_000, data)).toBe(data.length);
    const back = read(ino, fh, 69_990, 20_000);
    expect(back.length).toBe(10 + data.length);
    expect(back.subarray(0, 10).every((x) => x === 0)).toBe(true);
    expect(back.subarray(10).equals(data)).toBe(true);
  });

  it('SETATTR: valid bits, size, mode, owner and both times with nanoseconds', () => {
    const { ino, fh } = create('s');
    const C = L.const;
    const body = struct('fuse_setattr_in', [
      ['valid', 4, C.FATTR_MODE! | C.FATTR_UID! | C.FATTR_GID! | C.FATTR_SIZE! | C.FATTR_ATIME! | C.FATTR_MTIME! | C.FATTR_FH!],
      ['fh', 8, fh], ['size', 8, 123_457], ['mode', 4, 0o100640], ['uid', 4, 2001], ['gid', 4, 2002],
      ['atime', 8, 1_600_000_001], ['atimensec', 4, 111], ['mtime', 8, 1_500_000_002], ['mtimensec', 4, 222_000_000],
    ]);
    const r = ok(request('SETATTR', ino, body));
    expect(attrAt(r, L.fuse_attr_out!.attr!)).toMatchObject({
      ino, size: 123_457, mode: 0o100640, uid: 2001, gid: 2002, atime: 1_600_000_001, atimensec: 111, mtime: 1_500_000_002, mtimensec: 222_000_000,
    });
    // Only the bits set count: a size alone leaves the mode and owner.
    const r2 = ok(request('SETATTR', ino, struct('fuse_setattr_in', [['valid', 4, C.FATTR_SIZE!], ['size', 8, 5], ['mode', 4, 0o100777], ['uid', 4, 9]])));
    expect(attrAt(r2, L.fuse_attr_out!.attr!)).toMatchObject({ size: 5, mode: 0o100640, uid: 2001 });
  });

  it('RENAME2 and LINK: the new directory, the names after the struct, the old node', () => {
    const d = entryIno(ok(request('MKDIR', 1, Buffer.concat([struct('fuse_mkdir_in', [['mode', 4, 0o755]]), cstr('sub')]))));
    const { ino } = create('old');
    ok(request('RENAME2', 1, Buffer.concat([struct('fuse_rename2_in', [['newdir', 8, d], ['flags', 4, 0]]), cstr('old', 'new')])));
    expect(entryIno(ok(request('LOOKUP', d, cstr('new'))))).toBe(ino);
    const l = ok(request('LINK', 1, Buffer.concat([struct('fuse_link_in', [['oldnodeid', 8, ino]]), cstr('again')])));
    expect(entryIno(l)).toBe(ino);
    expect(entryAttr(l).nlink).toBe(2);
  });

  it('SETXATTR and GETXATTR: sizes, flags, name and value where the header puts them', () => {
    const { ino } = create('x');
    const value = Buffer.from('a value of 24 bytes.....');
    const sx = struct('fuse_setxattr_in', [['size', 4, value.length], ['flags', 4, 0]], L.const.FUSE_COMPAT_SETXATTR_IN_SIZE!);
    ok(request('SETXATTR', ino, Buffer.concat([sx, cstr('user.k'), value])));
    const probe = ok(request('GETXATTR', ino, Buffer.concat([struct('fuse_getxattr_in', [['size', 4, 0]]), cstr('user.k')])));
    expect(probe.readUInt32LE(0)).toBe(value.length); // fuse_getxattr_out.size
    const got = ok(request('GETXATTR', ino, Buffer.concat([struct('fuse_getxattr_in', [['size', 4, 100]]), cstr('user.k')])));
    expect(got.equals(value)).toBe(true);
  });

  it('FALLOCATE, LSEEK and COPY_FILE_RANGE: handles, offsets, lengths, whence', () => {
    const a = create('a');
    const b = create('b');
    ok(request('FALLOCATE', a.ino, struct('fuse_fallocate_in', [['fh', 8, a.fh], ['offset', 8, 0], ['length', 8, 300_000], ['mode', 4, 0]])));
    expect(entryAttr(ok(request('LOOKUP', 1, cstr('a')))).size).toBe(300_000);
    const data = Buffer.alloc(5000, 7);
    write(a.ino, a.fh, 200_000, data);
    const seek = ok(request('LSEEK', a.ino, struct('fuse_lseek_in', [['fh', 8, a.fh], ['offset', 8, 205_000], ['whence', 4, 2 /* SEEK_END */]])));
    expect(Number(seek.readBigUInt64LE(0))).toBe(300_000 + 205_000); // SEEK_END: the size plus the offset
    const copied = ok(request('COPY_FILE_RANGE', a.ino, struct('fuse_copy_file_range_in', [
      ['fh_in', 8, a.fh], ['off_in', 8, 200_000], ['nodeid_out', 8, b.ino], ['fh_out', 8, b.fh], ['off_out', 8, 17], ['len', 8, 5000], ['flags', 8, 0],
    ])));
    expect(copied.readUInt32LE(0)).toBe(5000);
    const back = read(b.ino, b.fh, 0, 10_000);
    expect(back.length).toBe(5017);
    expect(back.subarray(17).equals(data)).toBe(true);
  });

  it('FLUSH, FSYNC and RELEASE: the handle; after RELEASE it is gone', async () => {
    const { ino, fh } = create('r');
    write(ino, fh, 0, Buffer.from('x'));
    ok(request('FLUSH', ino, struct('fuse_flush_in', [['fh', 8, fh], ['lock_owner', 8, 77]])));
    const u = request('FSYNC', ino, struct('fuse_fsync_in', [['fh', 8, fh], ['fsync_flags', 4, 1]]));
    for (let i = 0; i < 100 && session.pending.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    ok(u);
    ok(request('RELEASE', ino, struct('fuse_release_in', [['fh', 8, fh], ['flags', 4, 2]])));
    request('READ', ino, struct('fuse_read_in', [['fh', 8, fh], ['offset', 8, 0], ['size', 4, 10]]));
    expect(replies()[0]!.error).toBe(-9); // EBADF: the handle the RELEASE named is closed
  });
});

describe('protocol constants against <linux/fuse.h>', () => {
  it('opcodes', async () => {
    const { Op } = await import('../../fs/kernel/protocol.js');
    for (const [name, v] of Object.entries(L.const)) {
      if (!name.startsWith('FUSE_') || name.startsWith('FUSE_COMPAT')) continue;
      expect([name, (Op as Record<string, number>)[name.slice(5)]]).toEqual([name, v]);
    }
  });
});
