// Shared pieces of the chain's binary codec (codec.ts, meta-codec.ts): the msgpack instance, the
// typed "malformed" failure every decoder throws (decodeCommit turns it into a CommitRejected),
// bounded readers of decoded values, and the reader / grant encodings used by events and headers.
import { Packr } from 'msgpackr';
import { DATA_KEY_ID_BYTES, KEY_ID_BYTES } from './ids.js';
import type { DataKeyGrant, ReaderRef, SizeLimits } from './types.js';

export const packr = new Packr({ useRecords: false });

export class Malformed extends Error {}

export function bad(detail: string): never {
  throw new Malformed(detail);
}

// ---------------------------------------------------------------- helpers

export function hexToBin(hex: string, bytes: number, what: string): Buffer {
  const b = Buffer.from(hex, 'hex');
  if (b.length !== bytes || hex.length !== bytes * 2) throw new TypeError(`${what}: expected ${bytes} hex bytes`);
  return b;
}

export function binToHex(v: unknown, bytes: number, what: string): string {
  if (!(v instanceof Uint8Array) || v.length !== bytes) bad(`${what}: expected ${bytes} bytes`);
  if (Buffer.isBuffer(v)) return v.toString('hex');
  return Buffer.from(v.buffer, v.byteOffset, v.length).toString('hex');
}

export function asBuffer(v: unknown, what: string, max: number): Buffer {
  if (!(v instanceof Uint8Array)) bad(`${what}: expected bytes`);
  if (v.length > max) bad(`${what}: ${v.length} bytes is over the limit of ${max}`);
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.length);
}

export function asUint(v: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) bad(`${what}: expected an unsigned integer`);
  return v;
}

export function asArray(v: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(v)) bad(`${what}: expected an array`);
  if (v.length > max) bad(`${what}: ${v.length} entries is over the limit of ${max}`);
  return v;
}

export function asMap(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) bad(`${what}: expected a map`);
  return v as Record<string, unknown>;
}

export function unpack(bytes: Buffer, what: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch (e) {
    bad(`${what}: does not decode (${(e as Error).message})`);
  }
}

const KIND_SYM = 1;
const KIND_KEM = 2;

export function encodeReader(r: ReaderRef): [number, Buffer] {
  return [r.kind === 'sym' ? KIND_SYM : KIND_KEM, hexToBin(r.id, KEY_ID_BYTES, 'reader id')];
}

export function decodeReader(v: unknown): ReaderRef {
  const a = asArray(v, 'reader', 2);
  if (a.length !== 2) bad('reader: expected [kind, id]');
  const kind = a[0] === KIND_SYM ? 'sym' : a[0] === KIND_KEM ? 'kem' : bad('reader: unknown kind');
  return { kind, id: binToHex(a[1], KEY_ID_BYTES, 'reader id') };
}

export function encodeReaders(rs: ReaderRef[]): [number, Buffer][] {
  return rs.map(encodeReader);
}

export function decodeReaders(v: unknown, limits: SizeLimits): ReaderRef[] {
  return asArray(v, 'readers', limits.maxAclKeys).map(decodeReader);
}

export function encodeGrant(g: DataKeyGrant): unknown {
  return [
    hexToBin(g.id, DATA_KEY_ID_BYTES, 'data key id'),
    g.wraps.map((w) => [...encodeReader(w.reader), w.sealed]),
  ];
}

export function decodeGrant(v: unknown, limits: SizeLimits): DataKeyGrant {
  const a = asArray(v, 'grant', 2);
  if (a.length !== 2) bad('grant: expected [id, wraps]');
  const wraps = asArray(a[1], 'grant wraps', limits.maxWrapsPerGrant).map((w) => {
    const x = asArray(w, 'wrap', 3);
    if (x.length !== 3) bad('wrap: expected [kind, reader, sealed]');
    return { reader: decodeReader([x[0], x[1]]), sealed: asBuffer(x[2], 'wrap', 64 * 1024) };
  });
  return { id: binToHex(a[0], DATA_KEY_ID_BYTES, 'data key id'), wraps };
}
