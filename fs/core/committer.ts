import { performance } from 'node:perf_hooks';
import type { Durability, FsBatch, FsStore } from './store.js';
import type { DirtSink } from './content.js';
import type { Inode } from './inode.js';
import type { BlockCache } from './block-cache.js';
import type { FsError } from './errors.js';
import {
  CommitFailed, classifyCommitError, refusalFor, type CommitFailureKind, type Uncommitted,
} from './commit-failure.js';

interface InflightPage { inode: Inode; index: number; page: Buffer }
interface Waiter { resolve: () => void; reject: (e: Error) => void }

export interface CommitterOptions {
  /** A number, or asked each time the timer is armed (a replicated store: short while its uploads keep up). */
  commitDelayMs: number | (() => number);
  maxDirtyBytes: number;
  /**
   * A burst of bulk data waits longer than the commit delay: when the timer fires with at least
   * `bytes` dirty, the commit waits until `maxMs` after the first change (or maxDirtyBytes, or an
   * fsync). A replicated store commits small changes soon (propagation) but a big copy in large
   * batches, as a local one does: cut in the middle of the copy, its first part is committed and
   * uploaded while the rest is written, and an fsync then waits for both.
   */
  burst?: { bytes: number; maxMs: number };
  /** st_blocks of an inode at snapshot time (persisted so getattr needs no block scan). */
  stBlocks: (inode: Inode) => number;
  onError?: (err: Error) => void;
}

export interface CommitStats {
  commits: number;
  failures: number;
  /** The store's error of the last failed commit (kept after later successes, for the record). */
  lastError: Error | null;
  /** Wall-clock time (ms since the epoch) of the last failure; 0 if none. */
  lastErrorAt: number;
  /** Failures since the last successful commit: 0 while commits succeed. */
  failing: number;
  /** 'ok'; 'retrying' (transient failure, changes refused); 'read-only' (permanent failure). */
  health: 'ok' | 'retrying' | 'read-only';
  /** The errno changes are refused with while commits fail (null while they succeed). */
  refusedWith: string | null;
  /** Wall-clock ms batches spent in store.commit (from the call to its settling), summed. */
  commitMs: number;
}

/**
 * Gathers dirty inodes, dentries and blocks of many files into one FsBatch and commits it:
 * after `commitDelayMs` of the first change, at once when dirty bytes exceed `maxDirtyBytes`,
 * and durably on fsync / destroy.
 *
 * Dirty state is tracked as keys (inode, block index, dentry name); a batch is built synchronously
 * from the current in-memory values, so it is always a consistent snapshot (never half a rename).
 * One commit is in flight at a time; a failed commit re-marks its keys dirty (the in-memory state
 * is still the truth) and records the error for the next fsync. Until a commit succeeds again the
 * filesystem refuses changes (`refusal`; see commit-failure.ts): it never accepts writes that no
 * commit can take. A transient failure is retried on the timer, a permanent one only on request.
 */
export class Committer implements DirtSink {
  private dirtyInodes = new Set<Inode>();
  /** Inodes whose only change is their atime (markAtime). */
  private lazyInodes = new Set<Inode>();
  /** Changed names per directory: dir -> (name key -> name). */
  private dirtyDentries = new Map<Inode, Map<string, Buffer>>();
  private dirtyBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** A kick() queued the loop's start (a microtask) that has not run yet. */
  private starting = false;
  private again = false;
  private durableWaiters: Waiter[] = [];
  private idleWaiters: Array<() => void> = [];
  private roomWaiters: Array<() => void> = [];
  private seq = 0;
  /** Every batch with a sequence number <= this is durable. */
  durableSeq = 0;
  /** The error of a background commit no fsync has reported yet. */
  pendingError: Error | null = null;
  private stopped = false;
  readonly stats: CommitStats = { commits: 0, failures: 0, lastError: null, lastErrorAt: 0, failing: 0, health: 'ok', refusedWith: null, commitMs: 0 };
  /** The failure of the last commit, while no later one succeeded. */
  private failure: { error: Error; kind: CommitFailureKind; refusal: FsError } | null = null;
  /** Sequence number of the last batch whose commit finished (successfully or not). */
  completedSeq = 0;
  /** Names of the batch whose commit is running (see nameUnsettled). */
  private inflightDentries: Map<Inode, Map<string, Buffer>> | null = null;

