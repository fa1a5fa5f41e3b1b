// The file operations the log needs, behind one small interface so the in-memory mode runs the
// very same engine code (same framing, recovery, rotation and compaction) with no files.
// Everything is synchronous except datasyncAsync: measured here, per-call promise overhead
// dominates small writes, while an fdatasync is long enough to be worth running on the threadpool.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PRIVATE_FILE_MODE } from './private-files.js';

export interface LogIo {
  readonly dir: string;
  list(): string[];
  exists(name: string): boolean;
  /** Open for read+write; `create` fails if it exists (O_EXCL). */
  openRw(name: string, create: boolean): number;
  openRead(name: string): number;
  close(fd: number): void;
  size(fd: number): number;
  pread(fd: number, buf: Uint8Array, off: number, len: number, pos: number): number;
  pwritev(fd: number, bufs: Uint8Array[], pos: number): number;
  pwrite(fd: number, buf: Uint8Array, pos: number): number;
  truncate(fd: number, len: number): void;
  datasync(fd: number): void;
  datasyncAsync(fd: number, cb: (err: Error | null) => void): void;
  /** pread on the threadpool (compaction's copy: cold segments may have left the page cache). */
  preadAsync(fd: number, buf: Uint8Array, off: number, len: number, pos: number, cb: (err: Error | null, read: number) => void): void;
  /** pwritev on the threadpool (compaction's copy: a write into a throttled page cache blocks). */
  pwritevAsync(fd: number, bufs: Uint8Array[], pos: number, cb: (err: Error | null, written: number) => void): void;
  rename(from: string, to: string): void;
  unlink(name: string): void;
  fsyncDir(): void;
  readFile(name: string): Buffer;
  /** Whole-file write + fsync under a temporary name is the caller's business; this only writes. */
  writeFileSync(name: string, data: Uint8Array): void;
  /** Absolute path of a file, for readers on other threads; absent when there are no real files. */
  filePath?(name: string): string;
}

