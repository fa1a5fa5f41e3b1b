// One chain hosted by the server: its redo log, the authority state validation needs (no read
// key, ever), its running chain hash and the append pipeline:
//   decode + size limits -> signatures on the worker pool (concurrent across appends)
//   -> in arrival order: state checks against the previous state, sequence, log append
//   -> durable (the log's group commit: many appends, one fdatasync)
//   -> in seq order: confirm to the origin, relay to the other subscribers
//   -> sign the newest head (coalesced: one signature covers every commit confirmed meanwhile).
// A rejected commit is never appended, confirmed or relayed.
import * as path from 'node:path';
import {
  type AuthorityState, type Commit, CommitRejected, DEFAULT_LIMITS, MemoryAuthorityState, type SizeLimits,
  type ValidationOptions, checkAgainstState, decodeCommit, loadChain, verifySignatures,
} from '../src/chain/index.js';
import type { CryptoPool } from '../src/crypto/index.js';
import { type RedoLog, openLog } from '../src/log/index.js';
import { cutProblem } from '../src/chain/index.js';
import { signingPublicKeyOf } from '../src/crypto/index.js';
import { ChainCompactor, type ServerCompactionOptions, type ServerCompactionReport, readCutHash } from './chain-compactor.js';
import type { VerifyBatcher } from './verify-batcher.js';
import { HeadSigner } from './store/head-signer.js';
import { loadHostState, writeCheckpoint } from './checkpoint.js';
import type { AppendStats } from './stats.js';
import type { AppendOrigin, ChainListener, ServedChain } from './store/chain-store.js';
import { type SignedHead, type WireRejectReason, ZERO_CHAIN_HASH, nextChainHash, signHead } from '../src/net/index.js';
import { recordHash } from '../src/log/index.js';
import type { CutOffer } from './store/chain-store.js';

export class AppendRejected extends Error {
  override name = 'AppendRejected';
  constructor(readonly reason: WireRejectReason, detail: string, readonly seq: number | null = null) {
    super(detail);
  }
}

/**
 * Validation options of the server's order. The "timestamps never go backwards" rule is not
 * applied here: the server orders commits of several writers by arrival, each timestamped with its
 * writer's estimate of the server's clock, so one signed first and delivered later (a retry, a slow
 * upload) is legitimately earlier than its predecessor; a fixed tolerance would refuse a slow link.
 * The future check (the server's clock) still bounds every timestamp; the hash chain and signed
 * heads protect the order itself.
 */
export function serverOrder(futureToleranceMs: number | undefined): ValidationOptions {
  return { backwardsToleranceMs: Number.POSITIVE_INFINITY, ...(futureToleranceMs !== undefined ? { futureToleranceMs } : {}) };
}

const REASONS: Record<string, WireRejectReason> = {
  malformed: 'malformed', hash: 'hash', signature: 'bad-signature', authority: 'unauthorized', future: 'future-timestamp',
  replay: 'replay', conflict: 'conflict', genesis: 'wrong-genesis', confidentiality: 'confidentiality',
};

export function toAppendRejected(e: unknown): AppendRejected {
  if (e instanceof AppendRejected) return e;
  if (e instanceof CommitRejected) return new AppendRejected(REASONS[e.reason] ?? 'malformed', e.message);
  throw e;
}

export type { AppendOrigin, ChainListener } from './store/chain-store.js';

export interface HostedChainOptions {
  dir: string;
  name: string;
  pool: CryptoPool | null;
  /** Shared batcher of signature checks (default: one call per commit). */
  verifier?: VerifyBatcher;
  /** Called once when a failed write leaves the log and the state in doubt (the host drops it). */
  onBroken?: (chain: HostedChain, e: Error) => void;
  signingKey: Buffer;
  limits?: Partial<SizeLimits>;
  futureToleranceMs?: number;
  /** Told of every commit stored durably (server/stats.ts). */
  stats?: AppendStats;
  /** Server-side compaction (server/chain-compactor.ts); absent or mode 'never': the log only grows. */
  compaction?: ServerCompactionOptions;
  /** Where the compactor reports its runs. */
  log?: (line: string) => void;
}

