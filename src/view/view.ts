// The materialized view of one chain: an always-current, validated index of its DAOs in LMDB over
// the redo log, the synchronous read path (index -> log pread -> hash check -> decrypt), the
// serialized commit path used by DIO transactions, change notifications and compaction.
import { rmSync } from 'node:fs';
import {
  CommitRejected as ChainCommitRejected,
  type Commit,
  type CommitEffects,
  DataKeyCache,
  type DaoKey,
  type EventMeta,
  type Keyring,
  type NodeRecord,
  NoReadKey,
  NotAuthorized,
  TreeError,
  checkAgainstState,
  decodeCommit,
  decodeMeta,
  effectiveDataKeyOf,
  eventHash,
  payloadAad,
  openEventPayload,
  hintsOf,
  signersOf,
  verifySignatures,
  type DeferredCheck,
  hasDeferredSignature,
  macCheck,
} from '../chain/index.js';
import { DeferredSigner } from './deferred-signer.js';
import type { BulkCryptoPool, CryptoPool, OpenItem } from '../crypto/index.js';
import { DecryptError, hkdfSha256, hmacSha256 } from '../crypto/index.js';
import { LogError, type Durability, type LogPosition, type LogRecord, type RedoLog } from '../log/index.js';
import { CompactionPolicy } from './compaction-policy.js';
import {
  CommitRejected,
  Conflict,
  IndexMismatch,
  NoWriteAuthority,
  NotFound,
  ReadOnlyView,
  RecordUnreadable,
  ViewClosed,
  ViewError,
} from './errors.js';
import { type DaoEntry, IndexStore, type Watermark, isLmdbFault } from './index-store.js';
import { sealIndex } from './index-auth.js';
import { chooseIndex } from './index-choice.js';
import { IndexLoader, type IndexRecovery } from './index-loader.js';
import { Leases } from './leases.js';
import { type AppliedChange, LmdbAuthorityState } from './lmdb-state.js';
import { ByteLru } from './lru.js';
import { Dio } from './dio.js';
import { emptyWatermark } from './watermark.js';
import type { ViewProgress } from './progress.js';

export type { ViewProgress };

export type {
  CommitScope, CompactionOptions, CompactionReport, ChangeEvent, DaoRecord, OpenReport, OpenViewOptions, RemoteSubmit, ViewStats,
} from './view-types.js';
import type {
  CommitScope, CompactionReport, ChangeEvent, DaoRecord, OpenReport, OpenViewOptions, RemoteSubmit, ViewStats,
} from './view-types.js';

const NAME_KEY_INFO = 'atefs/view/name-key/v1';
/** Payloads above this are checked by their AEAD on reads, not re-hashed (see View.materialize). */
const BULK_PAYLOAD = 4096;

/** The view's single entry point. Create with `View.open`. */
export class View {
  readonly log: RedoLog;
  readonly store: IndexStore;
  readonly state: LmdbAuthorityState;
  readonly keys: DataKeyCache;
  readonly keyring: Keyring;
  readonly leases: Leases;
  /** Whether this view's own commits defer their signatures (OpenViewOptions.deferSignatures). */
  readonly deferSignatures: boolean;
  /** Accepts deferred slots made with this session's own keys (their MAC). */
  readonly deferredCheck: DeferredCheck;
  private readonly signer: DeferredSigner;
  readonly pool: CryptoPool | null;
  readonly bulk: BulkCryptoPool | null;
  readonly readOnly: boolean;
  /** Set on a replica of a server's chain: DIO commits go through it (see RemoteSubmit). */
  remote: RemoteSubmit | null = null;
  readonly now: () => number;
  readonly backwardsToleranceMs: number;
  readonly policy: CompactionPolicy;
  readonly retentionMs: number;
  openReport!: OpenReport;
  private readonly tempDir: string | null;
  /** Seals the persisted index on close (index-auth.ts); null: not sealed. */
  private sealKey: Buffer | null = null;
  /** Why the persisted index was not trusted on open (its seal), reported in openReport.reason. */
  private unsealed: string | null = null;
  private readonly records: ByteLru<number, Buffer>;
  /** Decrypted current versions (hot loads skip LMDB, the log and AES); invalidated on apply. */
  private readonly values: ByteLru<DaoKey, DaoRecord>;
  private readonly nameKeys = new Map<string, Buffer>();
  private readonly sliceThreshold: number;
  private readonly subscribers = new Set<(e: ChangeEvent) => void>();
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Positions of records moved by the last compaction, until persisted in the index. */
  remap: Map<number, LogPosition> | null = null;
  compacting: Promise<CompactionReport> | null = null;
  /** The running compaction is one of the policy's (may be skipped). */
  private compactingAutomatic = false;
  lastCompaction: CompactionReport | null = null;
  lastCompactionError: Error | null = null;
  private autoCompact: boolean;
  private timer: NodeJS.Timeout | null = null;
  /** Stall measurement: commits waiting behind compaction's critical sections. */
  stallProbe: { max: number } | null = null;
  /** DIO commits between their start (building, signing) and their end (applied or failed). */
  private commitsInFlight = 0;
  private commitIdleWaiters: Array<() => void> = [];

