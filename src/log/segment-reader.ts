// The redo log's readers (src/log/engine.ts owns the segments and the write path): random reads
// by position (whole records or slices of one), forward scans by seq or position that survive a
// compaction switching segments under them, and follow(), which waits for appends. Reading at or
// past what is written out first writes the queue out (host.visible), so a reader sees every
// append made before it asked.
import { LogClosedError, LogCorruptError, LogError } from './errors.js';
import { FRAME_HEADER, frameLen, frameOk, frameSeq } from './format.js';
import type { LogIo } from './io.js';
import { Window } from './scan.js';
import type { Seg } from './engine.js';
import type { LogPosition, LogRecord } from './types.js';

/** What the readers need of the engine: its live segment list and descriptors. */
export interface ReaderHost {
  io(): LogIo;
  isReadOnly(): boolean;
  /** The live segment list, oldest first (a compaction replaces segments in it). */
  segments(): Seg[];
  segment(id: number): Seg | undefined;
  hasSegment(id: number): boolean;
  active(): Seg;
  isClosed(): boolean;
  /** Writes the queued frames out, so that reads see them. */
  visible(): void;
  /** The engine's cached read descriptor of `seg`. */
  readFd(seg: Seg): number;
  /** Read-only instances: pick up what the writer appended since. */
  refresh(): void;
  /** Calls `l` at the next change; returns the unsubscription. */
  listen(l: () => void): () => void;
}

export class SegmentReader {
  constructor(private readonly h: ReaderHost) {}

  private get io(): LogIo {
    return this.h.io();
  }

  /** The segment of the frame at `pos`, written out if it is still queued; LogError when outside the log. */
  private segmentOfFrame(pos: LogPosition): Seg {
    if (this.h.isClosed()) throw new LogClosedError('redo log is closed');
    const seg = this.h.segment(pos.segment);
    if (!seg) throw new LogError(`no segment ${pos.segment} in the log`);
    if (seg === this.h.active() && pos.offset >= seg.end) this.h.visible();
    if (!Number.isInteger(pos.offset) || pos.offset < seg.headerLen || pos.offset + FRAME_HEADER > seg.end)
      throw new LogError(`position ${pos.segment}:${pos.offset} is outside the log`);
    return seg;
  }

  read(pos: LogPosition): LogRecord {
    const seg = this.segmentOfFrame(pos);
    const fd = this.h.readFd(seg);
    let b = Buffer.allocUnsafe(Math.min(4096 + FRAME_HEADER, seg.end - pos.offset));
    this.io.pread(fd, b, 0, b.length, pos.offset);
    const len = frameLen(b, 0);
    if (len > seg.end - pos.offset - FRAME_HEADER)
      throw new LogCorruptError(seg.id, pos.offset, seg.name, 'frame length runs past the end of the segment');
    if (FRAME_HEADER + len > b.length) {
      const nb = Buffer.allocUnsafe(FRAME_HEADER + len);
      b.copy(nb, 0);
      this.io.pread(fd, nb, b.length, nb.length - b.length, pos.offset + b.length);
      b = nb;
    }
    if (!frameOk(b, 0, len)) throw new LogCorruptError(seg.id, pos.offset, seg.name, 'frame checksum mismatch');
    return { seq: frameSeq(b, 0), pos: { segment: seg.id, offset: pos.offset }, payload: b.subarray(FRAME_HEADER, FRAME_HEADER + len) };
  }

  fileRange(pos: LogPosition, start: number, length: number): { path: string; offset: number } | null {
    const io = this.io;
    if (this.h.isClosed() || !io.filePath) return null;
    const seg = this.h.segment(pos.segment);
    if (!seg) return null;
    const offset = pos.offset + FRAME_HEADER + start;
    if (start < 0 || length < 0 || pos.offset < seg.headerLen || offset + length > seg.end) return null;
    return { path: io.filePath(seg.name), offset };
  }

