// Loading a chain from its redo log: every record is validated (nothing on disk is trusted) before
// it is applied to the authority state and handed to the caller. Signature checks are batched
// across many commits and run on the worker pool while the main thread decodes the next batch.
import type { CryptoPool } from '../crypto/index.js';
import type { LogPosition, LogRecord, RedoLog } from '../log/index.js';
import { decodeCommit } from './codec.js';
import { ChainLoadError, CommitRejected, GenesisMismatch, type RejectReason } from './errors.js';
import { type DeferredCheck, SignoffIndex, eitherCheck, hasDeferredSignature } from './deferred.js';
import { GapBridgingState, hintsOf } from './gaps.js';
import { toGenesisHash } from './genesis.js';
import { type AuthorityState, MemoryAuthorityState } from './state.js';
import type { Commit, KeyId } from './types.js';
import { type ValidatedCommit, type ValidationOptions, checkAgainstState, resolveLimits, signersOf, verifySignatures } from './validate.js';

export interface LoadProgress {
  records: number;
  events: number;
  bytes: number;
}

export interface LoadOptions extends ValidationOptions {
  /** Pinned genesis hash (hex or bytes). null: trust on first use (the caller pins what it gets). */
  pinnedGenesis: Uint8Array | string | null;
  /** State to validate against and apply to (default: a fresh in-memory state). With `from`, it
   *  must already hold everything before `from` (a persisted state with a watermark). */
  state?: AuthorityState;
  pool?: CryptoPool | null;
  /** Start after a watermark instead of at the beginning. */
  from?: { seq?: number; pos?: LogPosition };
  /**
   * The log was compacted before `from` (the view knows it from its index): start in gap mode.
   * Without it, gap mode starts at the first missing seq (see gaps.ts).
   */
  compacted?: boolean;
  /** Commits per signature batch (default 256). */
  batchCommits?: number;
  /**
   * Records up to this seq are not verified signature by signature (their claimed signers are taken
   * as they are); everything else is checked as always. Only for a caller that proved these records
   * are the ones it validated before — e.g. a replica whose hash chain matches a head signed by its
   * pinned server (src/net/replica-trust.ts): a commit's hash binds its content, so what they do is
   * what was validated. Default 0: every signature is verified.
   */
  trustSignaturesUntil?: number;
  /**
   * Vouches for deferred signature slots (src/chain/deferred.ts): the opener's own MAC keys
   * (macCheck). A slot it does not vouch for is accepted through a verified sign-off later in the
   * log (SignoffLookup), else refused.
   */
  deferred?: DeferredCheck;
  onProgress?: (p: LoadProgress) => void;
}

export interface LoadedCommit extends ValidatedCommit {
  seq: number;
  pos: LogPosition;
}

export interface ChainProblem {
  seq: number;
  pos: LogPosition;
  reason: RejectReason;
  message: string;
  eventIndex: number | null;
}

export interface ChainReport {
  records: number;
  accepted: number;
  events: number;
  genesisHash: string | null;
  /** Seqs are missing: a compacted log, checked in gap mode (gaps.ts). */
  compacted: boolean;
  problems: ChainProblem[];
}

type Item = { rec: LogRecord; commit: Commit | null; error: CommitRejected | null; signers?: ReadonlySet<KeyId> };

function decodeBatch(recs: LogRecord[], limits: ReturnType<typeof resolveLimits>): Item[] {
  return recs.map((rec) => {
    try {
      return { rec, commit: decodeCommit(rec.payload, limits), error: null };
    } catch (e) {
      if (e instanceof CommitRejected) return { rec, commit: null, error: e };
      throw e;
    }
  });
}

async function verifyBatch(items: Item[], lookup: SignoffLookup, trustUntil = 0, deferred?: DeferredCheck): Promise<Item[]> {
  for (const it of items) if (it.commit && it.rec.seq <= trustUntil) it.signers = signersOf(it.commit);
  const ok = items.filter((i) => i.commit !== null && i.signers === undefined);
  const res = await lookup.verify(ok.map((i) => i.commit!), ok.map((i) => i.rec.seq), deferred);
  ok.forEach((it, k) => {
    const r = res[k]!;
    if (r instanceof CommitRejected) it.error = r;
    else it.signers = r;
  });
  return items;
}

