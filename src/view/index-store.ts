// The persisted index of a chain in LMDB: one environment per view, binary sub-databases.
//
//   meta      'format' | 'chain' | 'wm' | 'live' -> msgpack          (format, identity, watermark, live payload bytes)
//             'u/' + seq (15 digits)             -> [hash, keys]     (a commit awaiting its sign-off, lmdb-state.ts)
//   dao       dao key                            -> DaoEntry         (current version or tombstone)
//   children  parent | coll u32 | child          -> ''               ((parent, collection) -> children)
//   keys      data key id (16)                   -> DataKeyEntry     (grants: owner, wraps, records)
//   published public key id (32)                 -> seq u64be        (records publishing keys)
//   records   seq u64be                          -> RecordEntry      (where a commit is, how much of it lives)
//   seen      commit hash                        -> seq u64be        (anti-replay state for the validator)
//   leases    dao key                            -> [owner, expiresAt]
//
// Key parts are length-prefixed (u8) so composite keys never collide and range scans over a
// parent's children are exact. Everything here is derived from the log: losing or deleting the
// environment costs a rebuild, never data. That is why the environment runs with noSync: a crash
// at worst leaves an index that fails the watermark check and is rebuilt.
import { rmSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { Packr } from 'msgpackr';
import type { DataKeyRecord, NodeRecord } from '../chain/state.js';
import { makeDirPrivate } from '../log/index.js';

/** 3: watermark v2 (record digests by size, see watermark.ts). An older index is rebuilt on open. */
export const INDEX_FORMAT = 3;

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Data-key entries kept (IndexStore.keyCache). */
const KEY_CACHE_ENTRIES = 4096;
/** Decoded DAO entries kept (IndexStore.daoCache): ~300 bytes each. */
const DAO_CACHE_ENTRIES = 8192;

const UNSIGNED_PREFIX = 'u/';
const UNSIGNED_END = 'u0'; // '0' follows '/': every 'u/...' key sorts before it
/** Zero-padded so string order is seq order. */
const unsignedKey = (seq: number): string => UNSIGNED_PREFIX + String(seq).padStart(15, '0');

/**
 * Current version (or tombstone) of one DAO, as the index keeps it: where its bytes are, plus the
 * node record the chain's authority checks need (the latest version is self-describing).
 */
export interface DaoEntry {
  /** Log seq of the commit that holds this version. */
  seq: number;
  /** Index of the event inside that commit. */
  index: number;
  /** Event hash of this version: binds the entry to the log bytes it points to. */
  hash: Buffer;
  /** Span of the metadata / payload bytes inside the commit record (payloadStart -1: none). */
  metaStart: number;
  metaLen: number;
  payloadStart: number;
  payloadLen: number;
  /** Seq of the commit that created the DAO (first version, or first after a tombstone). */
  created: number;
  node: NodeRecord;
}

/** Where a commit is in the log, and how much of it is still the current version of something. */
export interface RecordEntry {
  segment: number;
  offset: number;
  /** Events of this commit that are the current version (or a retained tombstone) of a DAO. */
  live: number;
  events: number;
  bytes: number;
  time: number;
}

export interface Watermark {
  /** Seq of the last record applied (-1: nothing applied). */
  seq: number;
  segment: number;
  offset: number;
  /** Running hash over every record applied so far (see watermark.ts). */
  chainHash: Buffer;
  /** The running hash before the last record (checks the watermark record alone). */
  prevHash: Buffer;
  /** Records applied. */
  records: number;
  /** Total payload bytes of the records applied. */
  bytes: number;
}

/** A data key as the chain granted it, plus the records carrying its grants (compaction keeps them). */
export interface DataKeyEntry {
  record: DataKeyRecord;
  seqs: number[];
}

export interface ChainIdentity {
  chainId: string;
  genesisHash: Buffer | null;
}

export function encodeDaoEntry(e: DaoEntry): Buffer {
  const n = e.node;
  return packr.pack([
    1,
    e.seq,
    e.index,
    e.hash,
    e.metaStart,
    e.metaLen,
    e.payloadStart,
    e.payloadLen,
    e.created,
    n.key,
    n.version,
    n.deleted ? 1 : 0,
    n.parent ? n.parent.key : null,
    n.parent ? n.parent.collection : 0,
    n.read,
    n.write,
    n.nodeKey,
    n.keys,
    n.type,
    n.updatedAt,
    // Appended (entries written before them have 20 fields, and no children or admin ACL).
    n.children ?? null,
    n.admin ?? null,
  ]);
}

export function decodeDaoEntry(b: Buffer): DaoEntry {
  const a = packr.unpack(b) as unknown[];
  if (!Array.isArray(a) || a[0] !== 1) throw new Error('index: unknown DAO entry format');
  const parentKey = a[12] as string | null;
  return {
    seq: a[1] as number,
    index: a[2] as number,
    // Copy: msgpackr returns views into the input, and getBinaryFast's buffer is reused.
    hash: Buffer.from(a[3] as Buffer),
    metaStart: a[4] as number,
    metaLen: a[5] as number,
    payloadStart: a[6] as number,
    payloadLen: a[7] as number,
    created: a[8] as number,
    node: {
      key: a[9] as string,
      version: a[10] as number,
      deleted: a[11] === 1,
      parent: parentKey === null ? null : { key: parentKey, collection: a[13] as number },
      read: a[14] as NodeRecord['read'],
      write: a[15] as NodeRecord['write'],
      nodeKey: (a[16] as string | null) ?? null,
      keys: a[17] as string[],
      type: (a[18] as string | null) ?? null,
      updatedAt: a[19] as number,
      ...(a[20] ? { children: a[20] as NonNullable<NodeRecord['children']> } : {}),
      ...(a[21] ? { admin: a[21] as NonNullable<NodeRecord['admin']> } : {}),
    },
  };
}

export function encodeRecordEntry(r: RecordEntry): Buffer {
  return packr.pack([1, r.segment, r.offset, r.live, r.events, r.bytes, r.time]);
}
export function decodeRecordEntry(b: Buffer): RecordEntry {
  const a = packr.unpack(b) as number[];
  if (!Array.isArray(a) || a[0] !== 1) throw new Error('index: unknown record entry format');
  return { segment: a[1]!, offset: a[2]!, live: a[3]!, events: a[4]!, bytes: a[5]!, time: a[6]! };
}

export function seqKey(seq: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 0);
  b.writeUInt32BE(seq >>> 0, 4);
  return b;
}
export function seqFromKey(b: Buffer): number {
  return b.readUInt32BE(0) * 0x1_0000_0000 + b.readUInt32BE(4);
}

