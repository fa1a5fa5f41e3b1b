// Opening a view's index and keeping it current with the log: the check of a persisted index against
// the log (watermark), the replay of the tail or the rebuild from the whole log (decode, signatures
// batched on the pool, state checks, large LMDB transactions), and the recovery when LMDB itself
// fails under a commit. The View (view.ts) owns the state; the loader works on it through LoaderHost.
import {
  CommitRejected as ChainCommitRejected,
  type Commit,
  type CommitEffects,
  checkAgainstState,
  decodeCommit,
  hintsOf,
  type DeferredCheck,
  SignoffLookup,
} from '../chain/index.js';
import type { CryptoPool } from '../crypto/index.js';
import type { LogRecord, RedoLog } from '../log/index.js';
import { CommitRejected, IndexFailed, IndexMismatch, ReadOnlyView } from './errors.js';
import { INDEX_FORMAT, type IndexStore, type Watermark, isLmdbFault } from './index-store.js';
import type { AppliedChange, LmdbAuthorityState } from './lmdb-state.js';
import { type ViewProgress, logBytesOf } from './progress.js';
import { advanceWatermarkBy, emptyWatermark, nextChainHash, sameWatermark, storedRecordDigest } from './watermark.js';
import type { OpenReport, OpenViewOptions } from './view.js';

/** What the loader needs of its view. */
export interface LoaderHost {
  readonly opts: OpenViewOptions;
  readonly log: RedoLog;
  readonly store: IndexStore;
  readonly state: LmdbAuthorityState;
  readonly pool: CryptoPool | null;
  /** Accepts deferred signature slots made with the opener's own keys (src/chain/deferred.ts). */
  readonly deferredCheck: DeferredCheck;
  readonly readOnly: boolean;
  /** ValidationOptions.backwardsToleranceMs of this chain's order. */
  readonly backwardsToleranceMs: number;
  now(): number;
  progress(p: ViewProgress): void;
  /** Drops decrypted values cached before the state they came from changed. */
  clearValues(): void;
  fail(e: Error): void;
}

/** The log's watermark at `seq` (null: a record there does not digest); see logWatermark. */
export interface PrecomputedWatermark {
  seq: number;
  watermark: Watermark | null;
}

/**
 * The running watermark of the log's records up to `seq` (fewer when the log ends first), or null
 * when one of them does not digest (a large record whose bytes no longer match its hash). Reports
 * the 'verify' phase in payload bytes of `total`.
 */
export function logWatermark(log: RedoLog, seq: number, total: number, progress: (p: ViewProgress) => void): Watermark | null {
  const report = (done: number) => progress({ phase: 'verify', done, total, unit: 'bytes' });
  report(0);
  let w = emptyWatermark();
  let n = 0;
  for (const rec of log.records()) {
    if (rec.seq > seq) break;
    let digest: Buffer;
    try {
      digest = storedRecordDigest(rec.payload);
    } catch {
      return null;
    }
    w = advanceWatermarkBy(w, rec.seq, rec.pos, digest, rec.payload.length);
    if (++n % 4096 === 0) report(Math.min(w.bytes, total));
    if (rec.seq === seq) break;
  }
  return w;
}

/** An index failure LMDB raised and the view recovered from (IndexLoader.recover). */
export interface IndexRecovery {
  at: number;
  cause: string;
  how?: 'reopened' | 'rebuilt';
}

export class IndexLoader {
  /** Index failures recovered from, oldest first. */
  readonly recoveries: IndexRecovery[] = [];
  /** Deferred signatures this opener holds no key for (another reader of a local chain): the log's sign-offs. */
  private readonly signoffs: SignoffLookup;

  constructor(private readonly v: LoaderHost) {
    this.signoffs = new SignoffLookup(v.log, v.pool);
  }

