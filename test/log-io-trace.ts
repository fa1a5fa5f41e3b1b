/**
 * Tests only: an ordered trace of what a file-backed redo log asks of the disk (writes and
 * fdatasyncs, per file), installed through the log's I/O seam (setFileIoWrapper). Durability is
 * invisible otherwise — the page cache survives a SIGKILL — so this is how tests see that an
 * append was acknowledged only after an fdatasync covering its bytes had returned.
 *
 * Tests add their own events (mark) to the same sequence, e.g. "append acknowledged".
 * Reads are counted per file (reads), not sequenced: what a step read back.
 */
import { basename, join } from 'node:path';
import { setFileIoWrapper, type LogIo } from '../src/log/io.js';

export type IoEvent =
  | { kind: 'write'; file: string; end: number }
  /** `covers`: bytes of the file written to the OS when the fdatasync started. */
  | { kind: 'sync-start'; file: string; covers: number }
  | { kind: 'sync-end'; file: string; covers: number }
  | { kind: 'mark'; label: string; file?: string; end?: number };

export class IoTrace {
  readonly events: IoEvent[] = [];
  /** Delay every fdatasync's completion by this much: an acknowledgement that does not wait for
   *  it then lands visibly before its sync-end. */
  syncDelayMs = 0;

  /** Bytes read per file (absolute path), by pread and preadAsync: what a step read back. */
  readonly reads = new Map<string, number>();

  /** Bytes read so far from files under `dir`. */
  bytesReadUnder(dir: string): number {
    let n = 0;
    for (const [f, b] of this.reads) if (f.startsWith(join(dir, '/'))) n += b;
    return n;
  }

  mark(label: string, at?: { file: string; end: number }): void {
    this.events.push({ kind: 'mark', label, ...(at ?? {}) });
  }

  syncEnds(): Array<Extract<IoEvent, { kind: 'sync-end' }>> {
    return this.events.filter((e): e is Extract<IoEvent, { kind: 'sync-end' }> => e.kind === 'sync-end');
  }

  /** Index of the first completed fdatasync of `file` covering byte `end`, or -1. */
  firstSyncCovering(file: string, end: number): number {
    return this.events.findIndex((e) => e.kind === 'sync-end' && e.file === file && e.covers >= end);
  }

  /** Wraps every file-backed log opened until the returned function is called. */
  install(): () => void {
    const prev = setFileIoWrapper((io) => new TracedIo(io, this));
    return () => { setFileIoWrapper(prev); };
  }
}

/** Delegates everything to the real NodeIo, recording writes and fdatasyncs in order. */
class TracedIo implements LogIo {
  private names = new Map<number, string>();
  private ends = new Map<string, number>();
  readonly filePath?: (name: string) => string;

  constructor(private readonly io: LogIo, private readonly trace: IoTrace) {
    if (io.filePath) this.filePath = (name) => io.filePath!(name);
  }
  get dir() { return this.io.dir; }

  private wrote(fd: number, pos: number, n: number): void {
    const file = this.names.get(fd) ?? `fd${fd}`;
    const end = Math.max(this.ends.get(file) ?? 0, pos + n);
    this.ends.set(file, end);
    this.trace.events.push({ kind: 'write', file, end });
  }
  private covered(fd: number): { file: string; covers: number } {
    const file = this.names.get(fd) ?? `fd${fd}`;
    return { file, covers: this.ends.get(file) ?? 0 };
  }
  /** Files are named by absolute path: several logs (each with a 000001.seg) may be traced at once. */
  private key(name: string): string {
    return join(this.io.dir, basename(name));
  }
  private opened(fd: number, name: string): number {
    this.names.set(fd, this.key(name));
    return fd;
  }

  list() { return this.io.list(); }
  exists(name: string) { return this.io.exists(name); }
  openRw(name: string, create: boolean) { return this.opened(this.io.openRw(name, create), name); }
  openRead(name: string) { return this.opened(this.io.openRead(name), name); }
  close(fd: number) { this.io.close(fd); this.names.delete(fd); }
  size(fd: number) { return this.io.size(fd); }
  private read(fd: number, n: number): void {
    const file = this.names.get(fd) ?? `fd${fd}`;
    this.trace.reads.set(file, (this.trace.reads.get(file) ?? 0) + n);
  }
  pread(fd: number, buf: Uint8Array, off: number, len: number, pos: number) {
    const n = this.io.pread(fd, buf, off, len, pos);
    this.read(fd, n);
    return n;
  }
  pwritev(fd: number, bufs: Uint8Array[], pos: number) {
    const n = this.io.pwritev(fd, bufs, pos);
    this.wrote(fd, pos, n);
    return n;
  }
  pwrite(fd: number, buf: Uint8Array, pos: number) {
    const n = this.io.pwrite(fd, buf, pos);
    this.wrote(fd, pos, n);
    return n;
  }
  truncate(fd: number, len: number) {
    this.io.truncate(fd, len);
    const file = this.names.get(fd) ?? `fd${fd}`;
    this.ends.set(file, Math.min(this.ends.get(file) ?? 0, len));
  }
  datasync(fd: number) {
    const c = this.covered(fd);
    this.trace.events.push({ kind: 'sync-start', ...c });
    this.io.datasync(fd);
    this.trace.events.push({ kind: 'sync-end', ...c });
  }
  datasyncAsync(fd: number, cb: (err: Error | null) => void) {
    const c = this.covered(fd);
    this.trace.events.push({ kind: 'sync-start', ...c });
    this.io.datasyncAsync(fd, (err) => {
      const done = () => {
        if (!err) this.trace.events.push({ kind: 'sync-end', ...c });
        cb(err);
      };
      if (this.trace.syncDelayMs > 0) setTimeout(done, this.trace.syncDelayMs);
      else done();
    });
  }
  preadAsync(fd: number, buf: Uint8Array, off: number, len: number, pos: number, cb: (err: Error | null, read: number) => void) {
    // The name now: the descriptor may be closed (and forgotten) before the read completes.
    const file = this.names.get(fd) ?? `fd${fd}`;
    this.io.preadAsync(fd, buf, off, len, pos, (err, n) => {
      if (!err) this.trace.reads.set(file, (this.trace.reads.get(file) ?? 0) + n);
      cb(err, n);
    });
  }
  pwritevAsync(fd: number, bufs: Uint8Array[], pos: number, cb: (err: Error | null, written: number) => void) {
    this.io.pwritevAsync(fd, bufs, pos, (err, n) => {
      if (!err) this.wrote(fd, pos, n);
      cb(err, n);
    });
  }
  rename(from: string, to: string) {
    this.io.rename(from, to);
    for (const [fd, n] of this.names) if (n === this.key(from)) this.names.set(fd, this.key(to));
    const end = this.ends.get(this.key(from));
    if (end !== undefined) this.ends.set(this.key(to), end);
  }
  unlink(name: string) { this.io.unlink(name); }
  fsyncDir() { this.io.fsyncDir(); }
  readFile(name: string) { return this.io.readFile(name); }
  writeFileSync(name: string, data: Uint8Array) { this.io.writeFileSync(name, data); }
}
