// Building commits from a session: events with plaintext payloads go in; a sealed, encoded,
// hashed commit signed once per signing key (through the worker pool) comes out.
//
// The builder keeps an overlay of the state so several events of one commit see each other (a
// child created under a parent created earlier in the same commit inherits its key and ACL), and
// computes versions, data keys, wraps and the signers the write ACLs need. It refuses up front
// what validation would reject (NotAuthorized, TreeError as NotAuthorized, NoReadKey).
import { type BulkCryptoPool, type CryptoPool, type SealItem } from '../crypto/index.js';
import {
  type LabelledRequirement,
  TreeError,
  type WriteRequirement,
  admits,
  describeRequirement,
  effectiveDataKeyOf,
  labelledRequirements,
  readersOf,
} from './authority.js';
import { deferredMacKey, deferredSignature } from './deferred.js';
import { EVENT_DOMAIN, assembleCommit, encodeMeta, eventHash, hashCommitParts, makeEvent, signCommitHash } from './codec.js';
import { type DataKeyCache, type Keyring, payloadAad, sealPayload, wrapDataKey } from './confidentiality.js';
import { NoReadKey, NotAuthorized } from './errors.js';
import { dataKeyId, newDaoKey, newDataKey, publicKeyId } from './ids.js';
import { type AuthorityStateReader, type NodeRecord, StateOverlay } from './state.js';
import type {
  ChainEvent,
  Commit,
  CommitHeader,
  DaoKey,
  DataKeyGrant,
  EventMeta,
  KeyId,
  ParentLink,
  ReadAcl,
  ReaderRef,
  WriteAcl,
} from './types.js';
import { applyEventToOverlay } from './validate.js';

/** The optional children field of an event's metadata (absent when there is none). */
function childrenField(c: WriteAcl | null | undefined): { children?: WriteAcl } {
  return c ? { children: c } : {};
}
function adminField(a: WriteAcl | null | undefined): { admin?: WriteAcl } {
  return a ? { admin: a } : {};
}

export interface PutOptions {
  /** DAO key; a fresh random one when absent. */
  key?: DaoKey;
  /** Parent link; undefined keeps the current one (a new node: root level); null = root level. */
  parent?: ParentLink | null;
  /** undefined keeps the current ACL (a new node: inherit). */
  read?: ReadAcl;
  write?: WriteAcl;
  /** Children ACL (EventMeta.children): undefined keeps the current one, null drops it. */
  children?: WriteAcl | null;
  /** Admin ACL (EventMeta.admin): undefined keeps the current one, null drops it. */
  admin?: WriteAcl | null;
  type?: string | null;
  replyTo?: DaoKey | null;
  /** Public keys to publish with this event. */
  publish?: Buffer[];
  /** Plaintext payload; sealed under the node's effective data key. null/undefined = no payload. */
  payload?: Uint8Array | null;
}

export interface CommitBuilderOptions {
  state: AuthorityStateReader;
  keyring: Keyring;
  /** Unwrapped data keys of the session (shared with readers of the same session). */
  keys: DataKeyCache;
  pool?: CryptoPool | null;
  /**
   * Worker threads for payloads over BULK_SEAL_MIN bytes (file blocks): they are sealed and their
   * event hashes computed there, in ~1 MiB batches that run while the caller keeps building.
   */
  bulk?: BulkCryptoPool | null;
  now?: () => number;
  /**
   * Deferred signatures (deferred.ts): each slot gets the MAC of the commit hash instead of a
   * hybrid signature; a sign-off signs it later. Only for a local chain whose view signs off
   * (src/view/deferred-signer.ts).
   */
  deferSignatures?: boolean;
}

/** Payloads above this go to the bulk pool (when there is one); smaller ones are not worth a hand-off. */
export const BULK_SEAL_MIN = 4096;
/** Bytes of plaintext per bulk batch: big enough to amortize the hand-off, small enough for 2 workers. */
const BULK_BATCH_BYTES = 1 << 20;
/**
 * A commit whose blocks were all queued and total at most this is sealed here, not on a worker:
 * AES-GCM + SHA-256 of 128 KiB take ~0.2 ms on this thread, a worker round trip 0.3-1 ms under
 * load, and such small commits are the ones an fsync waits for (one 4 KiB write rewrites a block).
 */
const INLINE_SEAL_BYTES = 128 << 10;
const NO_HASH = Buffer.alloc(0);

