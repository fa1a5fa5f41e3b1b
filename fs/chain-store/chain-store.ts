import { orderNamespace } from './namespace-order.js';
import { performance } from 'node:perf_hooks';
import type { Ino } from '../core/api.js';
import { S_IFDIR, S_IFMT } from '../core/constants.js';
import type { BlockSource, DentryRecord, Durability, FsBatch, FsStore, InodeRecord, StoreStats } from '../core/store.js';
import { NotFound, type Dio, type View } from '../../src/view/index.js';
import { INHERIT_READ, INHERIT_WRITE, admits, effectiveAdmin, effectiveWrite, type KeyId, type ParentLink, type ReadAcl, type ReaderRef, type WriteAcl } from '../../src/chain/index.js';
import { BLOCKS, DENTRIES, SUPERBLOCK_KEY, blockIndexOf, blockKey, deltaKey, inodeKey, recentDeltaKey } from './keys.js';
import { blockDeleteOp, blockHasDelta, blockOf, blockWriteOp, readBlockLevels } from './block-delta.js';
import { CommittedBlocks } from './committed-blocks.js';
import {
  decodeDentry, decodeInode, decodeSuperblock, encodeDentry, encodeInode, encodeSuperblock, type FsFeature,
} from './codec.js';
import { emptyTimings, type CommitTimings } from './commit-timings.js';

export interface ChainStoreOptions {
  readOnly?: boolean;
  /** Kernel cache timeout in seconds (long for a local chain: nobody else writes it). */
  cacheTimeout?: number;
  /** Free space for statfs (the log's file system); default: unknown = a large number. */
  bytesFree?: () => number;
  /**
   * The owner's keys. With them, mode bits choose keys: a file no group or other may read is
   * sealed under a data key wrapped for the owner only (the chain's other readers get EACCES), and
   * one no group or other may write accepts only the owner's signature. Without them every inode
   * inherits the chain-wide keys.
   */
  owner?: { readers: ReaderRef[]; signingKey: KeyId };
  /**
   * A group chain's keys (with `owner`): group-readable content (mode & 0o044) is sealed for
   * `readers` (the group's observer role: every member), group-writable content (mode & 0o022)
   * admits `writers` (contributor, delegate and owner role keys); the rest is the owner's only.
   * With `managers` (delegate and owner role keys), every new inode gets an admin ACL of its
   * owner's key and the managers': only they may change its mode or owner, or its keys (a
   * contributor writes a 0660 file's content, never who else may read or write it).
   */
  group?: { readers: ReaderRef[]; writers: KeyId[]; managers?: KeyId[] };
  /** Where inode and inode-counter DAOs hang (a group chain's group root); default: root level. */
  top?: ParentLink | null;
  /** Largest commit (estimated bytes) a batch is cut into. */
  commitBudget?: number;
  /** Where commit timings are summed (shared with a timed signing pool, see commit-timings.ts). */
  timings?: CommitTimings;
  /**
   * Where inode numbers come from (remote mounts, see ino-space.ts): this machine's own counter
   * DAO and the first number of its range, so that machines sharing a chain never hand out the
   * same number. Default: the chain's one superblock, numbers from 2.
   */
  inoSpace?: { key: string; first: Ino };
  /**
   * Page deltas (block-delta.ts): a committed block rewritten in a few 4 KiB pages is written as
   * those pages. Default false here (openLocalChain chooses for local mounts); reads understand
   * deltas either way. The first batch that may write one marks the chain (the superblock's
   * 'pageDeltas' feature, codec.ts), in the commit before any delta.
   */
  pageDeltas?: boolean;
}

/** Whether two read ACLs seal for the same readers (same mode; 'readers': the same set). */
function sameReaders(a: ReadAcl, b: ReadAcl): boolean {
  if (a.mode !== b.mode) return false;
  if (a.mode !== 'readers' || b.mode !== 'readers') return true;
  const ids = (r: ReaderRef[]) => r.map((x) => `${x.kind}:${x.id}`).sort().join(',');
  return ids(a.readers) === ids(b.readers);
}

