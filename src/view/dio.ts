// DIO: a transaction over the view. Reads are synchronous (index -> log pread -> decrypt) and see
// the transaction's own uncommitted writes; writes stay in memory until commit(), which turns them
// into ONE commit (one signature per needed key, whatever the number of DAOs), validates it against
// the current state and applies it all or nothing. Optimistic concurrency: a DAO this transaction
// read or wrote that another commit changed meanwhile makes commit() fail with Conflict and
// leaves no trace.
import {
  CommitBuilder,
  CommitRejected as ChainCommitRejected,
  NoReadKey,
  type NodeRecord,
  NotAuthorized,
  type PutOptions,
  type ReadAcl,
  TreeError,
  type WriteAcl,
  type DaoKey,
  isDaoKey,
  newDaoKey,
} from '../chain/index.js';
import { Conflict, NoWriteAuthority, NotFound, TransactionClosed } from './errors.js';
import type { AppliedChange } from './lmdb-state.js';
import { type CommitScope, type DaoRecord, type View, mapReject } from './view.js';

export interface ParentRef {
  key: DaoKey;
  /** Collection id (u32) of the parent's child list; 0 = default. */
  collection: number;
}

export interface StoreOptions {
  /** DAO key; a fresh random key when absent (see View.nameKey for keyed names). */
  key?: DaoKey;
  /** undefined: keep the current parent (a new DAO: root level); null: root level. */
  parent?: ParentRef | null;
  /** undefined: keep the current ACL (a new DAO: inherit). */
  read?: ReadAcl;
  write?: WriteAcl;
  /**
   * Who may create DAOs under this one, and what its inheriting descendants get (EventMeta.children);
   * undefined: keep, null: none (the same as its write ACL).
   */
  children?: WriteAcl | null;
  /** Who may change this DAO's ACLs (EventMeta.admin); undefined: keep, null: none (its write ACL). */
  admin?: WriteAcl | null;
  /** Plaintext type tag (never user data). undefined: keep. */
  type?: string | null;
  replyTo?: DaoKey | null;
  /** Public keys to publish with this version. */
  publish?: Buffer[];
  /**
   * Keep `data` itself instead of a copy: the caller never changes it afterwards (fs blocks are
   * immutable once handed over; copying each 64 KiB block again cost a pass over every write).
   */
  take?: boolean;
}

export interface CommitResult {
  /** Log seq of the commit; -1 when the transaction had nothing to commit. */
  seq: number;
  changes: AppliedChange[];
}

interface PendingStore {
  kind: 'store';
  /** undefined: keep the current payload (re-sealed: a new version has a new AEAD context). */
  data: Buffer | null | undefined;
  opts: StoreOptions;
}
interface PendingDelete {
  kind: 'delete';
}
type Pending = PendingStore | PendingDelete;

export class Dio {
  private readonly writes = new Map<DaoKey, Pending>();
  /** Version of each DAO as this transaction first saw it (0: absent). */
  private readonly seen = new Map<DaoKey, number>();
  private done = false;

  constructor(
    readonly view: View,
    readonly scope: CommitScope = 'local',
  ) {
    view.assertOpen();
  }

  /** Number of DAOs this transaction writes (stores + deletes). */
  get size(): number {
    return this.writes.size;
  }

  /**
   * Approximate encoded size of the commit so far (payload bytes + per-event overhead). Callers
   * batching many writes split before the log's maximum record size (16 MiB by default).
   */
  get bytes(): number {
    let n = 512;
    for (const p of this.writes.values()) n += 300 + (p.kind === 'store' && p.data ? p.data.length + 28 : 0);
    return n;
  }

  get isOpen(): boolean {
    return !this.done;
  }

  // ---------------------------------------------------------------- reads

  private observe(key: DaoKey): void {
    if (this.seen.has(key)) return;
    const e = this.view.entry(key);
    this.seen.set(key, e ? e.node.version : 0);
  }

  /** Loads a DAO (own uncommitted changes first). NotFound when absent or deleted; NoReadKey. */
  load(key: DaoKey): DaoRecord {
    const r = this.tryLoad(key);
    if (!r) throw new NotFound(key);
    return r;
  }

