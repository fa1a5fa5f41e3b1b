// The redo-log engine: one writer, many readers, over a LogIo (real files or memory). The readers
// (reads by position, scans, follow) are in segment-reader.ts; recovery in open-scan.ts; the
// compaction's copy and switch in compaction-swap.ts.
//
// Write path. append() frames the record, assigns seq and position synchronously and queues the
// frame. Queued frames are written with one pwritev (the "write-out"):
//   none    -> when the queue exceeds BUFFER_LIMIT, on flush(), on close();
//   local   -> in a microtask, so every append of the same tick shares one pwritev;
//   durable -> same write-out, then an fdatasync. Group commit: while one fdatasync runs on the
//              threadpool, new durable appends are written right away and wait; when the sync
//              returns its waiters resolve and ONE new fdatasync covers everybody who arrived
//              meanwhile. Waiters are tracked by a global byte counter (bytes ever written), so
//              "durable up to N" covers every earlier segment too (segments are fdatasynced when
//              sealed).
// A failed write (ENOSPC/EFBIG) truncates the segment back to the last good frame and drops the
// whole queue, rolling seq back: the log stays exactly as before that write-out. A failed
// fdatasync poisons the log (after a failed fsync the page cache state is unknown).
import { randomUUID } from 'node:crypto';
import * as fsNode from 'node:fs';
import {
  DiskFull,
  isDiskFullCode,
  LogClosedError,
  LogError,
  RecordTooLarge,
} from './errors.js';
import {
  encodeFrame,
  encodeFrameHeader,
  encodeFrameHeaderParts,
  encodeHeader,
  encodeManifest,
  FRAME_HEADER,
  MANIFEST,
  MANIFEST_TMP,
  type Manifest,
  segmentName,
} from './format.js';
import { MemIo, openFileIo, type LogIo } from './io.js';
import { lockDir, lockMemory, type DirLock } from './lock.js';
import { makeDirPrivate } from './private-files.js';
import { SegmentReader } from './segment-reader.js';
import { Runway } from './runway.js';
import { pwritevAll, pwritevAllAsync } from './pwritev.js';
import { type CompactionHost, compactSegments } from './compaction-swap.js';
import { refreshFollower } from './follower-refresh.js';
import { readManifest, scanOpen } from './open-scan.js';
import {
  type ChainState, type CutCertificate, ChainTracker, ZERO_HASH, chainStep, cutMessage, recordHash, recordHashOfParts,
} from './chain-hash.js';
import type {
  Certify,
  CompactionStep,
  CompactOptions,
  CompactResult,
  Durability,
  LogPosition,
  LogRecord,
  OpenLogOptions,
  RecoveryReport,
  RedoLog,
  SegmentInfo,
} from './types.js';

const BUFFER_LIMIT = 1 << 20;
/**
 * Queued bytes from which a write goes to the threadpool instead of the serving thread: a commit of
 * file blocks is tens of MiB, and writing it into the page cache of a disk file system took ~2 ms
 * per MiB of main-thread time here (more than encrypting it).
 */
const ASYNC_WRITE_MIN = 512 << 10;
/** Payloads from this size on are written without copying them into a frame (see appendBatch). */
const FRAME_NO_COPY = 64 << 10;
export const DEFAULT_SEGMENT_SIZE = 64 << 20;
export const DEFAULT_MAX_RECORD = 16 << 20;
export { pwritevAll };

export interface Seg {
  id: number;
  name: string;
  headerLen: number;
  firstSeq: number;
  end: number; // end of the last frame written to the OS
  count: number;
  lastSeq: number;
}

interface Inflight {
  seg: Seg;
  fd: number;
  bufs: Buffer[];
  at: number;
  total: number;
  count: number;
  /** nextSeq and lastPos after its last frame (the rollback point once it is written). */
  nextSeq: number;
  lastPos: LogPosition | null;
  done: boolean;
  promise: Promise<void> | null;
}

interface Waiter {
  target: number; // global byte count that must be written (local) or synced (durable)
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface EngineOptions extends OpenLogOptions {
  /** fdatasync on the threadpool (default) or inline on the main thread; the benchmark compares both. */
  syncOffThread?: boolean;
}

function diskFull(e: unknown, what: string): Error {
  if (isDiskFullCode(e)) return new DiskFull(`${what}: ${(e as Error).message}`, (e as NodeJS.ErrnoException).code);
  return e as Error;
}

export class LogEngine implements RedoLog {
  readonly chainId: string;
  recovery: RecoveryReport = { truncatedBytes: 0, records: 0 };
  nextSeq = 1;
  lastPos: LogPosition | null = null;