  constructor(private readonly store: FsStore, private readonly cache: BlockCache, private readonly opts: CommitterOptions) {}

  /**
   * An access-time-only change (lazytime, as Linux's mount option): kept in memory and committed
   * with the inode's next other change or the next durable commit (fsync, sync, unmount) — not on
   * its own. Reading a tree would otherwise rewrite every inode it reads (md5sum of 8,000 files
   * was 8,000 inode records to seal, sign and index). A crash loses only such atimes.
   */
  markAtime(inode: Inode): void {
    if (!inode.dirty) { inode.lazyAtime = true; this.lazyInodes.add(inode); }
  }

  markInode(inode: Inode): void {
    if (!inode.dirty) {
      inode.dirty = true;
      this.dirtyInodes.add(inode);
      this.schedule();
    }
  }

  markBlock(inode: Inode, index: number, bytes: number): void {
    inode.contentGen++;
    const set = (inode.dirtyBlocks ??= new Set());
    if (!set.has(index)) {
      set.add(index);
      this.dirtyBytes += bytes;
    }
    this.dirtyInodes.add(inode);
    if (this.dirtyBytes >= this.opts.maxDirtyBytes) this.kick();
    else this.schedule();
  }

  /** An inode was deleted: its record and blocks go in the next batch as deletions. */
  markDeleted(inode: Inode): void {
    this.dirtyInodes.add(inode);
    this.schedule();
  }

  markDentry(dir: Inode, name: Buffer, key: string): void {
    let m = this.dirtyDentries.get(dir);
    if (m === undefined) this.dirtyDentries.set(dir, m = new Map());
    if (!m.has(key)) m.set(key, name);
    this.schedule();
  }

  /**
   * Whether entry `key` of directory `dir` changed here and no finished commit holds that change
   * yet (dirty, or in the batch in flight): the core's directory index is newer than the store's.
   */
  nameUnsettled(dir: Inode, key: string): boolean {
    return this.dirtyDentries.get(dir)?.has(key) === true || this.inflightDentries?.get(dir)?.has(key) === true;
  }

  /** True if `inode` has state no durable commit covers yet. */
  needsSync(inode: Inode): boolean {
    return inode.dirty || inode.lazyAtime || (inode.dirtyBlocks !== null && inode.dirtyBlocks.size > 0) || inode.commitSeq > this.durableSeq
      || this.dirtyDentries.size > 0;
  }

  get dirtyByteCount(): number { return this.dirtyBytes; }

  /** The error changes are refused with while commits fail (null: accept them). */
  get refusal(): FsError | null { return this.failure?.refusal ?? null; }

  /** The error of the failing commit (null while commits succeed), for close(2) of a writer. */
  get failedWith(): CommitFailed | null {
    const f = this.failure;
    return f ? new CommitFailed(f.error, f.kind, this.uncommitted()) : null;
  }

  /** What is dirty in memory now (a commit in flight counts as committed until it fails). */
  uncommitted(): Uncommitted {
    let inodes = 0;
    for (const i of this.dirtyInodes) if (i.dirty || i.deleted) inodes++;
    let names = 0;
    for (const m of this.dirtyDentries.values()) names += m.size;
    return { inodes, names, bytes: this.dirtyBytes };
  }
  /** Something is dirty, or a commit is queued or running. */
  get unsettled(): boolean { return this.hasDirt || this.running || this.starting; }
  get hasDirt(): boolean { return this.dirtyInodes.size > 0 || this.dirtyDentries.size > 0; }

  /** Resolves when everything dirty now (and earlier) is durable; rejects if that commit fails. */
  durable(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.durableWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  /**
   * Starts a commit as soon as the current operation has returned (or right after the one in
   * flight). Never synchronously: kick() is called from inside content mutations (markBlock when
   * dirty bytes cross maxDirtyBytes, between registering a page and copying the data into it and
   * updating the size), and a batch snapshotted there stores the block trimmed to the old size and
   * hands the store a buffer the write then mutates. Core operations are synchronous, so a
   * microtask runs after the whole operation, before any other request.
   */
  kick(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.running) { this.again = true; return; }
    if (this.starting) return;
    this.starting = true;
    queueMicrotask(() => {
      this.starting = false;
      if (this.running) { this.again = true; return; }
      void this.loop();
    });
  }