  /**
   * Opens: appends the genesis of a new chain, checks the index against the log, replays the tail or
   * rebuilds. `precomputed`: the log's watermark at the seq the index's seal named, computed while
   * the seal was checked; used when the index's watermark is at that seq.
   */
  async load(unsealed: string | null, precomputed: PrecomputedWatermark | null = null): Promise<OpenReport> {
    const t0 = performance.now();
    const o = this.v.opts;
    if (o.genesis && this.v.log.nextSeq <= 1 && this.v.log.lastPos === null) {
      if (this.v.readOnly) throw new ReadOnlyView('cannot create a chain read-only');
      await this.v.log.append(o.genesis.bytes, 'durable');
    }
    // The log's watermark computed before the index was opened, when it is at the index's seq
    // (undefined: verify now; null: a record up to there does not digest).
    const wmSeq = this.v.store.getWatermark()?.seq;
    const pre = precomputed !== null && precomputed.seq === wmSeq && (o.verify ?? 'full') === 'full' ? precomputed.watermark : undefined;
    const reason = this.indexProblem(pre);
    let mode: OpenReport['mode'] = 'tail';
    if (reason !== null) {
      if ((o.rebuild ?? 'auto') === 'never' && reason !== 'no index') throw new IndexMismatch(`index does not match the log: ${reason}`);
      mode = this.v.store.getWatermark() || unsealed ? 'rebuild' : 'fresh';
      this.v.store.clearDerived();
      this.v.store.putMeta('format', INDEX_FORMAT);
      this.v.store.putMeta('chain', [this.v.log.chainId, null]);
      this.v.state.discardStaged();
      this.v.state.clearCache();
      this.v.state.watermark = emptyWatermark();
      this.v.state.liveBytes = 0;
    }
    const from = this.v.state.watermark.seq >= 0 ? this.v.state.watermark.seq + 1 : undefined;
    const r = await this.replay(from, mode === 'tail' ? 'replay' : 'rebuild');
    if (!this.v.state.getGenesis()) throw new IndexMismatch('the log holds no genesis');
    return { mode, reason: unsealed ?? reason, tailRecords: r.records, tailEvents: r.events, ms: performance.now() - t0, overlapped: pre !== undefined && reason === null };
  }

  /** Null when the persisted index describes a prefix of this log; else why not. */
  private indexProblem(pre: Watermark | null | undefined): string | null {
    const store = this.v.store;
    const wm = store.getWatermark();
    if (!wm) return 'no index';
    if (store.getMeta<number>('format') !== INDEX_FORMAT) return 'index format';
    const id = store.getMeta<[string, unknown]>('chain');
    if (!id || id[0] !== this.v.log.chainId) return 'index of another chain';
    const g = this.v.state.getGenesis();
    const pin = this.v.opts.pinnedGenesis;
    if (g && pin !== null) {
      const p = typeof pin === 'string' ? Buffer.from(pin, 'hex') : Buffer.from(pin);
      if (!g.hash.equals(p)) return 'index of another genesis';
    }
    if (wm.seq < 0) return 'empty watermark';
    return (this.v.opts.verify ?? 'full') === 'full' ? this.verifyFull(wm, pre) : this.verifyAtWatermark(wm);
  }

  /** `pre`: the log's watermark at wm.seq, already computed (undefined: compute it here). */
  private verifyFull(wm: Watermark, pre: Watermark | null | undefined): string | null {
    // Payload bytes up to the watermark: what this phase reads, exactly.
    const total = wm.bytes;
    const w = pre !== undefined ? pre : logWatermark(this.v.log, wm.seq, total, (p) => this.v.progress(p));
    if (w === null) return 'log differs from the indexed log';
    if (!sameWatermark(w, wm)) return w.seq < wm.seq ? 'index ahead of the log' : 'log differs from the indexed log';
    this.v.progress({ phase: 'verify', done: total, total, unit: 'bytes' });
    return null;
  }