  private genesis: Buffer | null; // adopted from the first segment header when not given
  private readonly segmentSize: number;
  private readonly maxRecordSize: number;
  private readonly readOnly: boolean;
  private readonly syncOffThread: boolean;
  private segs: Seg[] = [];
  private byId = new Map<number, Seg>();
  private nextSegId = 1;
  private activeFd = -1;
  private readFds = new Map<number, number>();
  private retiredFds: number[] = [];

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /**
   * A large batch being written on the threadpool (see writeOutAsync); `done` once its bytes are
   * accounted for — by its own completion, or because a synchronous path re-wrote them first.
   */
  private inflight: Inflight | null = null;
  private readonly asyncWrites: boolean;
  private readonly runway: Runway;
  private pendingCount = 0;
  private rollbackSeq = 1; // nextSeq before the first queued frame
  private rollbackLastPos: LogPosition | null = null;
  private reserved = 0; // end of the active segment including queued frames
  private written = 0; // global bytes written to the OS
  private synced = 0; // global bytes known durable
  private localWaiters: Waiter[] = [];
  private durableWaiters: Waiter[] = [];
  private writeScheduled = false;
  private syncInFlight: Promise<void> | null = null;
  private failed: Error | null = null;
  private closed = false;
  private compacting = false;
  private listeners = new Set<() => void>();
  private manifestSegments: number[] = [];
  // History binding (chain-hash.ts): the running chain hash at the last queued record, the hashes
  // of records not yet known written (a failed write rolls back to one of them), the certificate
  // of the last compaction, and what the open scan found.
  private chainHead: { seq: number; hash: Buffer };
  private recentChain = new Map<number, Buffer>();
  private cut: CutCertificate | null = null;
  private scanned: ChainState | null = null;
  private readonly probeSeq: number | undefined;
  private durableListeners = new Set<(head: { seq: number; hash: Buffer }) => void>();
  private readonly reader: SegmentReader = new SegmentReader({
    io: () => this.io,
    isReadOnly: () => this.readOnly,
    segments: () => this.segs,
    segment: (id) => this.byId.get(id),
    hasSegment: (id) => this.byId.has(id),
    active: () => this.active,
    isClosed: () => this.closed,
    visible: () => this.visible(),
    readFd: (seg) => this.readFd(seg),
    refresh: () => this.refresh(),
    listen: (l) => {
      this.listeners.add(l);
      return () => this.listeners.delete(l);
    },
  });

  private constructor(
    private readonly io: LogIo,
    private readonly lock: DirLock | null,
    private readonly anonymousMemory: boolean,
    opts: EngineOptions,
  ) {
    this.chainId = opts.chainId;
    this.genesis = opts.genesisHash ? Buffer.from(opts.genesisHash) : null;
    this.segmentSize = opts.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    this.maxRecordSize = opts.maxRecordSize ?? DEFAULT_MAX_RECORD;
    this.readOnly = !!opts.readOnly;
    this.syncOffThread = opts.syncOffThread ?? true;
    this.asyncWrites = this.syncOffThread && typeof io.filePath === 'function';
    this.runway = new Runway(io, typeof io.filePath === 'function' && !this.readOnly && opts.zeroRunway !== false, this.segmentSize);
    this.chainHead = { seq: 0, hash: this.genesis ?? ZERO_HASH };
    this.probeSeq = opts.chainHashAt;
  }

  /** The history as the open scan found it, with the head kept current by appends. */
  get chain(): ChainState {
    const s = this.scanned ?? { head: this.chainHead, cut: this.cut, problem: null, probe: null };
    return { ...s, head: this.chainHead, cut: this.cut, genesis: this.genesis };
  }

  /** Called with (seq, chain hash) of the newest record known durable, after each durable append or flush. */
  onDurable(cb: (head: { seq: number; hash: Buffer }) => void): () => void {
    this.durableListeners.add(cb);
    return () => this.durableListeners.delete(cb);
  }

  private emitDurable(head: { seq: number; hash: Buffer }): void {
    for (const cb of this.durableListeners) cb(head);
  }