  /**
   * Write backpressure: null while dirty bytes are below twice `maxDirtyBytes`, else a promise that
   * resolves when a commit has brought them down (or failed: the error then surfaces on fsync).
   */
  backpressure(): Promise<void> | null {
    if (this.dirtyBytes < 2 * this.opts.maxDirtyBytes) return null;
    this.kick();
    return new Promise((r) => this.roomWaiters.push(r));
  }

  private releaseRoom(force: boolean): void {
    if (this.roomWaiters.length === 0 || (!force && this.dirtyBytes >= 2 * this.opts.maxDirtyBytes)) return;
    const w = this.roomWaiters;
    this.roomWaiters = [];
    for (const r of w) r();
  }

  /** Resolves once no commit is in flight. */
  idle(): Promise<void> {
    if (!this.running && !this.starting) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
  }

  private schedule(): void {
    if (this.timer !== null || this.running || this.starting || this.stopped) return;
    // A batch the store rejected for good is not retried on its own: fsync and unmount still try.
    if (this.failure?.kind === 'permanent') return;
    const armedAt = performance.now();
    const fire = (): void => {
      this.timer = null;
      const burst = this.opts.burst;
      const waited = performance.now() - armedAt;
      if (burst && this.dirtyBytes >= burst.bytes && waited < burst.maxMs && !this.running && !this.starting && !this.stopped) {
        this.timer = setTimeout(fire, burst.maxMs - waited);
        this.timer.unref?.();
        return;
      }
      this.kick();
    };
    this.timer = setTimeout(fire, typeof this.opts.commitDelayMs === 'function' ? this.opts.commitDelayMs() : this.opts.commitDelayMs);
    this.timer.unref?.();
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        this.again = false;
        const waiters = this.durableWaiters;
        if (!this.hasDirt && waiters.length === 0) break;
        this.durableWaiters = [];
        const ok = await this.commitOnce(waiters.length > 0 ? 'durable' : 'local', waiters);
        this.releaseRoom(!ok);
        if (!ok && this.durableWaiters.length === 0) break; // retried on the timer
        if (!this.again && this.durableWaiters.length === 0) break;
      }
    } finally {
      this.running = false;
      this.releaseRoom(true);
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of idle) r();
      if (this.hasDirt) this.schedule();
    }
  }

  private async commitOnce(durability: Durability, waiters: Waiter[]): Promise<boolean> {
    const seq = ++this.seq;
    const batch: FsBatch = { inodes: [], deletedInodes: [], dentries: [], blocks: [] };
    if (durability === 'durable' && this.lazyInodes.size > 0) {
      for (const inode of this.lazyInodes) {
        inode.lazyAtime = false;
        if (inode.deleted || inode.dirty) continue;
        inode.dirty = true;
        this.dirtyInodes.add(inode);
      }
      this.lazyInodes.clear();
    }
    const inodes = [...this.dirtyInodes];
    const dentries = this.dirtyDentries;
    const inflight: InflightPage[] = [];
    const blockKeys: Array<[Inode, number[]]> = [];
    const recordDirty: Inode[] = [];
    this.dirtyInodes = new Set();
    this.dirtyDentries = new Map();
    this.dirtyBytes = 0;

    for (const inode of inodes) {
      // Created and deleted between two batches: the store never saw it, nothing to send.
      if (inode.deleted && inode.commitSeq === 0 && !inode.fromStore) { inode.dirtyBlocks = null; continue; }
      inode.commitSeq = seq;
      const ino = inode.ino;
      const dirtyBlocks = inode.dirtyBlocks;
      inode.dirtyBlocks = null;
      if (inode.deleted) {
        batch.deletedInodes.push(ino);
        const idx = new Set<number>(dirtyBlocks ?? []);
        if (inode.blockSet) for (const i of inode.blockSet) idx.add(i);
        for (const i of idx) batch.blocks.push({ ino, index: i, data: null });
        inode.dirty = false;
        recordDirty.push(inode);
        if (dirtyBlocks) blockKeys.push([inode, [...dirtyBlocks]]);
        continue;
      }
      if (inode.dirty) {
        inode.dirty = false;
        if (inode.lazyAtime) { inode.lazyAtime = false; this.lazyInodes.delete(inode); }
        recordDirty.push(inode);
        batch.inodes.push(inode.toRecord(this.opts.stBlocks(inode)));
      }
      if (dirtyBlocks !== null && dirtyBlocks.size > 0) {
        const bs = inode.blockSize;
        const set = inode.blockSet;
        for (const i of dirtyBlocks) {
          const page = bs !== undefined && set !== null && set.has(i) ? inode.pages?.get(i) : undefined;
          if (page === undefined) { batch.blocks.push({ ino, index: i, data: null }); continue; }
          const used = Math.min(page.length, Math.max(0, inode.size - i * bs!));
          batch.blocks.push({ ino, index: i, data: used === page.length ? page : page.subarray(0, used) });
          // From now on the store may hold this buffer: the next write copies it.
          inode.owned?.delete(i);
          inflight.push({ inode, index: i, page });
        }
        blockKeys.push([inode, [...dirtyBlocks]]);
      }
    }
    for (const [dir, names] of dentries) {
      // A directory created and removed between two batches (skipped above): the store never saw
      // it, so it has no entries to delete — and their keys cannot even be derived without it.
      if (dir.deleted && dir.commitSeq === 0 && !dir.fromStore) continue;
      const index = dir.dir;
      for (const [key, name] of names) {
        const slot = index?.get(key);
        batch.dentries.push({ parent: dir.ino, name, ino: slot ? slot.ino : null });
      }
    }

    const t0 = performance.now();
    this.inflightDentries = dentries;
    try {
      await this.store.commit(batch, durability);
    } catch (err) {
      this.inflightDentries = null;
      this.stats.commitMs += performance.now() - t0;
      this.completedSeq = seq;
      const e = err instanceof Error ? err : new Error(String(err));
      // Keep everything dirty: the in-memory state is still current, the next batch re-reads it.
      for (const inode of recordDirty) {
        if (inode.deleted) this.dirtyInodes.add(inode);
        else this.markInodeQuiet(inode);
      }
      for (const [inode, idx] of blockKeys) {
        const set = (inode.dirtyBlocks ??= new Set());
        for (const i of idx) if (!set.has(i)) { set.add(i); this.dirtyBytes += inode.blockSize ?? 0; }
        this.dirtyInodes.add(inode);
      }
      for (const [dir, names] of dentries) for (const [key, name] of names) this.markDentryQuiet(dir, name, key);
      const kind = this.store.commitErrorKind?.(e) ?? classifyCommitError(e);
      this.failure = { error: e, kind, refusal: refusalFor(e, kind) };
      const st = this.stats;
      st.failures++;
      st.failing++;
      st.lastError = e;
      st.lastErrorAt = Date.now();
      st.health = kind === 'permanent' ? 'read-only' : 'retrying';
      st.refusedWith = this.failure.refusal.code;
      const failed = new CommitFailed(e, kind, this.uncommitted());
      if (waiters.length) for (const w of waiters) w.reject(failed);
      else { this.pendingError = failed; this.opts.onError?.(failed); }
      return false;
    }
    if (this.failure !== null) {
      this.failure = null;
      this.stats.failing = 0;
      this.stats.health = 'ok';
      this.stats.refusedWith = null;
      // The failed batch stayed dirty and this commit took all of it: nothing of it was lost, so
      // no later fsync reports that failure (how soon the retry came was a matter of timing).
      this.pendingError = null;
    }
    this.inflightDentries = null;
    this.stats.commitMs += performance.now() - t0;
    this.completedSeq = seq;
    this.stats.commits++;
    if (durability === 'durable') this.durableSeq = seq;
    // Committed pages are clean now: move them to the shared LRU unless rewritten meanwhile.
    for (const { inode, index, page } of inflight) {
      const pages = inode.pages;
      if (pages === null || pages.get(index) !== page || inode.dirtyBlocks?.has(index)) continue;
      pages.delete(index);
      if (!inode.deleted) this.cache.set(inode.ino, index, page);
    }
    for (const w of waiters) w.resolve();
    return true;
  }

  private markDentryQuiet(dir: Inode, name: Buffer, key: string): void {
    let m = this.dirtyDentries.get(dir);
    if (m === undefined) this.dirtyDentries.set(dir, m = new Map());
    if (!m.has(key)) m.set(key, name);
  }

  private markInodeQuiet(inode: Inode): void {
    inode.dirty = true;
    this.dirtyInodes.add(inode);
  }
}

