// Compaction: rewrite the log keeping only what the view still needs, then switch atomically.
//
// Unit of retention: the commit. A commit's signature covers the hash of all its events, so a kept
// commit is kept whole, byte for byte: signatures keep verifying and nobody needs to re-sign
// (re-signing would need a key every DAO's ACL admits, which a server or a reader does not hold,
// and would turn the compactor into an author). A commit is kept when it holds:
//   - the genesis;
//   - the current version of a live DAO;
//   - a tombstone younger than the retention window (or one still needed so that an older, stale
//     version kept in another commit does not come back to life);
//   - a grant (introduction or re-wrap) of a data key, or a public-key publication;
//   - anything appended after compaction started (seq > cut).
// A kept commit can carry superseded versions of other DAOs, and the versions between two kept ones
// are gone. Loading such a log therefore runs in "gap mode": a DAO version whose predecessor was
// compacted away is checked against the last retained version of that DAO (or, if none is left,
// as a new node under its parent) renumbered as its predecessor. Every retained write must thus be
// admitted by ACLs that the retained history itself proves, which is checked BEFORE the swap: the
// candidate log is replayed into a scratch index (hashes and state checks; signatures were verified
// when the same bytes were first applied) and the result is compared DAO by DAO with the live view.
// Only an identical view is switched in (the log's crash-safe manifest swap); otherwise the old log
// stays and CompactionFailed is reported.
//
// Automatic runs (the policy's triggers) stop after the keep set when the records outside it are
// fewer bytes than CompactionPolicy.minReclaimBytes: a log that only grew by live data is not
// copied and re-validated for nothing.
//
// Writers keep going: commits append to the log's tail segments while the copy runs and are kept
// (seq > cut). The index is remapped after the switch under the view's write lock; until the
// remap is persisted, reads resolve moved records through `view.remap`.
import { existsSync, mkdtempSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommitRejected as ChainCommitRejected, type Commit, MAX_TREE_DEPTH, checkAgainstState, cutCertifier, decodeCommit, decodeMeta, keepVersionsBefore, keysNamedByFailure, signersOf } from '../chain/index.js';
import { eventSpans } from './record-spans.js';
import type { CompactionStep, LogPosition } from '../log/index.js';
import { CompactionFailed } from './errors.js';
import { IndexStore, type Watermark, decodeDaoEntry } from './index-store.js';
import { LmdbAuthorityState, type UnsignedCommit } from './lmdb-state.js';
import { type CompactionReport, type View, hintsOf } from './view.js';
import { advanceWatermark, advanceWatermarkBy, emptyWatermark, storedRecordDigest } from './watermark.js';
import { type ViewPhase, type ProgressUnit, logBytesOf } from './progress.js';

const yieldNow = () => new Promise<void>((r) => setImmediate(r));
/** Longest wait for writers between two slices (compaction must progress under a steady write load). */
const COMMIT_WAIT_MAX_MS = 250;
/**
 * An urgent run (the log is outgrowing its space bound under continuous writes): longer slices, so
 * the compaction outpaces the log's growth; a commit still waits for at most one slice. Between
 * two slices it waits up to 100 ms for the commits in flight to end (writers first: with 20 ms a
 * database's fsync of ~60 ms of commit work took one or two 20 ms slices on top, and that was
 * much of its tail past the 100 ms stall goal); the write brake (the mount's space scheduler,
 * pace) slows the writers when the run falls behind instead.
 */
const URGENT_SLICE_MS = 20;
const URGENT_COMMIT_WAIT_MS = 100;

/**
 * Cooperative time slicing: compaction runs on the main thread next to writers, so every loop
 * gives the event loop back after a few milliseconds of work (writers' signatures, appends and
 * reads get through; the longest stall stays in the order of one commit's validation).
 */
