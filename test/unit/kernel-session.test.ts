/**
 * The session's request handling without a kernel: requests are encoded as the kernel would
 * (fuse.h layouts), handed to Session.handle, and the replies — written to a plain file instead of
 * /dev/fuse, one write per reply — are decoded back. The core is the real Filesystem + MemoryStore.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Filesystem, MemoryStore } from '../../fs/core/index.js';
import { readU64, writeU64 } from '../../fs/kernel/codec.js';
import { ENTRY_OUT_SIZE, INIT, Op } from '../../fs/kernel/protocol.js';
import { Session } from '../../fs/kernel/session.js';

interface Reply { len: number; error: number; unique: number; body: Buffer }

let dir: string;
let fd: number;
let core: Filesystem;
let session: Session;
let unique = 0;
let readPos = 0;

function request(opcode: number, nodeid: number, body: Buffer, uid = 0): number {
  const b = Buffer.alloc(40 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  const u = (unique += 2);
  writeU64(b, 8, u);
  writeU64(b, 16, nodeid);
  b.writeUInt32LE(uid, 24);
  b.writeUInt32LE(uid, 28);
  b.writeUInt32LE(4242, 32);
  body.copy(b, 40);
  session.handle(b, b.length);
  return u;
}

/** Replies written since the last call. */
function replies(): Reply[] {
  const all = readFileSync(join(dir, 'replies'));
  const out: Reply[] = [];
  let o = readPos;
  while (o + 16 <= all.length) {
    const len = all.readUInt32LE(o);
    out.push({ len, error: all.readInt32LE(o + 4), unique: readU64(all, o + 8), body: all.subarray(o + 16, o + len) });
    o += len;
  }
  readPos = o;
  return out;
}

function one(): Reply {
  const r = replies();
  expect(r.length).toBe(1);
  return r[0]!;
}

const cstr = (...parts: string[]) => Buffer.concat(parts.map((p) => Buffer.from(p + '\0')));
function u32s(...v: number[]): Buffer {
  const b = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => b.writeUInt32LE(x >>> 0, i * 4));
  return b;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'atefs-ksession-'));
  fd = openSync(join(dir, 'replies'), 'w+');
  core = new Filesystem(new MemoryStore({ cacheTimeout: 5 }));
  readPos = 0;
  session = new Session(fd, core, {
    writebackCache: false, maxWrite: 1 << 20, negativeTimeout: 2, attrTimeout: 1, cacheDir: false,
    wakeName: Buffer.from('.wake'), debug: false,
  }, { onInit: () => undefined, onWake: () => undefined, onDestroyed: () => undefined });
});
afterEach(() => { closeSync(fd); rmSync(dir, { recursive: true, force: true }); });

