import { Filesystem, MemoryStore, type Ctx, type FilesystemOptions, type Timespec } from '../../fs/core/index.js';
import { FsError } from '../../fs/core/errors.js';

export const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
export const USER: Ctx = { uid: 1000, gid: 1000, pid: 2 };
export const OTHER: Ctx = { uid: 2000, gid: 2000, pid: 3 };

export const b = (s: string): Buffer => Buffer.from(s);

/** A clock tests advance by hand, so timestamp rules are checked without sleeping. */
export class Clock {
  sec = 1_700_000_000;
  nsec = 0;
  now = (): Timespec => ({ sec: this.sec, nsec: this.nsec });
  tick(ns = 1_000_000): void {
    this.nsec += ns;
    while (this.nsec >= 1e9) { this.nsec -= 1e9; this.sec++; }
  }
}

export function errnoOf(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { if (e instanceof FsError) return e.code; throw e; }
  return undefined;
}

export async function errnoOfAsync(fn: () => Promise<unknown>): Promise<string | undefined> {
  try { await fn(); } catch (e) { if (e instanceof FsError) return e.code; throw e; }
  return undefined;
}

export function makeFs(opts: FilesystemOptions = {}, store = new MemoryStore()): { fs: Filesystem; store: MemoryStore; clock: Clock } {
  const clock = new Clock();
  const fs = new Filesystem(store, { rootMode: 0o777, rootUid: 0, rootGid: 0, now: clock.now, commitDelayMs: 60_000, ...opts });
  return { fs, store, clock };
}

/** Creates a file with content (as ctx), returns its ino. */
export function writeFile(fs: Filesystem, ctx: Ctx, parent: number, name: string, data: Buffer | string, mode = 0o644): number {
  const { entry, open } = fs.create(ctx, parent, b(name), mode, 2);
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  if (buf.length) fs.write(ctx, entry.ino, open.fh, 0, buf);
  fs.release(entry.ino, open.fh);
  return entry.ino;
}

export function readFile(fs: Filesystem, ctx: Ctx, ino: number): Buffer {
  const { fh } = fs.open(ctx, ino, 0);
  const size = fs.getattr(ctx, ino).size;
  const out = Buffer.from(fs.read(ctx, ino, fh, 0, size + 1));
  fs.release(ino, fh);
  return out;
}

export function names(fs: Filesystem, ctx: Ctx, ino: number): string[] {
  const { fh } = fs.opendir(ctx, ino, 0);
  const out: string[] = [];
  let off = 0;
  for (;;) {
    const list = fs.readdir(ctx, ino, fh, off, 100);
    if (!list.length) break;
    for (const e of list) { out.push(e.name.toString()); off = e.offset; }
  }
  fs.releasedir(ino, fh);
  return out;
}