class Slicer {
  private last = performance.now();
  private readonly budgetMs: number;
  private readonly waitMs: number;
  constructor(private readonly view: View) {
    const urgent = urgentRuns.has(view);
    this.budgetMs = urgent ? URGENT_SLICE_MS : 4;
    this.waitMs = urgent ? URGENT_COMMIT_WAIT_MS : COMMIT_WAIT_MAX_MS;
  }
  async tick(): Promise<void> {
    if (performance.now() - this.last < this.budgetMs) return;
    await yieldNow();
    // Writers first: one slice per commit at most (see View.commitsIdle).
    await this.view.commitsIdle(this.waitMs);
    this.last = performance.now();
  }
}

/** A phase tells the view's onProgress at most this often (and at its start and end). */
const PROGRESS_EVERY_MS = 100;

/** One phase's progress reports: 0 at the start, then every PROGRESS_EVERY_MS, done === total at the end. */
class Phase {
  private n = 0;
  private last = performance.now();
  constructor(private readonly view: View, private readonly phase: ViewPhase, private total: number, private readonly unit: ProgressUnit) {
    view.progress({ phase, done: 0, total, unit });
  }
  /** One more item done; `done` (when given) is the phase's running total in its unit. */
  step(done?: number): void {
    this.n++;
    const now = performance.now();
    if (now - this.last < PROGRESS_EVERY_MS) return;
    this.last = now;
    const d = done ?? this.n;
    if (d > this.total) this.total = d;
    this.view.progress({ phase: this.phase, done: d, total: this.total, unit: this.unit });
  }
  end(): void {
    this.view.progress({ phase: this.phase, done: this.total, total: this.total, unit: this.unit });
  }
}

/** Entries in an LMDB database without walking it (lmdb's getStats is O(1)); 0 when unknown. */
function entryCount(db: { getStats(): unknown }): number {
  const n = (db.getStats() as { entryCount?: number }).entryCount;
  return typeof n === 'number' ? n : 0;
}

/** Views whose running compaction is urgent (one run per view at a time). */
const urgentRuns = new WeakSet<View>();