  private verifyAtWatermark(wm: Watermark): string | null {
    let rec: LogRecord;
    try {
      rec = this.v.log.read({ segment: wm.segment, offset: wm.offset });
    } catch {
      return 'watermark record missing';
    }
    let digest: Buffer;
    try {
      digest = storedRecordDigest(rec.payload);
    } catch {
      return 'watermark record differs';
    }
    if (rec.seq !== wm.seq || !nextChainHash(wm.prevHash, rec.seq, digest).equals(wm.chainHash)) {
      return 'watermark record differs';
    }
    return null;
  }

  /**
   * Validates and applies the log from `fromSeq` (everything when undefined): decode, signatures
   * batched over the pool (overlapping the next batch's decoding), state checks, then LMDB writes in
   * large transactions. Stops at the first bad record with the chain's ChainLoadError.
   */
  private async replay(
    fromSeq: number | undefined,
    phase: 'replay' | 'rebuild',
    changesOf?: number,
  ): Promise<{ records: number; events: number; changes: AppliedChange[] }> {
    let changes: AppliedChange[] = [];
    // Log bytes after the watermark (estimated from its payload bytes: the view does not know
    // where a position lies in the whole log); the last report says done === total.
    const start = fromSeq === undefined ? 0 : logBytesOf(this.v.state.watermark.bytes, this.v.state.watermark.records);
    let total = Math.max(0, this.v.log.sizeBytes() - start);
    let records = 0;
    let events = 0;
    let bytes = 0;
    const report = (done: number) => this.v.progress({ phase, done, total, unit: 'bytes', records, events });
    report(0);
    let expectSeq = this.v.state.watermark.seq >= 0 ? this.v.state.watermark.seq + 1 : 1;
    let gaps = this.v.store.getMeta<number>('compacted') === 1;
    const batchSize = 64;
    const it = this.v.log.records(fromSeq !== undefined ? { seq: fromSeq } : undefined)[Symbol.iterator]();
    const take = (): LogRecord[] => {
      const out: LogRecord[] = [];
      let b = 0;
      while (out.length < batchSize && b < 32 << 20) {
        const n = it.next();
        if (n.done || (this.v.opts.untilSeq !== undefined && n.value.seq > this.v.opts.untilSeq)) break;
        // Copy: the log's read window is reused.
        const rec = { seq: n.value.seq, pos: n.value.pos, payload: Buffer.from(n.value.payload) };
        out.push(rec);
        b += rec.payload.length;
      }
      return out;
    };
    const decodeAndVerify = async (recs: LogRecord[]) => {
      // A record that does not decode is named itself, not its batch.
      const commits = recs.map((r) => {
        try {
          return decodeCommit(r.payload);
        } catch (e) {
          throw this.loadError(r, e);
        }
      });
      const sigs = await this.signoffs.verify(commits, recs.map((r) => r.seq), this.v.deferredCheck);
      return { recs, commits, sigs };
    };
    let batch = take();
    let pending = batch.length ? decodeAndVerify(batch) : null;
    while (pending) {
      const cur = await pending;
      batch = take();
      pending = batch.length ? decodeAndVerify(batch) : null;
      pending?.catch(() => undefined);
      try {
        for (let i = 0; i < cur.recs.length; i++) {
          const rec = cur.recs[i]!;
          const commit = cur.commits[i]!;
          const s = cur.sigs[i]!;
          if (s instanceof ChainCommitRejected) throw this.loadError(rec, s, commit);
          if (rec.seq !== expectSeq) gaps = true;
          expectSeq = rec.seq + 1;
          const pin = this.v.opts.pinnedGenesis;
          if (commit.header.genesis && pin !== null) {
            const p = typeof pin === 'string' ? Buffer.from(pin, 'hex') : Buffer.from(pin);
            if (!commit.hash.equals(p)) throw new IndexMismatch(`log genesis ${commit.hash.toString('hex')} is not the pinned one`);
          }
          let effects: CommitEffects;
          this.v.state.gapHints = gaps ? hintsOf(commit) : null;
          try {
            effects = checkAgainstState(this.v.state, commit, s, { now: this.v.now, backwardsToleranceMs: this.v.backwardsToleranceMs });
          } catch (e) {
            throw this.loadError(rec, e, commit);
          } finally {
            this.v.state.gapHints = null;
          }
          this.v.state.stage({ seq: rec.seq, pos: rec.pos, commit, effects });
          records++;
          events += commit.events.length;
          bytes += rec.payload.length;
        }
        if (gaps && this.v.store.getMeta<number>('compacted') !== 1) this.v.store.putMeta('compacted', 1);
        // flush() answers per staged record, in the batch's order.
        const applied = this.v.state.flush();
        const at = changesOf === undefined ? -1 : cur.recs.findIndex((r) => r.seq === changesOf);
        if (at >= 0) changes = applied[at] ?? [];
        this.v.clearValues();
      } catch (e) {
        this.v.state.discardStaged();
        throw e;
      }
      const done = logBytesOf(bytes, records);
      // A log that grew meanwhile (or a low estimate): the bar never runs past its end.
      if (done > total) total = done;
      report(done);
    }
    // Done (a history view stops early, before the end of the log): the phase ends at 100 %.
    report(total);
    return { records, events, changes };
  }

