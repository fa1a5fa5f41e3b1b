/**
 * Page deltas: how a few rewritten 4 KiB pages of a committed block reach the log without the
 * whole block.
 *
 * Content lives in 64 KiB blocks (one DAO each). A database rewriting random 4 KiB pages dirties
 * one page per block between two fsyncs, and committing the whole block appended 16x the bytes
 * written: the log grew faster than compaction could shrink it (README, "Bounded space"). So a
 * block that is already in the chain and differs from its committed content in few pages gets
 * deltas instead, in two levels, like a small log-structured merge:
 *  - the recent delta (keys.ts recentDeltaKey): the pages where the block differs from the base
 *    with the delta applied (those written since the delta was last written), at most an eighth
 *    of the block;
 *  - the delta (deltaKey): the pages where the block differs from the block DAO (the "base"),
 *    at most three eighths of the block;
 * a read applies the delta over the base, then the recent delta; each level is cut or
 * zero-padded to the block's length first. A write recomputes the recent delta; past its limit
 * the delta is recomputed instead (the recent one emptied); past that limit the whole block is
 * written again and both are emptied. Pages are always compared with the level below, read out
 * to the new length, never with the block as last committed: bytes a truncate cut off are still
 * in the level below, and a block that grows again must carry the pages that now read as zeros
 * (the truncate-write-extend bug the model test found, issue #17). One DAO of each per
 * block, each version replacing the last, so old versions are simply dead log; emptied means a
 * null payload, not a tombstone (compaction keeps a tombstone's commit for a week).
 * Modelled on random one-page rewrites (the bench's rewrite), a page costs ~3.7 pages of log on
 * average instead of 16 (one cumulative level: ~5), and the deltas hold ~25 % of the blocks'
 * bytes besides.
 *
 * The decision reads the committed block through the transaction (Dio.tryLoad): the base and the
 * deltas are in the commit's optimistic version check, so a delta is never applied to a base that
 * changed meanwhile (a remote commit is a Conflict, and the batch is built again).
 *
 * Chains without deltas read as before (the delta keys are absent). DAO keys stay deterministic
 * (keys.ts). Payload format of both (plaintext; the chain layer encrypts): a version byte (1),
 * the block's length (u32 LE), the page count (u16 LE), the page indexes (u16 LE each, ascending),
 * then the pages' bytes in that order, each PAGE bytes except one clipped by the length.
 */
import { NotFound, type Dio, type View } from '../../src/view/index.js';
import type { Ino } from '../core/api.js';
import type { BlockLevels, CommittedBlocks } from './committed-blocks.js';
import { BLOCKS, DELTAS, blockKey, deltaKey, inodeKey, recentDeltaKey } from './keys.js';

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
  // Not zero-filled and then copied over (a commit of a database's pages builds hundreds of these
  // on the serving thread): the base is copied, only what lies past it is zeroed.
  const out = Buffer.allocUnsafe(delta.length);
  const kept = base.copy(out, 0, 0, Math.min(base.length, delta.length));
  if (kept < out.length) out.fill(0, kept);
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
 * Whether bytes [from, to) of `next` differ from `srcLen` bytes of `src` at `srcStart`, read as
 * zero-padded past them.
 */
function differsFrom(src: Buffer, srcStart: number, srcLen: number, next: Buffer, from: number, to: number): boolean {
  const common = Math.min(to - from, srcLen);
  if (common > 0 && next.compare(src, srcStart, srcStart + common, from, from + common) !== 0) return true;
  for (let i = from + Math.max(0, common); i < to; i++) if (next[i] !== 0) return true;
  return false;
}

/**
 * Indexes of the pages (below `next`'s length) where `next` differs from the block `levels` make
 * over `base` (applyDelta of each in turn, bottom first; each cut or zero-padded to its length),
 * both read as zero-padded; null once more than `stopAfter` differ. The same as changedPages of
 * that block, without building it: a commit of a database's pages compared each rewritten block
 * with its base and delta applied, a new 64 KiB buffer per block and commit, and such buffers (off
 * the JS heap) set off most of the garbage collections of the serving thread.
 */