export async function runCompaction(
  view: View,
  reason: string,
  opts: { failAt?: CompactionStep; automatic?: boolean; urgent?: boolean; segments?: ReadonlySet<number> } = {},
): Promise<CompactionReport> {
  const t0 = performance.now();
  const stall = { max: 0 };
  view.stallProbe = stall;
  if (opts.urgent) urgentRuns.add(view);
  try {
    const cut = view.watermark.seq;
    const recordsBefore = view.watermark.records;
    const keep = await initialKeepSet(view, cut);
    // Only some segments compacted: every record of the others is kept as it is (the log leaves
    // those segments in place), and the candidate replayed below is exactly what the log will hold.
    const retain = opts.segments ? retainOthers(view, opts.segments, cut, keep) : undefined;
    if (opts.automatic) {
      // Before any copy or dry run: what is not in the initial keep set bounds what this run can
      // reclaim (the fixpoint below only keeps more).
      const logBytes = view.log.sizeBytes();
      const need = view.policy.minReclaimBytes(logBytes);
      const dead = await reclaimableBytes(view, cut, keep, need);
      if (dead < need) {
        return {
          reason,
          bytesBefore: logBytes,
          bytesAfter: logBytes,
          recordsBefore,
          recordsKept: recordsBefore,
          ms: performance.now() - t0,
          maxWriterStallMs: stall.max,
          skipped: `reclaimable ${dead} of ${logBytes} log bytes, below the ${need} an automatic compaction needs`,
        };
      }
    }

    // Fixpoint: replay the candidate into a scratch index; add tombstones that stale versions in
    // kept commits need; stop when the scratch view equals the live one.
    let dry: DryRun | null = null;
    let history: Map<string, number[]> | null = null;
    for (let round = 0; round < 64; round++) {
      const res = await dryRun(view, cut, keep);
      if ('fail' in res) {
        // A retained commit needs history that was dropped (the version of a parent or of the
        // node itself that its authority check walks through): keep the latest earlier version
        // of every DAO it names, and try again.
        // The ancestors its tree walks went through count too: a move is checked for cycles, and
        // ACLs are inherited, along the parent chain, and a stale ancestor (its move away dropped,
        // an older move of it kept for another DAO's sake) makes a cycle or an ACL the live chain
        // never had — naming only the commit's own DAOs left such a run unable to converge.
        history ??= await versionHistory(view, cut);
        const f = res.fail;
        const versions = history;
        // The version that held at f.seq; already kept, the scratch state has it right.
        const added = keepVersionsBefore(keysNamedByFailure(f.commit, f.message, f.ancestors), f.seq, (k) => versions.get(k), keep);
        if (added === 0) throw new CompactionFailed(`record ${f.seq} does not validate in the compacted log: ${f.message}`);
        continue;
      }
      dry = res;
      const missing = await compareViews(view, dry, cut);
      await dry.close();
      if (missing === null) break;
      if (missing.size === 0) throw new CompactionFailed('compacted log would not reproduce the view');
      for (const s of missing) keep.add(s);
      dry = null;
    }
    if (!dry) throw new CompactionFailed('compaction did not converge');
    const hashedUpToCut = dry.watermark;
    const unsignedKept = dry.unsigned;

    // The log calls the predicate for every record as it copies: that is the copy's progress.
    const copy = new Phase(view, 'compact-copy', view.log.sizeBytes(), 'bytes');
    let copied = 0;
    const result = await view.log.compact((rec) => {
      copied += logBytesOf(rec.payload.length, 1);
      copy.step(copied);
      return rec.seq > cut || keep.has(rec.seq);
    }, {
      ...(opts.failAt ? { failAt: opts.failAt } : {}),
      // The cut certificate in the MANIFEST, signed by the owner (src/chain/cut-signing.ts).
      certify: cutCertifier(view.keyring, view.pool),
      ...(retain ? { retain } : {}),
      // From the switch on, reads of moved records resolve through remap (the log deletes the
      // old segments between yields after this).
      onSwitched: (positions) => {
        view.remap = positions;
        view.dropRecordCache();
      },
    });
    copy.end();
    const changes = await recordChanges(view, result.positions, cut);
    // Digests of what was appended after the cut, in slices and outside the write lock: under
    // continuous writes that is every commit of the run (measured: 120-200 ms of hashing and
    // decoding 4 MiB commits under the lock, every writer stalled behind it).
    const tail = await hashTail(view, cut, hashedUpToCut);
    await view.exclusive(async () => {
      remapIndex(view, result.positions, changes, cut, tail);
    });
    view.remap = null;
    view.state.clearCache();
    view.state.addUnsigned(unsignedKept);
    return {
      reason,
      bytesBefore: result.bytesBefore,
      bytesAfter: result.bytesAfter,
      recordsBefore,
      recordsKept: view.watermark.records,
      ms: performance.now() - t0,
      maxWriterStallMs: stall.max,
      skipped: null,
    };
  } finally {
    view.stallProbe = null;
    urgentRuns.delete(view);
  }
}

/**
 * For a compaction of only the segments `victims`: adds every seq up to `cut` of the other
 * segments to `keep` (a segment holds a contiguous seq range of the log it was cut from, and the
 * ranges of two segments never overlap, so seqs of records compacted away before are harmless
 * there), and returns the log's retain predicate. Segments appended after this call are the
 * tail: kept anyway (seq > cut).
 */
function retainOthers(view: View, victims: ReadonlySet<number>, cut: number, keep: Set<number>): (seg: { id: number }) => boolean {
  const list = view.log.segmentList?.();
  if (!list) throw new CompactionFailed('this log cannot compact only some of its segments');
  for (const seg of list) {
    if (victims.has(seg.id) || seg.records === 0) continue;
    for (let s = seg.firstSeq; s <= Math.min(seg.lastSeq, cut); s++) keep.add(s);
  }
  return (seg) => !victims.has(seg.id);
}

