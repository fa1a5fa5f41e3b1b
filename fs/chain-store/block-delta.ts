/**
 * Page deltas: how a few rewritten 4 KiB pages of a committed block reach the log without the
 * whole block.
 *
 * Content lives in 64 KiB blocks (one DAO each). A database rewriting random 4 KiB pages dirties
 * one page per block between two fsyncs, and committing the whole block appended 16x the bytes
 * written: the log grew faster than compaction could shrink it (README, "Bounded space"). So a
 * block that is already in the chain and differs from its committed content in few pages gets a
 * delta DAO instead: the pages that differ from the block DAO (the "base"), cumulative — one delta
 * DAO per block, each version replacing the last, so old versions are simply dead log. Once the
 * pages would pass a quarter of the block, the whole block is written again and the delta is
 * emptied (a null payload, not a tombstone: compaction keeps tombstones' commits for a week).
 * A 4 KiB page rewrite then costs ~5 pages of log on average instead of 16.
 *
 * The decision reads the committed block through the transaction (Dio.tryLoad): the base and the
 * delta are in the commit's optimistic version check, so a delta is never applied to a base that
 * changed meanwhile (a remote commit is a Conflict, and the batch is built again).
 *
 * Reads: block = base, with the delta's pages copied over it and its length. Chains without
 * deltas read as before (the delta key is absent). DAO keys stay deterministic (keys.ts deltaKey).
 *
 * Payload format (plaintext; the chain layer encrypts): a version byte (1), the block's length
 * (u32 LE), the page count (u16 LE), the page indexes (u16 LE each, ascending), then the pages'
 * bytes in that order, each PAGE bytes except one clipped by the length.
 */
import { NotFound, type Dio } from '../../src/view/index.js';
import type { Ino } from '../core/api.js';
import { BLOCKS, DELTAS, blockKey, deltaKey, inodeKey } from './keys.js';

export const DELTA_PAGE = 4096;
const FORMAT = 1;
const HEADER = 7;

export class BlockDeltaMalformed extends Error {
  override name = 'BlockDeltaMalformed';
}

export interface BlockDelta {
  /** Length of the block the delta makes (the base is cut or zero-padded to it). */
  length: number;
  /** Page indexes, ascending. */
  pages: number[];
  /** The pages' bytes, concatenated in the order of `pages`. */
  body: Buffer;
}

/** A delta holding `pages` (ascending, all below the length) of `block`. */
export function encodeDelta(block: Buffer, pages: readonly number[]): Buffer {
  const length = block.length;
  let bodyLen = 0;
  for (const p of pages) bodyLen += Math.min(DELTA_PAGE, length - p * DELTA_PAGE);
  const out = Buffer.allocUnsafe(HEADER + 2 * pages.length + bodyLen);
  out[0] = FORMAT;
  out.writeUInt32LE(length, 1);
  out.writeUInt16LE(pages.length, 5);
  let at = HEADER;
  for (const p of pages) { out.writeUInt16LE(p, at); at += 2; }
  for (const p of pages) at += block.copy(out, at, p * DELTA_PAGE, Math.min(length, (p + 1) * DELTA_PAGE));
  return out;
}

export function decodeDelta(b: Buffer): BlockDelta {
  if (b.length < HEADER || b[0] !== FORMAT) throw new BlockDeltaMalformed(`block delta: unknown format ${b[0]}`);
  const length = b.readUInt32LE(1);
  const n = b.readUInt16LE(5);
  const pages: number[] = [];
  let bodyLen = 0;
  for (let i = 0; i < n; i++) {
    const p = b.readUInt16LE(HEADER + 2 * i);
    const len = Math.min(DELTA_PAGE, length - p * DELTA_PAGE);
    if (len <= 0 || (i > 0 && p <= pages[i - 1]!)) throw new BlockDeltaMalformed('block delta: bad page index');
    pages.push(p);
    bodyLen += len;
  }
  const start = HEADER + 2 * n;
  if (b.length !== start + bodyLen) throw new BlockDeltaMalformed('block delta: bad length');
  return { length, pages, body: b.subarray(start) };
}

/** The block a delta makes of `base` (a new buffer; the base is never written). */
export function applyDelta(base: Buffer, delta: BlockDelta): Buffer {
  const out = Buffer.alloc(delta.length);
  base.copy(out, 0, 0, Math.min(base.length, delta.length));
  let at = 0;
  for (const p of delta.pages) {
    const len = Math.min(DELTA_PAGE, delta.length - p * DELTA_PAGE);
    delta.body.copy(out, p * DELTA_PAGE, at, at + len);
    at += len;
  }
  return out;
}