export class NodeIo implements LogIo {
  constructor(readonly dir: string) {}
  private p(name: string) {
    return path.join(this.dir, name);
  }
  filePath(name: string) {
    return path.resolve(this.dir, name);
  }
  list() {
    return fs.readdirSync(this.dir);
  }
  exists(name: string) {
    return fs.existsSync(this.p(name));
  }
  openRw(name: string, create: boolean) {
    return fs.openSync(this.p(name), create ? 'wx+' : 'r+', PRIVATE_FILE_MODE);
  }
  openRead(name: string) {
    return fs.openSync(this.p(name), 'r');
  }
  close(fd: number) {
    fs.closeSync(fd);
  }
  size(fd: number) {
    return fs.fstatSync(fd).size;
  }
  pread(fd: number, buf: Uint8Array, off: number, len: number, pos: number) {
    return fs.readSync(fd, buf, off, len, pos);
  }
  pwritev(fd: number, bufs: Uint8Array[], pos: number) {
    return fs.writevSync(fd, bufs as NodeJS.ArrayBufferView[], pos);
  }
  pwrite(fd: number, buf: Uint8Array, pos: number) {
    return fs.writeSync(fd, buf, 0, buf.length, pos);
  }
  truncate(fd: number, len: number) {
    fs.ftruncateSync(fd, len);
  }
  datasync(fd: number) {
    fs.fdatasyncSync(fd);
  }
  datasyncAsync(fd: number, cb: (err: Error | null) => void) {
    fs.fdatasync(fd, cb);
  }
  preadAsync(fd: number, buf: Uint8Array, off: number, len: number, pos: number, cb: (err: Error | null, read: number) => void) {
    fs.read(fd, buf, off, len, pos, (err, n) => cb(err, n ?? 0));
  }
  pwritevAsync(fd: number, bufs: Uint8Array[], pos: number, cb: (err: Error | null, written: number) => void) {
    fs.writev(fd, bufs as NodeJS.ArrayBufferView[], pos, (err, n) => cb(err, n ?? 0));
  }
  rename(from: string, to: string) {
    fs.renameSync(this.p(from), this.p(to));
  }
  unlink(name: string) {
    fs.unlinkSync(this.p(name));
  }
  fsyncDir() {
    const fd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  readFile(name: string) {
    return fs.readFileSync(this.p(name));
  }
  writeFileSync(name: string, data: Uint8Array) {
    const fd = fs.openSync(this.p(name), 'w', PRIVATE_FILE_MODE);
    try {
      let off = 0;
      while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off, off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * Tests only: a wrapper put around every file-backed LogIo opened after it is set, e.g. to count
 * and order fdatasync calls (durability cannot be observed otherwise: the page cache survives a
 * SIGKILL, so a log that skipped fdatasync passes every crash test). Production never sets it;
 * opening a log then costs one null check and nothing else changes.
 */
let fileIoWrapper: ((io: LogIo) => LogIo) | null = null;

/** Sets (or clears, with null) the wrapper of openFileIo; returns the previous one. */
export function setFileIoWrapper(wrap: ((io: LogIo) => LogIo) | null): ((io: LogIo) => LogIo) | null {
  const prev = fileIoWrapper;
  fileIoWrapper = wrap;
  return prev;
}

/** The LogIo of a log directory on disk (NodeIo, wrapped when a test asked for it). */
export function openFileIo(dir: string): LogIo {
  const io = new NodeIo(dir);
  return fileIoWrapper ? fileIoWrapper(io) : io;
}

/** Growable byte array standing in for a file. */
class MemFile {
  buf = Buffer.alloc(0);
  len = 0;
  ensure(n: number) {
    if (n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(n, this.buf.length * 2, 4096));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  write(src: Uint8Array, pos: number) {
    this.ensure(pos + src.length);
    if (pos > this.len) this.buf.fill(0, this.len, pos);
    this.buf.set(src, pos);
    this.len = Math.max(this.len, pos + src.length);
    return src.length;
  }
}

const memDirs = new Map<string, Map<string, MemFile>>();

/**
 * In-memory directory with POSIX-like semantics: unlinking a name keeps open descriptors
 * working, rename replaces atomically. Directories are shared per name within the process,
 * so reopening a memory log by the same dir sees the same data (like a tmpfs).
 */
export class MemIo implements LogIo {
  private files: Map<string, MemFile>;
  private fds = new Map<number, MemFile>();
  private nextFd = 1;
  constructor(readonly dir: string) {
    let files = memDirs.get(dir);
    if (!files) memDirs.set(dir, (files = new Map()));
    this.files = files;
  }
  static drop(dir: string) {
    memDirs.delete(dir);
  }
  private enoent(name: string): never {
    const e = new Error(`ENOENT: no such file, open '${name}'`) as NodeJS.ErrnoException;
    e.code = 'ENOENT';
    throw e;
  }
  private file(fd: number) {
    const f = this.fds.get(fd);
    if (!f) {
      const e = new Error('EBADF: bad file descriptor') as NodeJS.ErrnoException;
      e.code = 'EBADF';
      throw e;
    }
    return f;
  }
  list() {
    return [...this.files.keys()];
  }
  exists(name: string) {
    return this.files.has(name);
  }
  openRw(name: string, create: boolean) {
    let f = this.files.get(name);
    if (create) {
      if (f) {
        const e = new Error(`EEXIST: file already exists, open '${name}'`) as NodeJS.ErrnoException;
        e.code = 'EEXIST';
        throw e;
      }
      this.files.set(name, (f = new MemFile()));
    }
    if (!f) this.enoent(name);
    const fd = this.nextFd++;
    this.fds.set(fd, f);
    return fd;
  }
  openRead(name: string) {
    return this.openRw(name, false);
  }
  close(fd: number) {
    this.file(fd);
    this.fds.delete(fd);
  }
  size(fd: number) {
    return this.file(fd).len;
  }
  pread(fd: number, buf: Uint8Array, off: number, len: number, pos: number) {
    const f = this.file(fd);
    const n = Math.max(0, Math.min(len, f.len - pos));
    if (n > 0) buf.set(f.buf.subarray(pos, pos + n), off);
    return n;
  }
  pwritev(fd: number, bufs: Uint8Array[], pos: number) {
    const f = this.file(fd);
    let n = 0;
    for (const b of bufs) n += f.write(b, pos + n);
    return n;
  }
  pwrite(fd: number, buf: Uint8Array, pos: number) {
    return this.file(fd).write(buf, pos);
  }
  truncate(fd: number, len: number) {
    const f = this.file(fd);
    f.ensure(len);
    if (len > f.len) f.buf.fill(0, f.len, len);
    f.len = len;
  }
  datasync(fd: number) {
    this.file(fd);
  }
  datasyncAsync(fd: number, cb: (err: Error | null) => void) {
    this.file(fd);
    setImmediate(() => cb(null));
  }
  preadAsync(fd: number, buf: Uint8Array, off: number, len: number, pos: number, cb: (err: Error | null, read: number) => void) {
    let n = 0;
    let err: Error | null = null;
    try {
      n = this.pread(fd, buf, off, len, pos);
    } catch (e) {
      err = e as Error;
    }
    setImmediate(() => cb(err, n));
  }
  pwritevAsync(fd: number, bufs: Uint8Array[], pos: number, cb: (err: Error | null, written: number) => void) {
    let n = 0;
    let err: Error | null = null;
    try {
      n = this.pwritev(fd, bufs, pos);
    } catch (e) {
      err = e as Error;
    }
    setImmediate(() => cb(err, n));
  }
  rename(from: string, to: string) {
    const f = this.files.get(from);
    if (!f) this.enoent(from);
    this.files.delete(from);
    this.files.set(to, f);
  }
  unlink(name: string) {
    if (!this.files.delete(name)) this.enoent(name);
  }
  fsyncDir() {}
  readFile(name: string) {
    const f = this.files.get(name);
    if (!f) this.enoent(name);
    return Buffer.from(f.buf.subarray(0, f.len));
  }
  writeFileSync(name: string, data: Uint8Array) {
    const f = new MemFile();
    f.write(data, 0);
    this.files.set(name, f);
  }
}
