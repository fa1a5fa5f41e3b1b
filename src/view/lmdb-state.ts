// The chain's authority state backed by the view's LMDB index, plus the positions of every
// current version. Validation (src/chain checkAgainstState) reads it through AuthorityStateReader;
// accepted commits are staged in memory (so the next commit of a batch sees them) and written to
// LMDB together with their log positions and the watermark in ONE transaction: the index is never
// ahead of, or inconsistent with, what it says it has applied.
import type { AuthorityState, CommitEffects, DataKeyRecord, Genesis, NodeRecord } from '../chain/state.js';
import type { Commit, DaoKey, DataKeyId, KeyId } from '../chain/types.js';
import { type GapHints, nodeAcrossGap } from '../chain/gaps.js';
import { deferredKeys, isDeferredSignature } from '../chain/deferred.js';
import { publicKeyId } from '../chain/ids.js';
import type { LogPosition } from '../log/index.js';
import { type DaoEntry, type IndexStore, type Watermark, INDEX_FORMAT } from './index-store.js';
import { eventSpans } from './record-spans.js';
import { advanceWatermark, emptyWatermark } from './watermark.js';

/** A validated commit waiting to be written to the index. */
export interface AcceptedRecord {
  seq: number;
  pos: LogPosition;
  commit: Commit;
  effects: CommitEffects;
}

/** A commit whose signatures are deferred and that no sign-off covers yet (src/chain/deferred.ts). */
export interface UnsignedCommit {
  hash: Buffer;
  seq: number;
  /** Public keys of its deferred slots: a sign-off must be signed by each. */
  keys: Buffer[];
}

/** What one applied commit changed, for subscribers. */
export interface AppliedChange {
  key: DaoKey;
  version: number;
  deleted: boolean;
  /** Parent link before and after (tree moves, for cache invalidation of both directories). */
  before: NodeRecord['parent'] | undefined;
  after: NodeRecord['parent'];
  type: string | null;
}

const NODE_CACHE = 20000;

export class LmdbAuthorityState implements AuthorityState {
  // Staged effects of accepted-but-not-yet-flushed commits (newest wins).
  private readonly nodes = new Map<DaoKey, NodeRecord>();
  private readonly dataKeys = new Map<DataKeyId, DataKeyRecord>();
  private readonly publicKeys = new Map<KeyId, Buffer>();
  private readonly commits = new Set<string>();
  private pending: AcceptedRecord[] = [];
  /** Newest timestamp among the staged commits (undefined: none staged). */
  private stagedLatest: number | undefined;
  private genesis: Genesis | undefined;
  // Committed node records, bounded (parents of hot subtrees are read on every validation).
  private readonly cache = new Map<DaoKey, NodeRecord | null>();
  /**
   * Compacted-log loading: expected version per DAO of the commit being checked. When the state
   * lacks the versions in between (dropped by compaction), getNode answers with the last known
   * record (or an inheriting stand-in under the same parent) renumbered to version-1, so the
   * chain's checks run against the ACLs the retained history proves. See compaction.ts.
   */
  gapHints: GapHints | null = null;
  watermark: Watermark;
  /**
   * Payload bytes of the current version of every live DAO: what the chain holds, as opposed to
   * the log's size (which keeps superseded and deleted versions until compaction). Kept up to date
   * by writeRecord, persisted with the watermark ('live'); an index written before it was kept is
   * summed once here.
   */
  liveBytes: number;
  /**
   * Applied commits with deferred signatures that no applied sign-off covers, by hash (hex), in seq
   * order. Persisted in the same transaction as the records (IndexStore.putUnsigned, an entry
   * each), so a mount that stopped between a durable commit and its sign-off finds them on the
   * next open (deferred-signer.ts).
   */
  private unsignedByHash = new Map<string, UnsignedCommit>();
  /** Loaded from the list an index before per-entry keys kept: written out as entries at the next change. */
  private legacyUnsigned = false;
  /** The time of the record at `seq` (the watermark's, when it was asked last): records never change theirs. */
  private watermarkTime: { seq: number; time: number } | null = null;
  /** Whether this state wrote the index format mark: once is enough, not once per commit. */
  private formatWritten = false;