function* batches(log: RedoLog, from: LoadOptions['from'], size: number): Generator<LogRecord[]> {
  let cur: LogRecord[] = [];
  for (const rec of log.records(from)) {
    cur.push(rec);
    if (cur.length >= size) {
      yield cur;
      cur = [];
    }
  }
  if (cur.length) yield cur;
}

type Outcome = { ok: LoadedCommit } | { problem: ChainProblem; error: CommitRejected | GenesisMismatch };

/** Whether the records seen so far skipped a seq (shared with the caller, for the report). */
interface GapTracker { gaps: boolean }

async function* pipeline(log: RedoLog, opts: LoadOptions, state: AuthorityState, track: GapTracker = { gaps: false }): AsyncGenerator<Outcome> {
  const limits = resolveLimits(opts.limits);
  const pin = opts.pinnedGenesis === null ? null : toGenesisHash(opts.pinnedGenesis);
  const existing = state.getGenesis();
  if (existing && pin && !existing.hash.equals(pin)) {
    throw new GenesisMismatch(`state belongs to genesis ${existing.hash.toString('hex')}, pinned ${pin.toString('hex')}`);
  }
  const progress: LoadProgress = { records: 0, events: 0, bytes: 0 };
  // Seqs start at 1 and follow each other; a compacted log has holes (gaps.ts).
  let expectSeq: number | null = opts.from === undefined ? 1 : (opts.from.seq ?? null);
  if (opts.compacted) track.gaps = true;
  const bridged = new GapBridgingState(state);
  const lookup = new SignoffLookup(log, opts.pool, opts.limits);
  const it = batches(log, opts.from, opts.batchCommits ?? 256);
  let next = it.next();
  let pending: Promise<Item[]> | null = next.done ? null : verifyBatch(decodeBatch(next.value, limits), lookup, opts.trustSignaturesUntil, opts.deferred);
  while (pending) {
    const items = await pending;
    // Decode the next batch and hand its signatures to the pool before applying this one.
    next = it.next();
    pending = next.done ? null : verifyBatch(decodeBatch(next.value, limits), lookup, opts.trustSignaturesUntil, opts.deferred);
    pending?.catch(() => undefined);
    for (const item of items) {
      const { rec } = item;
      progress.records++;
      progress.bytes += rec.payload.length;
      if (expectSeq !== null && rec.seq !== expectSeq) track.gaps = true;
      expectSeq = rec.seq + 1;
      let error = item.error;
      if (!error && item.commit) {
        const c = item.commit;
        if (c.header.genesis && pin && !c.hash.equals(pin)) {
          const e = new GenesisMismatch(`log genesis ${c.hash.toString('hex')} does not match the pinned ${pin.toString('hex')}`);
          yield { problem: { seq: rec.seq, pos: rec.pos, reason: 'genesis', message: e.message, eventIndex: null }, error: e };
          continue;
        }
        try {
          bridged.hints = track.gaps ? hintsOf(c) : null;
          let effects;
          try {
            effects = checkAgainstState(track.gaps ? bridged : state, c, item.signers!, opts);
          } finally {
            bridged.hints = null;
          }
          state.applyEffects(effects);
          progress.events += c.events.length;
          yield { ok: { commit: c, signers: item.signers!, effects, seq: rec.seq, pos: rec.pos } };
          continue;
        } catch (e) {
          if (!(e instanceof CommitRejected)) throw e;
          error = e;
        }
      }
      const err = error!;
      yield {
        problem: { seq: rec.seq, pos: rec.pos, reason: err.reason, message: err.message, eventIndex: err.eventIndex },
        error: err,
      };
    }
    opts.onProgress?.({ ...progress });
  }
}

/**
 * Validates and applies every record of the log in order and yields each accepted commit with its
 * seq and position. Stops at the first bad record with a ChainLoadError naming it (seq, position,
 * reason), or GenesisMismatch when the log's genesis is not the pinned one.
 */
