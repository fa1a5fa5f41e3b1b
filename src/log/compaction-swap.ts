// Compaction: the kept records copied into new segments (beside retained old ones), the cut
// certificate over them, and the switch to the new segment set through the MANIFEST.
//
// The engine's state stays in the engine: this module sees it through CompactionHost, the few
// operations a compaction needs (write-out, rotation, the cut point, the switch itself).
import { InjectedCrash, LogCorruptError } from './errors.js';
import { encodeHeader, FRAME_HEADER, frameLen, frameOk, frameSeq, segmentName } from './format.js';
import type { LogIo } from './io.js';
import { pwritevAllAsync } from './pwritev.js';
import { Window } from './scan.js';
import { type CutCertificate, ZERO_HASH, chainStep, cutMessage, recordHash } from './chain-hash.js';
import type { Seg } from './engine.js';
import type { CompactionStep, CompactOptions, CompactResult, LogPosition, LogRecord, SegmentInfo } from './types.js';

// Compaction copy: read/write granularity and the longest stretch of main-thread work between
// yields (pread/pwritev into the page cache of a loaded disk runs at ~150 MB/s here).
const COMPACT_READ_CHUNK = 1 << 20;
const COMPACT_WRITE_CHUNK = 1 << 20;
const COMPACT_SLICE_MS = 4;

/** What a compaction needs of the engine. */
export interface CompactionHost {
  readonly io: LogIo;
  readonly chainId: string;
  readonly genesis: Buffer | null;
  readonly segmentSize: number;
  /** LogClosedError when the log failed or was closed (checked after every await). */
  checkOpen(): void;
  segments(): readonly Seg[];
  active(): Seg;
  /** Seq of the last record queued and the chain hash at the head. */
  cutPoint(): { seq: number; hash: Buffer };
  newSegmentId(): number;
  writeOut(): void;
  rotate(): void;
  visible(): void;
  notify(): void;
  fail(e: Error): void;
  sizeBytes(): number;
  info(seg: Seg): SegmentInfo;
  /** Records the new cut and writes the manifest naming `next` (the durable switch). */
  switchManifest(next: Seg[], cut: CutCertificate, step: (s: CompactionStep) => void): void;
  /** The in-memory segment list becomes `next`; the read descriptors of `dropped` are closed. */
  adopt(next: Seg[], dropped: Seg[]): void;
  /** Forward reader over the live segment list (the engine's scan). */
  scan(start: { si: number; off: number }): Iterable<{ rec: LogRecord }>;
  /** lastPos (and its rollback point) moved to `to` when its segment is gone. */
  repointLastPos(to: LogPosition | null): void;
  lastPos(): LogPosition | null;
}

/** Bounds the main-thread work between yields; checks the log is still open after each. */
class Pacer {
  private sliceStart = performance.now();
  constructor(private readonly host: CompactionHost) {}

  restart(): void {
    this.sliceStart = performance.now();
  }

  async yieldIfDue(): Promise<void> {
    if (performance.now() - this.sliceStart < COMPACT_SLICE_MS) return;
    await new Promise((r) => setImmediate(r));
    this.sliceStart = performance.now();
    this.host.checkOpen();
  }

  async yieldNow(): Promise<void> {
    this.sliceStart = 0;
    await this.yieldIfDue();
  }
}

function datasyncOff(io: LogIo, fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) => io.datasyncAsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** What the copy produced; filled as it goes, so a failure midway can remove what was created. */
interface CopyState {
  created: Seg[];
  // The new segment list up to the tail, in seq order: created segments and retained old ones.
  order: Seg[];
  fds: Map<number, number>;
  positions: Map<number, LogPosition>;
  /** Running chain hash of the kept records (the cut certificate's `kept`). */
  kept: Buffer;
}

/** Copies the records `keep` accepts out of `old` (all of them from `retained` segments, left in
 *  place); records below `dropBefore` are dropped unread (CompactOptions.dropBefore). */