/** Whether bytes [from, to) of `a` and `b` differ, each read as zero-padded past its length. */
function rangeDiffers(a: Buffer, b: Buffer, from: number, to: number): boolean {
  const ae = Math.min(to, Math.max(from, a.length));
  const be = Math.min(to, Math.max(from, b.length));
  const common = Math.min(ae, be);
  if (common > from && a.compare(b, from, common, from, common) !== 0) return true;
  // Past the shorter one: the longer must be zeros.
  const [longer, end] = ae > be ? [a, ae] : [b, be];
  for (let i = common; i < end; i++) if (longer[i] !== 0) return true;
  return false;
}

/**
 * Indexes of the pages (below `next`'s length) where `next` differs from `cur`, both read as
 * zero-padded; stops early (null) once `stopAfter` pages differ.
 */
export function changedPages(cur: Buffer, next: Buffer, stopAfter = Number.POSITIVE_INFINITY): number[] | null {
  const out: number[] = [];
  const n = Math.ceil(next.length / DELTA_PAGE);
  for (let p = 0; p < n; p++) {
    if (!rangeDiffers(cur, next, p * DELTA_PAGE, Math.min(next.length, (p + 1) * DELTA_PAGE))) continue;
    out.push(p);
    if (out.length > stopAfter) return null;
  }
  return out;
}

/** Whether a delta DAO's index entry carries pages (an emptied delta has no payload). */
export function deltaHasPages(entry: { node: { deleted?: boolean }; payloadLen: number } | undefined): boolean {
  return entry !== undefined && !entry.node.deleted && entry.payloadLen > 0;
}

/** What a write op needs to know of the store (the part of ChainStore's Op it fills). */
export interface BlockWriteOp { bytes: number; events: number; run: (dio: Dio) => void }

/**
 * How a block is written: 'auto' a delta when the block is in the chain and differs in few pages
 * (nothing when it does not differ), else whole; 'whole' always the whole block (mounts without
 * deltas; re-sealing under new keys, which must write every byte again).
 */
export type BlockWriteMode = 'auto' | 'whole';

/**
 * Writes block `index` of `ino` as `data` (see BlockWriteMode). A whole block empties the delta,
 * if it has pages, in the same commit: a base and a stale delta must never be read together.
 */
export function blockWriteOp(ino: Ino, index: number, data: Buffer, mode: BlockWriteMode): BlockWriteOp {
  const bk = blockKey(ino, index);
  const dk = deltaKey(ino, index);
  const ik = inodeKey(ino);
  return {
    // Upper estimate (the budget only cuts commits): the delta is decided inside the commit.
    bytes: data.length,
    events: 2,
    run: (dio) => {
      const whole = () => dio.store(data, { key: bk, parent: { key: ik, collection: BLOCKS }, type: 'block', take: true });
      const emptyDelta = () => dio.store(null, { key: dk, parent: { key: ik, collection: DELTAS }, type: 'blockdelta' });
      // The delta is read through the transaction either way: its version is checked at commit.
      const deltaRec = dio.exists(dk) ? dio.tryLoad(dk) : undefined;
      const base = mode === 'auto' ? dio.tryLoad(bk)?.data : undefined;
      if (!base) {
        // New block, deltas off (remote mounts) or a re-seal: the whole block; a delta with pages
        // (written by a mount with deltas on) is emptied in the same commit.
        whole();
        if (deltaRec?.data) emptyDelta();
        return;
      }
      const old = deltaRec?.data ? decodeDelta(deltaRec.data) : null;
      const cur = old ? applyDelta(base, old) : base;
      // At most a quarter of the block in the delta; past that the whole block is cheaper to keep.
      const maxPages = Math.floor(Math.max(data.length, base.length) / 4 / DELTA_PAGE);
      const lastPage = Math.ceil(data.length / DELTA_PAGE);
      const kept = old ? old.pages.filter((p) => p < lastPage) : [];
      const diff = changedPages(cur, data, maxPages);
      if (diff !== null && diff.length === 0 && cur.length === data.length) return; // unchanged
      const pages = diff === null ? null : new Set([...kept, ...diff]);
      if (pages === null || pages.size > maxPages) {
        whole();
        if (old) emptyDelta();
        return;
      }
      const sorted = [...pages].sort((a, b) => a - b);
      dio.store(encodeDelta(data, sorted), { key: dk, parent: { key: ik, collection: DELTAS }, type: 'blockdelta', take: true });
    },
  };
}

/**
 * Deletes block `index` of `ino` and its delta, whichever exist (a block created and deleted
 * between two commits never reached the chain).
 */
export function blockDeleteOp(ino: Ino, index: number): BlockWriteOp {
  const bk = blockKey(ino, index);
  const dk = deltaKey(ino, index);
  return {
    bytes: 0,
    events: 2,
    run: (dio) => {
      // One index read for the block (delete's own; see chain-store.ts deleteIfPresent), one for the delta.
      try {
        dio.delete(bk);
      } catch (e) {
        if (!(e instanceof NotFound)) throw e;
      }
      if (dio.exists(dk)) dio.delete(dk);
    },
  };
}