  constructor(readonly store: IndexStore, watermark: Watermark) {
    this.watermark = watermark;
    let live = store.getMeta<number>('live');
    if (live === undefined) {
      live = store.sumLivePayload();
      if (live > 0) store.putMeta('live', live);
    }
    this.liveBytes = live;
    const g = store.getMeta<[Buffer, unknown, string[]]>('genesis');
    if (g) this.genesis = { hash: Buffer.from(g[0]), info: g[1] as Genesis['info'], rootKeyIds: g[2] };
    this.loadUnsigned();
  }

  /** Commits waiting for a sign-off, oldest first. */
  unsigned(): UnsignedCommit[] {
    return [...this.unsignedByHash.values()];
  }

  /** Lists commits as unsigned again (their sign-offs were compacted away); persisted at once. */
  addUnsigned(list: readonly UnsignedCommit[]): void {
    if (list.length === 0) return;
    const next = new Map(this.unsignedByHash);
    for (const u of list) next.set(u.hash.toString('hex'), u);
    const sorted = new Map([...next.entries()].sort((a, b) => a[1].seq - b[1].seq));
    const wasLegacy = this.legacyUnsigned;
    this.store.transaction(() => {
      if (!wasLegacy) for (const u of list) this.store.putUnsigned(u.seq, u.hash, u.keys);
      else {
        this.store.removeMeta(LEGACY_UNSIGNED);
        for (const u of sorted.values()) this.store.putUnsigned(u.seq, u.hash, u.keys);
      }
    });
    this.legacyUnsigned = false;
    this.unsignedByHash = sorted;
  }