/** One record of a batch, applied to a DIO; `bytes` is its payload size, for the commit budget. */
/** `events`: how many events run() adds (default 1); the ops of one group never straddle two commits. */
interface Op { bytes: number; events?: number; run: (dio: Dio) => void; committed?: () => void }

/**
 * Deletes `key` unless it never reached the chain (created and deleted between two commits).
 * One existence lookup (dio.delete's own), not two: dio.exists() first doubled the index reads
 * of every deletion, which are most of an rm -rf's commit.
 */
function deleteIfPresent(dio: Dio, key: string): void {
  try {
    dio.delete(key);
  } catch (e) {
    if (!(e instanceof NotFound)) throw e;
  }
}

/**
 * Deletes the entry `name` of directory `parent` unless it is not in the chain. A parent that is
 * not in the chain (nor stored earlier in this transaction) has no entries at all: the directory
 * was created and removed between two commits, or its creating batch never committed. Its name
 * key cannot even be derived (it comes from the parent's DAO), so the tombstone is skipped, not
 * attempted: trying failed the whole batch with "parent of a named entry", for ever.
 */
function deleteEntryIfPresent(dio: Dio, parent: string, name: Buffer): void {
  let key: string;
  try {
    key = dio.nameKey(parent, DENTRIES, name);
  } catch (e) {
    if (e instanceof NotFound && e.key === parent) return;
    throw e;
  }
  deleteIfPresent(dio, key);
}

/** Metadata, hash and AEAD overhead of one event in a commit (an upper estimate). */
const EVENT_OVERHEAD = 512;
/** Events per commit, inside the chain's limit (DEFAULT_LIMITS.maxEvents, 8192). */
const MAX_EVENTS_PER_COMMIT = 4096;
/** Default commit budget: well inside the log's maximum record (see openLocalChain). */
export const DEFAULT_COMMIT_BUDGET = 24 << 20;

/**
 * The filesystem's records as DAOs of a chain, through the view:
 *  - inode DAO (root-level, type 'inode'): the InodeRecord, inline data included;
 *  - dentry DAO (child of its directory's inode DAO in collection DENTRIES, keyed by the HMAC of
 *    its name under the directory's key, type 'dentry'): [name, ino];
 *  - block DAO (child of the file's inode DAO in collection BLOCKS, type 'block'): plaintext block.
 * Each core batch becomes one DIO commit — one signature however many files it touches — or a
 * few, in order, when it is over the commit budget (see apply).
 * Commits are serialized: the view checks versions optimistically, and two batches of one
 * filesystem must never race each other.
 */
export class ChainStore implements FsStore {
  readonly readOnly: boolean;
  readonly cacheTimeout: number;
  private nextIno: Ino;
  private persistedNextIno: Ino;
  private readonly superKey: string;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly bytesFree: () => number;
  private readonly privateRead: ReadAcl | null;
  private readonly privateWrite: WriteAcl | null;
  private groupRead: ReadAcl | null;
  private groupWrite: WriteAcl | null;
  /** Admin ACL of the inodes this mount creates in a group chain (ChainStoreOptions.group.managers). */
  private groupAdmin: WriteAcl | null;
  /** Parent of inode and counter DAOs (see ChainStoreOptions.top). */
  top: ParentLink | null;
  private readonly commitBudget: number;
  private readonly pageDeltas: boolean;
  /** Blocks' levels as this store last committed them: a rewrite or a read needs no decryption. */
  readonly committedBlocks = new CommittedBlocks();
  /** Features of this store's superblock (codec.ts FS_FEATURES), kept whenever it is written again. */
  private features: Set<FsFeature>;
  onRemoteChange?: (batch: FsBatch) => Ino[] | void;
  /** Group chains only (FsStore.mayChange): the members' keys differ; elsewhere every key is the owner's. */
  mayChange?: (ino: Ino) => boolean;
  /** Group chains only (FsStore.mayChangeAcl): whether this mount's keys meet the inode's admin ACL. */
  mayChangeAcl?: (ino: Ino) => boolean;
  private signerIds: Set<KeyId> | null = null;
  /** The space bound's brake on writers (FsStore.writeBrake; CompactionScheduler.pace), when set. */
  writeBrake?: (bytes: number) => Promise<void> | null;
  /** Commit counts and times (the mount's stats file). */
  readonly timings: CommitTimings;