  /** Dio.commit brackets its work with these: compaction's slices give way to commits. */
  commitStarted(): void {
    this.commitsInFlight++;
  }
  commitEnded(): void {
    if (--this.commitsInFlight > 0) return;
    for (const w of this.commitIdleWaiters.splice(0)) w();
  }
  /**
   * Resolves when no DIO commit is in flight (at once if none is), or after `maxMs`. Compaction
   * waits here between its slices, so a commit waits for at most one slice of compaction work
   * instead of one per step where it gives the event loop back (signing on the pool, appending).
   */
  commitsIdle(maxMs: number): Promise<void> {
    if (this.commitsInFlight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, maxMs);
      const self = this;
      function done() {
        clearTimeout(t);
        const i = self.commitIdleWaiters.indexOf(done);
        if (i >= 0) self.commitIdleWaiters.splice(i, 1);
        resolve();
      }
      this.commitIdleWaiters.push(done);
    });
  }
  private failed: Error | null = null;
  private readonly loader: IndexLoader;
  private readonly opts: OpenViewOptions;

  private constructor(o: OpenViewOptions, store: IndexStore, tempDir: string | null) {
    this.opts = o;
    this.log = o.log;
    this.store = store;
    this.tempDir = tempDir;
    this.keyring = o.keyring;
    this.keys = o.keys ?? new DataKeyCache(o.keyring);
    this.pool = o.pool ?? null;
    this.bulk = o.bulkPool ?? null;
    this.readOnly = o.readOnly ?? false;
    this.deferSignatures = !!o.deferSignatures && !this.readOnly;
    this.deferredCheck = macCheck(o.keyring.signingKeys());
    this.signer = new DeferredSigner(this);
    this.now = o.now ?? Date.now;
    this.backwardsToleranceMs = o.backwardsToleranceMs ?? 0;
    this.state = new LmdbAuthorityState(store, store.getWatermark() ?? emptyWatermark());
    this.leases = new Leases(store, this.now);
    this.loader = new IndexLoader({
      opts: o, log: this.log, store, state: this.state, pool: this.pool, deferredCheck: this.deferredCheck, readOnly: this.readOnly, now: this.now,
      backwardsToleranceMs: this.backwardsToleranceMs,
      progress: (p) => this.progress(p), clearValues: () => this.values.clear(), fail: (e) => this.fail(e),
    });
    this.records = new ByteLru<number, Buffer>(o.cacheBytes ?? 64 << 20, (b) => b.length + 64);
    this.sliceThreshold = o.sliceThreshold ?? 256 << 10;
    this.values = new ByteLru<DaoKey, DaoRecord>(o.valueCacheBytes ?? 32 << 20, (r) => (r.data?.length ?? 0) + 256);
    this.policy = new CompactionPolicy(o.compaction ?? {}, 0, this.now());
    this.retentionMs = o.compaction?.tombstoneRetentionMs ?? 7 * 24 * 3600 * 1000;
    this.autoCompact = (o.compaction?.auto ?? true) && this.policy.mode !== 'never' && !this.readOnly;
  }

  /**
   * Opens the view of a chain: checks the persisted index against the log (watermark), replays
   * and validates only the tail after it, or rebuilds the index from the log when it is missing,
   * stale or does not match.
   */
  static async open(o: OpenViewOptions): Promise<View> {
    if (o.untilSeq !== undefined && (!o.readOnly || o.indexPath)) throw new TypeError('untilSeq needs a read-only view with a private index');
    const { path, tempDir, sealKey, unsealed, precomputed } = await chooseIndex(o, (p) => reportProgress(o, p));
    const store = new IndexStore({ path, readOnly: false });
    const view = new View(o, store, tempDir);
    view.sealKey = sealKey;
    view.unsealed = unsealed;
    try {
      view.openReport = await view.loader.load(view.unsealed, precomputed);
    } catch (e) {
      await view.store.close().catch(() => undefined);
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      // Its seal is gone and what the failed load wrote is not to be trusted: start afresh next time.
      else if (sealKey && !o.readOnly) IndexStore.destroy(path);
      throw e;
    }
    view.policy.reset(view.log.sizeBytes(), view.now());
    view.armTimer();
    // A mount that stopped between a durable commit and its sign-off: sign it off now.
    view.signer.kick();
    return view;
  }

  // ---------------------------------------------------------------- open / replay / rebuild
  /** Tells OpenViewOptions.onProgress (opening, and compaction.ts); a failing listener is ignored. */
  progress(p: ViewProgress): void {
    reportProgress(this.opts, p);
  }

  /** "record seq N (segment S, offset O)", as far as the index knows where it is. */
  private recordAt(seq: number): string {
    const r = this.store.getRecord(seq);
    return r ? `record seq ${seq} (segment ${r.segment}, offset ${r.offset})` : `record seq ${seq}`;
  }

  /** Index failures LMDB raised and the view recovered from (IndexLoader.recover), oldest first. */
  get indexRecoveries(): readonly IndexRecovery[] {
    return this.loader.recoveries;
  }

  // ---------------------------------------------------------------- read path (synchronous)

  /** Index entry of a DAO (current version or tombstone), without reading the log. */
  entry(key: DaoKey): DaoEntry | undefined {
    this.assertOpen();
    return this.store.getDao(Buffer.from(key, 'hex'));
  }

  /** Node record of a live DAO (parent, ACLs, version, type), without reading the log. */
  node(key: DaoKey): NodeRecord | undefined {
    const e = this.entry(key);
    return e && !e.node.deleted ? e.node : undefined;
  }

  exists(key: DaoKey): boolean {
    return this.node(key) !== undefined;
  }

  /**
   * Loads and decrypts the current version of a DAO, or undefined when absent or deleted.
   * The returned record (and its data Buffer) may be shared with the cache: treat it as read-only.
   */
  tryGet(key: DaoKey): DaoRecord | undefined {
    const hit = this.values.get(key);
    if (hit) {
      this.assertOpen();
      return hit;
    }
    const e = this.entry(key);
    if (!e || e.node.deleted) return undefined;
    const r = this.materialize(e);
    this.values.set(key, r);
    return r;
  }

  /**
   * Loads the current versions of `keys` with their bulk payloads read and decrypted on the bulk
   * pool's workers (file blocks for sequential reads), so the calling thread only looks up the
   * index. The answer holds a record per key that could be loaded that way; a key missing from it
   * (absent, small, not on disk yet, no key, tampered) is left to tryGet, which handles and reports
   * every such case. The records also go to the value cache, unless the DAO changed meanwhile.
   * The check is the bulk check of materialize: the AEAD binds (chain, key, version).
   */
  async prefetch(keys: readonly DaoKey[]): Promise<Map<DaoKey, DaoRecord>> {
    const out = new Map<DaoKey, DaoRecord>();
    const bulk = this.bulk;
    if (!bulk || !this.log.fileRange || this.remap) return out;
    const chain = this.state.getGenesis()?.hash;
    if (!chain) return out;
    const jobs: Array<{ e: DaoEntry; item: OpenItem }> = [];
    for (const key of keys) {
      const hit = this.values.get(key);
      if (hit) { out.set(key, hit); continue; }
      const e = this.entry(key);
      const item = e ? this.bulkSource(e, chain) : null;
      if (item) jobs.push({ e: e!, item });
    }
    // ~1 MiB per worker message: both workers busy, and the first blocks back early.
    const batches: Array<typeof jobs> = [];
    let cur: typeof jobs = [];
    let bytes = 0;
    for (const j of jobs) {
      cur.push(j);
      bytes += j.item.length;
      if (bytes >= 1 << 20) { batches.push(cur); cur = []; bytes = 0; }
    }
    if (cur.length) batches.push(cur);
    await Promise.all(batches.map(async (b) => {
      let res: Array<Buffer | Error>;
      try {
        res = await bulk.openFileRanges(b.map((j) => j.item));
      } catch {
        return;
      }
      if (this.closed) return;
      for (let i = 0; i < b.length; i++) {
        const data = res[i]!;
        if (data instanceof Error) continue;
        const e = b[i]!.e;
        const rec: DaoRecord = {
          key: e.node.key, version: e.node.version, parent: e.node.parent, type: e.node.type,
          data, updatedAt: e.node.updatedAt, seq: e.seq, node: e.node,
        };
        out.set(e.node.key, rec);
        // Still the current version: cache it (a commit meanwhile invalidated what it replaced).
        const now = this.store.getDao(Buffer.from(e.node.key, 'hex'));
        if (now && now.seq === e.seq && now.node.version === e.node.version) this.values.set(e.node.key, rec);
      }
    }));
    return out;
  }

  /**
   * Where the sealed current payloads of `keys` are on disk, with their keys and associated data,
   * for a reader on another thread that opens them itself (the AEAD check of materialize: a payload
   * that opens is that version's). null for a key that must be loaded through tryGet instead
   * (absent, small, not written out yet, in-memory log, no read key, compaction switching).
   */
  bulkSources(keys: readonly DaoKey[]): Array<OpenItem | null> {
    const chain = this.bulk && this.log.fileRange && !this.remap ? this.state.getGenesis()?.hash : undefined;
    return keys.map((key) => {
      if (!chain) return null;
      const e = this.entry(key);
      return e ? this.bulkSource(e, chain) : null;
    });
  }

  private bulkSource(e: DaoEntry, chain: Buffer): OpenItem | null {
    if (e.node.deleted || e.payloadStart < 0 || e.payloadLen <= BULK_PAYLOAD) return null;
    const r = this.store.getRecord(e.seq);
    if (!r) return null;
    const at = this.log.fileRange!({ segment: r.segment, offset: r.offset }, e.payloadStart, e.payloadLen);
    if (!at) return null;
    let dk: Buffer;
    try {
      dk = this.keys.get(this.state, effectiveDataKeyOf(this.state, e.node));
    } catch {
      return null;
    }
    return { path: at.path, offset: at.offset, length: e.payloadLen, key: dk, aad: payloadAad(chain, e.node.key, e.node.version) };
  }

  get(key: DaoKey): DaoRecord {
    const r = this.tryGet(key);
    if (!r) throw new NotFound(key);
    return r;
  }

  /** Keys of the live children of (parent, collection), in key order. */
  children(parent: DaoKey, collection = 0): DaoKey[] {
    this.assertOpen();
    const out: DaoKey[] = [];
    for (const k of this.store.childKeys(Buffer.from(parent, 'hex'), collection)) out.push(k.toString('hex'));
    return out;
  }

  hasChildren(parent: DaoKey, collection = 0): boolean {
    this.assertOpen();
    return this.store.hasChildren(Buffer.from(parent, 'hex'), collection);
  }

  /**
   * Bytes of one event: from its commit record (cached), or for a large commit just the event's
   * span; checks them against the index, decrypts.
   *
   * The check: a small event (metadata + payload up to BULK_PAYLOAD bytes) is re-hashed and compared
   * with the event hash the index holds. A bulk payload is not re-hashed — SHA-256 of every block on
   * every read cost more than its decryption — its AEAD binds it instead: the sealed payload's
   * associated data is (chain, DAO key, version), so once the stored metadata is checked to name the
   * DAO and version the index holds, a payload that opens is that version's payload, and one changed,
   * truncated or moved from another event, DAO, version or chain fails to open (IndexMismatch).
   * What this gives up: a holder of the data key who can also rewrite the log file could substitute
   * a different ciphertext for the same (DAO, version); that reader can already read it, and the
   * signed hash still catches the substitution on any rebuild or replication.
   */
  materialize(e: DaoEntry): DaoRecord {
    let metaBytes: Buffer | undefined;
    let payload: Buffer | null = null;
    const bulk = e.payloadStart >= 0 && e.payloadLen > BULK_PAYLOAD;
    const sliced = this.sliceOf(e);
    if (sliced) {
      metaBytes = sliced.subarray(0, e.metaLen);
      if (e.payloadStart >= 0) payload = sliced.subarray(e.payloadStart - e.metaStart, e.payloadStart - e.metaStart + e.payloadLen);
      if (!bulk && !eventHash(metaBytes, payload).equals(e.hash)) metaBytes = undefined; // fall back to the verified record
    }
    if (!metaBytes) {
      const rec = this.recordBytes(e.seq);
      metaBytes = rec.subarray(e.metaStart, e.metaStart + e.metaLen);
      payload = e.payloadStart >= 0 ? rec.subarray(e.payloadStart, e.payloadStart + e.payloadLen) : null;
      if (!bulk && !eventHash(metaBytes, payload).equals(e.hash)) throw this.mismatch(e);
    }
    let meta: EventMeta;
    let data: Buffer | null;
    try {
      meta = decodeMeta(metaBytes);
      if (bulk && (meta.key !== e.node.key || meta.version !== e.node.version || meta.tombstone || meta.payloadKey === null)) {
        throw this.mismatch(e);
      }
      data = openEventPayload(this.state, this.keys, { meta, payload });
    } catch (err) {
      if (bulk && (err instanceof DecryptError || (err as Error).name === 'CommitRejected' || (err as Error).name === 'MalformedEncoding')) {
        throw this.mismatch(e);
      }
      // Stored as validated (its hash matched) and still unreadable: name what failed.
      if (err instanceof DecryptError || (err as Error).name === 'MalformedEncoding') {
        throw new RecordUnreadable(`DAO ${e.node.key} version ${e.node.version} in ${this.recordAt(e.seq)} cannot be read: ${(err as Error).message}`, err);
      }
      throw err;
    }
    return {
      key: e.node.key,
      version: e.node.version,
      parent: e.node.parent,
      type: e.node.type,
      data,
      updatedAt: e.node.updatedAt,
      seq: e.seq,
      node: e.node,
    };
  }

  private mismatch(e: DaoEntry): IndexMismatch {
    this.records.delete(e.seq);
    return new IndexMismatch(`log bytes of DAO ${e.node.key} version ${e.node.version} (${this.recordAt(e.seq)}) do not match the index: log tampered with or corrupt`);
  }

  /**
   * The event's bytes (metadata through payload, contiguous in the record) read alone when its
   * commit is large and not cached; else null. Not trusted: the caller checks the event hash.
   */
  private sliceOf(e: DaoEntry): Buffer | null {
    if (this.remap || this.records.get(e.seq)) return null;
    const r = this.store.getRecord(e.seq);
    if (!r || r.bytes < this.sliceThreshold) return null;
    const end = e.payloadStart >= 0 ? e.payloadStart + e.payloadLen : e.metaStart + e.metaLen;
    try {
      return this.log.readSlice({ segment: r.segment, offset: r.offset }, e.metaStart, end - e.metaStart);
    } catch {
      return null;
    }
  }

  /** Raw bytes of the commit record `seq` (LRU-cached; positions follow compaction). */
  recordBytes(seq: number): Buffer {
    const hit = this.records.get(seq);
    if (hit) return hit;
    let pos = this.remap?.get(seq);
    if (!pos) {
      const r = this.store.getRecord(seq);
      if (!r) throw new IndexMismatch(`record ${seq} is not in the index`);
      pos = { segment: r.segment, offset: r.offset };
    }
    let rec: LogRecord | undefined;
    try {
      rec = this.log.read(pos);
      if (rec.seq !== seq) rec = undefined;
    } catch (e) {
      if (!(e instanceof LogError) || e.name === 'LogClosedError') throw e;
    }
    // A compaction may have just moved it (the index is remapped right after the switch).
    if (!rec) {
      for (const r of this.log.records({ seq })) {
        if (r.seq === seq) rec = { seq, pos: r.pos, payload: Buffer.from(r.payload) };
        break;
      }
    }
    if (!rec) throw new IndexMismatch(`record ${seq} is missing from the log`);
    this.records.set(seq, rec.payload);
    return rec.payload;
  }

  /**
   * The keyed-name DAO key of `name` in (parent, collection): HMAC-SHA-256 under a name key
   * derived from the parent's data key, truncated to a DAO key. The index (and the log) only ever
   * hold this tag, never the name; finding an entry by name is a plain key lookup.
   * The name key is derived from the first data key of the nearest ancestor-or-self with its own
   * read ACL (else the chain's root data key): stable when readers are added or removed; only a
   * change between inherit and own read ACL of an ancestor changes tags (re-store the entries).
   */
  nameKey(parent: DaoKey, collection: number, name: Uint8Array, lookup?: (k: DaoKey) => NodeRecord | undefined): DaoKey {
    const nk = this.nameKeyOf(parent, lookup ?? ((k) => this.state.getNode(k)));
    const c = Buffer.allocUnsafe(4);
    c.writeUInt32BE(collection >>> 0, 0);
    return hmacSha256(nk, c, name).subarray(0, 16).toString('hex');
  }

  private nameKeyOf(parent: DaoKey, lookup: (k: DaoKey) => NodeRecord | undefined): Buffer {
    let n = lookup(parent);
    if (!n) throw new NotFound(parent, 'parent of a named entry');
    let dataKeyId: string | undefined;
    for (let depth = 0; depth < 4096; depth++) {
      if (n.read.mode !== 'inherit') {
        dataKeyId = n.keys[0] ?? n.nodeKey ?? undefined;
        if (!dataKeyId) throw new NoReadKey('-', `node ${n.key} has a read ACL but no data key yet (commit it first)`);
        break;
      }
      if (!n.parent) break;
      const p = lookup(n.parent.key);
      if (!p) throw new NotFound(n.parent.key, 'ancestor of a named entry');
      n = p;
    }
    dataKeyId ??= this.state.getGenesis()!.info.rootDataKey.id;
    const cacheKey = `${parent}:${dataKeyId}`;
    let k = this.nameKeys.get(cacheKey);
    if (!k) {
      const dk = this.keys.get(this.state, dataKeyId);
      k = hkdfSha256(dk, Buffer.from(parent, 'hex'), NAME_KEY_INFO, 32);
      if (this.nameKeys.size > 4096) this.nameKeys.clear();
      this.nameKeys.set(cacheKey, k);
    }
    return k;
  }

  /** Data key id that seals the payloads of `key` (for callers checking readability). */
  effectiveDataKey(key: DaoKey): string {
    const n = this.state.getNode(key);
    if (!n) throw new NotFound(key);
    return effectiveDataKeyOf(this.state, n);
  }

  get genesisHash(): Buffer {
    return this.state.getGenesis()!.hash;
  }

  // ---------------------------------------------------------------- write path

  /** Starts a transaction. */
  begin(scope: CommitScope = 'local'): Dio {
    return new Dio(this, scope);
  }

  /**
   * Serializes `fn` with every other index writer (commits, compaction's switch). Returns its result.
   * Used by DIO commits; exported for the replication client.
   */
  exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    const run = this.lock.then(() => {
      const waited = performance.now() - t0;
      if (this.stallProbe && waited > this.stallProbe.max) this.stallProbe.max = waited;
      return fn();
    });
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Validates a commit against the current state and appends + applies it (all or nothing).
   * `trusted`: the commit was just built and signed by this process (its signatures are not
   * re-verified; everything else is checked). Used by Dio.commit and for commits received from
   * elsewhere (replication), with trusted=false. `gap`: a commit kept by a server's compaction
   * (src/net/remote-cut.ts), checked in gap mode (src/chain/gaps.ts) — versions before it may be
   * gone — and the view remembers it holds such commits (its log is replayed in gap mode).
   */
  async submit(commit: Commit | Uint8Array, scope: CommitScope = 'local', trusted = false, opts: { gap?: boolean } = {}): Promise<{ seq: number; changes: AppliedChange[] }> {
    this.assertWritable();
    const c = commit instanceof Uint8Array ? decodeCommit(commit) : commit;
    let signers;
    if (trusted) signers = signersOf(c);
    else {
      const [s] = await verifySignatures([c], this.pool, this.deferredCheck);
      if (s instanceof ChainCommitRejected) throw mapReject(s);
      signers = s!;
    }
    let durable: Promise<void> | null = null;
    const res = await this.exclusive(async () => {
      this.assertWritable();
      let effects: CommitEffects;
      if (opts.gap) this.state.gapHints = hintsOf(c);
      try {
        effects = checkAgainstState(this.state, c, signers, { now: this.now, backwardsToleranceMs: this.backwardsToleranceMs });
      } catch (e) {
        throw mapReject(e);
      } finally {
        this.state.gapHints = null;
      }
      if (opts.gap && this.store.getMeta<number>('compacted') !== 1) this.store.putMeta('compacted', 1);
      // 'local' at least: the record must be in the file before the index says it is applied.
      const { seq, pos } = c.parts && this.log.appendParts
        ? await this.log.appendParts(c.parts, 'local')
        : await this.log.append(c.bytes, 'local');
      // The fdatasync runs on the threadpool while the index transaction below runs here.
      if (scope === 'durable' || scope === 'remote') {
        durable = this.log.flush('durable');
        durable.catch(() => undefined); // awaited below once the commit is applied
      }
      let changes: AppliedChange[];
      try {
        this.state.stage({ seq, pos, commit: c, effects });
        changes = this.state.flush()[0] ?? [];
      } catch (e) {
        this.state.discardStaged();
        // The log has the record but the index could not take it. LMDB's own failures are
        // recovered from the log; anything else means the view is no longer current.
        if (!isLmdbFault(e)) {
          this.fail(e as Error);
          throw e;
        }
        changes = await this.loader.recover(e as Error, seq);
      }
      for (const ch of changes) this.values.delete(ch.key);
      // Large records are read by slices (sliceThreshold): caching them would only join them.
      if ((c.size ?? c.bytes.length) < this.sliceThreshold) this.records.set(seq, c.bytes);
      return { seq, changes, timestamp: c.header.timestamp, hash: c.hash };
    });
    this.emit({ seq: res.seq, commitHash: res.hash.toString('hex'), timestamp: res.timestamp, local: trusted, changes: res.changes });
    if (durable) await durable;
    if (hasDeferredSignature(c)) this.signer.kick();
    this.maybeCompact();
    return { seq: res.seq, changes: res.changes };
  }

  private emit(e: ChangeEvent): void {
    for (const fn of this.subscribers) {
      try {
        fn(e);
      } catch {
        /* a subscriber's failure is its own */
      }
    }
  }

  /** Called after every applied commit (own and received). Returns an unsubscribe function. */
  subscribe(fn: (e: ChangeEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  // ---------------------------------------------------------------- compaction hooks

  private maybeCompact(): void {
    if (!this.autoCompact || this.compacting || this.closed) return;
    const reason = this.policy.check(this.log.sizeBytes(), this.now());
    if (reason) {
      // Background run: a failure keeps the old log and is reported through stats().
      this.compact(reason, { automatic: true }).catch(() => undefined);
    }
  }

  private armTimer(): void {
    if (!this.autoCompact) return;
    const ms = this.policy.msUntilTimer(this.now());
    if (ms === null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.maybeCompact();
      this.armTimer();
    }, Math.max(1000, Math.min(ms, 2 ** 31 - 1)));
    this.timer.unref();
  }

  /**
   * Compacts the log now (see compaction.ts). Concurrent calls share one run, except that a manual
   * call is not answered by a skipped automatic one. `automatic` (the policy's runs): skipped when
   * too little is reclaimable (CompactionPolicy.minReclaimBytes). `segments`: compact only these
   * log segments, keeping the others in place (the space runs: the copy on disk beside the old log
   * is then only theirs).
   */
  compact(
    reason = 'manual',
    opts: { failAt?: import('../log/index.js').CompactionStep; automatic?: boolean; urgent?: boolean; segments?: ReadonlySet<number> } = {},
  ): Promise<CompactionReport> {
    this.assertWritable();
    if (this.compacting) {
      // A manual call must not be answered by an automatic run that skipped: run again after it.
      if (opts.automatic || !this.compactingAutomatic) return this.compacting;
      return this.compacting.then((r) => (r.skipped ? this.compact(reason, opts) : r));
    }
    this.compactingAutomatic = opts.automatic ?? false;
    const run = (async () => {
      const { runCompaction } = await import('./compaction.js');
      try {
        const r = await runCompaction(this, reason, opts);
        this.lastCompaction = r;
        this.lastCompactionError = null;
        // The bulk readers' cached descriptors would keep the deleted segments' space allocated.
        if (!r.skipped) await this.bulk?.closeFiles();
        this.policy.reset(this.log.sizeBytes(), this.now());
        // Compaction drops sign-offs: the deferred commits it kept are listed as unsigned again and
        // signed off before the run reports done, so the compacted log verifies for anyone.
        if (!r.skipped && !this.readOnly) await this.signer.flush();
        return r;
      } catch (e) {
        this.lastCompactionError = e as Error;
        // Don't retry a failing compaction on every commit: wait for the next growth step.
        this.policy.reset(this.log.sizeBytes(), this.now());
        throw e;
      } finally {
        this.compacting = null;
      }
    })();
    this.compacting = run;
    return run;
  }

  /** Drops cached record bytes (after compaction moved records). */
  dropRecordCache(): void {
    this.records.clear();
  }

  /** Drops the read caches: decrypted values, and (unless `records` is false) commit records. */
  dropCaches(records = true): void {
    if (records) this.records.clear();
    this.values.clear();
  }

  // ---------------------------------------------------------------- misc

  stats(): ViewStats {
    return {
      logBytes: this.log.sizeBytes(),
      liveBytes: this.state.liveBytes,
      records: this.state.watermark.records,
      watermarkSeq: this.state.watermark.seq,
      daoCount: this.store.dao.getKeysCount(),
      compacting: this.compacting !== null,
      lastCompaction: this.lastCompaction,
      lastCompactionError: this.lastCompactionError ? this.lastCompactionError.message : null,
      indexRecoveries: this.loader.recoveries.length,
      unsigned: this.state.unsignedCount,
      signoffs: this.signer.stats.signoffs,
    };
  }

  get watermark(): Watermark {
    return this.state.watermark;
  }

  assertOpen(): void {
    if (this.closed) throw new ViewClosed('view is closed');
    if (this.failed) throw new ViewClosed(`view failed: ${this.failed.message}`);
  }

  assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new ReadOnlyView('view is read-only');
  }

  fail(e: Error): void {
    this.failed ??= e;
  }

  /**
   * Signs off every commit whose signature was deferred and makes the sign-offs durable: what a
   * third party needs to verify the log (the view's close runs it; tests and tools may too).
   */
  async signOff(): Promise<void> {
    if (this.readOnly || this.closed || this.failed) return;
    const before = this.signer.stats.signoffs;
    await this.signer.flush();
    if (this.signer.stats.signoffs !== before) await this.log.flush('durable');
  }

  /** Closes the index (and deletes a temporary one). The log stays open: it belongs to the caller. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.compacting) await this.compacting.catch(() => undefined);
    await this.signOff().catch(() => undefined);
    await this.lock.catch(() => undefined);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.subscribers.clear();
    await this.store.close();
    if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
    else if (this.sealKey) {
      const wm = this.state.watermark;
      sealIndex(this.store.path, this.sealKey, wm.seq >= 0 ? { seq: wm.seq, bytes: wm.bytes } : undefined);
    }
  }
}

/** Tells OpenViewOptions.onProgress; a failing listener is ignored. */
function reportProgress(o: OpenViewOptions, p: ViewProgress): void {
  try {
    o.onProgress?.(p);
  } catch {
    // Progress is for display: it never stops the work it describes.
  }
}

/** Expected version per DAO of a commit (compacted-log loading: src/chain/gaps.ts). */
export { hintsOf };

/** Chain rejections -> the DIO's typed errors. */
export function mapReject(e: unknown): Error {
  if (e instanceof ChainCommitRejected) {
    if (e.reason === 'authority') return new NoWriteAuthority(null, e.message);
    if (e.reason === 'conflict') return new Conflict(null, e.message);
    return new CommitRejected(e.message, e);
  }
  if (e instanceof NotAuthorized) return new NoWriteAuthority(null, e.message);
  if (e instanceof TreeError) return new NoWriteAuthority(e.at, `${e.problem}: ${e.message}`);
  return e as Error;
}

export { ViewError };
export type { Durability };