async function copyKept(
  host: CompactionHost,
  old: readonly Seg[],
  retained: ReadonlySet<Seg>,
  keep: (rec: LogRecord) => boolean,
  st: CopyState,
  pacer: Pacer,
  dropBefore: number,
): Promise<void> {
  const io = host.io;
  let cur: Seg | null = null;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  // Copy writes go to the threadpool; the frames (views of the read window, which is never
  // reused) stay valid until written.
  const flushBatch = async () => {
    if (!cur || batch.length === 0) return;
    const at = cur.end - batchBytes;
    const bufs = batch;
    batch = [];
    batchBytes = 0;
    await pwritevAllAsync(io, st.fds.get(cur.id)!, bufs, at);
    host.checkOpen();
  };
  for (const seg of old) {
    const keepAll = retained.has(seg);
    // Only records the caller declared dead: dropped unread (the switch drops the segment).
    if (!keepAll && dropBefore > 0 && (seg.count === 0 || seg.lastSeq < dropBefore)) continue;
    if (keepAll) {
      // Kept in place: the next copied record starts a new segment after it (seq order).
      await flushBatch();
      cur = null;
      st.order.push(seg);
    }
    const fd = io.openRead(seg.name);
    try {
      const w = new Window(io, fd, COMPACT_READ_CHUNK);
      // Reads on the threadpool too; the window's buffer is then parsed synchronously.
      const ensure = async (at: number, n: number): Promise<number> => {
        if (at >= w.start && at + n <= w.start + w.buf.length) return at - w.start;
        const want = Math.min(Math.max(COMPACT_READ_CHUNK, n), Math.max(0, seg.end - at));
        const b = Buffer.allocUnsafe(want);
        let got = 0;
        while (got < want) {
          const r = await new Promise<number>((resolve, reject) =>
            io.preadAsync(fd, b, got, want - got, at + got, (err, k) => (err ? reject(err) : resolve(k))),
          );
          if (r === 0) break;
          got += r;
        }
        host.checkOpen();
        w.buf = got === want ? b : b.subarray(0, got);
        w.start = at;
        return 0;
      };
      let off = seg.headerLen;
      while (off + FRAME_HEADER <= seg.end) {
        let i = await ensure(off, FRAME_HEADER);
        const len = frameLen(w.buf, i);
        if (len > seg.end - off - FRAME_HEADER) throw new LogCorruptError(seg.id, off, seg.name, 'frame length runs past the end of the segment');
        if (i + FRAME_HEADER + len > w.buf.length) i = await ensure(off, FRAME_HEADER + len);
        if (!frameOk(w.buf, i, len)) throw new LogCorruptError(seg.id, off, seg.name, 'frame checksum mismatch');
        const frame = w.buf.subarray(i, i + FRAME_HEADER + len);
        const rec: LogRecord = { seq: frameSeq(w.buf, i), pos: { segment: seg.id, offset: off }, payload: frame.subarray(FRAME_HEADER) };
        off += frame.length;
        if (keepAll) {
          // Read for the cut certificate's hash of the kept records only; it stays where it is.
          st.kept = chainStep(st.kept, recordHash(rec.payload));
          st.positions.set(rec.seq, rec.pos);
          await pacer.yieldIfDue();
          continue;
        }
        if (rec.seq < dropBefore || !keep(rec)) continue;
        st.kept = chainStep(st.kept, recordHash(rec.payload));
        if (!cur || (cur.end + frame.length > host.segmentSize && cur.count > 0)) {
          await flushBatch();
          const id = host.newSegmentId();
          const header = encodeHeader({ chainId: host.chainId, genesisHash: host.genesis, segment: id, firstSeq: rec.seq });
          const name = segmentName(id);
          const nfd = io.openRw(name, true);
          cur = { id, name, headerLen: header.length, firstSeq: rec.seq, end: header.length, count: 0, lastSeq: 0 };
          st.created.push(cur);
          st.order.push(cur);
          st.fds.set(id, nfd);
          io.pwrite(nfd, header, 0);
        }
        st.positions.set(rec.seq, { segment: cur.id, offset: cur.end });
        batch.push(frame);
        batchBytes += frame.length;
        cur.end += frame.length;
        cur.count++;
        cur.lastSeq = rec.seq;
        if (batchBytes >= COMPACT_WRITE_CHUNK) await flushBatch();
        // Let appends and readers run while a large log is copied.
        await pacer.yieldIfDue();
      }
    } finally {
      io.close(fd);
    }
  }
  await flushBatch();
}

/**
 * Flushes what is buffered and seals the active segment, so that everything up to the cut is in
 * sealed segments.
 */