  constructor(public view: View, opts: ChainStoreOptions = {}) {
    this.timings = opts.timings ?? emptyTimings();
    this.readOnly = !!opts.readOnly || view.readOnly;
    this.cacheTimeout = opts.cacheTimeout ?? 60;
    this.bytesFree = opts.bytesFree ?? (() => 2 ** 40);
    this.commitBudget = opts.commitBudget ?? DEFAULT_COMMIT_BUDGET;
    // Off unless asked for: openLocalChain turns them on for local mounts; remote mounts keep whole blocks.
    this.pageDeltas = opts.pageDeltas ?? false;
    this.privateRead = opts.owner ? { mode: 'readers', readers: opts.owner.readers } : null;
    this.privateWrite = opts.owner ? { mode: 'any', keys: [opts.owner.signingKey] } : null;
    this.groupRead = opts.group ? { mode: 'readers', readers: opts.group.readers } : null;
    this.groupWrite = opts.group ? { mode: 'any', keys: opts.group.writers } : null;
    this.groupAdmin = opts.group?.managers?.length && opts.owner
      ? { mode: 'any', keys: [...new Set([opts.owner.signingKey, ...opts.group.managers])] } : null;
    this.top = opts.top ?? null;
    if (opts.group) {
      this.mayChange = (ino) => this.keysAdmit(ino, effectiveWrite);
      this.mayChangeAcl = (ino) => this.keysAdmit(ino, effectiveAdmin);
    }
    this.superKey = opts.inoSpace?.key ?? SUPERBLOCK_KEY;
    const sb = view.tryGet(this.superKey);
    // Refuses (FsFeatureUnknown) a chain whose content needs a feature this version does not know.
    const decoded = sb?.data ? decodeSuperblock(sb.data) : null;
    if (this.superKey !== SUPERBLOCK_KEY) {
      const shared = view.tryGet(SUPERBLOCK_KEY)?.data;
      if (shared) decodeSuperblock(shared);
    }
    this.features = new Set(decoded?.features ?? []);
    this.nextIno = decoded ? decoded.nextIno : opts.inoSpace?.first ?? 2;
    this.persistedNextIno = this.nextIno;
  }

  /** Features the chain is marked with (codec.ts FS_FEATURES). */
  chainFeatures(): FsFeature[] {
    return [...this.features].sort();
  }

  /**
   * Serves another view of the same chain from now on (a replica rebuilt after its server
   * refused a staged commit, see remote-store.ts); runs between two commits. The inode counter
   * stays (numbers handed out are never reused); it is written again if the view lost it.
   */
  replaceView(view: View): void {
    this.view = view;
    this.committedBlocks.clear();
    const sb = view.tryGet(this.superKey);
    const decoded = sb?.data ? decodeSuperblock(sb.data) : null;
    this.persistedNextIno = decoded ? decoded.nextIno : 0;
    this.features = new Set(decoded?.features ?? []);
  }

  getInode(ino: Ino): InodeRecord | undefined {
    const r = this.view.tryGet(inodeKey(ino));
    return r?.data ? decodeInode(r.data) : undefined;
  }