  get unsignedCount(): number {
    return this.unsignedByHash.size;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  // ---------------------------------------------------------------- AuthorityStateReader

  getGenesis(): Genesis | undefined {
    return this.genesis;
  }

  getNode(key: DaoKey): NodeRecord | undefined {
    return nodeAcrossGap(key, this.committedOrStaged(key), this.gapHints?.get(key));
  }

  private committedOrStaged(key: DaoKey): NodeRecord | undefined {
    const s = this.nodes.get(key);
    if (s) return s;
    const c = this.cache.get(key);
    if (c !== undefined) return c ?? undefined;
    const e = this.store.getDao(Buffer.from(key, 'hex'));
    const n = e ? e.node : null;
    if (this.cache.size >= NODE_CACHE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, n);
    return n ?? undefined;
  }

  getDataKey(id: DataKeyId): DataKeyRecord | undefined {
    const s = this.dataKeys.get(id);
    if (s) return s;
    const e = this.store.getDataKey(id);
    if (e) return e.record;
    const g = this.genesis;
    if (g && g.info.rootDataKey.id === id) return { id, owner: null, wraps: g.info.rootDataKey.wraps };
    return undefined;
  }

  getPublicKey(id: KeyId): Buffer | undefined {
    return this.publicKeys.get(id) ?? this.store.getPublished(id)?.publicKey;
  }

  /**
   * Newest commit timestamp: of the staged commits, else of the last record the index applied
   * (RecordEntry.time, written with it; the sealed index authenticates it like the rest).
   */
  latestTimestamp(): number | undefined {
    const committed = this.committedTime();
    if (this.stagedLatest === undefined) return committed;
    return committed === undefined ? this.stagedLatest : Math.max(committed, this.stagedLatest);
  }

  /** RecordEntry.time of the watermark's record, read once per record (every commit asks). */
  private committedTime(): number | undefined {
    const seq = this.watermark.seq;
    if (seq < 0) return undefined;
    const kept = this.watermarkTime;
    if (kept && kept.seq === seq) return kept.time;
    const time = this.store.getRecord(seq)?.time;
    this.watermarkTime = time === undefined ? null : { seq, time };
    return time;
  }

  hasCommit(hash: Buffer): boolean {
    return this.commits.has(hash.toString('hex')) || this.store.seenSeq(hash) !== undefined;
  }

  // ---------------------------------------------------------------- staging

  /** Stages effects (the chain calls this for accepted commits; positions come with `stage`). */
  applyEffects(e: CommitEffects): void {
    if (this.stagedLatest === undefined || e.timestamp > this.stagedLatest) this.stagedLatest = e.timestamp;
    if (e.genesis) this.genesis = e.genesis;
    for (const n of e.nodes) this.nodes.set(n.key, n);
    for (const k of e.dataKeys) this.dataKeys.set(k.id, k);
    for (const [id, pk] of e.publicKeys) this.publicKeys.set(id, pk);
    this.commits.add(e.commitHash.toString('hex'));
  }

  /** Stages an accepted commit with its position; written by the next flush(). */
  stage(r: AcceptedRecord): void {
    this.applyEffects(r.effects);
    this.pending.push(r);
  }

  /** Drops staged commits (a failed batch): the state is what LMDB holds. */
  discardStaged(): void {
    this.pending = [];
    this.stagedLatest = undefined;
    this.nodes.clear();
    this.dataKeys.clear();
    this.publicKeys.clear();
    this.commits.clear();
    const g = this.store.getMeta<[Buffer, unknown, string[]]>('genesis');
    this.genesis = g ? { hash: Buffer.from(g[0]), info: g[1] as Genesis['info'], rootKeyIds: g[2] } : undefined;
  }

  /**
   * Writes every staged commit to LMDB in one transaction (DAO entries with positions, tree edges,
   * data keys, published keys, anti-replay hashes, record locations, watermark). Returns what
   * changed, per commit, for subscribers.
   */
  flush(): AppliedChange[][] {
    if (this.pending.length === 0) return [];
    const batch = this.pending;
    const store = this.store;
    const out: AppliedChange[][] = [];
    let wm = this.watermark;
    const liveBefore = this.liveBytes;
    const unsigned = nextUnsigned(this.unsignedByHash, batch);
    let newest: { seq: number; time: number } | null = null;
    try {
      store.transaction(() => {
        // The time of the record before: read from the index only when a sign-off is first.
        let lastTime: number | undefined;
        for (const [k, r] of batch.entries()) {
          // A sign-off is timed when it is built, and commits made while it was signed come before
          // it: its record keeps the newest time so far, so the chain's latest time never goes back.
          let time = r.commit.header.timestamp;
          if (r.commit.header.signs) {
            if (k === 0) lastTime = this.committedTime();
            if (lastTime !== undefined) time = Math.max(lastTime, time);
          }
          out.push(this.writeRecord(r, time));
          lastTime = time;
          newest = { seq: r.seq, time };
          wm = advanceWatermark(wm, r.seq, r.pos, r.commit);
        }
        if (unsigned) this.saveUnsigned(unsigned);
        store.putWatermark(wm);
        store.putMeta('live', this.liveBytes);
        if (!this.formatWritten) store.putMeta('format', INDEX_FORMAT);
      });
      this.formatWritten = true;
    } catch (e) {
      this.liveBytes = liveBefore;
      throw e;
    }
    this.watermark = wm;
    this.watermarkTime = newest;
    if (unsigned) applyUnsigned(this.unsignedByHash, unsigned);
    for (const r of batch) for (const n of r.effects.nodes) this.cache.delete(n.key);
    this.pending = [];
    this.stagedLatest = undefined;
    this.nodes.clear();
    this.dataKeys.clear();
    this.publicKeys.clear();
    this.commits.clear();
    return out;
  }

  private writeRecord(r: AcceptedRecord, time: number): AppliedChange[] {
    const { seq, pos, commit, effects } = r;
    const store = this.store;
    const changes: AppliedChange[] = [];
    if (effects.genesis) {
      const g = effects.genesis;
      store.putMeta('genesis', [g.hash, g.info, g.rootKeyIds]);
      store.putMeta('genesisSeq', seq);
    }
    const nodes = new Map<DaoKey, NodeRecord>();
    for (const n of effects.nodes) nodes.set(n.key, n);
    const spans = commit.spans ?? (commit.events.length > 0 ? eventSpans(commit.bytes) : []);
    for (let i = 0; i < commit.events.length; i++) {
      const ev = commit.events[i]!;
      const key = ev.meta.key;
      const kb = Buffer.from(key, 'hex');
      const node = nodes.get(key);
      if (!node) throw new Error(`index: effects lack node ${key}`);
      const prev = store.getDao(kb);
      const before = prev && !prev.node.deleted ? prev.node.parent : undefined;
      const after = !node.deleted ? node.parent : undefined;
      // A new version under the same parent (most: a file's blocks, an inode) keeps its child entry.
      const sameParent = !!before && !!after && before.key === after.key && before.collection === after.collection;
      if (before && !sameParent) store.removeChild(Buffer.from(before.key, 'hex'), before.collection, kb);
      const sp = spans[i]!;
      const entry: DaoEntry = {
        seq,
        index: i,
        hash: ev.hash,
        metaStart: sp.metaStart,
        metaLen: sp.metaLen,
        payloadStart: sp.payloadStart,
        payloadLen: sp.payloadLen,
        created: prev && !prev.node.deleted ? prev.created : seq,
        node,
      };
      store.putDao(kb, entry);
      this.liveBytes += (node.deleted ? 0 : Math.max(0, sp.payloadLen)) - (prev && !prev.node.deleted ? Math.max(0, prev.payloadLen) : 0);
      if (after && !sameParent) store.addChild(Buffer.from(after.key, 'hex'), after.collection, kb);
      for (const g of ev.meta.grants) {
        const cur = store.getDataKey(g.id);
        const rec = effects.dataKeys.find((d) => d.id === g.id) ?? cur?.record;
        if (!rec) continue;
        // A new list: the entry read is shared with the store's cache.
        const seqs = cur ? [...cur.seqs] : [];
        if (seqs[seqs.length - 1] !== seq) seqs.push(seq);
        store.putDataKey({ record: rec, seqs });
      }
      changes.push({
        key,
        version: node.version,
        deleted: node.deleted,
        before: prev && !prev.node.deleted ? prev.node.parent : undefined,
        after: node.parent,
        type: node.type,
      });
    }
    for (const [id, pk] of effects.publicKeys) store.putPublished(id, pk, seq);
    store.putRecord(seq, {
      segment: pos.segment,
      offset: pos.offset,
      live: commit.events.length,
      events: commit.events.length,
      bytes: commit.size ?? commit.bytes.length,
      time,
    });
    store.putSeen(commit.hash, seq);
    return changes;
  }

  /** Writes a change of the unsigned set (inside the caller's transaction). */
  private saveUnsigned(c: UnsignedChange): void {
    const store = this.store;
    if (this.legacyUnsigned) {
      store.removeMeta(LEGACY_UNSIGNED);
      for (const u of withChange(this.unsignedByHash, c).values()) store.putUnsigned(u.seq, u.hash, u.keys);
      this.legacyUnsigned = false;
      return;
    }
    for (const u of c.removed) store.removeUnsigned(u.seq);
    for (const u of c.added) store.putUnsigned(u.seq, u.hash, u.keys);
  }

  private loadUnsigned(): void {
    const m = new Map<string, UnsignedCommit>();
    for (const u of this.store.unsignedEntries()) m.set(u.hash.toString('hex'), u);
    const legacy = this.store.getMeta<Array<[Uint8Array, number, Uint8Array[]]>>(LEGACY_UNSIGNED);
    for (const [hash, seq, keys] of legacy ?? []) {
      const h = Buffer.from(hash);
      m.set(h.toString('hex'), { hash: h, seq, keys: keys.map((k) => Buffer.from(k)) });
    }
    this.legacyUnsigned = legacy !== undefined;
    this.unsignedByHash = legacy ? new Map([...m.entries()].sort((a, b) => a[1].seq - b[1].seq)) : m;
  }

  /** Forget cached node records (after compaction or an external index change). */
  clearCache(): void {
    this.cache.clear();
    this.watermarkTime = null;
    this.loadUnsigned();
    this.formatWritten = false;
  }

  /** After the store was reopened (IndexStore.reopen): nothing staged or cached, the rest read afresh. */
  reload(): void {
    this.discardStaged();
    this.cache.clear();
    this.watermarkTime = null;
    this.watermark = this.store.getWatermark() ?? emptyWatermark();
    this.liveBytes = this.store.getMeta<number>('live') ?? this.store.sumLivePayload();
    this.loadUnsigned();
    this.formatWritten = false;
  }
}

/** The list an index kept before per-entry keys (IndexStore.putUnsigned): rewritten every commit. */
const LEGACY_UNSIGNED = 'unsigned';

interface UnsignedChange {
  /** Joins the set (in seq order), unless a sign-off of the same batch covers it (then in neither list). */
  added: UnsignedCommit[];
  /** Leaves the set: it was in it before the batch. */
  removed: UnsignedCommit[];
}

/**
 * How a batch changes the unsigned set (null when it changes nothing): deferred commits join it,
 * a sign-off removes each commit it lists whose deferred keys all signed the sign-off. The set
 * itself is not copied (it holds ~100 entries under a stream of fsyncs, and this runs on every
 * commit): applyUnsigned changes it once the batch is in the index.
 */
function nextUnsigned(cur: ReadonlyMap<string, UnsignedCommit>, batch: readonly AcceptedRecord[]): UnsignedChange | null {
  let change: UnsignedChange | null = null;
  // Joined in this batch, by hash (hex): a later sign-off of the batch may cover them.
  const joined = new Map<string, UnsignedCommit>();
  const gone = new Set<string>();
  for (const { seq, commit } of batch) {
    const keys = deferredKeys(commit);
    if (keys.length > 0) {
      change ??= { added: [], removed: [] };
      joined.set(commit.hash.toString('hex'), { hash: commit.hash, seq, keys });
    }
    if (commit.header.signs) {
      change ??= { added: [], removed: [] };
      const signed = new Set(commit.signatures.filter((s) => !isDeferredSignature(s.signature)).map((s) => publicKeyId(s.publicKey)));
      for (const h of commit.header.signs) {
        const k = h.toString('hex');
        const mine = joined.get(k);
        const u = mine ?? (gone.has(k) ? undefined : cur.get(k));
        if (u && u.keys.every((pk) => signed.has(publicKeyId(pk)))) {
          if (mine) joined.delete(k);
          else {
            gone.add(k);
            change.removed.push(u);
          }
        }
      }
    }
  }
  if (change) change.added = [...joined.values()];
  return change;
}

/** The set after `c` (a copy: the legacy rewrite, before the batch is in the index). */
function withChange(cur: ReadonlyMap<string, UnsignedCommit>, c: UnsignedChange): Map<string, UnsignedCommit> {
  const next = new Map(cur);
  applyUnsigned(next, c);
  return next;
}

/** Applies `c` to the set in place: seqs only grow, so the added go last and the order stays by seq. */
function applyUnsigned(set: Map<string, UnsignedCommit>, c: UnsignedChange): void {
  for (const u of c.removed) set.delete(u.hash.toString('hex'));
  for (const u of c.added) set.set(u.hash.toString('hex'), u);
}