/** parent | coll: the prefix every child / name key of that collection starts with. */
export function collectionPrefix(parent: Uint8Array, collection: number): Buffer {
  if (parent.length > 255) throw new RangeError('DAO keys are at most 255 bytes');
  const b = Buffer.allocUnsafe(1 + parent.length + 4);
  b[0] = parent.length;
  b.set(parent, 1);
  b.writeUInt32BE(collection >>> 0, 1 + parent.length);
  return b;
}

export function childKey(parent: Uint8Array, collection: number, child: Uint8Array): Buffer {
  const p = collectionPrefix(parent, collection);
  return Buffer.concat([p, child]);
}


/** The smallest key strictly greater than every key starting with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]!++;
      return b.subarray(0, i + 1);
    }
  }
  return Buffer.concat([prefix, Buffer.from([0xff, 0xff, 0xff, 0xff])]);
}

export interface IndexStoreOptions {
  /** Directory of the LMDB environment; omitted = a temporary in-memory-like env under os.tmpdir(). */
  path: string;
  readOnly?: boolean;
  /** Map size; LMDB grows it as needed, this only sets the start. */
  mapSize?: number;
}

const EMPTY = Buffer.alloc(0);

/**
 * An error LMDB itself raised (its messages start with the MDB_ code: MDB_BAD_TXN, MDB_CORRUPTED,
 * MDB_PROBLEM, ...), as opposed to our own checks. lmdb-js's free-list code has rare failures under
 * heavy writes ("reserved freelist had a data entry with zero-size") that leave its environment
 * unusable; since the index is derived from the log, the view recovers by reopening or rebuilding it.
 */
export function isLmdbFault(e: unknown): boolean {
  return e instanceof Error && /^MDB_[A-Z_]+\b/.test(e.message);
}