async function sealActive(host: CompactionHost): Promise<void> {
  // Flush what is buffered and sync it off-thread first, so the rotation's own fdatasync
  // (synchronous: appends must not interleave with it) only covers what arrived meanwhile.
  host.writeOut();
  if (host.active().count > 0) {
    // Own descriptor: an append may rotate (and close activeFd) while this sync runs.
    const pre = host.io.openRw(host.active().name, false);
    try {
      await datasyncOff(host.io, pre);
    } finally {
      host.io.close(pre);
    }
    host.checkOpen();
    host.writeOut();
    if (host.active().count > 0) host.rotate();
  }
}

/** The whole compaction; the caller has checked the log is writable and no other compaction runs. */
export async function compactSegments(
  host: CompactionHost,
  keep: (rec: LogRecord) => boolean,
  opts?: CompactOptions,
): Promise<CompactResult> {
  const io = host.io;
  const step = (s: CompactionStep) => {
    opts?.onStep?.(s);
    if (opts?.failAt === s) throw new InjectedCrash(`injected crash at ${s}`);
  };
  const st: CopyState = { created: [], order: [], fds: new Map(), positions: new Map(), kept: host.genesis ?? ZERO_HASH };
  const retained = new Set<Seg>();
  let switched = false;
  // Compaction runs next to writers on the main thread: every blocking piece is kept small.
  // Bulk fdatasyncs run on the threadpool, the copy goes in slices of a few milliseconds, and
  // only the switch itself (a few small fsyncs) is synchronous.
  const pacer = new Pacer(host);
  try {
    await sealActive(host);
    pacer.restart();
    const old = host.segments().slice(0, -1);
    // Everything up to here is in `old` (no await since the rotation): the cut.
    const { seq: cutSeq, hash: cutHash } = host.cutPoint();
    const bytesBefore = host.sizeBytes();
    const positions = st.positions;
    for (const seg of old) if (opts?.retain?.(host.info(seg))) retained.add(seg);
    await copyKept(host, old, retained, keep, st, pacer, opts?.dropBefore ?? 0);
    // The cut certificate is signed (on the pool) while the new segments are synced.
    const claim = { seq: cutSeq, hash: cutHash, kept: st.kept };
    const signing = opts?.certify
      ? opts.certify(cutMessage(host.chainId, host.genesis, claim))
      : Promise.resolve({ sig: Buffer.alloc(0), signer: Buffer.alloc(0) });
    signing.catch(() => undefined);
    step('after-write-new');
    for (const fd of st.fds.values()) await datasyncOff(io, fd);
    const signed = await signing;
    host.checkOpen();
    step('after-fsync-new');
    // From here to onSwitched no await: appends cannot interleave with the switch.
    host.visible();
    const tail = host.segments().filter((s) => !old.includes(s));
    const next = [...st.order, ...tail];
    const dropped = old.filter((s) => !retained.has(s));
    switched = true;
    host.switchManifest(next, { ...claim, ...signed }, step);
    host.adopt(next, dropped);
    for (const s of tail) for (const { rec } of host.scan({ si: next.indexOf(s), off: s.headerLen })) {
      if (rec.pos.segment !== s.id) break;
      positions.set(rec.seq, rec.pos);
    }
    const lastPos = host.lastPos();
    if (lastPos && !next.some((s) => s.id === lastPos.segment)) {
      const lastKept = [...positions.entries()].pop();
      host.repointLastPos(lastKept ? lastKept[1] : null);
    }
    opts?.onSwitched?.(positions);
    // The switch is durable (manifest renamed, directory fsynced) and the in-memory state is
    // consistent: appends may run again between the deletions (unlinking a large segment
    // takes tens of milliseconds here).
    for (const s of dropped) {
      await pacer.yieldNow();
      io.unlink(s.name);
    }
    step('after-delete-old');
    host.notify();
    return { positions, bytesBefore, bytesAfter: host.sizeBytes() };
  } catch (e) {
    if (e instanceof InjectedCrash || switched) {
      // Like a crash: this instance stops; reopening finds the old or the new state on disk.
      host.fail(e as Error);
    } else {
      for (const s of st.created) {
        try {
          io.unlink(s.name);
        } catch {
          /* leftover; deleted by the next open */
        }
      }
    }
    throw e;
  } finally {
    for (const fd of st.fds.values()) io.close(fd);
  }
}