  /** Global byte count once everything queued (in flight and pending) is written. */
  private get queuedEnd(): number {
    return this.written + (this.inflight !== null && !this.inflight.done ? this.inflight.total : 0) + this.pendingBytes;
  }

  static async open(opts: EngineOptions): Promise<LogEngine> {
    if (typeof opts.chainId !== 'string' || opts.chainId.length === 0) throw new LogError('chainId is required');
    if (opts.genesisHash && opts.genesisHash.length !== 32) throw new LogError('genesisHash must be 32 bytes');
    try {
      return LogEngine.openUnmapped(opts);
    } catch (e) {
      throw diskFull(e, `opening the redo log${opts.dir ? ` in ${opts.dir}` : ''}`);
    }
  }

  private static openUnmapped(opts: EngineOptions): LogEngine {
    let io: LogIo;
    let lock: DirLock | null = null;
    let anonymous = false;
    if (opts.memory) {
      anonymous = !opts.dir;
      const key = opts.dir ? `mem:${opts.dir}` : `mem:${randomUUID()}`;
      io = new MemIo(key);
      if (!opts.readOnly) lock = lockMemory(key);
    } else {
      if (!opts.dir) throw new LogError('dir is required unless memory is set');
      if (!opts.readOnly) makeDirPrivate(opts.dir); // 0700, its files 0600 (private-files.ts)
      else if (!fsNode.existsSync(opts.dir)) throw new LogError(`no redo log at ${opts.dir}`);
      io = openFileIo(opts.dir);
      if (!opts.readOnly) lock = lockDir(opts.dir);
    }
    const log = new LogEngine(io, lock, anonymous, opts);
    try {
      log.recover();
    } catch (e) {
      log.closeFds();
      lock?.release();
      if (anonymous) MemIo.drop(io.dir);
      throw e;
    }
    return log;
  }

  // ---------------------------------------------------------------- recovery

  private readManifest(): Manifest | null {
    return readManifest(this.io, this.chainId);
  }

  private recover(): void {
    const { ids, fromManifest, prevSeq, tracker } = scanOpen({
      io: this.io,
      chainId: this.chainId,
      readOnly: this.readOnly,
      probeSeq: this.probeSeq,
      recovery: this.recovery,
      readFds: this.readFds,
      genesis: () => this.genesis,
      setGenesis: (g) => {
        this.genesis = g;
      },
      setCut: (cut) => {
        this.cut = cut;
      },
      setNextSegId: (id) => {
        this.nextSegId = id;
      },
      addSegment: (seg) => {
        this.segs.push(seg);
        this.byId.set(seg.id, seg);
      },
      setLastPos: (pos) => {
        this.lastPos = pos;
      },
    });
    if (ids.length === 0) {
      const seg = this.createSegment(this.nextSegId++, 1);
      this.segs = [seg];
      this.byId.set(seg.id, seg);
      this.writeManifest(this.segs);
      this.activeFd = this.io.openRw(seg.name, false);
      this.reserved = seg.end;
      this.finishChainScan(new ChainTracker(this.genesis, this.cut, this.probeSeq));
      return;
    }
    const last = this.segs[this.segs.length - 1]!;
    this.nextSeq = Math.max(prevSeq + 1, last.firstSeq);
    this.rollbackSeq = this.nextSeq;
    this.rollbackLastPos = this.lastPos;
    this.manifestSegments = ids;
    this.finishChainScan(tracker ?? new ChainTracker(this.genesis, this.cut, this.probeSeq));
    if (!this.readOnly) {
      if (!fromManifest) this.writeManifest(this.segs);
      this.activeFd = this.io.openRw(last.name, false);
      this.reserved = last.end;
    }
  }

  private finishChainScan(tracker: ChainTracker): void {
    this.scanned = tracker.finish();
    this.chainHead = this.scanned.head;
    this.recentChain.clear();
    this.recentChain.set(this.chainHead.seq, this.chainHead.hash);
  }