export class IndexStore {
  // Reassigned only by reopen(): whoever holds the IndexStore sees the new environment.
  env!: RootDatabase<Buffer, Buffer | string>;
  meta!: Database<Buffer, string>;
  dao!: Database<Buffer, Buffer>;
  children!: Database<Buffer, Buffer>;
  keys!: Database<Buffer, Buffer>;
  published!: Database<Buffer, Buffer>;
  records!: Database<Buffer, Buffer>;
  seen!: Database<Buffer, Buffer>;
  leases!: Database<Buffer, Buffer>;
  readonly path: string;
  private readonly opts: IndexStoreOptions;
  /** Test hook: the next n transactions fail as LMDB's free-list bug makes them fail (see isLmdbFault). */
  injectFaults = 0;
  /**
   * Decoded entries of DAOs read or written lately, by hex key (null: absent). A commit looks its
   * DAOs up a dozen times (existence, versions, authority, the previous entry), each a msgpack
   * decode. Coherent because every change of the table goes through putDao/removeDao here; a
   * transaction that throws (rolled back), a clear and a reopen empty it. Entries are shared:
   * nobody changes a DaoEntry once built.
   */
  private readonly daoCache = new Map<string, DaoEntry | null>();
  /**
   * Decoded data-key entries (or null: not in the table), cleared with daoCache: every commit
   * looks up the key its payloads are sealed under (validation and the builder's overlay).
   */
  private readonly keyCache = new Map<string, DataKeyEntry | null>();

  constructor(opts: IndexStoreOptions) {
    this.path = opts.path;
    this.opts = opts;
    this.openEnv();
  }

  private openEnv(): void {
    const opts = this.opts;
    // Private like the log (0700, files 0600): before the open for what an older version left,
    // after it for the files LMDB just created (it creates them 0644 less the umask).
    if (!opts.readOnly) makeDirPrivate(opts.path);
    this.env = open<Buffer, Buffer | string>({
      path: opts.path,
      maxDbs: 12,
      noSync: true,
      readOnly: opts.readOnly ?? false,
      mapSize: opts.mapSize ?? 256 * 1024 * 1024,
      encoding: 'binary',
      keyEncoding: 'binary',
      cache: false,
    });
    if (!opts.readOnly) makeDirPrivate(opts.path);
    const sub = <K extends Buffer | string>(name: string, keyEncoding: 'binary' | 'ordered-binary' = 'binary') =>
      this.env.openDB<Buffer, K>(name, { encoding: 'binary', keyEncoding, cache: false });
    this.meta = sub<string>('meta', 'ordered-binary');
    this.dao = sub<Buffer>('dao');
    this.children = sub<Buffer>('children');
    this.keys = sub<Buffer>('keys');
    this.published = sub<Buffer>('published');
    this.records = sub<Buffer>('records');
    this.seen = sub<Buffer>('seen');
    this.leases = sub<Buffer>('leases');
  }

  /**
   * Closes the environment and opens it again from its files (its in-memory free list is read
   * afresh); with `fresh`, the files are deleted first and the index starts empty. Leases are not
   * derived from the log: they survive a plain reopen and are lost (all expire) with `fresh`.
   */
  async reopen(fresh = false): Promise<void> {
    this.clearCaches();
    await this.env.close().catch(() => undefined);
    if (fresh) IndexStore.destroy(this.path);
    this.openEnv();
  }

  static destroy(path: string): void {
    rmSync(path, { recursive: true, force: true });
  }

  // ---- meta

  getMeta<T>(key: string): T | undefined {
    const b = this.meta.getBinary(key);
    return b ? (packr.unpack(b) as T) : undefined;
  }
  putMeta(key: string, value: unknown): void {
    this.meta.putSync(key, packr.pack(value));
  }
  removeMeta(key: string): void {
    this.meta.removeSync(key);
  }

  // ---- commits awaiting a sign-off: one key each, so a commit writes its own entry, not the list