function sameReaders(a: readonly ReaderRef[], b: readonly ReaderRef[]): { added: ReaderRef[]; removed: boolean } {
  const has = (list: readonly ReaderRef[], r: ReaderRef) => list.some((x) => x.kind === r.kind && x.id === r.id);
  return { added: b.filter((r) => !has(a, r)), removed: a.some((r) => !has(b, r)) };
}

export class CommitBuilder {
  private readonly overlay: StateOverlay;
  private readonly events: ChainEvent[] = [];
  private readonly requirements: WriteRequirement[] = [];
  private readonly touched = new Set<DaoKey>();
  private readonly chain: Buffer;
  private built = false;
  /** Events whose payload waits for the bulk pool: index in `events` and the job. */
  private sealQueue: Array<{ index: number; item: SealItem }> = [];
  private sealQueueBytes = 0;
  private readonly sealing: Promise<void>[] = [];

  constructor(private readonly o: CommitBuilderOptions) {
    this.overlay = new StateOverlay(o.state);
    const g = o.state.getGenesis();
    if (!g) throw new TreeError('no-genesis', null, 'the chain has no genesis');
    this.chain = g.hash;
  }

  get size(): number {
    return this.events.length;
  }

  /** The state as this commit would leave it (for callers that read their own writes). */
  get view(): AuthorityStateReader {
    return this.overlay;
  }

  /** Writes a new version of a DAO (creating it when new). Returns its key. */
  put(p: PutOptions): DaoKey {
    this.assertOpen();
    const key = p.key ?? newDaoKey();
    if (this.touched.has(key)) throw new TypeError(`DAO ${key} is already in this commit (one version per commit)`);
    const cur = this.overlay.getNode(key);
    const live = cur && !cur.deleted ? cur : undefined;
    const read = p.read ?? live?.read ?? { mode: 'inherit' };
    const { nodeKey, grants, fresh } = this.confidentiality(key, live, read, p.publish ?? []);
    const meta: EventMeta = {
      key,
      version: cur ? cur.version + 1 : 1,
      tombstone: false,
      parent: p.parent !== undefined ? p.parent : (live?.parent ?? null),
      read,
      write: p.write ?? live?.write ?? { mode: 'inherit' },
      nodeKey,
      grants,
      payloadKey: null,
      publish: p.publish ?? [],
      type: p.type !== undefined ? p.type : (live?.type ?? null),
      replyTo: p.replyTo ?? null,
    };
    // Set only when there is one (absent, never undefined); assigned, not spread into the literal
    // (a spread per field cost microseconds per event).
    const children = p.children === undefined ? live?.children : p.children;
    if (children) meta.children = children;
    const admin = p.admin === undefined ? live?.admin : p.admin;
    if (admin) meta.admin = admin;
    const reqs = this.requirementsOf(meta);
    let payload: Buffer | null = null;
    if (p.payload !== undefined && p.payload !== null) {
      const id = this.payloadKeyOf(meta);
      const dk = fresh.get(id) ?? this.o.keys.get(this.overlay, id);
      meta.payloadKey = id;
      const aad = payloadAad(this.chain, key, meta.version);
      if (this.o.bulk && p.payload.length > BULK_SEAL_MIN) {
        // Sealed and hashed on a worker; the event is completed before build() hashes the commit.
        const metaBytes = encodeMeta(meta);
        this.sealQueue.push({ index: this.events.length, item: { key: dk, aad, meta: metaBytes, plaintext: p.payload } });
        this.sealQueueBytes += p.payload.length;
        this.finishPut(key, meta, cur, fresh, reqs, { meta, metaBytes, payload: null, hash: NO_HASH });
        if (this.sealQueueBytes >= BULK_BATCH_BYTES) this.dispatchSeals();
        return key;
      }
      payload = sealPayload(dk, p.payload, aad);
    }
    this.finishPut(key, meta, cur, fresh, reqs, makeEvent(meta, payload));
    return key;
  }

  private finishPut(key: DaoKey, meta: EventMeta, cur: NodeRecord | undefined, fresh: Map<string, Buffer>, reqs: WriteRequirement[], ev: ChainEvent): void {
    applyEventToOverlay(this.overlay, meta, cur, 0, null, this.events.length);
    for (const k of fresh.values()) this.o.keys.remember(k);
    this.requirements.push(...reqs);
    this.touched.add(key);
    this.events.push(ev);
  }