  lookupDentry(parent: Ino, name: Buffer): Ino | undefined {
    const pk = inodeKey(parent);
    if (!this.view.exists(pk)) return undefined;
    const r = this.view.tryGet(this.view.nameKey(pk, DENTRIES, name));
    return r?.data ? decodeDentry(r.data).ino : undefined;
  }

  listDentries(parent: Ino): DentryRecord[] {
    const out: DentryRecord[] = [];
    for (const k of this.view.children(inodeKey(parent), DENTRIES)) {
      const r = this.view.tryGet(k);
      if (!r?.data) continue;
      const d = decodeDentry(r.data);
      out.push({ parent, name: d.name, ino: d.ino });
    }
    return out;
  }

  /** The block with its page deltas applied (block-delta.ts). */
  getBlock(ino: Ino, index: number): Buffer | undefined {
    const keys = [blockKey(ino, index), deltaKey(ino, index), recentDeltaKey(ino, index)] as const;
    const known = this.committedBlocks.get(this.view, keys);
    if (known) return blockOf(known);
    // Kept: a block read to be rewritten (a database's page) is committed next, and its commit
    // needs these levels again.
    const levels = readBlockLevels(this.view, ino, index);
    if (levels) this.committedBlocks.set(this.view, keys, levels);
    return levels ? blockOf(levels) : undefined;
  }

  private hasDelta(ino: Ino, index: number): boolean {
    return blockHasDelta(this.view, ino, index);
  }

  /** Blocks with a delta are left to getBlock (undefined here). */
  async fetchBlocks(ino: Ino, indexes: readonly number[]): Promise<Array<Buffer | undefined>> {
    const plain = indexes.filter((i) => !this.hasDelta(ino, i));
    const got = await this.view.prefetch(plain.map((i) => blockKey(ino, i)));
    return indexes.map((i) => got.get(blockKey(ino, i))?.data ?? undefined);
  }

  /** Blocks with a delta are left to getBlock (null here): the sealed base alone is not the block. */
  blockSources(ino: Ino, indexes: readonly number[]): Array<BlockSource | null> {
    const src = this.view.bulkSources(indexes.map((i) => blockKey(ino, i))) as Array<BlockSource | null>;
    return src.map((s, k) => (s !== null && this.hasDelta(ino, indexes[k]!) ? null : s));
  }

  blockIndexes(ino: Ino): number[] {
    return this.view.children(inodeKey(ino), BLOCKS).map(blockIndexOf).sort((a, b) => a - b);
  }

  allocIno(): Ino {
    return this.nextIno++;
  }

  async commit(batch: FsBatch, durability: Durability): Promise<void> {
    return this.serialize(() => this.apply(batch, durability));
  }