  putUnsigned(seq: number, hash: Buffer, keys: readonly Buffer[]): void {
    this.putMeta(unsignedKey(seq), [hash, keys]);
  }
  removeUnsigned(seq: number): void {
    this.removeMeta(unsignedKey(seq));
  }
  /** In seq order. */
  *unsignedEntries(): Generator<{ seq: number; hash: Buffer; keys: Buffer[] }> {
    for (const { key, value } of this.meta.getRange({ start: UNSIGNED_PREFIX, end: UNSIGNED_END })) {
      const [hash, keys] = packr.unpack(value) as [Uint8Array, Uint8Array[]];
      yield { seq: Number((key as string).slice(UNSIGNED_PREFIX.length)), hash: Buffer.from(hash), keys: keys.map((k) => Buffer.from(k)) };
    }
  }

  getWatermark(): Watermark | undefined {
    const w = this.getMeta<[number, number, number, Buffer, number, number, Buffer]>('wm');
    if (!w) return undefined;
    return { seq: w[0], segment: w[1], offset: w[2], chainHash: Buffer.from(w[3]), records: w[4], bytes: w[5], prevHash: Buffer.from(w[6]) };
  }
  /** Call inside a write transaction, together with the index changes it covers. */
  putWatermark(w: Watermark): void {
    this.putMeta('wm', [w.seq, w.segment, w.offset, w.chainHash, w.records, w.bytes, w.prevHash]);
  }

  getIdentity(): ChainIdentity | undefined {
    const c = this.getMeta<[string, Buffer | null]>('chain');
    return c ? { chainId: c[0], genesisHash: c[1] ? Buffer.from(c[1]) : null } : undefined;
  }

  // ---- DAOs

  getDao(key: Uint8Array): DaoEntry | undefined {
    const hex = (key as Buffer).toString('hex');
    const hit = this.daoCache.get(hex);
    if (hit !== undefined) return hit ?? undefined;
    const b = this.dao.getBinaryFast(key as Buffer);
    const e = b ? decodeDaoEntry(b) : undefined;
    this.cacheDao(hex, e ?? null);
    return e;
  }
  putDao(key: Uint8Array, e: DaoEntry): void {
    this.dao.putSync(key as Buffer, encodeDaoEntry(e));
    this.cacheDao((key as Buffer).toString('hex'), e);
  }
  removeDao(key: Uint8Array): void {
    this.dao.removeSync(key as Buffer);
    this.cacheDao((key as Buffer).toString('hex'), null);
  }

  private clearCaches(): void {
    this.daoCache.clear();
    this.keyCache.clear();
  }

  private cacheDao(hex: string, e: DaoEntry | null): void {
    this.daoCache.delete(hex);
    this.daoCache.set(hex, e);
    if (this.daoCache.size > DAO_CACHE_ENTRIES) this.daoCache.delete(this.daoCache.keys().next().value!);
  }

  // ---- tree

  addChild(parent: Uint8Array, collection: number, child: Uint8Array): void {
    this.children.putSync(childKey(parent, collection, child), EMPTY);
  }
  removeChild(parent: Uint8Array, collection: number, child: Uint8Array): void {
    this.children.removeSync(childKey(parent, collection, child));
  }
  /** Child keys of (parent, collection), in key order. */
  *childKeys(parent: Uint8Array, collection: number): Generator<Buffer> {
    const start = collectionPrefix(parent, collection);
    const end = prefixEnd(start);
    for (const k of this.children.getKeys({ start, end })) {
      yield Buffer.from((k as Buffer).subarray(start.length));
    }
  }
  hasChildren(parent: Uint8Array, collection: number): boolean {
    const start = collectionPrefix(parent, collection);
    for (const _ of this.children.getKeys({ start, end: prefixEnd(start), limit: 1 })) return true;
    return false;
  }

  // ---- records

  getRecord(seq: number): RecordEntry | undefined {
    const b = this.records.getBinaryFast(seqKey(seq));
    return b ? decodeRecordEntry(b) : undefined;
  }
  putRecord(seq: number, r: RecordEntry): void {
    this.records.putSync(seqKey(seq), encodeRecordEntry(r));
  }
  removeRecord(seq: number): void {
    this.records.removeSync(seqKey(seq));
  }
  /** Payload bytes of every DAO's current version (tombstones count 0): one pass over the entries. */
  sumLivePayload(): number {
    let n = 0;
    for (const { value } of this.dao.getRange({})) {
      const e = decodeDaoEntry(value as Buffer);
      if (!e.node.deleted && e.payloadLen > 0) n += e.payloadLen;
    }
    return n;
  }

