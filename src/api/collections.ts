// Collections are named in the API and numbered in the chain (a u32 of the parent's child list).
import { createHash } from 'node:crypto';

/** A collection: a number as the chain stores it, or a name mapped to one deterministically. */
export type Collection = number | string;

/** 0 is the default collection; a name maps to the first 4 bytes of its SHA-256 (never 0). */
export function collectionId(c: Collection | undefined): number {
  if (c === undefined) return 0;
  if (typeof c === 'number') {
    if (!Number.isInteger(c) || c < 0 || c > 0xffffffff) throw new RangeError(`collection must be a u32, got ${c}`);
    return c;
  }
  const n = createHash('sha256').update('ate/collection/v1\0').update(c).digest().readUInt32BE(0);
  return n === 0 ? 1 : n;
}