/** A subscriber asked for history the server compacted away (below its cut, signed by the server). */
export class HistoryCompacted extends Error {
  override name = 'HistoryCompacted';
  constructor(readonly from: number, readonly cut: number) {
    super(`history from seq ${from} was compacted on this server (cut at seq ${cut}); this client cannot follow a compacted history: sync a new replica from a server that still holds it, or from seq ${cut + 1} on`);
  }
}

interface Pending {
  seq: number;
  bytes: Buffer;
  origin: AppendOrigin | null;
  done: boolean;
  error: Error | null;
  resolve: (seq: number) => void;
  reject: (e: Error) => void;
}

export class HostedChain implements ServedChain {
  readonly listeners = new Set<ChainListener>();
  private readonly limits: SizeLimits;
  private readonly seqOf = new Map<string, number>();
  private chainHashes: Buffer[] = [ZERO_CHAIN_HASH];
  private tail: Promise<unknown> = Promise.resolve();
  /** The durable wait of the newest sequenced commit (see sequence: refusals wait for it). */
  private lastDurable: Promise<number> | null = null;
  private readonly pending: Pending[] = [];
  private readonly heads: HeadSigner;
  private broken: Error | null = null;
  confirmedSeq = 0;
  inflight = 0;
  /** Records whose signatures the checkpoint vouched for when the chain was opened. */
  trustedOnOpen = 0;
  private checkpointedAt = 0;
  private compactor: ChainCompactor | null = null;
  /** History streams running now, and the gate new ones wait at while a compaction runs. */
  historyReaders = 0;
  private historyGate: Promise<void> | null = null;
  /** Set when the host closes this chain (evicted or shutting down); it is reopened on next use. */
  closing = false;
  lastUsed = Date.now();

  private constructor(
    readonly name: string,
    readonly log: RedoLog,
    readonly state: AuthorityState,
    readonly genesisHash: Buffer,
    private readonly o: HostedChainOptions,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.heads = new HeadSigner({
      signingKey: o.signingKey, pool: o.pool, genesisHash: () => this.genesisHash,
      confirmedSeq: () => this.confirmedSeq, chainHashAt: (seq) => this.chainHashes[seq]!,
      onSigned: (h) => {
        for (const l of this.listeners) l.onHead(this, h);
        if (Date.now() - this.checkpointedAt > 1000) {
          this.checkpointedAt = Date.now();
          void writeCheckpoint(this.o.dir, h).catch(() => undefined);
        }
      },
    });
  }

  static logOptions(o: HostedChainOptions) {
    const limits = { ...DEFAULT_LIMITS, ...o.limits };
    return { dir: path.join(o.dir, 'log'), chainId: o.name, maxRecordSize: limits.maxCommitBytes + 1024 };
  }

  /** Opens an existing chain, validating its whole log (nothing on disk is trusted). */
  static async open(o: HostedChainOptions): Promise<HostedChain> {
    const log = await openLog(HostedChain.logOptions(o));
    try {
      // A compacted log: its cut must be signed by this server's key (or a root of the chain), and
      // atedb's chain hash at the cut must have been kept (chain-compactor.ts).
      let cut: { seq: number; hash: Buffer } | null = null;
      const c = log.chain.cut;
      if (c) {
        const problem = cutProblem(log, [signingPublicKeyOf(o.signingKey)]);
        if (problem) throw new Error(`chain '${o.name}': ${problem}`);
        const hash = await readCutHash(o.dir, c.seq);
        if (!hash) throw new Error(`chain '${o.name}' was compacted at seq ${c.seq}, but its chain hash there is not in ${path.join(o.dir, 'cut-hashes')}`);
        cut = { seq: c.seq, hash };
      }
      const { state, chainHashes: hashes, seqOf, trusted } = await loadHostState(o.dir, log, {
        pool: o.pool, signingKey: o.signingKey, ...(o.limits ? { limits: o.limits } : {}), cut,
      });
      const chain = new HostedChain(o.name, log, state, state.getGenesis()!.hash, o);
      chain.trustedOnOpen = trusted;
      chain.chainHashes = hashes;
      for (const [k, v] of seqOf) chain.seqOf.set(k, v);
      chain.confirmedSeq = hashes.length - 1;
      chain.startCompactor();
      return chain;
    } catch (e) {
      await log.close().catch(() => undefined);
      throw e;
    }
  }