  tryLoad(key: DaoKey): DaoRecord | undefined {
    this.assertOpen();
    checkKey(key);
    this.observe(key);
    const p = this.writes.get(key);
    if (p?.kind === 'delete') return undefined;
    if (p?.kind === 'store') {
      const cur = this.view.tryGet(key);
      const node = this.pendingNode(key, p, cur?.node);
      return {
        key,
        version: node.version,
        parent: node.parent,
        type: node.type,
        data: p.data === undefined ? (cur?.data ?? null) : p.data,
        updatedAt: node.updatedAt,
        seq: -1,
        node,
      };
    }
    return this.view.tryGet(key);
  }

  /** Loads several DAOs; NotFound on the first missing one. */
  loadMany(keys: Iterable<DaoKey>): DaoRecord[] {
    const out: DaoRecord[] = [];
    for (const k of keys) out.push(this.load(k));
    return out;
  }

  exists(key: DaoKey): boolean {
    this.assertOpen();
    checkKey(key);
    this.observe(key);
    const p = this.writes.get(key);
    if (p) return p.kind === 'store';
    return this.view.exists(key);
  }

  /** Node record (parent, ACLs, version, type) as this transaction sees it, without decrypting. */
  node(key: DaoKey): NodeRecord | undefined {
    this.assertOpen();
    const p = this.writes.get(key);
    if (p?.kind === 'delete') return undefined;
    const cur = this.view.node(key);
    if (p?.kind === 'store') return this.pendingNode(key, p, cur);
    return cur;
  }

  /** Keys of the live children of (parent, collection), own changes included, in key order. */
  children(parent: DaoKey, collection = 0): DaoKey[] {
    this.assertOpen();
    const base = this.view.children(parent, collection);
    if (this.writes.size === 0) return base;
    const out = new Set<DaoKey>();
    for (const k of base) {
      const p = this.writes.get(k);
      if (!p) out.add(k);
      else if (p.kind === 'store') {
        const n = this.node(k)!;
        if (n.parent && n.parent.key === parent && n.parent.collection === collection) out.add(k);
      }
    }
    for (const [k, p] of this.writes) {
      if (p.kind !== 'store' || out.has(k)) continue;
      const n = this.node(k)!;
      if (n.parent && n.parent.key === parent && n.parent.collection === collection) out.add(k);
    }
    return [...out].sort();
  }

  /** Keyed-name DAO key of `name` in (parent, collection); sees parents created in this transaction. */
  nameKey(parent: DaoKey, collection: number, name: Uint8Array): DaoKey {
    this.assertOpen();
    return this.view.nameKey(parent, collection, name, (k) => this.node(k));
  }

  // ---------------------------------------------------------------- collections

  /** Stores a new child in (parent, collection). Returns its key. */
  push(parent: DaoKey, collection: number, data: Uint8Array | null, opts: Omit<StoreOptions, 'parent'> = {}): DaoKey {
    return this.store(data, { ...opts, parent: { key: parent, collection } });
  }

  /** The live children of (parent, collection), loaded (own changes included). */
  *iterate(parent: DaoKey, collection = 0): Generator<DaoRecord> {
    for (const k of this.children(parent, collection)) {
      const r = this.tryLoad(k);
      if (r) yield r;
    }
  }

  /** Moves an existing DAO into (parent, collection) (a new version; payload kept). */
  attach(key: DaoKey, parent: DaoKey, collection = 0): void {
    if (!this.exists(key)) throw new NotFound(key);
    this.update(key, { parent: { key: parent, collection } });
  }

  /** Takes a DAO out of its collection (it becomes a root-level DAO; payload kept). */
  detach(key: DaoKey): void {
    if (!this.exists(key)) throw new NotFound(key);
    this.update(key, { parent: null });
  }

  // ---------------------------------------------------------------- writes

  /**
   * Stores a new version of a DAO (creating it when new) with `data` as its plaintext payload.
   * Returns the key. Checks that happen at commit: write authority, readability of the parent's key.
   */
  store(data: Uint8Array | null, opts: StoreOptions = {}): DaoKey {
    this.assertOpen();
    const key = opts.key ?? newDaoKey();
    checkKey(key);
    this.observe(key);
    const prev = this.writes.get(key);
    const merged = pendingOptions(prev?.kind === 'store' ? prev.opts : undefined, opts);
    const keep = data === null ? null : opts.take && Buffer.isBuffer(data) ? data : Buffer.from(data);
    this.writes.delete(key); // re-insert: event order follows the last write
    this.writes.set(key, { kind: 'store', data: keep, opts: merged });
    return key;
  }

