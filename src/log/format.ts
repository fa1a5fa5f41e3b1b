// On-disk format of segments, frames and the manifest. Little-endian throughout.
//
// Segment header (variable length, records start right after it):
//   0  magic "ATEREDO\0"      8
//   8  format version u8      (1)
//   9  flags u8               bit 0: genesis hash present
//  10  chain id length u16
//  12  header length u32      = offset of the first record frame
//  16  segment number u32
//  20  first seq u64          (lo u32, hi u32): seq the segment starts at; keeps nextSeq across compaction
//  28  genesis hash           32 bytes (zero when absent)
//  60  chain id               utf-8
//  ..  crc32 u32              over everything before it
//
// Record frame:
//   0  crc32 u32   over bytes 4 .. end (length, seq and payload: a torn or flipped frame never verifies)
//   4  length u32  payload length
//   8  seq u64     (lo u32, hi u32)
//  16  payload
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';
import type { CutCertificate } from './chain-hash.js';
import { crc32Parts } from '../crypto/known-crc.js';

export const MAGIC = Buffer.from('ATEREDO\0', 'latin1');
export const FORMAT_VERSION = 1;
export const FRAME_HEADER = 16;
export const HEADER_FIXED = 60;
export const MANIFEST = 'MANIFEST';
export const MANIFEST_TMP = 'MANIFEST.tmp';
export const LOCK = 'LOCK';
const TWO32 = 0x1_0000_0000;

export function segmentName(n: number): string {
  return `${String(n).padStart(8, '0')}.seg`;
}
export function parseSegmentName(name: string): number | null {
  const m = /^(\d{8,})\.seg$/.exec(name);
  return m ? Number(m[1]) : null;
}

export interface SegmentHeader {
  version: number;
  chainId: string;
  genesisHash: Buffer | null;
  headerLen: number;
  segment: number;
  firstSeq: number;
}

export function encodeHeader(h: Omit<SegmentHeader, 'headerLen' | 'version'>): Buffer {
  const id = Buffer.from(h.chainId, 'utf8');
  if (id.length > 0xffff) throw new RangeError('chain id too long');
  const len = HEADER_FIXED + id.length + 4;
  const b = Buffer.alloc(len);
  MAGIC.copy(b, 0);
  b[8] = FORMAT_VERSION;
  b[9] = h.genesisHash ? 1 : 0;
  b.writeUInt16LE(id.length, 10);
  b.writeUInt32LE(len, 12);
  b.writeUInt32LE(h.segment, 16);
  b.writeUInt32LE(h.firstSeq % TWO32, 20);
  b.writeUInt32LE(Math.floor(h.firstSeq / TWO32), 24);
  if (h.genesisHash) Buffer.from(h.genesisHash).copy(b, 28, 0, 32);
  id.copy(b, HEADER_FIXED);
  b.writeUInt32LE(crc32(b.subarray(0, len - 4)), len - 4);
  return b;
}

/** Returns the header, or a string saying what is wrong with it. `b` may be longer than the header. */
export function decodeHeader(b: Buffer): SegmentHeader | string {
  if (b.length < HEADER_FIXED + 4) return 'header truncated';
  if (!b.subarray(0, 8).equals(MAGIC)) return 'bad magic';
  if (b[8] !== FORMAT_VERSION) return `unsupported format version ${b[8]}`;
  const idLen = b.readUInt16LE(10);
  const len = b.readUInt32LE(12);
  if (len !== HEADER_FIXED + idLen + 4) return 'bad header length';
  if (b.length < len) return 'header truncated';
  if (crc32(b.subarray(0, len - 4)) !== b.readUInt32LE(len - 4)) return 'header checksum mismatch';
  return {
    version: b[8]!,
    chainId: b.subarray(HEADER_FIXED, HEADER_FIXED + idLen).toString('utf8'),
    genesisHash: b[9]! & 1 ? Buffer.from(b.subarray(28, 60)) : null,
    headerLen: len,
    segment: b.readUInt32LE(16),
    firstSeq: b.readUInt32LE(20) + b.readUInt32LE(24) * TWO32,
  };
}

// CRC-32 (IEEE, the same value as zlib.crc32). zlib.crc32 is fast on bulk data (~1.5 GB/s here)
// but costs ~1 us per call; below a few hundred bytes this slicing-by-8 table loop is 3-4x faster,
// which is what matters for opening a log of many small records.
const T = new Int32Array(256 * 8);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  T[i] = c;
}
for (let i = 0; i < 256; i++) {
  let c = T[i]!;
  for (let t = 1; t < 8; t++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[t * 256 + i] = c;
  }
}
const JS_CRC_MAX = 384;

