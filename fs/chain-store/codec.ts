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

/**
 * A chain uses a feature this version does not know (a newer atefs wrote it): reading it without
 * would show wrong content, so the mount is refused instead.
 */
export class FsFeatureUnknown extends Error {
  override name = 'FsFeatureUnknown';
  constructor(readonly features: string[]) {
    super(`this chain uses file system features this version of atefs does not know (${features.join(', ')}): mount it with a newer atefs`);
  }
}

function encode(value: unknown, format = FORMAT): Buffer {
  const body = packr.pack(value);
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = format;
  body.copy(out, 1);
  return out;
}

function decode(b: Buffer, what: string, formats: readonly number[] = [FORMAT]): any {
  if (b.length < 2 || !formats.includes(b[0]!)) throw new FsRecordMalformed(`${what}: unknown format ${b[0]}`);
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

/**
 * Features a chain's content needs its readers to understand (the superblock's `features`):
 *  - 'pageDeltas': blocks may have page deltas (block-delta.ts); a reader that ignored them would
 *    read stale pages.
 */
export const FS_FEATURES = ['pageDeltas'] as const;
export type FsFeature = (typeof FS_FEATURES)[number];

export interface Superblock {
  nextIno: Ino;
  /** Features the chain's content needs (see FS_FEATURES); absent: none. */
  features?: FsFeature[];
}

/**
 * Format 2 of the superblock: the same map with `features`. A superblock without features is
 * written in format 1, exactly as before features existed. One with features is format 2, which
 * every atefs from before them refuses at mount ("superblock: unknown format 2"): the local
 * chain's superblock is read on every open, so a reader that knows nothing of page deltas stops
 * instead of reading blocks without them. A reader that knows format 2 refuses features it does
 * not know itself (FsFeatureUnknown), so later features need no new format.
 */
const SUPERBLOCK_FEATURES_FORMAT = 2;

export function encodeSuperblock(s: Superblock): Buffer {
  if (!s.features?.length) return encode({ nextIno: s.nextIno });
  return encode({ nextIno: s.nextIno, features: [...new Set(s.features)].sort() }, SUPERBLOCK_FEATURES_FORMAT);
}

export function decodeSuperblock(b: Buffer): Superblock {
  const s = decode(b, 'superblock', [FORMAT, SUPERBLOCK_FEATURES_FORMAT]) as { nextIno?: unknown; features?: unknown };
  if (typeof s?.nextIno !== 'number') throw new FsRecordMalformed('superblock: bad shape');
  if (b[0] === FORMAT) return { nextIno: s.nextIno };
  if (!Array.isArray(s.features) || s.features.some((f) => typeof f !== 'string')) throw new FsRecordMalformed('superblock: bad features');
  const unknown = (s.features as string[]).filter((f) => !(FS_FEATURES as readonly string[]).includes(f));
  if (unknown.length) throw new FsFeatureUnknown(unknown);
  return { nextIno: s.nextIno, features: s.features as FsFeature[] };
}
