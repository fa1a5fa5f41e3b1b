// Reading frames out of a segment file: the recovery scan (open), the torn-tail test and the
// chunked forward reader used by iteration. Frames are read in large chunks; a fresh chunk buffer
// is allocated per refill so payloads handed out as subarrays stay valid.
import type { LogIo } from './io.js';
import { FRAME_HEADER, frameLen, frameOk, frameSeq } from './format.js';

const CHUNK = 4 << 20;
const TWO32 = 0x1_0000_0000;

/** Buffered window over [start, start + buf.length) of a file. */
export class Window {
  buf: Buffer = Buffer.alloc(0);
  start = 0;
  constructor(
    private io: LogIo,
    private fd: number,
    private chunk = CHUNK,
  ) {}
  /** Makes [off, off + n) available (clamped to `limit`); returns the index of `off` in buf. */
  ensure(off: number, n: number, limit: number): number {
    if (off >= this.start && off + n <= this.start + this.buf.length) return off - this.start;
    const want = Math.min(Math.max(this.chunk, n), Math.max(0, limit - off));
    const b = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const r = this.io.pread(this.fd, b, got, want - got, off + got);
      if (r === 0) break;
      got += r;
    }
    this.buf = got === want ? b : b.subarray(0, got);
    this.start = off;
    return 0;
  }
}

export interface ScanResult {
  end: number; // offset after the last good frame
  count: number;
  lastSeq: number; // 0 when no frame
  lastOff: number; // offset of the last good frame, -1 when none
  bad?: string; // why the frame at `end` did not verify
}

/** Walks verified frames from `from` to `size`; stops at the first frame that does not verify. */
export function scanFrames(
  io: LogIo,
  fd: number,
  from: number,
  size: number,
  prevSeq: number,
  onFrame?: (seq: number, payload: Buffer) => void,
): ScanResult {
  const w = new Window(io, fd);
  let off = from;
  let count = 0;
  let lastOff = -1;
  let bad: string | undefined;
  while (off < size) {
    if (size - off < FRAME_HEADER) {
      bad = 'partial frame header';
      break;
    }
    let i = w.ensure(off, FRAME_HEADER, size);
    const len = frameLen(w.buf, i);
    if (len > size - off - FRAME_HEADER) {
      bad = 'frame extends past the end of the segment';
      break;
    }
    if (i + FRAME_HEADER + len > w.buf.length) i = w.ensure(off, FRAME_HEADER + len, size);
    if (!frameOk(w.buf, i, len)) {
      bad = 'frame checksum mismatch';
      break;
    }
    const seq = frameSeq(w.buf, i);
    if (seq <= prevSeq) {
      bad = `sequence ${seq} does not follow ${prevSeq}`;
      break;
    }
    prevSeq = seq;
    onFrame?.(seq, w.buf.subarray(i + FRAME_HEADER, i + FRAME_HEADER + len));
    lastOff = off;
    count++;
    off += FRAME_HEADER + len;
  }
  return { end: off, count, lastSeq: lastOff >= 0 ? prevSeq : 0, lastOff, ...(bad ? { bad } : {}) };
}

/**
 * Whether any frame that verifies starts after `from` (exclusive). Used only to tell a torn tail
 * (nothing valid after the damage) from damage in the middle; it never resyncs reading.
 * Cheap filters (length fits, seq after prevSeq with the same or next high word) keep the
 * checksum work negligible even on a large damaged remainder.
 */
export function validFrameAfter(io: LogIo, fd: number, from: number, size: number, prevSeq: number): number {
  if (size - from <= FRAME_HEADER) return -1;
  const b = Buffer.allocUnsafe(size - from);
  let got = 0;
  while (got < b.length) {
    const r = io.pread(fd, b, got, b.length - got, from + got);
    if (r === 0) break;
    got += r;
  }
  const hi = Math.floor(prevSeq / TWO32);
  for (let p = 1; p + FRAME_HEADER <= got; p++) {
    const len = b.readUInt32LE(p + 4);
    if (len > got - p - FRAME_HEADER) continue;
    const shi = b.readUInt32LE(p + 12);
    if (shi !== hi && shi !== hi + 1) continue;
    if (frameSeq(b, p) <= prevSeq) continue;
    if (frameOk(b, p, len)) return from + p;
  }
  return -1;
}