  /** Seals the queued payloads on this thread (a small commit: see INLINE_SEAL_BYTES). */
  private sealInline(): void {
    for (const j of this.sealQueue) {
      const ev = this.events[j.index]!;
      const payload = sealPayload(j.item.key as Buffer, j.item.plaintext, j.item.aad as Buffer);
      this.events[j.index] = { meta: ev.meta, metaBytes: ev.metaBytes, payload, hash: eventHash(ev.metaBytes, payload) };
    }
    this.sealQueue = [];
    this.sealQueueBytes = 0;
  }

  /** Hands the queued payloads to the bulk pool; their events are filled in when it answers. */
  private dispatchSeals(): void {
    const jobs = this.sealQueue;
    if (jobs.length === 0) return;
    this.sealQueue = [];
    this.sealQueueBytes = 0;
    const done = this.o.bulk!.sealAndHash(jobs.map((j) => j.item), EVENT_DOMAIN).then((res) => {
      for (let i = 0; i < jobs.length; i++) {
        const ev = this.events[jobs[i]!.index]!;
        this.events[jobs[i]!.index] = { meta: ev.meta, metaBytes: ev.metaBytes, payload: res[i]!.sealed, hash: res[i]!.hash };
      }
    });
    done.catch(() => undefined); // observed in build()
    this.sealing.push(done);
  }

  /** Deletes a DAO (a tombstone version). */
  delete(key: DaoKey): void {
    this.assertOpen();
    if (this.touched.has(key)) throw new TypeError(`DAO ${key} is already in this commit (one version per commit)`);
    const cur = this.overlay.getNode(key);
    if (!cur || cur.deleted) throw new TreeError('missing-parent', key, `DAO ${key} does not exist`);
    const meta: EventMeta = {
      key,
      version: cur.version + 1,
      tombstone: true,
      parent: cur.parent,
      read: cur.read,
      write: cur.write,
      ...childrenField(cur.children),
      ...adminField(cur.admin),
      nodeKey: cur.nodeKey,
      grants: [],
      payloadKey: null,
      publish: [],
      type: cur.type,
      replyTo: null,
    };
    const reqs = this.requirementsOf(meta);
    applyEventToOverlay(this.overlay, meta, cur, 0, null, this.events.length);
    this.requirements.push(...reqs);
    this.touched.add(key);
    this.events.push(makeEvent(meta, null));
  }

  /** Hashes and signs (one signature per needed key, off the main thread with a pool). Single use. */
  async build(): Promise<Commit> {
    this.assertOpen();
    this.built = true;
    const signers = this.chooseSigners();
    if (this.sealing.length === 0 && this.sealQueueBytes <= INLINE_SEAL_BYTES) this.sealInline();
    this.dispatchSeals();
    await Promise.all(this.sealing);
    // Never earlier than the newest commit of the state: a clock stepped back (NTP, a VM restore)
    // must not make the writer's own chain invalid (the validator refuses backwards timestamps).
    const now = (this.o.now ?? Date.now)();
    const prev = this.o.state.latestTimestamp?.();
    const header: CommitHeader = { chain: this.chain, timestamp: prev !== undefined && prev > now ? prev : now, genesis: null };
    const { headerBytes, hash } = hashCommitParts(header, this.events);
    if (this.o.deferSignatures) {
      const sigs = signers.map((s) => ({ publicKey: s.publicKey, signature: deferredSignature(deferredMacKeyOf(s.secretKey), hash) }));
      return assembleCommit(header, headerBytes, hash, this.events, sigs);
    }
    return assembleCommit(header, headerBytes, hash, this.events, await signCommitHash(hash, signers, this.o.pool));
  }

  private assertOpen(): void {
    if (this.built) throw new TypeError('commit already built');
  }

  /** The node's effective data key after this event: its own, else its (new) parent's, else the root key. */
  private payloadKeyOf(meta: EventMeta): string {
    if (meta.read.mode !== 'inherit' && meta.nodeKey) return meta.nodeKey;
    if (meta.parent) {
      const p = this.overlay.getNode(meta.parent.key);
      if (!p) throw new NotAuthorized(`missing-parent: parent ${meta.parent.key} does not exist`);
      return effectiveDataKeyOf(this.overlay, p);
    }
    return this.o.state.getGenesis()!.info.rootDataKey.id;
  }

  private mySigners: Set<KeyId> | null = null;

