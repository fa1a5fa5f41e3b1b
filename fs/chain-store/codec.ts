import { Packr } from 'msgpackr';
import type { Ino } from '../core/api.js';
import type { InodeRecord } from '../core/store.js';

/**
 * Payload encodings of the filesystem's DAOs (encrypted by the chain layer; these are plaintext
 * forms). Durable format: a version byte, then msgpack without records.
 */
const FORMAT = 1;
const packr = new Packr({ useRecords: false, moreTypes: false });

export class FsRecordMalformed extends Error {
  override name = 'FsRecordMalformed';
}

function encode(value: unknown): Buffer {
  const body = packr.pack(value);
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = FORMAT;
  body.copy(out, 1);
  return out;
}

function decode(b: Buffer, what: string): any {
  if (b.length < 2 || b[0] !== FORMAT) throw new FsRecordMalformed(`${what}: unknown format ${b[0]}`);
  try {
    return packr.unpack(b.subarray(1));
  } catch (e) {
    throw new FsRecordMalformed(`${what}: ${(e as Error).message}`);
  }
}

const toBuf = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(v as Uint8Array));

export function encodeInode(r: InodeRecord): Buffer {
  return encode(r);
}

export function decodeInode(b: Buffer): InodeRecord {
  const r = decode(b, 'inode') as InodeRecord;
  if (typeof r?.ino !== 'number' || typeof r.mode !== 'number') throw new FsRecordMalformed('inode: missing fields');
  const x: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(r.xattrs ?? {})) x[k] = toBuf(v);
  r.xattrs = x;
  if (r.symlinkTarget) r.symlinkTarget = toBuf(r.symlinkTarget);
  if (r.inline) r.inline = toBuf(r.inline);
  return r;
}

export function encodeDentry(name: Buffer, ino: Ino): Buffer {
  return encode([name, ino]);
}

export function decodeDentry(b: Buffer): { name: Buffer; ino: Ino } {
  const v = decode(b, 'dentry') as unknown;
  if (!Array.isArray(v) || typeof v[1] !== 'number') throw new FsRecordMalformed('dentry: bad shape');
  return { name: toBuf(v[0]), ino: v[1] };
}

export interface Superblock { nextIno: Ino }

export function encodeSuperblock(s: Superblock): Buffer {
  return encode(s);
}

export function decodeSuperblock(b: Buffer): Superblock {
  const s = decode(b, 'superblock') as Superblock;
  if (typeof s?.nextIno !== 'number') throw new FsRecordMalformed('superblock: bad shape');
  return s;
}