  /** Runs `fn` between two batches' commits (the log cleaner's relocations; see log-cleaner.ts). */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One batch is one commit while it fits the commit budget. A larger one (a burst of writes
   * between two commits) becomes several commits in dependency order — inodes, then the
   * namespace (namespace-order.ts: a rename in one commit, parents' names first), then content, then deletions — so every
   * commit validates on its own; a crash between them can leave unsynced content as holes or an
   * unreachable inode, never a broken tree. fsync waits for all of them.
   */
  protected async apply(batch: FsBatch, durability: Durability): Promise<void> {
    const nextIno = this.nextIno;
    const ops: Op[] = [];
    // A batch that may write the chain's first page delta marks the chain first: the superblock
    // is the first op, so it is in the first commit of the batch, before any delta.
    const markDeltas = this.pageDeltas && !this.features.has('pageDeltas') && batch.blocks.some((b) => b.data !== null);
    if (nextIno !== this.persistedNextIno || markDeltas) {
      const features = markDeltas ? [...this.features, 'pageDeltas' as const] : [...this.features];
      const sb = encodeSuperblock({ nextIno, features });
      const superKey = this.superKey;
      const top = this.top;
      ops.push({ bytes: sb.length, run: (dio) => { dio.store(sb, { key: superKey, parent: top, type: 'superblock' }); } });
    }
    const rewritten = new Set(batch.blocks.map((b) => blockKey(b.ino, b.index)));
    /** Inodes re-sealed under new keys: their blocks in this batch are written whole too (no delta over an old-key base). */
    const rekeyed = new Set<Ino>();
    for (const r of batch.inodes) {
      const key = inodeKey(r.ino);
      let { read, write } = this.aclFor(r.mode);
      const before = this.view.node(key);
      const live = before && !before.deleted ? before : undefined;
      // A new inode of a group chain gets its admin ACL (its owner and the managers). An existing
      // one whose admin ACL this mount's keys do not meet keeps its keys as they are: a member
      // rewriting another's 0660 file after a key rotation writes content, not new readers (an
      // explicit chmod or chown was refused before it got here: FsStore.mayChangeAcl).
      const admin = this.groupAdmin && !live ? this.groupAdmin : undefined;
      if (live && this.mayChangeAcl && !this.mayChangeAcl(r.ino)) ({ read, write } = live);
      const enc = encodeInode(r);
      const top = this.top;
      ops.push({ bytes: enc.length, run: (dio) => { dio.store(enc, { key, parent: top, type: 'inode', read, write, ...(admin ? { admin } : {}), take: true }); } });
      // The readers changed class: re-seal the content under the new key, so a file made
      // private is closed to the chain's other readers and one made public is open to them.
      // They follow the inode at once, so a batch cut into several commits keeps them together
      // as far as the budget allows.
      if (before && !before.deleted && !sameReaders(before.read, read)) {
        rekeyed.add(r.ino);
        for (const index of this.blockIndexes(r.ino)) {
          if (rewritten.has(blockKey(r.ino, index))) continue;
          const data = this.getBlock(r.ino, index);
          if (data) ops.push(blockWriteOp(r.ino, index, data, 'whole', this.committedBlocks));
        }
      }
    }
    // Names in an order a crash between two commits of the batch can stop at (namespace-order.ts):
    // a rename's two entries in one commit, a directory's name before the names inside it.
    const parents = new Map(batch.inodes.map((r) => [r.ino, r.parent]));
    const parentOf = (dir: Ino) => (parents.has(dir) ? parents.get(dir) : this.getInode(dir)?.parent);
    for (const g of orderNamespace(batch.dentries, (parent, name) => this.lookupDentry(parent, name), parentOf)) {
      const stores = g.adds.map((d) => ({ parent: inodeKey(d.parent), name: d.name, enc: encodeDentry(d.name, d.ino!) }));
      const removes = g.removes.map((d) => ({ parent: inodeKey(d.parent), name: d.name }));
      const bytes = stores.reduce((n, a) => n + a.enc.length, 0) + removes.reduce((n, r) => n + r.name.length, 0);
      ops.push({ bytes, events: stores.length + removes.length, run: (dio) => {
        for (const a of stores) dio.store(a.enc, { key: dio.nameKey(a.parent, DENTRIES, a.name), parent: { key: a.parent, collection: DENTRIES }, type: 'dentry', take: true });
        for (const r of removes) deleteEntryIfPresent(dio, r.parent, r.name);
      } });
    }
    const mode = this.pageDeltas ? 'auto' : 'whole';
    for (const b of batch.blocks) if (b.data !== null) ops.push(blockWriteOp(b.ino, b.index, b.data, rekeyed.has(b.ino) ? 'whole' : mode, this.committedBlocks));
    for (const b of batch.blocks) if (b.data === null) ops.push(blockDeleteOp(b.ino, b.index));
    for (const ino of batch.deletedInodes) {
      const key = inodeKey(ino);
      ops.push({ bytes: 0, run: (dio) => { deleteIfPresent(dio, key); } });
    }

    // Nothing to commit, but the caller (fsync after a timer commit) needs earlier 'local' commits
    // on disk: an empty durable batch is a durable flush of the log.
    if (ops.length === 0) {
      if (durability === 'durable') await this.view.log.flush('durable');
      return;
    }
    const t = this.timings;
    let i = 0;
    while (i < ops.length) {
      const t0 = performance.now();
      const dio = this.view.begin(durability);
      const first = i;
      let used = 0;
      try {
        // At least one op per commit; each op costs its payload plus the event's metadata.
        let events = 0;
        const cost = (op: Op) => op.bytes + EVENT_OVERHEAD * (op.events ?? 1);
        do { used += cost(ops[i]!); events += ops[i]!.events ?? 1; ops[i]!.run(dio); i++; }
        while (i < ops.length && events + (ops[i]!.events ?? 1) <= MAX_EVENTS_PER_COMMIT && used + cost(ops[i]!) <= this.commitBudget);
      } catch (e) {
        dio.cancel();
        throw e;
      }
      const t1 = performance.now();
      t.buildMs += t1 - t0;
      t.events += dio.size;
      try {
        // Intermediate commits need only reach the OS: the last one's fdatasync covers them all.
        await dio.commit(i < ops.length && durability === 'durable' ? 'local' : durability);
      } finally {
        t.commitMs += performance.now() - t1;
      }
      for (let k = first; k < i; k++) ops[k]!.committed?.();
      t.commits++;
      if (nextIno > this.persistedNextIno) this.persistedNextIno = nextIno;
      if (markDeltas) this.features.add('pageDeltas');
    }
  }


  /**
   * Keys by mode bits (see ChainStoreOptions.owner). Directories always inherit: their entries'
   * name keys derive from the directory's first data key, so re-keying one would orphan them;
   * a directory listing is readable by every chain reader, the files in it need not be.
   */
  private aclFor(mode: number): { read: ReadAcl; write: WriteAcl } {
    if ((mode & S_IFMT) === S_IFDIR || !this.privateRead || !this.privateWrite) return { read: INHERIT_READ, write: INHERIT_WRITE };
    return {
      read: (mode & 0o044) === 0 ? this.privateRead : this.groupRead ?? INHERIT_READ,
      write: (mode & 0o022) === 0 ? this.privateWrite : this.groupWrite ?? INHERIT_WRITE,
    };
  }

  /**
   * A group chain's new keys (a running mount saw a member removed and gathered the new role
   * generations): what is written from now on is sealed for and signed by them; a file rewritten
   * later is re-sealed (its readers changed). The keyring may have grown: the write check re-reads it.
   */
  setGroupKeys(group: { readers: ReaderRef[]; writers: KeyId[]; managers?: KeyId[] }): void {
    if (!this.groupRead) throw new Error('not a group chain store');
    this.groupRead = { mode: 'readers', readers: group.readers };
    this.groupWrite = { mode: 'any', keys: group.writers };
    if (this.groupAdmin && group.managers?.length) {
      const own = this.privateWrite!.mode === 'any' ? this.privateWrite!.keys : [];
      this.groupAdmin = { mode: 'any', keys: [...new Set([...own, ...group.managers])] };
    }
    this.signerIds = null;
  }

  /** Whether a signing key of this view's keyring meets the write (or admin) ACL of inode `ino` as stored. */
  private keysAdmit(ino: Ino, acl: typeof effectiveWrite): boolean {
    const key = inodeKey(ino);
    const node = this.view.node(key);
    if (!node || node.deleted) return true;
    this.signerIds ??= new Set(this.view.keyring.signingKeys().map((k) => k.id));
    try {
      return admits(acl(this.view.state, key), this.signerIds);
    } catch {
      return true; // a broken tree is for the commit to report, not for this check
    }
  }

  stats(): StoreStats {
    const s = this.view.stats();
    return { bytesUsed: s.liveBytes, bytesFree: this.bytesFree(), inodes: s.daoCount, logBytes: s.logBytes };
  }

  async close(): Promise<void> {
    await this.queue;
  }
}