  private requirementsOf(meta: EventMeta): WriteRequirement[] {
    let reqs: LabelledRequirement[];
    try {
      reqs = labelledRequirements(this.overlay, meta);
    } catch (e) {
      if (e instanceof TreeError) throw new NotAuthorized(`${e.problem}: ${e.message}`);
      throw e;
    }
    const mine = (this.mySigners ??= new Set(this.o.keyring.signingKeys().map((k) => k.id)));
    for (const r of reqs) {
      // admits() with every key the session holds: 'any' needs one of them, 'all' every listed one.
      if (!admits(r.req, mine)) {
        throw new NotAuthorized(
          r.req.mode === 'signed' ? 'the session holds no signing key'
          : r.role === 'change' ? `the session holds no key the write ACL (${r.req.mode}) of ${meta.key} admits`
          : `the session holds no key admitted by ${describeRequirement(r)}`,
        );
      }
    }
    return reqs.map((r) => r.req);
  }

  /** Fewest keys that meet every requirement of the commit (greedy; 'all' needs each listed key). */
  private chooseSigners(): Array<{ id: KeyId; publicKey: Buffer; secretKey: Buffer }> {
    const mine = this.o.keyring.signingKeys();
    const chosen = new Map<KeyId, (typeof mine)[number]>();
    const pick = (id: KeyId) => {
      const k = mine.find((x) => x.id === id);
      if (k) chosen.set(id, k);
    };
    for (const r of this.requirements) {
      if (r.mode === 'all') r.keys.forEach(pick);
    }
    for (const r of this.requirements) {
      if (r.mode === 'any' && !r.keys.some((k) => chosen.has(k))) {
        const k = r.keys.find((id) => mine.some((x) => x.id === id));
        if (k) pick(k);
      }
    }
    if (chosen.size === 0) {
      if (mine.length === 0) throw new NotAuthorized('the session holds no signing key');
      chosen.set(mine[0]!.id, mine[0]!);
    }
    const set = new Set(chosen.keys());
    for (const r of this.requirements) if (!admits(r, set)) throw new NotAuthorized(`write ACL (${r.mode}) not met`);
    return [...chosen.values()];
  }

  /**
   * Data keys for a node whose read ACL is `read` after this event:
   * - inherit: no own key;
   * - newly set (new node, or was inherit): a fresh key wrapped for the readers;
   * - same readers: keep the key;
   * - readers only added: keep the key, re-wrap every key of the node for the added readers
   *   (old data becomes readable to them, nothing is re-encrypted);
   * - a reader removed: a fresh key for the new readers (data written from now on is closed to the
   *   removed reader) and re-wraps of the old keys for any added readers.
   */
  private confidentiality(
    key: DaoKey,
    live: NodeRecord | undefined,
    read: ReadAcl,
    publish: readonly Buffer[],
  ): { nodeKey: string | null; grants: DataKeyGrant[]; fresh: Map<string, Buffer> } {
    const fresh = new Map<string, Buffer>();
    if (read.mode === 'inherit') return { nodeKey: null, grants: [], fresh };
    // Keys published by this very event count: a new reader's key and the grant for it can
    // arrive together.
    const lookup = (id: KeyId) => publish.find((k) => publicKeyId(k) === id) ?? this.overlay.getPublicKey(id);
    const readers = readersOf(this.overlay, read);
    if (readers.length === 0) throw new NoReadKey('-', 'a read ACL needs at least one reader');
    const grants: DataKeyGrant[] = [];
    let nodeKey = live && live.read.mode !== 'inherit' ? live.nodeKey : null;
    let added: ReaderRef[] = readers;
    let removed = false;
    if (nodeKey && live) {
      ({ added, removed } = sameReaders(readersOf(this.overlay, live.read), readers));
      if (added.length > 0) {
        for (const old of live.keys) {
          const k = this.o.keys.get(this.overlay, old);
          grants.push(wrapDataKey(k, added, this.o.keyring, lookup));
        }
      }
    }
    if (!nodeKey || removed) {
      const k = newDataKey();
      const g = wrapDataKey(k, readers, this.o.keyring, lookup);
      fresh.set(g.id, k);
      grants.push(g);
      nodeKey = dataKeyId(k);
    }
    return { nodeKey, grants, fresh };
  }
}

// The MAC key is a hash of the secret key: derive it once per key, not once per commit.
const macKeys = new WeakMap<Buffer, Buffer>();
function deferredMacKeyOf(secretKey: Buffer): Buffer {
  let k = macKeys.get(secretKey);
  if (!k) macKeys.set(secretKey, (k = deferredMacKey(secretKey)));
  return k;
}
