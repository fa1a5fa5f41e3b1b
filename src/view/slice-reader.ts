// Reads one event's bytes out of a large commit record without reading the whole record.
//
// The redo log's API reads whole records (read(pos)); a commit of the filesystem can hold hundreds
// of 64 KiB blocks, and a cold load of one block must not read megabytes. Until the log offers a
// range read, this reads the segment file directly at pos.offset + frame header + span. Nothing
// read this way is trusted: the caller checks the event hash against the index (SHA-256 over the
// exact metadata and payload bytes), which is stronger than the frame's CRC. Any failure (file
// gone after a compaction, short read) returns null and the caller falls back to log.read().
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { FRAME_HEADER, segmentName } from '../log/format.js';

export class SliceReader {
  private readonly fds = new Map<number, number>();

  constructor(private readonly dir: string) {}

  read(segment: number, offset: number, start: number, len: number): Buffer | null {
    try {
      let fd = this.fds.get(segment);
      if (fd === undefined) {
        fd = openSync(join(this.dir, segmentName(segment)), 'r');
        if (this.fds.size >= 64) this.closeAll();
        this.fds.set(segment, fd);
      }
      const b = Buffer.allocUnsafe(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, b, got, len - got, offset + FRAME_HEADER + start + got);
        if (n === 0) return null;
        got += n;
      }
      return b;
    } catch {
      return null;
    }
  }

  /** After a compaction: segment files were replaced (old descriptors would still read old bytes). */
  closeAll(): void {
    for (const fd of this.fds.values()) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    this.fds.clear();
  }
}