export function changedPagesOver(base: Buffer, levels: readonly BlockDelta[], next: Buffer, stopAfter = Number.POSITIVE_INFINITY): number[] | null {
  if (levels.length === 0) return changedPages(base, next, stopAfter);
  const out: number[] = [];
  const n = Math.ceil(next.length / DELTA_PAGE);
  // capAbove[i]: the shortest length of the levels above level i (what is past it reads as zero).
  const capAbove = levels.map((_, i) => Math.min(Number.POSITIVE_INFINITY, ...levels.slice(i + 1).map((l) => l.length)));
  const baseCap = Math.min(base.length, ...levels.map((l) => l.length));
  // Per level: the index of its next page and where that page's bytes start in its body.
  const k = levels.map(() => 0);
  const at = levels.map(() => 0);
  for (let p = 0; p < n; p++) {
    const from = p * DELTA_PAGE;
    const to = Math.min(next.length, from + DELTA_PAGE);
    let src = -1;
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      while (k[i]! < l.pages.length && l.pages[k[i]!]! < p) { at[i]! += Math.min(DELTA_PAGE, l.length - l.pages[k[i]!]! * DELTA_PAGE); k[i]!++; }
      if (k[i]! < l.pages.length && l.pages[k[i]!] === p) src = i; // the topmost level holding p wins
    }
    const differs = src >= 0
      ? differsFrom(levels[src]!.body, at[src]!, Math.max(0, Math.min(levels[src]!.length, capAbove[src]!, to) - from), next, from, to)
      : differsFrom(base, from, Math.max(0, Math.min(baseCap, to) - from), next, from, to);
    if (!differs) continue;
    out.push(p);
    if (out.length > stopAfter) return null;
  }
  return out;
}

/** Length of the block the levels make over `base`. */
function lengthOver(base: Buffer, levels: readonly BlockDelta[]): number {
  return levels.length > 0 ? levels[levels.length - 1]!.length : base.length;
}

