import type { Ino } from '../core/api.js';
import type { DentryRecord, Durability, FsBatch, FsStore, InodeRecord, StoreStats } from '../core/store.js';
import type { View } from '../../src/view/index.js';
import { INHERIT_READ, INHERIT_WRITE, type KeyId, type ReadAcl, type ReaderRef, type WriteAcl } from '../../src/chain/index.js';
import { BLOCKS, DENTRIES, SUPERBLOCK_KEY, blockIndexOf, blockKey, inodeKey } from './keys.js';
import {
  decodeDentry, decodeInode, decodeSuperblock, encodeDentry, encodeInode, encodeSuperblock,
} from './codec.js';

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
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/**
 * The filesystem's records as DAOs of a chain, through the view:
 *  - inode DAO (root-level, type 'inode'): the InodeRecord, inline data included;
 *  - dentry DAO (child of its directory's inode DAO in collection DENTRIES, keyed by the HMAC of
 *    its name under the directory's key, type 'dentry'): [name, ino];
 *  - block DAO (child of the file's inode DAO in collection BLOCKS, type 'block'): plaintext block.
 * Each core batch becomes ONE DIO commit: one signature however many files it touches.
 * Commits are serialized: the view checks versions optimistically, and two batches of one
 * filesystem must never race each other.
 */
export class ChainStore implements FsStore {
  readonly readOnly: boolean;
  readonly cacheTimeout: number;
  private nextIno: Ino;
  private persistedNextIno: Ino;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly bytesFree: () => number;
  private readonly privateRead: ReadAcl | null;
  private readonly privateWrite: WriteAcl | null;
  onRemoteChange?: (batch: FsBatch) => void;

  constructor(readonly view: View, opts: ChainStoreOptions = {}) {
    this.readOnly = !!opts.readOnly || view.readOnly;
    this.cacheTimeout = opts.cacheTimeout ?? 60;
    this.bytesFree = opts.bytesFree ?? (() => 2 ** 40);
    this.privateRead = opts.owner ? { mode: 'readers', readers: opts.owner.readers } : null;
    this.privateWrite = opts.owner ? { mode: 'any', keys: [opts.owner.signingKey] } : null;
    const sb = view.tryGet(SUPERBLOCK_KEY);
    this.nextIno = sb?.data ? decodeSuperblock(sb.data).nextIno : 2;
    this.persistedNextIno = this.nextIno;
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

  getBlock(ino: Ino, index: number): Buffer | undefined {
    return this.view.tryGet(blockKey(ino, index))?.data ?? undefined;
  }

  blockIndexes(ino: Ino): number[] {
    return this.view.children(inodeKey(ino), BLOCKS).map(blockIndexOf).sort((a, b) => a - b);
  }

  allocIno(): Ino {
    return this.nextIno++;
  }

  commit(batch: FsBatch, durability: Durability): Promise<void> {
    const run = this.queue.then(() => this.apply(batch, durability));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(batch: FsBatch, durability: Durability): Promise<void> {
    const dio = this.view.begin(durability);
    const nextIno = this.nextIno;
    try {
      if (nextIno !== this.persistedNextIno) {
        dio.store(encodeSuperblock({ nextIno }), { key: SUPERBLOCK_KEY, parent: null, type: 'superblock' });
      }
      // Creations first (parents before children), deletions last (children before parents).
      const rewritten = new Set(batch.blocks.map((b) => blockKey(b.ino, b.index)));
      for (const r of batch.inodes) {
        const key = inodeKey(r.ino);
        const { read, write } = this.aclFor(r.mode);
        const before = this.view.node(key);
        dio.store(encodeInode(r), { key, parent: null, type: 'inode', read, write });
        // The readers changed class: re-seal the content under the new key, so a file made
        // private is closed to the chain's other readers and one made public is open to them.
        if (before && !before.deleted && before.read.mode !== read.mode) {
          for (const i of this.blockIndexes(r.ino)) {
            const bk = blockKey(r.ino, i);
            if (rewritten.has(bk)) continue;
            const data = this.getBlock(r.ino, i);
            if (data) dio.store(data, { key: bk, parent: { key, collection: BLOCKS }, type: 'block' });
          }
        }
      }
      const deadDentries: string[] = [];
      for (const d of batch.dentries) {
        const key = dio.nameKey(inodeKey(d.parent), DENTRIES, d.name);
        if (d.ino === null) deadDentries.push(key);
        else dio.store(encodeDentry(d.name, d.ino), { key, parent: { key: inodeKey(d.parent), collection: DENTRIES }, type: 'dentry' });
      }
      const deadBlocks: string[] = [];
      for (const b of batch.blocks) {
        const key = blockKey(b.ino, b.index);
        if (b.data === null) deadBlocks.push(key);
        else dio.store(b.data, { key, parent: { key: inodeKey(b.ino), collection: BLOCKS }, type: 'block' });
      }
      // A record created and deleted between two commits never reached the chain: nothing to delete.
      for (const k of deadBlocks) if (dio.exists(k)) dio.delete(k);
      for (const k of deadDentries) if (dio.exists(k)) dio.delete(k);
      for (const ino of batch.deletedInodes) {
        const k = inodeKey(ino);
        if (dio.exists(k)) dio.delete(k);
      }
    } catch (e) {
      dio.cancel();
      throw e;
    }
    await dio.commit();
    if (nextIno > this.persistedNextIno) this.persistedNextIno = nextIno;
  }

  /**
   * Keys by mode bits (see ChainStoreOptions.owner). Directories always inherit: their entries'
   * name keys derive from the directory's first data key, so re-keying one would orphan them;
   * a directory listing is readable by every chain reader, the files in it need not be.
   */
  private aclFor(mode: number): { read: ReadAcl; write: WriteAcl } {
    if ((mode & S_IFMT) === S_IFDIR || !this.privateRead || !this.privateWrite) return { read: INHERIT_READ, write: INHERIT_WRITE };
    return {
      read: (mode & 0o044) === 0 ? this.privateRead : INHERIT_READ,
      write: (mode & 0o022) === 0 ? this.privateWrite : INHERIT_WRITE,
    };
  }

  stats(): StoreStats {
    const s = this.view.stats();
    return { bytesUsed: s.logBytes, bytesFree: this.bytesFree(), inodes: s.daoCount };
  }

  async close(): Promise<void> {
    await this.queue;
  }
}