  readSlice(pos: LogPosition, start: number, length: number): Buffer {
    const seg = this.segmentOfFrame(pos);
    const fd = this.h.readFd(seg);
    const h = Buffer.allocUnsafe(FRAME_HEADER);
    this.io.pread(fd, h, 0, FRAME_HEADER, pos.offset);
    const len = frameLen(h, 0);
    if (len > seg.end - pos.offset - FRAME_HEADER)
      throw new LogCorruptError(seg.id, pos.offset, seg.name, 'frame length runs past the end of the segment');
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > len)
      throw new LogError(`slice ${start}+${length} is outside the record of ${len} bytes at ${pos.segment}:${pos.offset}`);
    const b = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = this.io.pread(fd, b, got, length - got, pos.offset + FRAME_HEADER + start + got);
      if (n === 0) throw new LogCorruptError(seg.id, pos.offset, seg.name, 'short read');
      got += n;
    }
    return b;
  }

  /** Index in segs and offset of the first record with seq >= `seq` (or the end). */
  private seekSeq(seq: number): { si: number; off: number } {
    let si = 0;
    for (let i = 0; i < this.h.segments().length; i++) if (this.h.segments()[i]!.firstSeq <= seq) si = i;
    for (; si < this.h.segments().length; si++) {
      const seg = this.h.segments()[si]!;
      if (seg.count > 0 && seg.lastSeq < seq && seg !== this.h.active()) continue;
      const w = new Window(this.io, this.h.readFd(seg), 256 << 10);
      let off = seg.headerLen;
      while (off + FRAME_HEADER <= seg.end) {
        const i = w.ensure(off, FRAME_HEADER, seg.end);
        if (frameSeq(w.buf, i) >= seq) return { si, off };
        off += FRAME_HEADER + frameLen(w.buf, i);
      }
      if (seg === this.h.active()) return { si, off: seg.end };
    }
    const last = this.h.segments().length - 1;
    return { si: last, off: this.h.segments()[last]!.end };
  }

  private startOf(from?: { seq?: number; pos?: LogPosition }): { si: number; off: number } {
    if (from?.pos) {
      const si = this.h.segments().findIndex((s) => s.id === from.pos!.segment);
      if (si < 0) throw new LogError(`no segment ${from.pos.segment} in the log`);
      return { si, off: Math.max(from.pos.offset, this.h.segments()[si]!.headerLen) };
    }
    if (from?.seq !== undefined) return this.seekSeq(from.seq);
    return { si: 0, off: this.h.segments()[0]!.headerLen };
  }

  records(from?: { seq?: number; pos?: LogPosition }): Iterable<LogRecord> {
    if (this.h.isClosed()) throw new LogClosedError('redo log is closed');
    this.h.visible();
    const start = this.startOf(from);
    const self = this;
    return {
      *[Symbol.iterator]() {
        for (const r of self.scan(start)) yield r.rec;
      },
    };
  }

  /** Forward reader over the live segment list with its own descriptors (safe across compaction). */
  *scan(start: { si: number; off: number }): Generator<{ rec: LogRecord; next: LogPosition }> {
    let seg: Seg | undefined = this.h.segments()[start.si];
    let off = start.off;
    let lastSeq = 0;
    while (seg) {
      const fd = this.io.openRead(seg.name);
      try {
        const w = new Window(this.io, fd);
        for (;;) {
          if (seg === this.h.active()) this.h.visible();
          if (off + FRAME_HEADER > seg.end) break;
          let i = w.ensure(off, FRAME_HEADER, seg.end);
          const len = frameLen(w.buf, i);
          if (len > seg.end - off - FRAME_HEADER) throw new LogCorruptError(seg.id, off, seg.name, 'frame length runs past the end of the segment');
          if (i + FRAME_HEADER + len > w.buf.length) i = w.ensure(off, FRAME_HEADER + len, seg.end);
          if (!frameOk(w.buf, i, len)) throw new LogCorruptError(seg.id, off, seg.name, 'frame checksum mismatch');
          const seq = frameSeq(w.buf, i);
          const rec: LogRecord = { seq, pos: { segment: seg.id, offset: off }, payload: w.buf.subarray(i + FRAME_HEADER, i + FRAME_HEADER + len) };
          off += FRAME_HEADER + len;
          lastSeq = seq;
          yield { rec, next: { segment: seg.id, offset: off } };
        }
      } finally {
        this.io.close(fd);
      }
      // Next segment in the live list; if ours was compacted away meanwhile, continue by seq.
      const idx = this.h.segments().indexOf(seg);
      if (idx >= 0) {
        seg = this.h.segments()[idx + 1];
        off = seg?.headerLen ?? 0;
      } else {
        const s = this.seekSeq(lastSeq + 1);
        seg = this.h.segments()[s.si];
        off = s.off;
      }
    }
  }

  async *follow(from: { seq?: number; pos?: LogPosition }, signal?: AbortSignal): AsyncIterable<LogRecord> {
    let cursor: { seq?: number; pos?: LogPosition } = from;
    while (!signal?.aborted && !this.h.isClosed()) {
      if (this.h.isReadOnly()) this.h.refresh();
      let start: { si: number; off: number };
      if (cursor.pos && !this.h.hasSegment(cursor.pos.segment)) cursor = { seq: cursor.seq ?? 1 };
      start = this.startOf(cursor);
      this.h.visible();
      for (const { rec, next } of this.scan(start)) {
        cursor = { seq: rec.seq + 1, pos: next };
        yield rec;
        if (signal?.aborted || this.h.isClosed()) return;
        if (cursor.pos && !this.h.hasSegment(cursor.pos.segment)) break;
      }
      if (cursor.pos === undefined && cursor.seq !== undefined) {
        // Nothing yet at or after seq: remember where the end is so we don't rescan.
        const s = this.seekSeq(cursor.seq);
        const seg = this.h.segments()[s.si]!;
        if (s.off >= seg.end) cursor = { seq: cursor.seq, pos: { segment: seg.id, offset: s.off } };
      }
      await this.changed(signal);
    }
  }

  /** Until the log changes (an append, a compaction, close), `signal` aborts, or — read-only — 50 ms pass. */
  private changed(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        off();
        signal?.removeEventListener('abort', done);
        if (timer) clearTimeout(timer);
        resolve();
      };
      const off = this.h.listen(done);
      signal?.addEventListener('abort', done, { once: true });
      // A read-only instance cannot hear the writer (maybe another process): poll.
      if (this.h.isReadOnly()) timer = setTimeout(done, 50);
    });
  }
}