  /**
   * Accepts the history as it is (a user's deliberate --accept-rollback of a gap): certifies a cut
   * at the last record, so the gaps below it are compaction's from now on. `certify` signs.
   */
  async acceptHistory(certify?: Certify): Promise<void> {
    this.check();
    await this.flush('durable');
    let kept: Buffer = this.genesis ?? ZERO_HASH;
    const cutSeq = this.chainHead.seq;
    for (const rec of this.records()) if (rec.seq <= cutSeq) kept = chainStep(kept, recordHash(rec.payload));
    const claim = { seq: cutSeq, hash: this.chainHead.hash, kept };
    const signed = certify ? await certify(cutMessage(this.chainId, this.genesis, claim)) : { sig: Buffer.alloc(0), signer: Buffer.alloc(0) };
    this.cut = { ...claim, ...signed };
    this.writeManifest(this.segs);
    if (this.scanned) this.scanned = { ...this.scanned, problem: null };
  }

  /**
   * A replica of a chain compacted elsewhere (src/net/remote-chain.ts): records `cut` in the
   * MANIFEST and lets the next append take seq `nextSeq`. The gap this leaves is at or below the
   * cut, where the open scan accepts gaps; that the records up to the cut are the ones it
   * certifies is the caller's to check (the log's tracker reports it as chain.problem otherwise).
   */
  async adoptCut(cut: CutCertificate, nextSeq: number): Promise<void> {
    this.check();
    if (nextSeq < this.nextSeq || nextSeq > cut.seq + 1) throw new LogError(`cannot skip to seq ${nextSeq} (next is ${this.nextSeq}, cut at ${cut.seq})`);
    await this.flush('durable');
    this.cut = cut;
    this.writeManifest(this.segs);
    this.nextSeq = nextSeq;
    this.rollbackSeq = nextSeq;
    // At the cut the running hash is the certified one; below it no hash is kept across gaps.
    this.chainHead = { seq: nextSeq - 1, hash: nextSeq === cut.seq + 1 ? cut.hash : this.chainHead.hash };
    this.recentChain.clear();
    this.recentChain.set(this.chainHead.seq, this.chainHead.hash);
  }

  // ---------------------------------------------------------------- segments and manifest

  /** New segment with a complete, synced header, published under its final name atomically. */
  private createSegment(id: number, firstSeq: number): Seg {
    const name = segmentName(id);
    const tmp = `${name}.tmp`;
    const header = encodeHeader({ chainId: this.chainId, genesisHash: this.genesis, segment: id, firstSeq });
    if (this.io.exists(tmp)) this.io.unlink(tmp);
    const fd = this.io.openRw(tmp, true);
    try {
      let off = 0;
      while (off < header.length) off += this.io.pwrite(fd, header.subarray(off), off);
      this.io.datasync(fd);
      this.io.rename(tmp, name);
      this.io.fsyncDir();
    } catch (e) {
      try {
        this.io.unlink(tmp);
      } catch {
        /* not there */
      }
      throw diskFull(e, `creating segment ${name}`);
    } finally {
      this.io.close(fd);
    }
    return { id, name, headerLen: header.length, firstSeq, end: header.length, count: 0, lastSeq: 0 };
  }

  private writeManifest(segs: Seg[], step?: (s: CompactionStep) => void): void {
    const ids = segs.map((s) => s.id);
    try {
      this.io.writeFileSync(MANIFEST_TMP, encodeManifest({ chainId: this.chainId, segments: ids, cut: this.cut }));
    } catch (e) {
      try {
        this.io.unlink(MANIFEST_TMP);
      } catch {
        /* not there */
      }
      throw diskFull(e, 'writing the manifest');
    }
    step?.('after-manifest-tmp');
    this.io.rename(MANIFEST_TMP, MANIFEST);
    this.manifestSegments = ids;
    step?.('after-rename');
    this.io.fsyncDir();
    step?.('after-dir-fsync');
  }

  private get active(): Seg {
    return this.segs[this.segs.length - 1]!;
  }

  /** Seal the active segment (written out and fdatasynced) and continue in a new one. */
  private rotate(): void {
    this.writeOut();
    this.runway.cut(this.activeFd, this.active.end);
    this.io.datasync(this.activeFd);
    const seg = this.createSegment(this.nextSegId++, this.nextSeq);
    try {
      this.writeManifest([...this.segs, seg]);
    } catch (e) {
      try {
        this.io.unlink(seg.name);
      } catch {
        /* best effort: an unnamed segment is a leftover the next open deletes */
      }
      throw e;
    }
    this.synced = this.written;
    this.resolveDurable();
    this.segs.push(seg);
    this.byId.set(seg.id, seg);
    if (this.syncInFlight || this.inflight) this.retiredFds.push(this.activeFd);
    else this.io.close(this.activeFd);
    this.activeFd = this.io.openRw(seg.name, false);
    this.reserved = seg.end;
    this.rollbackLastPos = this.lastPos;
  }

