// Server-side compaction of a hosted chain (issue #14): which records a hosted log keeps, decided
// from what the server can see without a read key — each event's DAO key, version, parent,
// tombstone flag, ACLs, and the grants / public keys a commit publishes (everything the authority
// checks use). The rules are the client's (src/view/compaction.ts), at commit granularity, byte
// for byte: kept records keep verifying and nobody re-signs anything. Kept below the cut:
//   - the genesis;
//   - the commit holding the current version of every live DAO;
//   - the commit holding a tombstone younger than the retention window (or one a stale version
//     kept elsewhere needs to stay dead: found by the comparison below);
//   - every commit that grants data keys or publishes public keys, and (conservatively) every
//     commit with deferred signature slots or signing off others (src/chain/deferred.ts).
// Before anything is switched, the candidate is replayed in gap mode (src/chain/gaps.ts, the rule
// the view and `atefs verify` use) into a scratch state, and the scratch state must equal the
// live one at the cut DAO by DAO (and every data key and public key); versions a kept commit's
// checks walk through are added until it does, and a candidate that cannot be made equal is not
// used (the log stays as it is). Pure decisions: the swap itself is the log's (RedoLog.compact).
import { isDeepStrictEqual } from 'node:util';
import {
  type Commit, CommitRejected, GapBridgingState, MemoryAuthorityState, type SizeLimits, checkAgainstState, decodeCommit,
  hasDeferredSignature, hintsOf, keepVersionsBefore, keysNamedByFailure, signersOf,
} from '../src/chain/index.js';
import type { RedoLog } from '../src/log/index.js';

/** The replay rules of records the server stored before (their timestamps were checked then). */
const REPLAY = { now: () => Number.MAX_SAFE_INTEGER / 2, backwardsToleranceMs: Number.POSITIVE_INFINITY };

export class ServerCompactionFailed extends Error {
  override name = 'ServerCompactionFailed';
}

export interface KeepPlan {
  /** Seqs at or below `cut` to keep (records above it are all kept). */
  keep: Set<number>;
  cut: number;
  /** Records at or below the cut, and their bytes (all of them, kept or not). */
  records: number;
  bytes: number;
  /** Bytes of the records at or below the cut that the plan drops. */
  dropBytes: number;
  /** Seq and commit hash of every record the plan drops (kept as replays: chain-compactor.ts). */
  dropped: Array<[number, Buffer]>;
}

interface Scan {
  state: MemoryAuthorityState;
  /** Seqs writing each DAO, in log order. */
  writes: Map<string, number[]>;
  keep: Set<number>;
  sizes: Map<number, number>;
  hashes: Map<number, Buffer>;
}

/** Replays the records up to `cut` (gap mode once a seq is missing) and notes what each wrote. */
async function scan(log: RedoLog, cut: number, limits: Partial<SizeLimits>): Promise<Scan> {
  const state = new MemoryAuthorityState();
  const bridged = new GapBridgingState(state);
  const writes = new Map<string, number[]>();
  const keep = new Set<number>();
  const sizes = new Map<number, number>();
  const hashes = new Map<number, Buffer>();
  let expect = 1;
  let gaps = false;
  let n = 0;
  for (const rec of log.records()) {
    if (rec.seq > cut) break;
    if (rec.seq !== expect) gaps = true;
    expect = rec.seq + 1;
    const c = decodeCommit(Buffer.from(rec.payload), limits as SizeLimits);
    sizes.set(rec.seq, rec.payload.length);
    hashes.set(rec.seq, c.hash);
    bridged.hints = gaps ? hintsOf(c) : null;
    let effects;
    try {
      effects = checkAgainstState(gaps ? bridged : state, c, signersOf(c), REPLAY);
    } finally {
      bridged.hints = null;
    }
    state.applyEffects(effects);
    if (c.header.genesis || effects.dataKeys.length > 0 || effects.publicKeys.length > 0 || c.header.signs?.length || hasDeferredSignature(c)) keep.add(rec.seq);
    for (const ev of c.events) {
      const w = writes.get(ev.meta.key);
      if (w) w.push(rec.seq);
      else writes.set(ev.meta.key, [rec.seq]);
    }
    if (++n % 64 === 0) await new Promise((r) => setImmediate(r));
  }
  return { state, writes, keep, sizes, hashes };
}