  /** Changes metadata (parent, type, ...) of an existing DAO and keeps its payload. */
  update(key: DaoKey, opts: Omit<StoreOptions, 'key'>): void {
    this.assertOpen();
    checkKey(key);
    this.observe(key);
    const prev = this.writes.get(key);
    if (prev?.kind === 'delete') throw new NotFound(key, 'deleted in this transaction');
    if (!prev && !this.view.exists(key)) throw new NotFound(key);
    const merged = pendingOptions(prev?.kind === 'store' ? prev.opts : undefined, opts);
    this.writes.delete(key);
    this.writes.set(key, { kind: 'store', data: prev?.kind === 'store' ? prev.data : undefined, opts: merged });
  }

  /** Sets the read, write and/or children ACL of an existing DAO (payload kept, re-sealed). */
  setAcl(key: DaoKey, acl: { read?: ReadAcl; write?: WriteAcl; children?: WriteAcl | null; admin?: WriteAcl | null }): void {
    const o: Omit<StoreOptions, 'key'> = {};
    if (acl.read) o.read = acl.read;
    if (acl.write) o.write = acl.write;
    if (acl.children !== undefined) o.children = acl.children;
    if (acl.admin !== undefined) o.admin = acl.admin;
    this.update(key, o);
  }

  /** Deletes a DAO (a tombstone version). NotFound when it does not exist. */
  delete(key: DaoKey): void {
    this.assertOpen();
    checkKey(key);
    this.observe(key);
    const prev = this.writes.get(key);
    if (prev?.kind === 'delete') throw new NotFound(key, 'already deleted in this transaction');
    const existsCommitted = this.view.exists(key);
    if (!prev && !existsCommitted) throw new NotFound(key);
    this.writes.delete(key);
    // A DAO created and deleted in the same transaction leaves nothing.
    if (existsCommitted) this.writes.set(key, { kind: 'delete' });
  }

  // ---------------------------------------------------------------- end

  /** Discards every change. The transaction cannot be used afterwards. */
  cancel(): void {
    this.done = true;
    this.writes.clear();
    this.seen.clear();
  }

