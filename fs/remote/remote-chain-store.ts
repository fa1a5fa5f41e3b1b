// The ChainStore of a remote mount (see remote-store.ts): the core's batches, applied to the
// view and staged; a batch that lost a race with a commit from elsewhere is built again, and a
// file changed here and elsewhere at once is written beside the other version (a conflict copy).
import * as os from 'node:os';
import { Conflict } from '../../src/view/index.js';
import type { Ino } from '../core/api.js';
import type { Durability, FsBatch } from '../core/store.js';
import { ChainStore } from '../chain-store/chain-store.js';
import { type ConflictNote, conflictName, findName } from './conflicts.js';

/** Inodes whose content a batch changes (blocks, or a file's inode record). */
function contentInos(batch: FsBatch): Ino[] {
  const out = new Set<Ino>();
  for (const b of batch.blocks) out.add(b.ino);
  for (const r of batch.inodes) if ((r.mode & 0o170000) === 0o100000) out.add(r.ino);
  return [...out];
}

/** A batch whose clashing files go to conflict copies (RemoteChainStore.divertClashes). */
interface Diverted {
  batch: FsBatch;
  /** The clashing inodes it settles. */
  hit: Ino[];
  /** What the core must re-read once it is committed: the other version under the name, the copy's name. */
  refresh: FsBatch;
  notes: ConflictNote[];
}

/**
 * The ChainStore of a remote mount: commits that lost a race (a commit from elsewhere arrived
 * while the batch was being built) are built again on the new state — every record in a batch
 * is a whole new version, so re-applying it is the same change, made after the other one.
 */
export class RemoteChainStore extends ChainStore {
  settle: () => Promise<void> = async () => undefined;
  refusal: () => string | null = () => null;
  /** Name of this machine in conflict copies. */
  machine = os.hostname();
  onConflict: (n: ConflictNote) => void = () => undefined;
  /** Inodes whose content changed elsewhere while this mount held uncommitted changes of them. */
  readonly clashes = new Set<Ino>();
  /** Remote commits applied so far, and the count at the last one that changed an inode's content. */
  remoteCount = 0;
  readonly remoteContentAt = new Map<Ino, number>();

  /** Locks seen by the chain's other mounts (server leases; see RemoteFs). */
  lockLease?: { acquire(ino: Ino): Promise<boolean>; release(ino: Ino): void };

  /** Makes every earlier commit as durable as an fsync promises (staging flushed; sync mode: confirmed). */
  durableFlush: () => Promise<void> = async () => undefined;
  /** Holds back uploads until the returned release is called (RemoteChain.holdUploads). */
  holdUploads: () => () => void = () => () => undefined;

  protected override async apply(batch: FsBatch, durability: Durability): Promise<void> {
    if (durability !== 'durable') return super.apply(batch, durability);
    // An fsync waits for this: its commits are staged and made durable first, uploaded after.
    const release = this.holdUploads();
    try {
      await super.apply(batch, durability);
      await this.durableFlush();
    } finally {
      release();
    }
  }