  *allRecords(): Generator<[number, RecordEntry]> {
    for (const { key, value } of this.records.getRange({})) {
      yield [seqFromKey(key as Buffer), decodeRecordEntry(value as Buffer)];
    }
  }

  // ---- confidentiality

  /** The entry is shared with the cache: callers never change it (putDataKey a new one instead). */
  getDataKey(id: string): DataKeyEntry | undefined {
    const hit = this.keyCache.get(id);
    if (hit !== undefined) return hit ?? undefined;
    const b = this.keys.getBinary(Buffer.from(id, 'hex'));
    let e: DataKeyEntry | null = null;
    if (b) {
      const a = packr.unpack(b) as [string | null, Array<[number, string, Buffer]>, number[]];
      e = {
        record: {
          id,
          owner: a[0],
          wraps: a[1].map(([k, rid, sealed]) => ({ reader: { kind: k === 1 ? 'sym' : 'kem', id: rid }, sealed: Buffer.from(sealed) })),
        },
        seqs: a[2],
      };
    }
    this.cacheKey(id, e);
    return e ?? undefined;
  }
  putDataKey(e: DataKeyEntry): void {
    const r = e.record;
    this.keys.putSync(
      Buffer.from(r.id, 'hex'),
      packr.pack([r.owner, r.wraps.map((w) => [w.reader.kind === 'sym' ? 1 : 2, w.reader.id, w.sealed]), e.seqs]),
    );
    this.cacheKey(r.id, e);
  }
  private cacheKey(id: string, e: DataKeyEntry | null): void {
    this.keyCache.delete(id);
    this.keyCache.set(id, e);
    if (this.keyCache.size > KEY_CACHE_ENTRIES) this.keyCache.delete(this.keyCache.keys().next().value!);
  }
  *allDataKeys(): Generator<DataKeyEntry> {
    for (const { key } of this.keys.getRange({})) yield this.getDataKey((key as Buffer).toString('hex'))!;
  }

  getPublished(id: string): { publicKey: Buffer; seq: number } | undefined {
    const b = this.published.getBinary(Buffer.from(id, 'hex'));
    if (!b) return undefined;
    const [pk, seq] = packr.unpack(b) as [Buffer, number];
    return { publicKey: Buffer.from(pk), seq };
  }
  putPublished(id: string, publicKey: Buffer, seq: number): void {
    this.published.putSync(Buffer.from(id, 'hex'), packr.pack([publicKey, seq]));
  }
  *allPublished(): Generator<{ id: string; seq: number }> {
    for (const { key, value } of this.published.getRange({})) {
      const [, seq] = packr.unpack(value as Buffer) as [Buffer, number];
      yield { id: (key as Buffer).toString('hex'), seq };
    }
  }

  // ---- anti-replay

  seenSeq(commitHash: Uint8Array): number | undefined {
    const b = this.seen.getBinaryFast(commitHash as Buffer);
    return b ? seqFromKey(b) : undefined;
  }
  putSeen(commitHash: Uint8Array, seq: number): void {
    this.seen.putSync(commitHash as Buffer, seqKey(seq));
  }

  // ---- whole-index operations

  transaction<T>(fn: () => T): T {
    if (this.injectFaults > 0) {
      this.injectFaults--;
      throw new Error('MDB_BAD_TXN: Transaction must abort, has a child, or is invalid: reserved freelist had a data entry with zero-size, last id 1 (injected)');
    }
    try {
      return this.env.transactionSync(fn);
    } catch (e) {
      this.clearCaches(); // rolled back: what it cached may never have been committed
      throw e;
    }
  }

  /** Empties every derived table (leases survive: they are not derived from the log). */
  clearDerived(): void {
    this.clearCaches();
    this.env.transactionSync(() => {
      this.meta.clearSync();
      this.dao.clearSync();
      this.children.clearSync();
      this.keys.clearSync();
      this.published.clearSync();
      this.records.clearSync();
      this.seen.clearSync();
    });
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}