export async function* loadChain(log: RedoLog, opts: LoadOptions): AsyncGenerator<LoadedCommit, AuthorityState> {
  const state = opts.state ?? new MemoryAuthorityState();
  for await (const o of pipeline(log, opts, state)) {
    if ('ok' in o) {
      yield o.ok;
      continue;
    }
    if (o.error instanceof GenesisMismatch) throw o.error;
    throw new ChainLoadError(o.problem.seq, o.problem.pos, o.error);
  }
  if (!state.getGenesis()) throw new GenesisMismatch('the log holds no genesis');
  return state;
}

/** Loads a whole chain into a state (convenience for callers that don't stream). */
export async function loadChainState(log: RedoLog, opts: LoadOptions): Promise<{ state: AuthorityState; commits: number; events: number }> {
  const state = opts.state ?? new MemoryAuthorityState();
  let commits = 0;
  let events = 0;
  for await (const c of loadChain(log, { ...opts, state })) {
    commits++;
    events += c.commit.events.length;
  }
  return { state, commits, events };
}

/**
 * Checks a whole log and lists ALL problems without stopping: a rejected commit is reported and
 * not applied, and checking goes on with the next record. A compacted log (missing seqs) is
 * checked in gap mode, as the view loads it (gaps.ts): what compaction keeps verifies.
 */
export async function verifyChain(log: RedoLog, opts: LoadOptions): Promise<ChainReport> {
  const state = opts.state ?? new MemoryAuthorityState();
  const report: ChainReport = { records: 0, accepted: 0, events: 0, genesisHash: null, compacted: false, problems: [] };
  const track: GapTracker = { gaps: false };
  for await (const o of pipeline(log, opts, state, track)) {
    report.records++;
    if ('ok' in o) {
      report.accepted++;
      report.events += o.ok.commit.events.length;
    } else {
      report.problems.push(o.problem);
    }
  }
  const g = state.getGenesis();
  report.genesisHash = g ? g.hash.toString('hex') : null;
  report.compacted = track.gaps;
  return report;
}

/**
 * Signature checks that also accept deferred slots (deferred.ts) through the log's sign-offs: the
 * first time a commit has a deferred slot `own` does not vouch for, the log is read once from that
 * commit on for verified sign-offs (a sign-off always follows what it signs; callers check in seq
 * order), and the commits that failed so are checked again against them. A log without such
 * commits costs nothing more than verifySignatures.
 */
export class SignoffLookup {
  private index: Promise<SignoffIndex> | null = null;

  constructor(
    private readonly log: RedoLog,
    private readonly pool?: CryptoPool | null,
    private readonly limits?: LoadOptions['limits'],
  ) {}

  async verify(commits: readonly Commit[], seqs: readonly number[], own?: DeferredCheck): Promise<Array<ReadonlySet<KeyId> | CommitRejected>> {
    const res = await verifySignatures(commits, this.pool, own, seqs);
    const again = res.flatMap((r, i) => (r instanceof CommitRejected && hasDeferredSignature(commits[i]!) ? [i] : []));
    if (again.length === 0) return res;
    this.index ??= signoffsOf(this.log, { seq: seqs[again[0]!]! }, this.pool, this.limits);
    const check = eitherCheck(own, (await this.index).check);
    const redo = await verifySignatures(again.map((i) => commits[i]!), this.pool, check, again.map((i) => seqs[i]!));
    again.forEach((i, k) => { res[i] = redo[k]!; });
    return res;
  }
}

/** The log's sign-offs from `from` on whose own signatures verify (one decoding pass). */
async function signoffsOf(
  log: RedoLog,
  from: LoadOptions['from'],
  pool: CryptoPool | null | undefined,
  sizeLimits: LoadOptions['limits'],
): Promise<SignoffIndex> {
  const index = new SignoffIndex();
  const limits = resolveLimits(sizeLimits);
  const found: Commit[] = [];
  for (const rec of log.records(from)) {
    // Skip what doesn't decode: the checking pass names it.
    let c: Commit;
    try {
      c = decodeCommit(rec.payload, limits);
    } catch {
      continue;
    }
    if (c.header.signs) found.push(c);
  }
  if (found.length === 0) return index;
  const res = await verifySignatures(found, pool);
  found.forEach((c, i) => {
    const r = res[i]!;
    if (!(r instanceof CommitRejected)) index.add(c, r);
  });
  return index;
}