  /** Creates a chain from a genesis commit (validated first; the log is created only if it passes). */
  static async create(o: HostedChainOptions, genesisBytes: Buffer): Promise<HostedChain> {
    const limits = { ...DEFAULT_LIMITS, ...o.limits };
    if (genesisBytes.length > limits.maxCommitBytes) throw new AppendRejected('too-large', `genesis of ${genesisBytes.length} bytes`);
    let commit: Commit;
    const state = new MemoryAuthorityState();
    try {
      commit = decodeCommit(genesisBytes, limits);
      if (!commit.header.genesis) throw new AppendRejected('unknown-chain', `no chain '${o.name}' here, and this commit is not a genesis`);
      const [signers] = await verifySignatures([commit], o.pool);
      if (signers instanceof CommitRejected) throw signers;
      state.applyEffects(checkAgainstState(state, commit, signers!, serverOrder(o.futureToleranceMs)));
    } catch (e) {
      throw toAppendRejected(e);
    }
    if (commit.header.genesis.name !== o.name) {
      throw new AppendRejected('wrong-genesis', `genesis names chain '${commit.header.genesis.name}', not '${o.name}'`);
    }
    const log = await openLog({ ...HostedChain.logOptions(o), genesisHash: commit.hash });
    const t0 = performance.now();
    await log.append(genesisBytes, 'durable');
    o.stats?.stored(performance.now() - t0, commit.events.length);
    const chain = new HostedChain(o.name, log, state, commit.hash, o);
    chain.chainHashes.push(nextChainHash(ZERO_CHAIN_HASH, commit.hash));
    chain.seqOf.set(commit.hash.toString('hex'), 1);
    chain.confirmedSeq = 1;
    chain.startCompactor();
    return chain;
  }

  private startCompactor(): void {
    const c = this.o.compaction;
    if (!c || (c.mode ?? 'never') === 'never') return;
    this.compactor = new ChainCompactor(this, {
      dir: this.o.dir, signingKey: this.o.signingKey, signingPublicKey: signingPublicKeyOf(this.o.signingKey), pool: this.o.pool,
      compaction: c, ...(this.o.limits ? { limits: this.o.limits } : {}), ...(this.o.log ? { log: this.o.log } : {}),
    });
  }

  /** Compacts now (whatever it reclaims); null when this chain runs no compactor. */
  compactNow(): Promise<ServerCompactionReport> | null {
    return this.compactor?.run('manual', false) ?? null;
  }

  /** atedb's chain hash at `seq` (known from the last cut on). */
  chainHashAt(seq: number): Buffer | undefined {
    const h = this.chainHashes[seq];
    return h && h !== ZERO_CHAIN_HASH ? h : seq === 0 ? ZERO_CHAIN_HASH : undefined;
  }

  setHistoryGate(p: Promise<void> | null): void {
    this.historyGate = p;
  }