type DryResult = { ok: MemoryAuthorityState } | { fail: { seq: number; commit: Commit; message: string } };

/** Replays only the kept records up to `cut`, in gap mode, into a scratch state. */
async function dryRun(log: RedoLog, cut: number, keep: Set<number>, limits: Partial<SizeLimits>): Promise<DryResult> {
  const state = new MemoryAuthorityState();
  const bridged = new GapBridgingState(state);
  let n = 0;
  for (const rec of log.records()) {
    if (rec.seq > cut) break;
    if (!keep.has(rec.seq)) continue;
    const c = decodeCommit(Buffer.from(rec.payload), limits as SizeLimits);
    bridged.hints = hintsOf(c);
    try {
      state.applyEffects(checkAgainstState(bridged, c, signersOf(c), REPLAY));
    } catch (e) {
      if (!(e instanceof CommitRejected)) throw e;
      return { fail: { seq: rec.seq, commit: c, message: e.message } };
    } finally {
      bridged.hints = null;
    }
    if (++n % 64 === 0) await new Promise((r) => setImmediate(r));
  }
  return { ok: state };
}

/**
 * The records to keep at or below `cut`, proven to rebuild the same authority state. Throws
 * ServerCompactionFailed when no candidate does (nothing is then compacted).
 */
export async function planCompaction(
  log: RedoLog, cut: number, o: { retentionMs: number; now: number; limits?: Partial<SizeLimits> },
): Promise<KeepPlan> {
  const limits = o.limits ?? {};
  const s = await scan(log, cut, limits);
  const keep = s.keep;
  const lastWrite = (k: string) => s.writes.get(k)?.at(-1);
  for (const [key, node] of s.state.nodes) {
    const seq = lastWrite(key);
    if (seq === undefined) continue;
    if (!node.deleted || o.now - node.updatedAt < o.retentionMs) keep.add(seq);
  }
  for (let round = 0; round < 64; round++) {
    const res = await dryRun(log, cut, keep, limits);
    if ('fail' in res) {
      // A kept commit's checks walk through a version that was dropped (its own DAO's, a parent's,
      // an ancestor the message names): keep the latest version of each before it, and retry.
      const f = res.fail;
      const added = keepVersionsBefore(keysNamedByFailure(f.commit, f.message), f.seq, (k) => s.writes.get(k), keep);
      if (added === 0) throw new ServerCompactionFailed(`record ${f.seq} does not validate in the compacted log: ${f.message}`);
      continue;
    }
    const dry = res.ok;
    const add = new Set<number>();
    let bad = false;
    for (const [key, live] of s.state.nodes) {
      const d = dry.nodes.get(key);
      if (d && isDeepStrictEqual(d, live)) continue;
      // An expired tombstone: fine when the DAO is absent or deleted in the compacted log; a
      // stale version kept in another commit brought it back otherwise: keep the tombstone.
      if (live.deleted && (!d || d.deleted)) continue;
      const seq = lastWrite(key);
      if (seq === undefined || keep.has(seq)) bad = true;
      else add.add(seq);
    }
    for (const key of dry.nodes.keys()) if (!s.state.nodes.has(key)) bad = true;
    if (!isDeepStrictEqual(dry.dataKeys, s.state.dataKeys) || !isDeepStrictEqual(dry.publicKeys, s.state.publicKeys)) bad = true;
    if (bad) throw new ServerCompactionFailed('the compacted log would not rebuild the authority state');
    if (add.size === 0) {
      let bytes = 0;
      let dropBytes = 0;
      const dropped: Array<[number, Buffer]> = [];
      for (const [seq, b] of s.sizes) {
        bytes += b;
        if (!keep.has(seq)) {
          dropBytes += b;
          dropped.push([seq, s.hashes.get(seq)!]);
        }
      }
      return { keep, cut, records: s.sizes.size, bytes, dropBytes, dropped };
    }
    for (const x of add) keep.add(x);
  }
  throw new ServerCompactionFailed('compaction did not converge');
}
