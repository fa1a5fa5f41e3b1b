/**
 * The log cleaner: what lets compaction bound the log of a chain under rewrites.
 *
 * Compaction keeps a commit whole while any of its events is still the current version of a DAO
 * (its signature covers every event). A commit of many blocks written at once, of which most were
 * rewritten since, is then kept for the few still live: measured with random 4 KiB page rewrites
 * of a 32 MiB file (fsync every 64 pages), the compacted log stayed at 40x the file. The cleaner
 * does what a log-structured file system's segment cleaner does: it finds commits whose live
 * events are under half their bytes and writes those events again (View Dio.update: same payload,
 * parent and ACLs, a new version signed by the mount's owner), so the old commit is wholly dead
 * and the next compaction drops it. Rewriting at most as many bytes as it frees, it leaves the
 * compacted log under twice the live data.
 *
 * It runs on the serving thread in slices (the DAO index scan yields every few ms) and its
 * commits go through the store's queue between the file system's own batches (small ones, so a
 * writer waits for at most one).
 */
import type { View } from '../../src/view/index.js';

type DaoKey = string;
import { decodeDaoEntry } from '../../src/view/index-store.js';

/** Events of a commit beyond their meta and payload (hash, framing): an estimate. */
const EVENT_OVERHEAD = 96;

export interface LivenessScan {
  /** Estimated bytes of every live DAO version (the data a compacted log cannot do without). */
  liveBytes: number;
  /** Commits whose live bytes are under `sparseRatio` of their size, and are kept for nothing else. */
  sparse: Set<number>;
  /** Bytes of those commits. */
  sparseBytes: number;
  /** Live bytes in them (what relocating costs). */
  sparseLive: number;
  /** Per log segment (by id): what a compaction of it alone would copy and free. */
  segments: Map<number, SegmentLiveness>;
}

export interface SegmentLiveness {
  /** Bytes of its records. */
  bytes: number;
  /** Bytes of the commits a compaction keeps once its sparse ones are relocated (copied, not freed). */
  keptBytes: number;
  /** Its sparse commits, their bytes, and their live bytes (written again by relocation). */
  sparse: number[];
  sparseBytes: number;
  sparseLive: number;
}

export interface CleanerOptions {
  /** A commit is relocated when its live bytes are below this fraction of its size. Default 0.5. */
  sparseRatio?: number;
  /** Payload bytes per relocation commit (a writer waits for at most one). Default 1 MiB: a 4 MiB one (decrypt, re-seal, sign) held the thread ~250 ms here. */
  relocateCommitBytes?: number;
  /** Main-thread time between yields. Default 8 ms. */
  sliceMs?: number;
}

const yieldNow = () => new Promise<void>((r) => setImmediate(r));

/**
 * Longest the cleaner waits between two slices for the commits in flight to end (writers first,
 * as the urgent compaction does: a commit in flight gives the thread back at each await, and a
 * slice in every such gap lengthened a database's fsync by several slices).
 */
const COMMIT_WAIT_MS = 100;

class Slicer {
  private last = performance.now();
  constructor(private readonly ms: number, private readonly view: View) {}
  async tick(): Promise<void> {
    if (performance.now() - this.last < this.ms) return;
    await yieldNow();
    await this.view.commitsIdle(COMMIT_WAIT_MS);
    this.last = performance.now();
  }
}

/** Seqs compaction keeps whatever their events (genesis, key grants, public keys). */
function pinnedSeqs(view: View): Set<number> {
  const s = new Set<number>();
  const g = view.store.getMeta<number>('genesisSeq');
  if (g !== undefined) s.add(g);
  for (const k of view.store.allDataKeys()) for (const q of k.seqs) s.add(q);
  for (const p of view.store.allPublished()) s.add(p.seq);
  return s;
}

/**
 * Live bytes per commit, from the DAO index (one pass) and the record table (one pass): the live
 * data of the chain and its sparse commits. Commits holding a retained tombstone or pinned by
 * compaction for other reasons are never sparse: relocating their live events would free nothing.
 */