  /** Held while a subscriber is streamed history (no compaction switches under it); returns the release. */
  async beginHistory(): Promise<() => void> {
    while (this.historyGate) await this.historyGate;
    this.historyReaders++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.historyReaders--;
    };
  }

  get chainHash(): Buffer {
    return this.chainHashes[this.confirmedSeq]!;
  }

  seqOfCommit(hash: Buffer): number | undefined {
    return this.seqOf.get(hash.toString('hex'));
  }

  get idle(): boolean {
    return this.listeners.size === 0 && this.inflight === 0 && this.pending.length === 0 && !this.compactor?.busy;
  }

  /** Validates, sequences, stores durably and confirms one commit; resolves with its seq. */
  async append(bytes: Buffer, origin: AppendOrigin | null): Promise<number> {
    if (this.broken) throw new AppendRejected('unavailable', `chain '${this.name}' is unavailable: ${this.broken.message}`);
    if (this.closing) throw new AppendRejected('unavailable', `chain '${this.name}' is closing`);
    this.lastUsed = Date.now();
    if (bytes.length > this.limits.maxCommitBytes) {
      throw new AppendRejected('too-large', `commit of ${bytes.length} bytes, the limit is ${this.limits.maxCommitBytes}`);
    }
    this.inflight++;
    try {
      let commit: Commit;
      try {
        commit = decodeCommit(bytes, this.limits);
      } catch (e) {
        throw toAppendRejected(e);
      }
      const known = this.seqOfCommit(commit.hash);
      if (known !== undefined) throw new AppendRejected('replay', `commit already in the chain at seq ${known}`, known);
      if (commit.header.genesis) throw new AppendRejected('wrong-genesis', `chain '${this.name}' already has its genesis`);
      const signers = this.o.verifier ? await this.o.verifier.verify(commit) : (await verifySignatures([commit], this.o.pool))[0]!;
      if (signers instanceof CommitRejected) throw toAppendRejected(signers);
      // Sequencing: state checks and the log append happen in arrival order, one at a time; the
      // durable wait does not hold the line, so the next commits join the same fdatasync.
      const sequenced = this.tail.then(() => this.sequence(commit, bytes, signers!, origin));
      this.tail = sequenced.catch(() => undefined);
      const { durable } = await sequenced;
      return await durable;
    } finally {
      this.inflight--;
    }
  }

  // Returns the durable wait wrapped in an object, so the sequencing queue does not wait for it.
  private sequence(commit: Commit, bytes: Buffer, signers: ReadonlySet<string>, origin: AppendOrigin | null): { durable: Promise<number> } {
    if (this.broken) throw new AppendRejected('unavailable', `chain '${this.name}' is unavailable: ${this.broken.message}`);
    const again = this.seqOfCommit(commit.hash);
    if (again !== undefined) throw new AppendRejected('replay', `commit already in the chain at seq ${again}`, again);
    let effects;
    try {
      effects = checkAgainstState(this.state, commit, signers, serverOrder(this.o.futureToleranceMs));
    } catch (e) {
      const err = toAppendRejected(e);
      // Checked against commits still on their way to disk: answered once they are confirmed and
      // relayed, so a client hears of the commit it lost to before it hears that it lost (its
      // resync then holds the winner; answered first, it resolved the conflict without it).
      const before = this.lastDurable;
      if (!before || this.pending.length === 0) throw err;
      return { durable: before.then(() => Promise.reject(err), () => Promise.reject(err)) };
    }
    const seq = this.log.nextSeq;
    this.state.applyEffects(effects);
    this.chainHashes.push(nextChainHash(this.chainHashes[this.chainHashes.length - 1]!, commit.hash));
    this.seqOf.set(commit.hash.toString('hex'), seq);
    const events = commit.events.length;
    const durable = new Promise<number>((resolve, reject) => {
      const item: Pending = { seq, bytes, origin, done: false, error: null, resolve, reject };
      this.pending.push(item);
      const t0 = performance.now();
      this.log.append(bytes, 'durable').then(
        (r) => {
          if (r.seq !== seq) item.error = new Error(`log assigned seq ${r.seq}, expected ${seq}`);
          else this.o.stats?.stored(performance.now() - t0, events);
          item.done = true;
          this.drainConfirmed();
        },
        (e: Error) => {
          item.done = true;
          item.error = e;
          this.drainConfirmed();
        },
      );
    });
    this.lastDurable = durable;
    durable.catch(() => undefined);
    return { durable };
  }

  /** Confirms, in seq order, every commit whose durable write completed. */
  private drainConfirmed(): void {
    let confirmed = false;
    while (this.pending.length && this.pending[0]!.done) {
      const it = this.pending.shift()!;
      if (it.error || this.broken) {
        // After a failed write the log and the state disagree: stop the chain; it reopens from disk.
        if (!this.broken) {
          this.broken = it.error;
          this.o.onBroken?.(this, it.error!);
        }
        it.reject(new AppendRejected('unavailable', `commit not stored: ${(it.error ?? this.broken)!.message}`));
        continue;
      }
      this.confirmedSeq = it.seq;
      confirmed = true;
      it.resolve(it.seq);
      it.origin?.confirmed(this, it.seq);
      for (const l of this.listeners) l.onCommit(this, it.seq, it.bytes, it.origin);
    }
    if (confirmed) {
      this.heads.committed();
      this.compactor?.committed();
    }
  }

  /** The signed head at the newest confirmed seq (signing it if needed). */
  head(): Promise<SignedHead> {
    return this.heads.head();
  }

  /**
   * The cut a subscriber starting at `from` would cross a gap of (records compacted away between
   * `from` and the cut), or null when the history from `from` on is whole.
   */
  compactedFrom(from: number): number | null {
    const cut = this.log.chain.cut;
    if (!cut || from > cut.seq) return null;
    let expect = from;
    for (const rec of this.log.records({ seq: from })) {
      if (rec.seq !== expect) return cut.seq;
      if (rec.seq >= cut.seq) return null;
      expect++;
    }
    return expect > cut.seq ? null : cut.seq;
  }

  /**
   * What a subscriber that follows compacted histories is sent before history from below the cut
   * (the 'cut' message): the certificate, every kept record's seq and hash up to it, and the head
   * at the cut signed now (atedb's chain hash there, kept in cut-hashes across restarts).
   */
  async cutOffer(): Promise<CutOffer | null> {
    const cut = this.log.chain.cut;
    if (!cut) return null;
    const hash = this.chainHashAt(cut.seq);
    if (!hash) throw new Error(`chain '${this.name}': no chain hash at the cut (seq ${cut.seq})`);
    if (this.cutOfferCache?.seq !== cut.seq) {
      const seqs: number[] = [];
      const hashes: Buffer[] = [];
      for (const rec of this.log.records()) {
        if (rec.seq > cut.seq) break;
        seqs.push(rec.seq);
        hashes.push(Buffer.from(recordHash(rec.payload)));
      }
      const head = await signHead(this.o.signingKey, this.genesisHash, cut.seq, hash, this.o.pool);
      this.cutOfferCache = { cut, genesis: this.genesisHash, seqs, hashes: Buffer.concat(hashes), head, seq: cut.seq };
    }
    const { seq: _, ...offer } = this.cutOfferCache;
    return offer;
  }

  private cutOfferCache: (CutOffer & { seq: number }) | null = null;

  cutSeq(): number | null {
    return this.log.chain.cut?.seq ?? null;
  }

  /** Records from `from` up to `upto` with their seqs (gaps below a cut included), about `maxBytes`. */
  async readSparse(from: number, upto: number, maxBytes: number): Promise<{ seqs: number[]; commits: Buffer[] }> {
    const seqs: number[] = [];
    const commits: Buffer[] = [];
    let bytes = 0;
    for (const rec of this.log.records({ seq: from })) {
      if (rec.seq > upto) break;
      if (commits.length > 0 && bytes + rec.payload.length > maxBytes) break;
      seqs.push(rec.seq);
      commits.push(Buffer.from(rec.payload));
      bytes += rec.payload.length;
    }
    return { seqs, commits };
  }

  /** Records from `from` on without a gap: a batch ends before a gap; HistoryCompacted when `from` itself was compacted away. */
  async readHistory(from: number, upto: number, maxBytes: number): Promise<Buffer[]> {
    const batch: Buffer[] = [];
    let bytes = 0;
    for (const rec of this.log.records({ seq: from })) {
      if (rec.seq > upto) break;
      if (rec.seq !== from + batch.length) {
        if (batch.length > 0) break;
        throw new HistoryCompacted(from, this.log.chain.cut?.seq ?? rec.seq - 1);
      }
      if (batch.length > 0 && bytes + rec.payload.length > maxBytes) break;
      batch.push(Buffer.from(rec.payload));
      bytes += rec.payload.length;
    }
    return batch;
  }

  /** Waits until every append accepted so far is confirmed or rejected. */
  async settle(): Promise<void> {
    while (this.inflight > 0 || this.pending.length > 0) await new Promise((r) => setTimeout(r, 5));
    await this.tail;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.compactor?.stop();
    await this.settle();
    await this.heads.settled();
    // The newest head as the checkpoint the next open trusts (signing it if needed).
    if (this.confirmedSeq > 0) {
      try {
        await writeCheckpoint(this.o.dir, await this.head());
      } catch {
        // no checkpoint: the next open validates in full
      }
    }
    await this.log.close();
  }
}