async function initialKeepSet(view: View, cut: number): Promise<Set<number>> {
  const store = view.store;
  const keep = new Set<number>();
  const g = store.getMeta<number>('genesisSeq');
  if (g !== undefined) keep.add(g);
  const now = view.now();
  const slice = new Slicer(view);
  const phase = new Phase(view, 'compact-scan', entryCount(store.dao), 'entries');
  for (const { value } of store.dao.getRange({ snapshot: false })) {
    const e = decodeDaoEntryFast(value as Buffer);
    phase.step();
    await slice.tick();
    if (e.seq > cut) continue;
    if (!e.deleted || now - e.updatedAt < view.retentionMs) keep.add(e.seq);
  }
  phase.end();
  for (const k of store.allDataKeys()) for (const s of k.seqs) if (s <= cut) keep.add(s);
  for (const p of store.allPublished()) if (p.seq <= cut) keep.add(p.seq);
  return keep;
}

/** Bytes of the records up to `cut` outside `keep` (counting stops once `enough` is reached). */
async function reclaimableBytes(view: View, cut: number, keep: Set<number>, enough: number): Promise<number> {
  let dead = 0;
  const slice = new Slicer(view);
  for (const [seq, r] of view.store.allRecords()) {
    if (seq > cut || dead >= enough) break;
    if (!keep.has(seq)) dead += r.bytes;
    await slice.tick();
  }
  return dead;
}

function decodeDaoEntryFast(b: Buffer): { seq: number; deleted: boolean; updatedAt: number } {
  const e = decodeDaoEntry(b);
  return { seq: e.seq, deleted: e.node.deleted, updatedAt: e.node.updatedAt };
}

interface DryRun {
  store: IndexStore;
  watermark: Watermark;
  /**
   * Kept commits with deferred signatures (src/chain/deferred.ts): their sign-offs hold no DAO and
   * are dropped, so they are listed as unsigned again and the view signs them off anew.
   */
  unsigned: UnsignedCommit[];
  close(): Promise<void>;
}

/** Seqs of every version of every DAO up to `cut` (metadata only; built when a dry run needs it). */
async function versionHistory(view: View, cut: number): Promise<Map<string, number[]>> {
  const h = new Map<string, number[]>();
  const slice = new Slicer(view);
  for (const rec of view.log.records()) {
    if (rec.seq > cut) break;
    const spans = eventSpans(rec.payload);
    for (const sp of spans) {
      const meta = decodeMeta(rec.payload.subarray(sp.metaStart, sp.metaStart + sp.metaLen));
      let l = h.get(meta.key);
      if (!l) h.set(meta.key, (l = []));
      l.push(rec.seq);
    }
    await slice.tick();
  }
  return h;
}

/**
 * Where the scratch index goes: a RAM-backed /dev/shm when it has room for a few times the live
 * index, else the temporary directory. The scratch is thrown away; in RAM its LMDB commits
 * (synchronous, on the main thread) never wait for a disk under writeback pressure.
 */
function scratchRoot(liveIndexPath: string): string {
  const shm = '/dev/shm';
  try {
    if (!existsSync(shm)) return tmpdir();
    let live = 0;
    for (const f of readdirSync(liveIndexPath)) live += statSync(join(liveIndexPath, f)).size;
    const st = statfsSync(shm);
    return st.bavail * st.bsize > 4 * live + (256 << 20) ? shm : tmpdir();
  } catch {
    return tmpdir();
  }
}

/**
 * A retained commit that failed in the scratch replay. `ancestors`: the DAOs on the parent chains
 * of its events' nodes and new parents as the scratch state saw them (what its checks walked).
 */
type DryResult = DryRun | { fail: { seq: number; commit: Commit; message: string; ancestors: Set<string> } };

/** Keys on the parent chains, in `state`, of every event's node and new parent of `commit`. */
function ancestorsIn(state: LmdbAuthorityState, commit: Commit): Set<string> {
  const out = new Set<string>();
  const climb = (start: string) => {
    for (let k: string | undefined = start, n = 0; k !== undefined && !out.has(k) && n < MAX_TREE_DEPTH; n++) {
      out.add(k);
      k = state.getNode(k)?.parent?.key;
    }
  };
  for (const ev of commit.events) {
    climb(ev.meta.key);
    if (ev.meta.parent) climb(ev.meta.parent.key);
  }
  return out;
}