  // ---------------------------------------------------------------- write path

  private check(): void {
    if (this.failed) throw new LogClosedError(`redo log failed earlier: ${this.failed.message}`);
    if (this.closed) throw new LogClosedError('redo log is closed');
    if (this.readOnly) throw new LogError('redo log is open read-only');
  }

  append(payload: Uint8Array, durability: Durability = 'durable'): Promise<{ seq: number; pos: LogPosition }> {
    return this.appendBatch([payload], durability).then((r) => r[0]!);
  }

  appendParts(parts: readonly Uint8Array[], durability: Durability = 'durable'): Promise<{ seq: number; pos: LogPosition }> {
    return this.appendRecords([parts], durability).then((r) => r[0]!);
  }

  appendBatch(payloads: Uint8Array[], durability: Durability = 'durable'): Promise<Array<{ seq: number; pos: LogPosition }>> {
    return this.appendRecords(payloads, durability);
  }

  /** Each record is one buffer or consecutive pieces (appendParts). */
  private appendRecords(payloads: ReadonlyArray<Uint8Array | readonly Uint8Array[]>, durability: Durability): Promise<Array<{ seq: number; pos: LogPosition }>> {
    try {
      this.check();
      const lengthOf = (p: Uint8Array | readonly Uint8Array[]): number => {
        if (p instanceof Uint8Array) return p.length;
        let n = 0;
        for (const x of p) n += x.length;
        return n;
      };
      const lengths = payloads.map(lengthOf);
      for (const n of lengths) {
        if (n > this.maxRecordSize) throw new RecordTooLarge(`record of ${n} bytes exceeds the maximum of ${this.maxRecordSize}`);
      }
      const out: Array<{ seq: number; pos: LogPosition; chainHash: Buffer }> = [];
      for (const k of this.recentChain.keys()) {
        if (k >= this.rollbackSeq - 1) break;
        this.recentChain.delete(k);
      }
      for (let i = 0; i < payloads.length; i++) {
        const p = payloads[i]!;
        const plen = lengths[i]!;
        const size = FRAME_HEADER + plen;
        const act = this.active;
        if (this.reserved + size > this.segmentSize && (act.count > 0 || this.pendingCount > 0)) this.rotate();
        const seq = this.nextSeq++;
        const pos = { segment: this.active.id, offset: this.reserved };
        // Large payloads go out as their own iovec behind a separate header: copying tens of MiB
        // of a commit into a frame buffer cost as much as writing it. They must not change until
        // written (commit records never do).
        if (!(p instanceof Uint8Array)) {
          this.pending.push(encodeFrameHeaderParts(seq, p, plen));
          for (const x of p) if (x.length > 0) this.pending.push(x as Buffer);
        } else if (p.length >= FRAME_NO_COPY) this.pending.push(encodeFrameHeader(seq, p), p as Buffer);
        else this.pending.push(encodeFrame(seq, p));
        this.pendingBytes += size;
        this.pendingCount++;
        this.reserved += size;
        this.lastPos = pos;
        const chainHash = chainStep(this.chainHead.hash, p instanceof Uint8Array ? recordHash(p) : recordHashOfParts(p));
        this.chainHead = { seq, hash: chainHash };
        this.recentChain.set(seq, chainHash);
        out.push({ seq, pos, chainHash });
      }
      if (durability === 'none') {
        if (this.pendingBytes >= BUFFER_LIMIT) this.writeOut();
        this.notify();
        return Promise.resolve(out);
      }
      const target = this.queuedEnd;
      return new Promise<void>((resolve, reject) => {
        (durability === 'durable' ? this.durableWaiters : this.localWaiters).push({ target, resolve, reject });
        this.schedule();
      }).then(() => {
        if (durability === 'durable' && out.length > 0) {
          const last = out[out.length - 1]!;
          this.emitDurable({ seq: last.seq, hash: last.chainHash });
        }
        return out;
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private schedule(): void {
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    queueMicrotask(() => {
      this.writeScheduled = false;
      this.pump();
    });
  }

  /** Write out the queue, resolve local waiters, start a sync if durable waiters wait and none runs. */
  private pump(): void {
    if (this.failed || this.closed) return;
    if (this.inflight !== null) return; // its completion pumps again
    if (this.asyncWrites && this.pendingBytes >= ASYNC_WRITE_MIN) {
      this.writeOutAsync();
      return;
    }
    try {
      this.writeOut();
    } catch {
      return; // waiters were rejected by writeOut
    }
    if (this.durableWaiters.length > 0 && !this.syncInFlight) {
      this.runway.renew(this.activeFd, this.active.end);
      this.startSync();
    }
  }

  /**
   * Writes the queue on the threadpool. Appends go on queueing behind it (their positions already
   * count its bytes); any synchronous path that needs the bytes in the file first (writeOut: reads
   * of the tail, rotation, compaction, 'local' flushes) re-writes them itself — the same bytes at
   * the same place, so whichever write lands last changes nothing. The descriptor stays open until
   * the write ends (rotation retires it instead of closing it).
   */
  private writeOutAsync(): void {
    const seg = this.active;
    const fl: Inflight = {
      seg, fd: this.activeFd, bufs: this.pending, at: seg.end, total: this.pendingBytes, count: this.pendingCount,
      nextSeq: this.nextSeq, lastPos: this.lastPos, done: false, promise: null,
    };
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingCount = 0;
    this.inflight = fl;
    fl.promise = pwritevAllAsync(this.io, fl.fd, fl.bufs, fl.at).then(
      () => {
        if (!fl.done) this.completeWrite(fl);
        this.endInflight(fl);
      },
      (e: unknown) => {
        if (!fl.done && !this.failed && !this.closed) {
          fl.done = true;
          this.writeFailed(seg, diskFull(e, `appending to ${seg.name}`));
        }
        this.endInflight(fl);
      },
    );
  }

  private endInflight(fl: Inflight): void {
    if (this.inflight === fl) this.inflight = null;
    if (!this.syncInFlight) for (const r of this.retiredFds.splice(0)) this.io.close(r);
    this.pump();
  }

  private completeWrite(fl: Inflight): void {
    fl.done = true;
    fl.seg.end += fl.total;
    fl.seg.count += fl.count;
    fl.seg.lastSeq = fl.nextSeq - 1;
    this.written += fl.total;
    this.rollbackSeq = fl.nextSeq;
    this.rollbackLastPos = fl.lastPos;
    this.resolveLocal();
    this.notify();
  }

  /** The bytes of a write still on the threadpool, written here and now (see writeOutAsync). */
  private settleInflight(): void {
    const fl = this.inflight;
    if (fl === null || fl.done) return;
    try {
      pwritevAll(this.io, fl.fd, fl.bufs, fl.at);
    } catch (e) {
      fl.done = true;
      const err = diskFull(e, `appending to ${fl.seg.name}`);
      this.writeFailed(fl.seg, err);
      throw err;
    }
    this.completeWrite(fl);
  }

  private writeOut(): void {
    this.settleInflight();
    if (this.pending.length === 0) return;
    const seg = this.active;
    const bufs = this.pending;
    const total = this.pendingBytes;
    try {
      pwritevAll(this.io, this.activeFd, bufs, seg.end);
    } catch (e) {
      const err = diskFull(e, `appending to ${seg.name}`);
      this.writeFailed(seg, err);
      throw err;
    }
    seg.end += total;
    seg.count += this.pendingCount;
    seg.lastSeq = this.nextSeq - 1;
    this.written += total;
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingCount = 0;
    this.rollbackSeq = this.nextSeq;
    this.rollbackLastPos = this.lastPos;
    this.resolveLocal();
    this.notify();
  }

  /**
   * A write failed (a full disk, say): back to the last good frame boundary — the file truncated
   * there, queued frames dropped, their seqs handed out again — and every waiter beyond it rejected.
   */
  private writeFailed(seg: Seg, err: Error): void {
    if (seg !== this.active) this.failed = err; // a rotation went past it (cannot happen: rotate settles first)
    else {
      try {
        this.io.truncate(this.activeFd, seg.end);
        this.runway.cut(this.activeFd, seg.end);
      } catch {
        this.failed = err; // cannot restore the last good frame boundary
      }
    }
    this.pending = [];
    this.pendingBytes = 0;
    this.pendingCount = 0;
    this.nextSeq = this.rollbackSeq;
    this.lastPos = this.rollbackLastPos;
    this.reserved = this.active.end;
    const back = this.recentChain.get(this.rollbackSeq - 1);
    if (back) this.chainHead = { seq: this.rollbackSeq - 1, hash: back };
    for (const k of [...this.recentChain.keys()]) if (k >= this.rollbackSeq) this.recentChain.delete(k);
    const lost = (w: Waiter) => w.target > this.written;
    for (const list of [this.localWaiters, this.durableWaiters]) {
      const keep = list.filter((w) => !lost(w));
      for (const w of list) if (lost(w)) w.reject(err);
      list.length = 0;
      list.push(...keep);
    }
  }

  private resolveLocal(): void {
    const ws = this.localWaiters;
    let k = 0;
    while (k < ws.length && ws[k]!.target <= this.written) ws[k++]!.resolve();
    if (k > 0) ws.splice(0, k);
  }

  private resolveDurable(): void {
    const ws = this.durableWaiters;
    let k = 0;
    while (k < ws.length && ws[k]!.target <= this.synced) ws[k++]!.resolve();
    if (k > 0) ws.splice(0, k);
  }

  private startSync(): void {
    const target = this.written;
    const fd = this.activeFd;
    if (!this.syncOffThread) {
      try {
        this.io.datasync(fd);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      this.synced = Math.max(this.synced, target);
      this.resolveDurable();
      if (this.durableWaiters.length > 0) this.schedule();
      return;
    }
    this.syncInFlight = new Promise<void>((done) => {
      this.io.datasyncAsync(fd, (err) => {
        this.syncInFlight = null;
        if (!this.inflight) for (const r of this.retiredFds.splice(0)) this.io.close(r);
        done();
        if (err) {
          this.fail(err);
          return;
        }
        this.synced = Math.max(this.synced, target);
        this.resolveDurable();
        if (this.durableWaiters.length > 0) this.pump();
      });
    });
  }

  private fail(e: Error): void {
    const err = isDiskFullCode(e) ? diskFull(e, 'fdatasync') : e;
    this.failed ??= err;
    for (const w of this.durableWaiters.splice(0)) w.reject(err);
    for (const w of this.localWaiters.splice(0)) w.reject(err);
    this.notify();
  }

  async flush(durability: Durability = 'durable'): Promise<void> {
    if (this.readOnly || durability === 'none') return;
    this.check();
    if (durability === 'local') {
      this.writeOut();
      return;
    }
    const target = this.queuedEnd;
    const head = this.chainHead;
    if (target <= this.synced) return;
    await new Promise<void>((resolve, reject) => {
      this.durableWaiters.push({ target, resolve, reject });
      // Everything is in the file already: start the sync now rather than after this tick, so
      // the caller's work until its await (the view's index transaction) overlaps the fdatasync.
      // Queued appends wait for the microtask, which lets one write and one sync take a batch.
      if (this.pending.length === 0 && this.inflight === null) this.pump();
      else this.schedule();
    });
    this.emitDurable(head);
  }

  // ---------------------------------------------------------------- read path

  private readFd(seg: Seg): number {
    let fd = this.readFds.get(seg.id);
    if (fd === undefined) {
      fd = this.io.openRead(seg.name);
      this.readFds.set(seg.id, fd);
    }
    return fd;
  }

  /** Make queued frames visible to readers. */
  private visible(): void {
    if (this.pending.length > 0 && !this.failed && !this.closed) this.writeOut();
  }

  read(pos: LogPosition): LogRecord {
    return this.reader.read(pos);
  }

  fileRange(pos: LogPosition, start: number, length: number): { path: string; offset: number } | null {
    return this.reader.fileRange(pos, start, length);
  }

  readSlice(pos: LogPosition, start: number, length: number): Buffer {
    return this.reader.readSlice(pos, start, length);
  }

  records(from?: { seq?: number; pos?: LogPosition }): Iterable<LogRecord> {
    return this.reader.records(from);
  }

  follow(from: { seq?: number; pos?: LogPosition }, signal?: AbortSignal): AsyncIterable<LogRecord> {
    return this.reader.follow(from, signal);
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  /** Read-only instances: pick up what the writer appended since (follower-refresh.ts). */
  private refresh(): void {
    refreshFollower({
      io: this.io,
      readManifest: () => this.readManifest(),
      segments: () => this.segs,
      cut: () => this.cut,
      reload: () => {
        this.closeFds();
        this.segs = [];
        this.byId.clear();
        this.recovery = { truncatedBytes: 0, records: 0 };
        this.recover();
      },
      readFd: (seg) => this.readFd(seg),
      setReadFd: (id, fd) => this.readFds.set(id, fd),
      addSegment: (seg) => {
        this.segs.push(seg);
        this.byId.set(seg.id, seg);
      },
      chainRecord: (seq, payload) => {
        this.chainHead = { seq, hash: chainStep(this.chainHead.hash, recordHash(payload)) };
      },
      setTail: (seq, pos) => {
        this.lastPos = pos;
        this.nextSeq = seq + 1;
      },
    });
  }

  // ---------------------------------------------------------------- compaction (compaction-swap.ts)

  async compact(keep: (rec: LogRecord) => boolean, opts?: CompactOptions): Promise<CompactResult> {
    this.check();
    if (this.compacting) throw new LogError('a compaction is already running');
    this.compacting = true;
    try {
      return await compactSegments(this.compactionHost(), keep, opts);
    } finally {
      this.compacting = false;
    }
  }

  private compactionHost(): CompactionHost {
    const self = this;
    return {
      io: this.io,
      chainId: this.chainId,
      get genesis() {
        return self.genesis;
      },
      segmentSize: this.segmentSize,
      checkOpen: () => {
        if (this.failed || this.closed) throw new LogClosedError('redo log closed during compaction');
      },
      segments: () => this.segs,
      active: () => this.active,
      cutPoint: () => ({ seq: this.nextSeq - 1, hash: this.chainHead.hash }),
      newSegmentId: () => this.nextSegId++,
      writeOut: () => this.writeOut(),
      rotate: () => this.rotate(),
      visible: () => this.visible(),
      notify: () => this.notify(),
      fail: (e) => this.fail(e),
      sizeBytes: () => this.sizeBytes(),
      info: (seg) => this.info(seg, false),
      switchManifest: (next, cut, step) => {
        this.cut = cut;
        this.writeManifest(next, step);
      },
      adopt: (next, dropped) => {
        this.segs = next;
        this.byId = new Map(next.map((s) => [s.id, s]));
        for (const s of dropped) {
          const rfd = this.readFds.get(s.id);
          if (rfd !== undefined) {
            this.io.close(rfd);
            this.readFds.delete(s.id);
          }
        }
      },
      scan: (start) => this.reader.scan(start),
      lastPos: () => this.lastPos,
      repointLastPos: (to) => {
        this.lastPos = to;
        this.rollbackLastPos = to;
      },
    };
  }

  // ---------------------------------------------------------------- misc

  private info(s: Seg, active: boolean): SegmentInfo {
    return { id: s.id, firstSeq: s.count > 0 ? s.firstSeq : 0, lastSeq: s.lastSeq, bytes: s.end, records: s.count, active };
  }

  segmentList(): SegmentInfo[] {
    return this.segs.map((s, i) => this.info(s, i === this.segs.length - 1));
  }

  sizeBytes(): number {
    let n = this.pendingBytes + (this.inflight !== null && !this.inflight.done ? this.inflight.total : 0);
    for (const s of this.segs) n += s.end;
    return n;
  }

  private closeFds(): void {
    for (const fd of this.readFds.values()) {
      try {
        this.io.close(fd);
      } catch {
        /* already closed */
      }
    }
    this.readFds.clear();
    if (this.activeFd >= 0) {
      try {
        this.io.close(this.activeFd);
      } catch {
        /* already closed */
      }
      this.activeFd = -1;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    let err: unknown = null;
    if (!this.failed && !this.readOnly) {
      try {
        await this.flush('durable');
      } catch (e) {
        err = e;
      }
    }
    while (this.syncInFlight || this.inflight) await (this.syncInFlight ?? this.inflight?.promise);
    if (!this.readOnly && this.activeFd >= 0 && this.segs.length > 0) this.runway.cut(this.activeFd, this.active.end);
    this.closed = true;
    for (const r of this.retiredFds.splice(0)) this.io.close(r);
    this.closeFds();
    this.lock?.release();
    if (this.anonymousMemory) MemIo.drop(this.io.dir);
    this.notify();
    if (err) throw err;
  }
}
