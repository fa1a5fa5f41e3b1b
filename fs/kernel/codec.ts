/**
 * Encoding and decoding of FUSE protocol structures at fixed offsets (linux/fuse.h, 7.38).
 *
 * u64 fields are read and written as two u32 halves: node ids, handles, sizes and offsets fit in
 * 2^53, so the hot path never allocates a BigInt. Only lock owners (hashed pointers, full 64 bits)
 * are read as BigInt, and only by the lock opcodes.
 */
import type { Attr, DirEntry, Entry, PosixLock, StatFs } from '../core/api.js';
import {
  ATTR_SIZE, DIRENTPLUS_HEADER_SIZE, DIRENT_HEADER_SIZE, ENTRY_OUT_SIZE, OFFSET_MAX_HI, OUT_HEADER_SIZE,
} from './protocol.js';

const TWO32 = 0x1_0000_0000;

export function readU64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * TWO32;
}

/** Signed 64-bit (times before 1970, lseek offsets). */
export function readI64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readInt32LE(off + 4) * TWO32;
}

export function writeU64(b: Buffer, off: number, v: number): void {
  b.writeUInt32LE(v >>> 0, off);
  b.writeUInt32LE(Math.floor(v / TWO32) >>> 0, off + 4);
}

export function writeI64(b: Buffer, off: number, v: number): void {
  const hi = Math.floor(v / TWO32);
  b.writeUInt32LE((v - hi * TWO32) >>> 0, off);
  b.writeInt32LE(hi, off + 4);
}

/** A NUL-terminated name starting at `start`; returns its end (exclusive, without the NUL). */
export function cstrEnd(b: Buffer, start: number, limit: number): number {
  const i = b.indexOf(0, start);
  return i < 0 || i > limit ? limit : i;
}

// ---- request header (fuse_in_header)
export const IN_LEN = 0;
export const IN_OPCODE = 4;
export const IN_UNIQUE = 8;
export const IN_NODEID = 16;
export const IN_UID = 24;
export const IN_GID = 28;
export const IN_PID = 32;
export const IN_TOTAL_EXTLEN = 36;

// ---- reply header (fuse_out_header)
export function writeOutHeader(b: Buffer, len: number, error: number, unique: number): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  writeU64(b, 8, unique);
}

// ---- fuse_attr (88 bytes)
export function writeAttr(b: Buffer, off: number, a: Attr): void {
  writeU64(b, off, a.ino);
  writeU64(b, off + 8, a.size);
  writeU64(b, off + 16, a.blocks);
  writeI64(b, off + 24, a.atime.sec);
  writeI64(b, off + 32, a.mtime.sec);
  writeI64(b, off + 40, a.ctime.sec);
  b.writeUInt32LE(a.atime.nsec, off + 48);
  b.writeUInt32LE(a.mtime.nsec, off + 52);
  b.writeUInt32LE(a.ctime.nsec, off + 56);
  b.writeUInt32LE(a.mode >>> 0, off + 60);
  b.writeUInt32LE(a.nlink >>> 0, off + 64);
  b.writeUInt32LE(a.uid >>> 0, off + 68);
  b.writeUInt32LE(a.gid >>> 0, off + 72);
  b.writeUInt32LE(a.rdev >>> 0, off + 76);
  b.writeUInt32LE(a.blksize >>> 0, off + 80);
  b.writeUInt32LE(0, off + 84); // flags
}

export function readAttr(b: Buffer, off: number): Attr {
  return {
    ino: readU64(b, off), size: readU64(b, off + 8), blocks: readU64(b, off + 16),
    atime: { sec: readI64(b, off + 24), nsec: b.readUInt32LE(off + 48) },
    mtime: { sec: readI64(b, off + 32), nsec: b.readUInt32LE(off + 52) },
    ctime: { sec: readI64(b, off + 40), nsec: b.readUInt32LE(off + 56) },
    mode: b.readUInt32LE(off + 60), nlink: b.readUInt32LE(off + 64), uid: b.readUInt32LE(off + 68),
    gid: b.readUInt32LE(off + 72), rdev: b.readUInt32LE(off + 76), blksize: b.readUInt32LE(off + 80),
  };
}

/** Seconds (possibly fractional) as the protocol's (u64 sec, u32 nsec) pair. */
function writeTimeout(b: Buffer, secOff: number, nsecOff: number, t: number): void {
  const s = Math.floor(t);
  writeU64(b, secOff, s);
  b.writeUInt32LE(Math.round((t - s) * 1e9) >>> 0, nsecOff);
}

// ---- fuse_entry_out (128 bytes)
export function writeEntry(b: Buffer, off: number, e: Entry): void {
  writeU64(b, off, e.ino);
  writeU64(b, off + 8, e.generation);
  writeTimeout(b, off + 16, off + 32, e.entryTimeout);
  writeTimeout(b, off + 24, off + 36, e.attrTimeout);
  writeAttr(b, off + 40, e.attr);
}

/** A negative entry (nodeid 0): the kernel caches "no such name" for `timeout` seconds. */
export function writeNegativeEntry(b: Buffer, off: number, timeout: number): void {
  b.fill(0, off, off + ENTRY_OUT_SIZE);
  writeTimeout(b, off + 16, off + 32, timeout);
}

