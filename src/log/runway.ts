// A runway of written zeros past the end of the active segment, so that a durable sync does not
// have to change the file's size.
//
// An fdatasync after an append that grows the file must also commit the new size through the
// filesystem's journal (ext4: one journal commit, shared with every other writer of the disk —
// measured here 0.15-3 ms under load), while one after overwriting blocks that were already written
// only flushes those blocks (0.07-0.12 ms). An fsync of a 4 KiB write is such a sync: it is the
// latency a database on the mount sees. So before a durable sync, when little runway is left, the
// log writes RUNWAY_BYTES of zeros past its last frame; the frames that follow overwrite them.
//
// The zeros are never frames: the open scan takes an all-zero remainder of a segment for its end
// (zeroRemainder), not for a torn tail or damage, and rotation and close cut the runway off, so a
// sealed or closed segment ends at its last frame as before. Only file-backed logs keep a runway;
// a failed zero write (a full disk) turns it off for the rest of the log's life.
import type { LogIo } from './io.js';

export const RUNWAY_BYTES = 1 << 20;
/** Renewed when less than this is left past the frames. */
const RUNWAY_LOW = 128 << 10;
/** Longest remainder zeroRemainder reads (a runway is 1 MiB; anything much larger is not one). */
const ZERO_CHECK_MAX = 64 << 20;
const ZEROS = Buffer.alloc(RUNWAY_BYTES);

export class Runway {
  private fd = -1;
  /** File offset up to which the active segment's file holds frames or zeros. */
  private end = 0;
  private off: boolean;

  /** Bytes of one runway: at most a quarter of a segment (tests use tiny segments). */
  private readonly bytes: number;

  constructor(private readonly io: LogIo, enabled: boolean, segmentSize: number) {
    this.off = !enabled;
    this.bytes = Math.min(RUNWAY_BYTES, Math.max(4096, Math.floor(segmentSize / 4)));
  }

  /** Before a durable sync of `fd`, whose frames end at `dataEnd`: renews the runway when short. */
  renew(fd: number, dataEnd: number): void {
    if (this.off) return;
    // A segment this runway has not seen yet was opened or created ending at its last frame.
    if (fd !== this.fd) {
      this.fd = fd;
      this.end = dataEnd;
    }
    if (this.end - dataEnd >= Math.min(RUNWAY_LOW, this.bytes / 2)) return;
    this.end = Math.max(this.end, dataEnd);
    const to = this.end + this.bytes;
    try {
      // `end` follows the bytes written, so a failure part-way is cut back below.
      while (this.end < to) this.end += this.io.pwrite(fd, ZEROS.subarray(0, to - this.end), this.end);
    } catch {
      // No room for it (or another write error): give back what was written of it; the frames'
      // own writes report what matters.
      this.off = true;
      this.cut(fd, dataEnd);
    }
  }

  /** Cuts the runway off `fd` (rotation, close, a failed write): the file ends at `dataEnd`. */
  cut(fd: number, dataEnd: number): void {
    if (fd === this.fd && this.end > dataEnd) {
      try {
        this.io.truncate(fd, dataEnd);
      } catch {
        // Left as it is: the next open takes the zeros for the end of the segment.
      }
    }
    if (fd === this.fd) this.end = dataEnd;
  }
}

/**
 * Whether [from, size) of the file holds only zero bytes: a runway a crash (or a writer still
 * running) left past the last frame. Bounded: a larger remainder is never a runway.
 */
export function zeroRemainder(io: LogIo, fd: number, from: number, size: number): boolean {
  if (size <= from || size - from > ZERO_CHECK_MAX) return false;
  const b = Buffer.allocUnsafe(Math.min(RUNWAY_BYTES, size - from));
  for (let at = from; at < size;) {
    const n = io.pread(fd, b, 0, Math.min(b.length, size - at), at);
    if (n <= 0) return false;
    if (!b.subarray(0, n).equals(ZEROS.subarray(0, n))) return false;
    at += n;
  }
  return true;
}