/** Whether `data` is the block the levels make over `base` (compared in place, see changedPagesOver). */
export function sameAsLevels(data: Buffer, base: Buffer, levels: readonly BlockDelta[]): boolean {
  return data.length === lengthOver(base, levels) && changedPagesOver(base, levels, data, 0)?.length === 0;
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

/** Whether block `index` of `ino` has a delta with pages (its base alone is not the block). */
export function blockHasDelta(view: View, ino: Ino, index: number): boolean {
  return deltaHasPages(view.entry(deltaKey(ino, index))) || deltaHasPages(view.entry(recentDeltaKey(ino, index)));
}

/** The levels of block `index` of `ino` as committed (see committed-blocks.ts); undefined for a hole. */
export function readBlockLevels(view: View, ino: Ino, index: number): BlockLevels | undefined {
  const base = view.tryGet(blockKey(ino, index))?.data ?? undefined;
  if (base === undefined) return undefined;
  const level = (key: string): BlockDelta | null => {
    if (!deltaHasPages(view.entry(key))) return null;
    const d = view.tryGet(key)?.data;
    return d ? decodeDelta(d) : null;
  };
  return { base, delta: level(deltaKey(ino, index)), recent: level(recentDeltaKey(ino, index)) };
}

/** The base with the delta applied: what the recent delta lies over. */
export function underRecentOf(l: BlockLevels): Buffer {
  return l.delta ? applyDelta(l.base, l.delta) : l.base;
}

/** The block the levels make. */
export function blockOf(l: BlockLevels, underRecent = underRecentOf(l)): Buffer {
  return l.recent ? applyDelta(underRecent, l.recent) : underRecent;
}

/**
 * What a write op needs to know of the store (the part of ChainStore's Op it fills). `committed`:
 * called once the commit holding the op's last run() has been applied.
 */
export interface BlockWriteOp { bytes: number; events: number; run: (dio: Dio) => void; committed?: () => void }

/**
 * How a block is written: 'auto' deltas when the block is in the chain and differs in few pages
 * (nothing when it does not differ), else whole; 'whole' always the whole block (mounts without
 * deltas; re-sealing under new keys, which must write every byte again).
 */
export type BlockWriteMode = 'auto' | 'whole';

/**
 * Events an op is counted as in the commit's event limit. An op writes 1-3 events (usually 1: a
 * new block, or one delta), and ChainStore's limit (4,096 counted) is half the chain's (8,192):
 * counted as 2, a commit of nothing but 3-event ops still fits, and one of new blocks is not cut
 * three times as often as before deltas.
 */
const OP_EVENTS = 2;

/** Limits of the recent delta and the delta, as fractions of the block (see the top). */
const RECENT_SHARE = 1 / 8;
const DELTA_SHARE = 3 / 8;

/**
 * Writes block `index` of `ino` as `data` (see BlockWriteMode and the top). A whole block empties
 * the deltas that have pages in the same commit, as a merge into the delta empties the recent
 * one: a base and a stale delta must never be read together.
 */
export function blockWriteOp(ino: Ino, index: number, data: Buffer, mode: BlockWriteMode, cache?: CommittedBlocks): BlockWriteOp {
  const bk = blockKey(ino, index);
  const dk = deltaKey(ino, index);
  const rk = recentDeltaKey(ino, index);
  const ik = inodeKey(ino);
  const keys = [bk, dk, rk] as const;
  /** The levels the last run's commit leaves (see committed-blocks.ts), and the view it ran on. */
  let after: BlockLevels | null = null;
  let view: View | null = null;
  return {
    // Upper estimate (the budget only cuts commits): what is written is decided inside the commit.
    bytes: data.length,
    events: OP_EVENTS,
    committed: () => {
      if (cache && view && after) cache.set(view, keys, after);
    },
    run: (dio) => {
      view = dio.view;
      after = null;
      const parent = { key: ik, collection: DELTAS };
      const storeDelta = (key: string, pages: number[]): BlockDelta => {
        const enc = encodeDelta(data, pages.sort((a, b) => a - b));
        dio.store(enc, { key, parent, type: 'blockdelta', take: true });
        return decodeDelta(enc);
      };
      const empty = (key: string) => dio.store(null, { key, parent, type: 'blockdelta' });
      // The deltas are read through the transaction either way: their versions are checked at commit.
      const load = (key: string) => {
        const d = dio.exists(key) ? dio.tryLoad(key)?.data : undefined;
        return d ? decodeDelta(d) : null;
      };
      const storeWhole = () => {
        dio.store(data, { key: bk, parent: { key: ik, collection: BLOCKS }, type: 'block', take: true });
        after = { base: data, delta: null, recent: null };
      };
      // A new block (the common case: files written once) needs no delta lookups: deltas exist
      // only beside their block (a block and its deltas are deleted in one commit).
      if (!dio.exists(bk)) { storeWhole(); return; }
      // The levels as last committed here, when the chain still holds exactly them; else read
      // (decrypted) from the view. Either way the three keys are read through the transaction.
      const known = mode === 'auto' ? cache?.get(dio.view, keys) : undefined;
      if (known) { dio.exists(dk); dio.exists(rk); }
      const delta = known ? known.delta : load(dk);
      const recent = known ? known.recent : load(rk);
      const base = known ? known.base : mode === 'auto' ? dio.tryLoad(bk)?.data ?? undefined : undefined;
      const whole = () => {
        storeWhole();
        if (delta) empty(dk);
        if (recent) empty(rk);
      };
      // New block, deltas off (remote mounts) or a re-seal: the whole block.
      if (!base) { whole(); return; }
      // What each level reads over: the base with the delta (what a new recent delta lies over).
      // What the recent delta lies over: the base with the delta (compared in place, never built).
      const underRecent = delta ? [delta] : [];
      if (sameAsLevels(data, base, recent ? [...underRecent, recent] : underRecent)) { after = { base, delta, recent }; return; } // unchanged
      const size = Math.max(data.length, base.length);
      const maxRecent = Math.floor((size * RECENT_SHARE) / DELTA_PAGE);
      const maxDelta = Math.floor((size * DELTA_SHARE) / DELTA_PAGE);
      // A level holds every page where the block differs from what it lies over, read out to the
      // block's length: a page it leaves out reads the level below, cut or zero-padded to that
      // length. The pages are compared with the level below itself, not with the block as
      // committed: after a truncate cut the block short, the bytes past the cut are still in the
      // level below and come back once the block grows again (truncate up, a write past the end)
      // unless the pages that must now read as zeros are in the delta.
      const recentPages = changedPagesOver(base, underRecent, data, maxRecent);
      if (recentPages !== null) {
        // No page and the same length: back to what the delta makes (unchanged was returned above,
        // so there is a recent delta to empty).
        let nextRecent: BlockDelta | null = null;
        if (recentPages.length === 0 && data.length === lengthOver(base, underRecent)) { if (recent) empty(rk); }
        else nextRecent = storeDelta(rk, recentPages);
        after = { base, delta, recent: nextRecent };
        return;
      }
      const deltaPages = changedPages(base, data, maxDelta);
      if (deltaPages === null) { whole(); return; }
      let nextDelta: BlockDelta | null = null;
      if (deltaPages.length === 0 && data.length === base.length) { if (delta) empty(dk); } // back to the base
      else nextDelta = storeDelta(dk, deltaPages);
      if (recent) empty(rk);
      after = { base, delta: nextDelta, recent: null };
    },
  };
}

/**
 * Deletes block `index` of `ino` and its deltas, whichever exist (a block created and deleted
 * between two commits never reached the chain).
 */
export function blockDeleteOp(ino: Ino, index: number): BlockWriteOp {
  const bk = blockKey(ino, index);
  const dk = deltaKey(ino, index);
  const rk = recentDeltaKey(ino, index);
  return {
    bytes: 0,
    events: OP_EVENTS,
    run: (dio) => {
      // One index read for the block (delete's own; see chain-store.ts deleteIfPresent), one per delta.
      try {
        dio.delete(bk);
      } catch (e) {
        if (!(e instanceof NotFound)) throw e;
      }
      if (dio.exists(dk)) dio.delete(dk);
      if (dio.exists(rk)) dio.delete(rk);
    },
  };
}