  override async commit(batch: FsBatch, durability: Durability): Promise<void> {
    // The core took this batch from its dirty state just now: from here on it cannot see a clash
    // with what arrives from elsewhere (nothing of it is dirty any more), so this store does.
    let since = this.remoteCount;
    // readonly recovery mode, offline: changes are refused (refuseWrites), but what the core
    // holds already (an atime a read set just before the server went away) waits for the server
    // for a while instead of failing at once.
    for (const end = Date.now() + 30_000; this.refusal() !== null && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
    for (let attempt = 0; ; attempt++) {
      let diverted: Diverted | null = null;
      try {
        await this.serialize(() => {
          // Content changed elsewhere while the batch waited (the readonly wait above, a resync
          // or another apply ahead of it here): applied now, the batch would replace that change
          // without a conflict, its versions being built on top of it.
          this.markClashes(batch, since);
          since = this.remoteCount;
          diverted = this.divertClashes(batch);
          return this.apply(diverted?.batch ?? batch, durability);
        });
      } catch (e) {
        if (!(e instanceof Conflict) || attempt >= 50) throw e;
        await this.settle();
        // Content of this batch changed elsewhere meanwhile: both versions are kept (the next
        // attempt marks the clashes).
        continue;
      }
      if (diverted) this.divertedCommitted(diverted);
      return;
    }
  }

  /** Files of `batch` whose content another machine changed after remote change number `since`. */
  private markClashes(batch: FsBatch, since: number): void {
    for (const ino of contentInos(batch)) if ((this.remoteContentAt.get(ino) ?? 0) > since) this.clashes.add(ino);
  }

  /**
   * A file changed here and elsewhere at once (clashes): the version confirmed first (elsewhere)
   * keeps the name; this mount's is written as a new file beside it,
   * `name.conflict-<machine>-<UTC time>.ext`, with the bytes this mount wrote (blocks it did not
   * write read as holes when the other version replaced them). null: nothing of `batch` clashes.
   */
  private divertClashes(batch: FsBatch): Diverted | null {
    if (this.clashes.size === 0) return null;
    const hit = contentInos(batch).filter((ino) => this.clashes.has(ino));
    if (hit.length === 0) return null;
    const out: FsBatch = { inodes: [...batch.inodes], deletedInodes: [...batch.deletedInodes], dentries: [...batch.dentries], blocks: [...batch.blocks] };
    const refresh: FsBatch = { inodes: [], deletedInodes: [], dentries: [], blocks: [] };
    const notes: ConflictNote[] = [];
    const time = new Date();
    for (const ino of hit) {
      const i = out.inodes.findIndex((r) => r.ino === ino);
      const theirs = this.getInode(ino);
      if (i < 0 || !theirs) continue;
      const ours = out.inodes[i]!;
      const empty = Buffer.alloc(0);
      // Attributes only here: no second version to keep (the later change wins).
      if (!out.blocks.some((b) => b.ino === ino) && ours.size === theirs.size && (ours.inline ?? empty).equals(theirs.inline ?? empty)) continue;
      const copy = this.allocIno();
      out.inodes[i] = { ...ours, ino: copy, nlink: 1 };
      out.blocks = out.blocks.map((b) => (b.ino === ino ? { ...b, ino: copy } : b));
      const at = out.dentries.find((d) => d.ino === ino) ?? findName(this, ino);
      const parent = at?.parent ?? 1;
      const base = at?.name ?? Buffer.from(`inode-${ino}`);
      let n = 0;
      let name = conflictName(base, this.machine, time);
      while (this.lookupDentry(parent, name) !== undefined || out.dentries.some((d) => d.parent === parent && d.name.equals(name))) name = conflictName(base, this.machine, time, ++n);
      out.dentries = out.dentries.filter((d) => d.ino !== ino);
      out.dentries.push({ parent, name, ino: copy });
      refresh.inodes.push(theirs);
      for (const index of this.blockIndexes(ino)) refresh.blocks.push({ ino, index, data: Buffer.alloc(0) });
      refresh.dentries.push({ parent, name, ino: copy });
      notes.push({ at: time.toISOString(), text: `'${base.toString()}' was changed here and elsewhere at once: the other version keeps the name, this one is '${name.toString()}'`, kept: name.toString() });
    }
    return { batch: out, hit, refresh, notes };
  }

  /**
   * A diverted batch is committed: the clashes are settled and the core serves the other version
   * under the name (its memory held ours). Told on the next turn of the event loop, once the core
   * has marked the batch as done: while a batch is in flight the core keeps its own version of
   * what it carries (Filesystem.applyRemote), and ours is not the file's version any more.
   */
  private divertedCommitted(d: Diverted): void {
    for (const ino of d.hit) this.clashes.delete(ino);
    for (const n of d.notes) this.onConflict(n);
    setTimeout(() => this.onRemoteChange?.(d.refresh), 0);
  }

  /** Writes are refused (EROFS) while a readonly-mode mount is offline. */
  refuseWrites(): string | null {
    return this.refusal();
  }

  commitErrorKind(err: Error): 'transient' | 'permanent' {
    return err.name === 'OfflineRefused' || err.name === 'Disconnected' || err.name === 'Conflict' ? 'transient' : 'permanent';
  }
}