export async function scanLiveness(view: View, opts: CleanerOptions = {}): Promise<LivenessScan> {
  const ratio = opts.sparseRatio ?? 0.5;
  const slice = new Slicer(opts.sliceMs ?? 8, view);
  const live = new Map<number, number>();
  const held = pinnedSeqs(view);
  const now = view.now();
  let liveBytes = 0;
  for (const { value } of view.store.dao.getRange({ snapshot: false })) {
    const e = decodeDaoEntry(value as Buffer);
    await slice.tick();
    if (e.node.deleted) {
      if (now - e.node.updatedAt < view.retentionMs) held.add(e.seq);
      continue;
    }
    const b = e.metaLen + e.payloadLen + EVENT_OVERHEAD;
    liveBytes += b;
    live.set(e.seq, (live.get(e.seq) ?? 0) + b);
  }
  const sparse = new Set<number>();
  let sparseBytes = 0;
  let sparseLive = 0;
  const segments = new Map<number, SegmentLiveness>();
  for (const [seq, r] of view.store.allRecords()) {
    await slice.tick();
    let seg = segments.get(r.segment);
    if (!seg) segments.set(r.segment, (seg = { bytes: 0, keptBytes: 0, sparse: [], sparseBytes: 0, sparseLive: 0 }));
    seg.bytes += r.bytes;
    const l = live.get(seq) ?? 0;
    // Wholly dead commits need no relocation: compaction drops them as they are.
    if (l === 0 && !held.has(seq)) continue;
    if (held.has(seq) || l >= r.bytes * ratio) { seg.keptBytes += r.bytes; continue; }
    sparse.add(seq);
    sparseBytes += r.bytes;
    sparseLive += l;
    seg.sparse.push(seq);
    seg.sparseBytes += r.bytes;
    seg.sparseLive += l;
  }
  return { liveBytes, sparse, sparseBytes, sparseLive, segments };
}

/** Runs `fn` between two of the file system's batches (ChainStore.serialize). */
export type Serializer = <T>(fn: () => Promise<T>) => Promise<T>;

export interface RelocationResult { daos: number; commits: number; bytes: number }

/**
 * Writes the live DAO versions of the `sparse` commits again, in commits of about
 * `relocateCommitBytes`. A DAO rewritten by the file system since the scan is left alone (its
 * live version is elsewhere now).
 */
export async function relocate(view: View, sparse: Set<number>, serialize: Serializer, opts: CleanerOptions = {}): Promise<RelocationResult> {
  const out: RelocationResult = { daos: 0, commits: 0, bytes: 0 };
  if (sparse.size === 0) return out;
  const slice = new Slicer(opts.sliceMs ?? 8, view);
  const budget = opts.relocateCommitBytes ?? 1 << 20;
  let batch: Array<{ key: DaoKey; seq: number }> = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const items = batch;
    batch = [];
    batchBytes = 0;
    await serialize(async () => {
      const dio = view.begin('local');
      let n = 0;
      try {
        for (const { key, seq } of items) {
          const e = view.entry(key);
          if (!e || e.node.deleted || e.seq !== seq) continue;
          dio.update(key, {});
          n++;
          out.bytes += e.payloadLen;
        }
      } catch (err) {
        dio.cancel();
        throw err;
      }
      if (n === 0) { dio.cancel(); return; }
      await dio.commit('local');
      out.daos += n;
      out.commits++;
    });
  };
  for (const { key, value } of view.store.dao.getRange({ snapshot: false })) {
    const e = decodeDaoEntry(value as Buffer);
    await slice.tick();
    if (e.node.deleted || !sparse.has(e.seq)) continue;
    batch.push({ key: (key as Buffer).toString('hex'), seq: e.seq });
    batchBytes += e.payloadLen + e.metaLen;
    if (batchBytes >= budget || batch.length >= 2048) await flush();
  }
  await flush();
  return out;
}