  /**
   * Commits all changes as one signed commit, all or nothing. Resolves once the commit is applied
   * to the view and, for scope 'durable', fsynced. Errors: Conflict, NoWriteAuthority, NotFound
   * (missing parent), NoReadKey (a parent's data key the session cannot open), CommitRejected.
   */
  async commit(scope: CommitScope = this.scope): Promise<CommitResult> {
    this.assertOpen();
    this.done = true;
    if (this.writes.size === 0) return { seq: -1, changes: [] };
    const view = this.view;
    view.assertWritable();
    // Optimistic check first (cheap, before signing): nothing we saw may have moved.
    this.checkVersions();
    view.commitStarted();
    try {
      // Commits are built concurrently and applied in the order their signing finishes: one built
      // earlier (hence timestamped earlier) can reach the view after a later one and be refused
      // as going backwards. It is then built again, after the same optimistic check (the newer
      // commit may have changed what this one read), and its timestamp is clamped to the newer one.
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.signAndSubmit(view, scope);
        } catch (e) {
          if (attempt >= BACKWARDS_RETRIES || !isBackwards(e)) throw e;
          this.checkVersions();
        }
      }
    } finally {
      view.commitEnded();
    }
  }

  private checkVersions(): void {
    for (const key of this.writes.keys()) {
      const now = this.view.entry(key)?.node.version ?? 0;
      const then = this.seen.get(key) ?? 0;
      if (now !== then) throw new Conflict(key, `version ${then} when read, ${now} now`);
    }
  }

  private async signAndSubmit(view: View, scope: CommitScope): Promise<CommitResult> {
    let commit;
    try {
      const b = new CommitBuilder({ state: view.state, keyring: view.keyring, keys: view.keys, pool: view.pool, bulk: view.bulk, now: view.now, deferSignatures: view.deferSignatures });
      for (const [key, p] of this.writes) {
        if (p.kind === 'delete') {
          b.delete(key);
          continue;
        }
        let payload: Buffer | null;
        if (p.data === undefined) payload = view.tryGet(key)?.data ?? null;
        else payload = p.data;
        const o = p.opts;
        // Only the options given, assigned one by one: conditional spreads of small objects cost
        // microseconds per event here.
        const put: PutOptions = { key, payload };
        if (o.parent !== undefined) put.parent = o.parent;
        if (o.read !== undefined) put.read = o.read;
        if (o.write !== undefined) put.write = o.write;
        if (o.children !== undefined) put.children = o.children;
        if (o.admin !== undefined) put.admin = o.admin;
        if (o.type !== undefined) put.type = o.type;
        if (o.replyTo !== undefined) put.replyTo = o.replyTo;
        if (o.publish !== undefined) put.publish = o.publish;
        b.put(put);
      }
      commit = await b.build();
    } catch (e) {
      throw mapBuildError(e);
    }
    const r = view.remote ? await view.remote.submit(commit, scope) : await view.submit(commit, scope, true);
    return { seq: r.seq, changes: r.changes };
  }

  // ---------------------------------------------------------------- internals

  private pendingNode(key: DaoKey, p: PendingStore, cur: NodeRecord | undefined): NodeRecord {
    const o = p.opts;
    const base = this.seen.get(key) ?? cur?.version ?? 0;
    const read = o.read ?? cur?.read ?? { mode: 'inherit' };
    const children = o.children === undefined ? cur?.children : o.children;
    const admin = o.admin === undefined ? cur?.admin : o.admin;
    return {
      key,
      version: base + 1,
      deleted: false,
      parent: o.parent !== undefined ? o.parent : (cur?.parent ?? null),
      read,
      write: o.write ?? cur?.write ?? { mode: 'inherit' },
      ...(children ? { children } : {}),
      ...(admin ? { admin } : {}),
      nodeKey: read.mode === 'inherit' ? null : cur && cur.read.mode !== 'inherit' ? cur.nodeKey : null,
      keys: cur?.keys ?? [],
      type: o.type !== undefined ? o.type : (cur?.type ?? null),
      updatedAt: this.view.now(),
    };
  }

  private assertOpen(): void {
    if (this.done) throw new TransactionClosed('transaction already committed or cancelled');
    this.view.assertOpen();
  }
}

function checkKey(key: DaoKey): void {
  if (!isDaoKey(key)) throw new TypeError(`not a DAO key: ${String(key)}`);
}

/**
 * The options a pending store keeps: `opts` over `prev` (an option `opts` leaves undefined keeps
 * `prev`'s), without the key and `take`. One object shape with every field, built directly: the
 * spreads and deletes this replaces left objects in dictionary mode, slow to read on every commit.
 */
function pendingOptions(prev: StoreOptions | undefined, opts: StoreOptions): StoreOptions {
  return {
    parent: opts.parent !== undefined ? opts.parent : prev?.parent,
    read: opts.read !== undefined ? opts.read : prev?.read,
    write: opts.write !== undefined ? opts.write : prev?.write,
    children: opts.children !== undefined ? opts.children : prev?.children,
    admin: opts.admin !== undefined ? opts.admin : prev?.admin,
    type: opts.type !== undefined ? opts.type : prev?.type,
    replyTo: opts.replyTo !== undefined ? opts.replyTo : prev?.replyTo,
    publish: opts.publish !== undefined ? opts.publish : prev?.publish,
  };
}

/** Rebuilds of a commit overtaken by a newer one (see commit()); each clamps to the newest. */
const BACKWARDS_RETRIES = 8;

function isBackwards(e: unknown): boolean {
  const c = e instanceof Error ? e.cause : undefined;
  return c instanceof ChainCommitRejected && c.reason === 'backwards';
}

function mapBuildError(e: unknown): Error {
  if (e instanceof TreeError && (e.problem === 'missing-parent' || e.problem === 'deleted-parent')) {
    return new NotFound(e.at ?? '?', e.message);
  }
  if (e instanceof NotAuthorized) {
    const m = /missing-parent|deleted-parent/.exec(e.message);
    if (m) return new NotFound('?', e.message);
    return new NoWriteAuthority(null, e.message);
  }
  if (e instanceof NoReadKey) return e;
  return mapReject(e);
}