/** CRC-32 of b[start, end). */
export function crc(b: Buffer, start: number, end: number): number {
  if (end - start >= JS_CRC_MAX) return crc32(b.subarray(start, end));
  let c = -1;
  let i = start;
  const e8 = end - 7;
  for (; i < e8; i += 8) {
    const a = c ^ (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24));
    c =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + b[i + 4]!]! ^
      T[512 + b[i + 5]!]! ^
      T[256 + b[i + 6]!]! ^
      T[b[i + 7]!]!;
  }
  for (; i < end; i++) c = T[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function encodeFrame(seq: number, payload: Uint8Array): Buffer {
  const n = payload.length;
  const f = Buffer.allocUnsafe(FRAME_HEADER + n);
  f.writeUInt32LE(n, 4);
  f.writeUInt32LE(seq % TWO32, 8);
  f.writeUInt32LE(Math.floor(seq / TWO32), 12);
  f.set(payload, FRAME_HEADER);
  f.writeUInt32LE(crc(f, 4, f.length), 0);
  return f;
}

/**
 * The frame header alone, for a payload written as its own iovec right after it (no copy of a
 * large payload into a frame buffer). Same bytes as encodeFrame's first FRAME_HEADER bytes: the
 * CRC runs over header[4..16) and then the payload.
 */
export function encodeFrameHeader(seq: number, payload: Uint8Array): Buffer {
  return encodeFrameHeaderParts(seq, [payload], payload.length);
}

/** encodeFrameHeader for a payload given as consecutive pieces of `size` bytes in all. */
export function encodeFrameHeaderParts(seq: number, parts: readonly Uint8Array[], size: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER);
  h.writeUInt32LE(size, 4);
  h.writeUInt32LE(seq % TWO32, 8);
  h.writeUInt32LE(Math.floor(seq / TWO32), 12);
  // A sealed payload's CRC computed on its worker is combined in, not computed again here.
  h.writeUInt32LE(crc32Parts(parts, crc(h, 4, FRAME_HEADER)), 0);
  return h;
}

/** Seq of a frame whose header starts at `off` in `b` (no verification). */
export function frameSeq(b: Buffer, off: number): number {
  return b.readUInt32LE(off + 8) + b.readUInt32LE(off + 12) * TWO32;
}
export function frameLen(b: Buffer, off: number): number {
  return b.readUInt32LE(off + 4);
}
/** Whether the complete frame at `off` (header + payload present in `b`) verifies. */
export function frameOk(b: Buffer, off: number, len: number): boolean {
  return crc(b, off + 4, off + FRAME_HEADER + len) === b.readUInt32LE(off);
}

// Manifest: the live segment set, in log order, and the certificate of the last compaction's cut
// (chain-hash.ts). Written to MANIFEST.tmp, fsynced, renamed.
//   version u8 (1) | msgpack { chainId, segments, cut? } | crc32 u32 over the preceding bytes
const packr = new Packr({ useRecords: false });
export interface Manifest {
  chainId: string;
  segments: number[];
  cut?: CutCertificate | null;
}
export function encodeManifest(m: Manifest): Buffer {
  const body = packr.pack({ chainId: m.chainId, segments: m.segments, ...(m.cut ? { cut: m.cut } : {}) });
  const b = Buffer.alloc(1 + body.length + 4);
  b[0] = 1;
  body.copy(b, 1);
  b.writeUInt32LE(crc32(b.subarray(0, 1 + body.length)), 1 + body.length);
  return b;
}
export function decodeManifest(b: Buffer): Manifest | string {
  if (b.length < 6) return 'manifest truncated';
  if (crc32(b.subarray(0, b.length - 4)) !== b.readUInt32LE(b.length - 4)) return 'manifest checksum mismatch';
  if (b[0] !== 1) return `unsupported manifest version ${b[0]}`;
  const m = packr.unpack(b.subarray(1, b.length - 4)) as Partial<Manifest>;
  if (typeof m?.chainId !== 'string' || !Array.isArray(m.segments) || !m.segments.every((s) => Number.isInteger(s) && s >= 0))
    return 'manifest malformed';
  if (m.cut === undefined || m.cut === null) return { chainId: m.chainId, segments: m.segments };
  const c = m.cut as Partial<CutCertificate>;
  const bin = (x: unknown, n?: number) => x instanceof Uint8Array && (n === undefined || x.length === n);
  if (!Number.isInteger(c.seq) || c.seq! < 0 || !bin(c.hash, 32) || !bin(c.kept, 32) || !bin(c.sig) || !bin(c.signer))
    return 'manifest malformed (compaction cut)';
  const buf = (x: Uint8Array) => Buffer.from(x);
  return { chainId: m.chainId, segments: m.segments, cut: { seq: c.seq!, hash: buf(c.hash!), kept: buf(c.kept!), sig: buf(c.sig!), signer: buf(c.signer!) } };
}