  /**
   * LMDB failed under a commit whose record `seq` is already in the log (isLmdbFault). The index is
   * derived from the log, so the environment is reopened and the tail replayed (that record
   * included, validated again); if LMDB fails again, the index is deleted and rebuilt from the
   * whole log. Only when that fails too is the view failed. Returns the changes of record `seq`.
   * Runs inside exclusive(): no other writer meanwhile.
   */
  async recover(cause: Error, seq: number): Promise<AppliedChange[]> {
    this.recoveries.push({ at: this.v.now(), cause: cause.message });
    this.v.clearValues();
    let last: Error = cause;
    for (const fresh of [false, true]) {
      try {
        await this.v.store.reopen(fresh);
        if (fresh) {
          this.v.store.putMeta('format', INDEX_FORMAT);
          this.v.store.putMeta('chain', [this.v.log.chainId, null]);
        }
        this.v.state.reload();
        const from = this.v.state.watermark.seq >= 0 ? this.v.state.watermark.seq + 1 : undefined;
        const r = await this.replay(from, fresh ? 'rebuild' : 'replay', seq);
        this.recoveries[this.recoveries.length - 1]!.how = fresh ? 'rebuilt' : 'reopened';
        // Said once per recovery on stderr (a process 'warning' listener can take it instead).
        process.emitWarning(`the chain index failed (${cause.message.trim()}) and was ${fresh ? 'rebuilt from' : 'reopened and caught up with'} the log; no commit was lost`, { code: 'ATE_INDEX_RECOVERED' });
        return r.changes;
      } catch (e) {
        last = e as Error;
        if (!isLmdbFault(e)) break;
      }
    }
    const failed = new IndexFailed(
      `the index failed (${cause.message.trim()}) and could not be rebuilt from the log (${last.message.trim()}); the commit is in the log, and the next open rebuilds the index`,
    );
    this.v.fail(failed);
    throw failed;
  }

  /**
   * The error of a record that failed to load: names the record (seq, segment, offset) and, when
   * one event is to blame, the event and its DAO. A record that does not decode at all is such a
   * failure too, whatever the decoder threw.
   */
  private loadError(rec: LogRecord, e: unknown, commit?: Commit): Error {
    if (!(e instanceof ChainCommitRejected) && (commit || !(e instanceof Error))) return e as Error;
    const i = e instanceof ChainCommitRejected ? e.eventIndex : null;
    const ev = i !== null ? commit?.events[i] : undefined;
    const what = ev ? `, event ${i} (DAO ${ev.meta.key} version ${ev.meta.version})` : '';
    return new CommitRejected(`chain load stopped at record seq ${rec.seq} (segment ${rec.pos.segment}, offset ${rec.pos.offset}${what}): ${(e as Error).message}`, e);
  }
}