describe('kernel session', () => {
  it('INIT: answers our minor and the flags both sides have, with 1 MiB writes', () => {
    const kflags = 0xffffffff & ~INIT.WRITEBACK_CACHE;
    const u = request(Op.INIT, 0, Buffer.concat([u32s(7, 45, 131072, kflags, 0), Buffer.alloc(44)]));
    const r = one();
    expect(r.unique).toBe(u);
    expect(r.error).toBe(0);
    expect(r.body.length).toBe(64);
    expect(r.body.readUInt32LE(0)).toBe(7);
    expect(r.body.readUInt32LE(4)).toBe(38);
    const flags = r.body.readUInt32LE(12);
    expect(flags & INIT.MAX_PAGES).toBe(INIT.MAX_PAGES);
    expect(flags & INIT.HANDLE_KILLPRIV_V2).toBe(INIT.HANDLE_KILLPRIV_V2);
    expect(flags & INIT.WRITEBACK_CACHE).toBe(0);
    expect(r.body.readUInt32LE(20)).toBe(1 << 20); // max_write
    expect(r.body.readUInt16LE(28)).toBe(256);     // max_pages
    expect(session.initialized).toBe(true);
  });

  it('LOOKUP of a missing name is a cached negative entry; MKDIR then LOOKUP count lookups', () => {
    request(Op.LOOKUP, 1, cstr('nope'));
    let r = one();
    expect(r.error).toBe(0);
    expect(r.body.length).toBe(ENTRY_OUT_SIZE);
    expect(readU64(r.body, 0)).toBe(0);      // nodeid 0: negative
    expect(readU64(r.body, 16)).toBe(2);     // entry_valid = negativeTimeout
    request(Op.MKDIR, 1, Buffer.concat([u32s(0o755, 0o022), cstr('d')]));
    r = one();
    expect(r.error).toBe(0);
    const ino = readU64(r.body, 0);
    expect(ino).toBeGreaterThan(1);
    expect(readU64(r.body, 16)).toBe(5);     // entry timeout from the store
    expect(r.body.readUInt32LE(40 + 60) & 0o170000).toBe(0o040000);
    request(Op.LOOKUP, 1, cstr('d'));
    expect(readU64(one().body, 0)).toBe(ino);
    expect(session.lookupsOutstanding).toBe(2);
    // FORGET and BATCH_FORGET get no reply
    const f = Buffer.alloc(8); writeU64(f, 0, 1);
    request(Op.FORGET, ino, f);
    const bf = Buffer.alloc(8 + 16); bf.writeUInt32LE(1, 0); writeU64(bf, 8, ino); writeU64(bf, 16, 1);
    request(Op.BATCH_FORGET, 0, bf);
    expect(replies()).toEqual([]);
    expect(session.lookupsOutstanding).toBe(0);
  });

  it('the waker name in the root is answered ENOENT, never cached, and wakes the loop', () => {
    let woke = 0;
    session = new Session(fd, core, {
      writebackCache: false, maxWrite: 1 << 20, negativeTimeout: 2, attrTimeout: 1, cacheDir: false,
      wakeName: Buffer.from('.wake'), debug: false,
    }, { onInit: () => undefined, onWake: () => { woke++; }, onDestroyed: () => undefined });
    request(Op.LOOKUP, 1, cstr('.wake'));
    expect(one().error).toBe(-2);
    expect(woke).toBe(1);
  });

  it('xattrs: size 0 probes the length, a short buffer is ERANGE, then the value', () => {
    request(Op.CREATE, 1, Buffer.concat([u32s(2, 0o100644, 0, 0), cstr('f')]));
    const r = one();
    expect(r.error).toBe(0);
    expect(r.body.length).toBe(ENTRY_OUT_SIZE + 16);
    const ino = readU64(r.body, 0);
    request(Op.SETXATTR, ino, Buffer.concat([u32s(5, 0), cstr('user.a'), Buffer.from('hello')]));
    expect(one().error).toBe(0);
    request(Op.GETXATTR, ino, Buffer.concat([u32s(0, 0), cstr('user.a')]));
    let g = one();
    expect(g.body.length).toBe(8);
    expect(g.body.readUInt32LE(0)).toBe(5);
    request(Op.GETXATTR, ino, Buffer.concat([u32s(3, 0), cstr('user.a')]));
    expect(one().error).toBe(-34);
    request(Op.GETXATTR, ino, Buffer.concat([u32s(100, 0), cstr('user.a')]));
    g = one();
    expect(g.body.toString()).toBe('hello');
    request(Op.LISTXATTR, ino, u32s(0, 0));
    expect(one().body.readUInt32LE(0)).toBe(7); // "user.a\0"
    request(Op.LISTXATTR, ino, u32s(64, 0));
    expect(one().body.toString()).toBe('user.a\0');
    request(Op.GETXATTR, ino, Buffer.concat([u32s(0, 0), cstr('user.none')]));
    expect(one().error).toBe(-61); // ENODATA
  });

  it('WRITE and READ through a handle; READ replies carry the data after the header', () => {
    request(Op.CREATE, 1, Buffer.concat([u32s(2, 0o100644, 0, 0), cstr('f')]));
    const c = one();
    const ino = readU64(c.body, 0);
    const fh = readU64(c.body, ENTRY_OUT_SIZE);
    const data = Buffer.from('x'.repeat(1000));
    const w = Buffer.alloc(40); writeU64(w, 0, fh); writeU64(w, 8, 10); w.writeUInt32LE(data.length, 16);
    request(Op.WRITE, ino, Buffer.concat([w, data]));
    const wr = one();
    expect(wr.error).toBe(0);
    expect(wr.body.readUInt32LE(0)).toBe(1000);
    const rd = Buffer.alloc(40); writeU64(rd, 0, fh); writeU64(rd, 8, 0); rd.writeUInt32LE(4096, 16);
    request(Op.READ, ino, rd);
    const rr = one();
    expect(rr.len).toBe(16 + 1010);
    expect(rr.body.subarray(0, 10).every((x) => x === 0)).toBe(true);
    expect(rr.body.subarray(10).toString()).toBe(data.toString());
  });

  it('READDIRPLUS: entries that do not fit are forgotten again, "." and ".." count nothing', () => {
    for (let i = 0; i < 40; i++) {
      request(Op.MKNOD, 1, Buffer.concat([u32s(0o100644, 0, 0, 0), cstr(`file-with-a-longish-name-${i}`)]));
    }
    const made = replies();
    expect(made.every((r) => r.error === 0)).toBe(true);
    const f = Buffer.alloc(8); writeU64(f, 0, 1);
    for (const r of made) request(Op.FORGET, readU64(r.body, 0), f);
    expect(session.lookupsOutstanding).toBe(0);
    request(Op.OPENDIR, 1, u32s(0, 0));
    const fh = readU64(one().body, 0);
    // A small buffer: the core is asked for size/168 entries, only some fit.
    const rd = Buffer.alloc(40); writeU64(rd, 0, fh); writeU64(rd, 8, 0); rd.writeUInt32LE(1024, 16);
    request(Op.READDIRPLUS, 1, rd);
    const r = one();
    let o = 0;
    const names: string[] = [];
    let linked = 0;
    while (o < r.body.length) {
      const nodeid = readU64(r.body, o);
      const nl = r.body.readUInt32LE(o + 128 + 16);
      names.push(r.body.toString('utf8', o + 152, o + 152 + nl));
      if (nodeid !== 0) linked++;
      o += (152 + nl + 7) & ~7;
    }
    expect(names.slice(0, 2)).toEqual(['.', '..']);
    expect(linked).toBe(names.length - 2);
    expect(session.lookupsOutstanding).toBe(linked);
    // The core holds exactly the lookups the kernel got: forgetting them leaves zero.
    let held = 0;
    // The core's inode table (internal): the Map inside the InodeTable of the Filesystem's CoreState
    // (fs/core/core-state.ts).
    const t = (core as unknown as { core: { table: { map: Map<number, { ino: number; lookups: number }> } } }).core.table.map;
    for (const inode of t.values()) {
      if (inode.ino !== 1) held += inode.lookups;
    }
    expect(held).toBe(linked);
  });

  it('errors: core errors map to errno, unknown opcodes are ENOSYS, the session keeps serving', () => {
    request(Op.RMDIR, 1, cstr('missing'));
    expect(one().error).toBe(-2);
    request(Op.GETATTR, 999, Buffer.alloc(16));
    expect(one().error).toBeLessThan(0);
    request(Op.IOCTL, 1, Buffer.alloc(32));
    expect(one().error).toBe(-38);
    request(Op.BMAP, 1, Buffer.alloc(16));
    expect(one().error).toBe(-38);
    // a truncated request (no body where one is needed) is an error reply, not a crash
    request(Op.SETATTR, 1, Buffer.alloc(0));
    expect(one().error).toBeLessThan(0);
    request(Op.GETATTR, 1, Buffer.alloc(16));
    const ok = one();
    expect(ok.error).toBe(0);
    expect(ok.body.readUInt32LE(16 + 60) & 0o170000).toBe(0o040000);
    expect(session.counters().errors).toBeGreaterThanOrEqual(5);
  });

  it('FSYNC replies once the core promise settles', async () => {
    request(Op.CREATE, 1, Buffer.concat([u32s(2, 0o100644, 0, 0), cstr('f')]));
    const c = one();
    const ino = readU64(c.body, 0);
    const fs = Buffer.alloc(16); writeU64(fs, 0, readU64(c.body, ENTRY_OUT_SIZE));
    const u = request(Op.FSYNC, ino, fs);
    expect(session.pending.size).toBe(1);
    for (let i = 0; i < 100 && session.pending.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    const r = one();
    expect(r.unique).toBe(u);
    expect(r.error).toBe(0);
  });
});
