import type { Ino } from './api.js';
import type { DentryRecord, Durability, FsBatch, FsStore, InodeRecord, StoreStats } from './store.js';
import { nameKey } from './dir-index.js';

/** A batch that stores a record under an inode the store does not hold (see FsBatch). */
export class InvalidBatch extends Error {
  override name = 'InvalidBatch';
}

export interface MemoryStoreOptions {
  readOnly?: boolean;
  cacheTimeout?: number;
  /** Capacity reported by stats() (statfs / df). Default 1 TiB. */
  capacityBytes?: number;
}

/**
 * An FsStore in plain maps: the tests' store, `--temp` mounts and the benchmark's in-memory floor.
 * A batch is applied synchronously inside commit(), so it is atomic with respect to every reader;
 * durability is ignored. Records and buffers handed in are kept by reference: the core never
 * mutates a buffer once it has passed it to the store.
 */
export class MemoryStore implements FsStore {
  readonly readOnly: boolean;
  readonly cacheTimeout: number;
  private readonly capacity: number;
  private readonly inodes = new Map<Ino, InodeRecord>();
  /** parent -> (name key -> record), insertion-ordered. */
  private readonly dirs = new Map<Ino, Map<string, DentryRecord>>();
  /** ino -> (index -> data). */
  private readonly blocks = new Map<Ino, Map<number, Buffer>>();
  private nextIno = 2;
  private bytes = 0;
  private closed = false;
  onRemoteChange?: (batch: FsBatch) => Ino[] | void;

  constructor(opts: MemoryStoreOptions = {}) {
    this.readOnly = !!opts.readOnly;
    this.cacheTimeout = opts.cacheTimeout ?? 1;
    this.capacity = opts.capacityBytes ?? 2 ** 40;
  }

  getInode(ino: Ino): InodeRecord | undefined { return this.inodes.get(ino); }

  lookupDentry(parent: Ino, name: Buffer): Ino | undefined {
    return this.dirs.get(parent)?.get(nameKey(name))?.ino;
  }

  listDentries(parent: Ino): DentryRecord[] {
    const d = this.dirs.get(parent);
    return d ? [...d.values()] : [];
  }

  getBlock(ino: Ino, index: number): Buffer | undefined { return this.blocks.get(ino)?.get(index); }

  blockIndexes(ino: Ino): number[] {
    const b = this.blocks.get(ino);
    return b ? [...b.keys()].sort((x, y) => x - y) : [];
  }

  allocIno(): Ino {
    while (this.inodes.has(this.nextIno)) this.nextIno++;
    return this.nextIno++;
  }

  commit(batch: FsBatch, _durability: Durability): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store closed'));
    if (this.readOnly && (batch.inodes.length || batch.deletedInodes.length || batch.dentries.length || batch.blocks.length)) {
      return Promise.reject(Object.assign(new Error('read-only store'), { name: 'ReadOnly' }));
    }
    // Invalid batches are rejected whole, as the chain store rejects them (see FsBatch).
    const stored = new Set(batch.inodes.map((r) => r.ino));
    const holds = (ino: Ino) => stored.has(ino) || this.inodes.has(ino);
    for (const d of batch.dentries) {
      if (d.ino !== null && !holds(d.parent)) return Promise.reject(new InvalidBatch(`entry under inode ${d.parent}, which the store does not hold`));
    }
    for (const b of batch.blocks) {
      if (b.data !== null && !holds(b.ino)) return Promise.reject(new InvalidBatch(`block ${b.index} of inode ${b.ino}, which the store does not hold`));
    }
    for (const rec of batch.inodes) {
      this.inodes.set(rec.ino, rec);
      if (rec.ino >= this.nextIno) this.nextIno = rec.ino + 1;
    }
    for (const d of batch.dentries) {
      const key = nameKey(d.name);
      let dir = this.dirs.get(d.parent);
      if (d.ino === null) {
        if (dir) { dir.delete(key); if (dir.size === 0) this.dirs.delete(d.parent); }
        continue;
      }
      if (!dir) this.dirs.set(d.parent, dir = new Map());
      // An unchanged entry keeps its place; a name bound to another inode moves to the end, as
      // the core's own index does (unlink + create, rename over).
      const old = dir.get(key);
      if (old !== undefined && old.ino !== d.ino) dir.delete(key);
      dir.set(key, { parent: d.parent, name: d.name, ino: d.ino });
    }
    for (const b of batch.blocks) {
      let m = this.blocks.get(b.ino);
      const old = m?.get(b.index);
      if (old) this.bytes -= old.length;
      if (b.data === null) {
        if (m) { m.delete(b.index); if (m.size === 0) this.blocks.delete(b.ino); }
        continue;
      }
      if (!m) this.blocks.set(b.ino, m = new Map());
      m.set(b.index, b.data);
      this.bytes += b.data.length;
    }
    for (const ino of batch.deletedInodes) {
      this.inodes.delete(ino);
      this.dirs.delete(ino);
      const m = this.blocks.get(ino);
      if (m) { for (const d of m.values()) this.bytes -= d.length; this.blocks.delete(ino); }
    }
    return Promise.resolve();
  }

  stats(): StoreStats {
    const used = this.bytes + this.inodes.size * 256;
    return { bytesUsed: used, bytesFree: Math.max(0, this.capacity - used), inodes: this.inodes.size };
  }

  close(): Promise<void> { this.closed = true; return Promise.resolve(); }

  /** Number of inode records (tests). */
  get inodeCount(): number { return this.inodes.size; }
  /** Number of stored blocks over all inodes (tests). */
  get blockCount(): number { let n = 0; for (const m of this.blocks.values()) n += m.size; return n; }
}