/** Replays the candidate log (records of `keep` up to `cut`) into a scratch index. */
async function dryRun(view: View, cut: number, keep: Set<number>): Promise<DryResult> {
  const dir = mkdtempSync(join(scratchRoot(view.store.path), 'atefs-compact-'));
  const store = new IndexStore({ path: dir });
  const close = async () => {
    await store.close();
    // Off the main thread: unlinking a scratch index of a large chain takes tens of ms.
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const state = new LmdbAuthorityState(store, emptyWatermark());
    let wm = emptyWatermark();
    let batchBytes = 0;
    let pendingEvents = 0;
    const slice = new Slicer(view);
    // Payload bytes of the records up to the cut (the live watermark's, as the run started).
    const phase = new Phase(view, 'compact-check', view.watermark.seq === cut ? view.watermark.bytes : 0, 'bytes');
    let read = 0;
    for (const rec of view.log.records()) {
      if (rec.seq > cut) break;
      read += rec.payload.length;
      phase.step(read);
      await slice.tick();
      if (!keep.has(rec.seq)) continue;
      const payload = Buffer.from(rec.payload);
      let commit: Commit;
      try {
        commit = decodeCommit(payload);
      } catch (e) {
        throw new CompactionFailed(`record ${rec.seq} does not decode: ${(e as Error).message}`, e);
      }
      // Decoding (hashing every event) and checking are each a slice of their own.
      await slice.tick();
      try {
        state.gapHints = hintsOf(commit);
        const effects = checkAgainstState(state, commit, signersOf(commit), { now: view.now, backwardsToleranceMs: view.backwardsToleranceMs });
        state.stage({ seq: rec.seq, pos: rec.pos, commit, effects });
      } catch (e) {
        if (!(e instanceof ChainCommitRejected)) throw e;
        const ancestors = ancestorsIn(state, commit);
        await close();
        return { fail: { seq: rec.seq, commit, message: e.message, ancestors } };
      } finally {
        state.gapHints = null;
      }
      wm = advanceWatermark(wm, rec.seq, rec.pos, commit);
      batchBytes += payload.length;
      pendingEvents += commit.events.length;
      // Small LMDB transactions: each flush is a main-thread stall for the writers.
      // (Flushing after every 256 events instead made the property test's compaction keep more:
      // the scratch state's outcome depends on where flushes fall. Left at 1024, see report.)
      if (pendingEvents >= 1024 || batchBytes > 8 << 20) {
        state.flush();
        batchBytes = 0;
        pendingEvents = 0;
        await slice.tick();
      }
    }
    state.flush();
    phase.end();
    return { store, watermark: wm, unsigned: state.unsigned(), close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Compares the scratch index with the live one for every DAO the cut covers. Returns null when
 * equal; else the seqs of commits to add (tombstones whose DAO came back to life); an empty set
 * when the difference cannot be fixed by keeping more.
 */
async function compareViews(view: View, dry: DryRun, cut: number): Promise<Set<number> | null> {
  const add = new Set<number>();
  let bad = false;
  const slice = new Slicer(view);
  for (const { key, value } of view.store.dao.getRange({})) {
    const live = decodeDaoEntry(value as Buffer);
    await slice.tick();
    if (live.seq > cut) continue;
    const d = dry.store.getDao(key as Buffer);
    const same = d && d.seq === live.seq && d.index === live.index && d.hash.equals(live.hash);
    if (same) continue;
    if (live.node.deleted) {
      // Expired tombstone: fine if the DAO is absent or deleted in the compacted log.
      if (!d || d.node.deleted) continue;
      add.add(live.seq);
      continue;
    }
    bad = true;
  }
  if (bad) return new Set();
  return add.size === 0 ? null : add;
}

/**
 * Which indexed records moved or were dropped. Computed outside the write lock, in slices: record
 * positions only change through this compaction (writers add records and update the live counts
 * of older ones: those are re-read under the lock). Every seq is checked, not only those up to the
 * cut: records appended after the cut but before the log rotated its active segment were copied
 * too (they are kept, at new positions). A record missing from `positions` was dropped only when
 * it is <= cut; above the cut it was appended after the switch, where it stays.
 */
async function recordChanges(view: View, positions: Map<number, LogPosition>, cut: number): Promise<RecordChanges> {
  const moved: Array<[number, LogPosition]> = [];
  const drop: number[] = [];
  let scannedTo = 0;
  const slice = new Slicer(view);
  const phase = new Phase(view, 'compact-index', view.watermark.records, 'records');
  for (const [seq, r] of view.store.allRecords()) {
    phase.step();
    await slice.tick();
    scannedTo = seq;
    const p = positions.get(seq);
    if (!p) {
      if (seq <= cut) drop.push(seq);
    } else if (p.segment !== r.segment || p.offset !== r.offset) moved.push([seq, p]);
  }
  phase.end();
  return { moved, drop, scannedTo };
}

interface RecordChanges {
  moved: Array<[number, LogPosition]>;
  drop: number[];
  /** Last seq the scan saw; records indexed after it are checked under the lock. */
  scannedTo: number;
}

/** After the switch: positions, dropped records, watermark over the new log. Under the write lock. */
/**
 * The compacted log's watermark advanced over the records after the cut that are applied by now
 * (read from the new log, after the switch: their positions are final). Sliced.
 */
async function hashTail(view: View, cut: number, upToCut: Watermark): Promise<{ wm: Watermark; through: number }> {
  let wm = upToCut;
  let through = cut;
  const slice = new Slicer(view);
  const upTo = view.watermark.seq;
  for (const rec of view.log.records({ seq: cut + 1 })) {
    if (rec.seq > upTo) break;
    wm = advanceWatermarkBy(wm, rec.seq, rec.pos, storedRecordDigest(rec.payload), rec.payload.length);
    through = rec.seq;
    await slice.tick();
  }
  return { wm, through };
}

function remapIndex(view: View, positions: Map<number, LogPosition>, changes: RecordChanges, cut: number, hashed: { wm: Watermark; through: number }): void {
  const store = view.store;
  // hashed.wm covers the cut (hashed over the old log: its position is replaced by the new one of
  // its record) and the records hashTail read after it, through hashed.through; the few applied
  // since are added here. Records after the cut are read from the new log: their positions
  // (copied or not) are current.
  let wm = hashed.wm;
  if (hashed.through < view.watermark.seq) {
    for (const rec of view.log.records({ seq: hashed.through + 1 })) {
      if (rec.seq > view.watermark.seq) break;
      wm = advanceWatermarkBy(wm, rec.seq, rec.pos, storedRecordDigest(rec.payload), rec.payload.length);
    }
  }
  const last = positions.get(wm.seq);
  if (last) wm = { ...wm, segment: last.segment, offset: last.offset };
  store.transaction(() => {
    for (const [seq, p] of changes.moved) {
      const r = store.getRecord(seq);
      if (r) store.putRecord(seq, { ...r, segment: p.segment, offset: p.offset });
    }
    // Indexed after the scan (few: the scan ran after the switch): moved if the copy had them.
    for (let seq = Math.max(changes.scannedTo, cut) + 1; seq <= view.watermark.seq; seq++) {
      const p = positions.get(seq);
      const r = p && store.getRecord(seq);
      if (r && (p.segment !== r.segment || p.offset !== r.offset)) store.putRecord(seq, { ...r, segment: p.segment, offset: p.offset });
    }
    for (const s of changes.drop) store.removeRecord(s);
    store.putWatermark(wm);
    store.putMeta('compacted', 1);
  });
  view.state.watermark = wm;
}