// ---- fuse_attr_out (104 bytes)
export function writeAttrOut(b: Buffer, off: number, a: Attr, timeout: number): void {
  writeTimeout(b, off, off + 8, timeout);
  b.writeUInt32LE(0, off + 12);
  writeAttr(b, off + 16, a);
}

// ---- fuse_open_out (16 bytes)
export function writeOpenOut(b: Buffer, off: number, fh: number, openFlags: number): void {
  writeU64(b, off, fh);
  b.writeUInt32LE(openFlags >>> 0, off + 8);
  b.writeUInt32LE(0, off + 12);
}

// ---- fuse_kstatfs (80 bytes)
export function writeStatfs(b: Buffer, off: number, s: StatFs): void {
  b.fill(0, off, off + 80);
  writeU64(b, off, s.blocks);
  writeU64(b, off + 8, s.bfree);
  writeU64(b, off + 16, s.bavail);
  writeU64(b, off + 24, s.files);
  writeU64(b, off + 32, s.ffree);
  b.writeUInt32LE(s.bsize >>> 0, off + 40);
  b.writeUInt32LE(s.namemax >>> 0, off + 44);
  b.writeUInt32LE(s.frsize >>> 0, off + 48);
}

// ---- fuse_file_lock (24 bytes). OFFSET_MAX ("to end of file") maps to Number.MAX_SAFE_INTEGER.
export function readLock(b: Buffer, off: number): PosixLock {
  const endHi = b.readUInt32LE(off + 12);
  const end = endHi >= OFFSET_MAX_HI ? Number.MAX_SAFE_INTEGER : readU64(b, off + 8);
  return { start: readU64(b, off), end, type: b.readUInt32LE(off + 16), pid: b.readUInt32LE(off + 20) };
}

export function writeLock(b: Buffer, off: number, l: PosixLock): void {
  writeU64(b, off, l.start);
  if (l.end >= Number.MAX_SAFE_INTEGER) {
    b.writeUInt32LE(0xffffffff, off + 8);
    b.writeUInt32LE(OFFSET_MAX_HI, off + 12);
  } else {
    writeU64(b, off + 8, l.end);
  }
  b.writeUInt32LE(l.type >>> 0, off + 16);
  b.writeUInt32LE(l.pid >>> 0, off + 20);
}

// ---- fuse_dirent / fuse_direntplus (variable, 8-byte aligned)
export function direntSize(nameLen: number): number {
  return (DIRENT_HEADER_SIZE + nameLen + 7) & ~7;
}

export function direntplusSize(nameLen: number): number {
  return (DIRENTPLUS_HEADER_SIZE + nameLen + 7) & ~7;
}

/** Writes one dirent at `off` if it fits before `limit`; returns the new offset, or -1 when full. */
export function writeDirent(b: Buffer, off: number, limit: number, d: DirEntry): number {
  const nl = d.name.length;
  const size = direntSize(nl);
  if (off + size > limit) return -1;
  writeU64(b, off, d.ino);
  writeU64(b, off + 8, d.offset);
  b.writeUInt32LE(nl, off + 16);
  b.writeUInt32LE((d.type >>> 12) & 0xf, off + 20); // DT_* = S_IFMT >> 12
  d.name.copy(b, off + 24);
  const pad = off + 24 + nl;
  if (pad < off + size) b.fill(0, pad, off + size);
  return off + size;
}

export function writeDirentplus(b: Buffer, off: number, limit: number, d: DirEntry, e: Entry | null): number {
  const nl = d.name.length;
  const size = direntplusSize(nl);
  if (off + size > limit) return -1;
  if (e) writeEntry(b, off, e);
  else b.fill(0, off, off + ENTRY_OUT_SIZE); // "." and "..": nodeid 0, the kernel skips them
  const o = off + ENTRY_OUT_SIZE;
  writeU64(b, o, d.ino);
  writeU64(b, o + 8, d.offset);
  b.writeUInt32LE(nl, o + 16);
  b.writeUInt32LE((d.type >>> 12) & 0xf, o + 20);
  d.name.copy(b, o + 24);
  const pad = o + 24 + nl;
  if (pad < off + size) b.fill(0, pad, off + size);
  return off + size;
}

// ---- notifications (unique 0, error = notify code)
export function encodeInvalInode(b: Buffer, code: number, ino: number, off: number, len: number): number {
  const n = OUT_HEADER_SIZE + 24;
  writeOutHeader(b, n, code, 0);
  writeU64(b, 16, ino);
  writeI64(b, 24, off);
  writeI64(b, 32, len);
  return n;
}

export function encodeInvalEntry(b: Buffer, code: number, parent: number, name: Buffer): number {
  const n = OUT_HEADER_SIZE + 16 + name.length + 1;
  writeOutHeader(b, n, code, 0);
  writeU64(b, 16, parent);
  b.writeUInt32LE(name.length, 24);
  b.writeUInt32LE(0, 28);
  name.copy(b, 32);
  b[32 + name.length] = 0;
  return n;
}

export function encodeDelete(b: Buffer, code: number, parent: number, child: number, name: Buffer): number {
  const n = OUT_HEADER_SIZE + 24 + name.length + 1;
  writeOutHeader(b, n, code, 0);
  writeU64(b, 16, parent);
  writeU64(b, 24, child);
  b.writeUInt32LE(name.length, 32);
  b.writeUInt32LE(0, 36);
  name.copy(b, 40);
  b[40 + name.length] = 0;
  return n;
}

export { ATTR_SIZE };
