import type { Ctx, Entry, Fh, Ino, OpenResult, ReadPlan, Timespec } from './api.js';
import type { BlockSource } from './store.js';
import { fsErr } from './errors.js';
import {
  O_ACCMODE, O_APPEND, O_EXCL, O_RDONLY, O_TRUNC, O_WRONLY, S_IFREG, S_ISGID, S_ISUID, SEEK_DATA, SEEK_END, SEEK_HOLE, SEEK_SET,
} from './constants.js';
import type { Inode } from './inode.js';
import { BlockCache } from './block-cache.js';
import { applyFallocate, checkFallocateArgs } from './fallocate.js';
import { checkAccess } from './permissions.js';
import { makeNode } from './ops-namespace.js';
import { type CoreState, type Handle, clearSuidgid } from './core-state.js';

// Files: create, open, read (and the worker hand-offs readPlan/readReady), write, flush, release,
// fsync, fallocate, lseek and copy_file_range — the operations of Filesystem (filesystem.ts) on
// open files.

/**
 * Smallest read handed to workers whole (readPlan): smaller ones are served (and cached) here — for
 * a file of a block or two the hand-off costs more than decrypting it in place (md5sum of a tree).
 */
const READ_PLAN_MIN = 256 * 1024;
/** Fewest missing blocks a read waits for off-thread (readReady); fewer are decrypted in place. */
const FETCH_MIN_BLOCKS = 4;
/** Blocks a sequential reader's fetches run ahead of its reads (1 MiB at 64 KiB blocks). */
const READAHEAD_BLOCKS = 16;
/** Most bytes one copyFileRange call copies (a short copy; the caller asks again for the rest). */
export const MAX_COPY_PER_CALL = 16 * 1024 * 1024;

function tsLe(a: Timespec, b: Timespec): boolean { return a.sec < b.sec || (a.sec === b.sec && a.nsec <= b.nsec); }

function handle(core: CoreState, ino: Ino, fh: Fh): Handle {
  const h = core.handles.get(fh);
  if (h === undefined || h.inode.ino !== ino) throw fsErr('EBADF');
  return h;
}

export function create(core: CoreState, ctx: Ctx, parent: Ino, name: Buffer, mode: number, flags: number): { entry: Entry; open: OpenResult } {
  core.table.maybeEvict();
  core.rw();
  const p = core.parentDir(ctx, parent);
  const key = core.checkName(name);
  checkAccess(ctx, p, 1);
  const existing = core.dirOf(p).get(key);
  if (existing !== undefined) {
    if ((flags & O_EXCL) !== 0) throw fsErr('EEXIST');
    const inode = core.table.get(existing.ino);
    if (inode.isDir) throw fsErr('EISDIR');
    const opened = open(core, ctx, inode.ino, flags);
    return { entry: core.entry(inode), open: opened };
  }
  const inode = makeNode(core, ctx, parent, name, S_IFREG | (mode & 0o7777), 0);
  // The creator may open what it just created whatever the mode says (open(O_CREAT, 0444) for writing).
  const fh = core.newHandle(inode, flags, false);
  return { entry: core.entry(inode), open: { fh, keepCache: true } };
}

export function open(core: CoreState, ctx: Ctx, ino: Ino, flags: number): OpenResult {
  const inode = core.table.get(ino);
  const acc = flags & O_ACCMODE;
  const writes = acc !== O_RDONLY;
  if (inode.isDir && (writes || (flags & O_TRUNC) !== 0)) throw fsErr('EISDIR');
  if (inode.isSymlink) throw fsErr('ELOOP');
  // FIFOs and devices may be opened for writing on a read-only filesystem: nothing is stored.
  if (inode.isReg && (writes || (flags & O_TRUNC) !== 0)) {
    core.rw();
    core.changeable(inode);
  }
  let mask = 0;
  if (acc === O_RDONLY || acc === 2) mask |= 4;
  if (writes || (flags & O_TRUNC) !== 0) mask |= 2;
  checkAccess(ctx, inode, mask);
  if ((flags & O_TRUNC) !== 0 && inode.isReg) {
    const t = core.now();
    core.content.truncate(inode, 0);
    inode.mtime = t;
    inode.ctime = t;
    if (ctx.uid !== 0) clearSuidgid(inode);
    core.touch(inode);
  }
  return { fh: core.newHandle(inode, flags, false), keepCache: true };
}

export function read(core: CoreState, _ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Buffer {
  const h = handle(core, ino, fh);
  if ((h.flags & O_ACCMODE) === O_WRONLY) throw fsErr('EBADF');
  const inode = h.inode;
  if (inode.isDir) throw fsErr('EISDIR');
  if (offset < 0) throw fsErr('EINVAL');
  const out = core.content.read(inode, offset, size);
  readAtime(core, inode);
  core.io.bytesRead += out.length;
  return out;
}

/** The access time a read moves (relatime / strict; nothing for noatime or read-only mounts). */
function readAtime(core: CoreState, inode: Inode): void {
  if (core.atimePolicy === 'noatime' || core.readOnly) return;
  const a = inode.atime;
  if (core.atimePolicy === 'relatime' && !tsLe(a, inode.mtime) && !tsLe(a, inode.ctime)) {
    const t = core.now();
    if (t.sec - a.sec < 86400) return;
    inode.atime = t;
  } else inode.atime = core.now();
  core.committer.markAtime(inode);
}

/**
 * A large read a transport can hand to worker threads whole: every block it touches is committed,
 * clean (not dirty, not in the decrypted cache) and sealed on disk (FsStore.blockSources). Returns
 * the sources of blocks first..last and where the read starts in the first, or null when read()
 * must serve it. Does what read() does besides the data (access mode check, atime).
 */
export function readPlan(core: CoreState, _ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): ReadPlan | null {
  const store = core.store;
  if (store.blockSources === undefined || size < READ_PLAN_MIN) return null;
  const r = readSpan(core, ino, fh, offset, size);
  if (r === null || (r.handle.flags & O_ACCMODE) === O_WRONLY || r.end - offset < READ_PLAN_MIN) return null;
  const { inode, bs, first, last, end } = r;
  const set = core.content.blockSet(inode);
  const pages = inode.pages;
  const indexes: number[] = [];
  for (let i = first; i <= last; i++) {
    if (!set.has(i) || (pages !== null && pages.has(i)) || core.cache.has(ino, i)) return null;
    indexes.push(i);
  }
  const sources = store.blockSources(ino, indexes);
  for (const src of sources) if (src === null) return null;
  readAtime(core, inode);
  core.io.bytesRead += end - offset;
  return { sources: sources as BlockSource[], blockSize: bs, from: offset - first * bs, length: end - offset };
}

/**
 * Makes a read cheap before it happens: blocks of [offset, offset + size) that are neither dirty
 * nor cached are fetched through the store's fetchBlocks (read and decrypted on worker threads),
 * and a sequential reader's next READAHEAD_BLOCKS blocks are fetched too, without waiting.
 * Returns a promise when the request must wait for blocks in flight (the transport then calls
 * read(), which finds them cached), null when read() can run at once. Never rejects: a block the
 * fetch could not deliver is read (and its error reported) by read() as usual.
 */
export function readReady(core: CoreState, _ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Promise<void> | null {
  if (core.store.fetchBlocks === undefined) return null;
  const r = readSpan(core, ino, fh, offset, size);
  if (r === null) return null;
  const { inode, bs, first, last, end } = r;
  const sequential = offset === inode.readNext || offset === 0;
  inode.readNext = end;
  const raLast = sequential ? Math.min(Math.floor((inode.size - 1) / bs), last + READAHEAD_BLOCKS) : last;
  const set = core.content.blockSet(inode);
  const waits: Promise<void>[] = [];
  const now: number[] = [];
  const ahead: number[] = [];
  for (let i = first; i <= raLast; i++) {
    if (!set.has(i) || inode.pages?.has(i) === true || core.cache.has(ino, i)) continue;
    const f = core.fetching.get(BlockCache.key(ino, i));
    if (f !== undefined) { if (i <= last) waits.push(f); continue; }
    (i <= last ? now : ahead).push(i);
  }
  // A small read (the first of a small file, say) is cheaper decrypted in place by read(); the
  // read-ahead of a stream that is already under way still goes to the workers.
  if (now.length >= FETCH_MIN_BLOCKS) waits.push(fetchBlocks(core, inode, now));
  if (ahead.length > 0 && offset > 0) void fetchBlocks(core, inode, ahead);
  if (waits.length === 0) return null;
  return waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => undefined);
}

/** The blocks [first, last] of a file in blocks that a read of [offset, end) through `fh` covers; null: none. */
function readSpan(
  core: CoreState, ino: Ino, fh: Fh, offset: number, size: number,
): { handle: Handle; inode: Inode; bs: number; first: number; last: number; end: number } | null {
  const h = core.handles.get(fh);
  if (h === undefined || h.inode.ino !== ino) return null;
  const inode = h.inode;
  const bs = inode.blockSize;
  if (bs === undefined || !inode.isReg || offset < 0 || size <= 0 || offset >= inode.size) return null;
  const end = Math.min(inode.size, offset + size);
  return { handle: h, inode, bs, first: Math.floor(offset / bs), last: Math.floor((end - 1) / bs), end };
}

function fetchBlocks(core: CoreState, inode: Inode, indexes: number[]): Promise<void> {
  const ino = inode.ino;
  const gen = inode.contentGen;
  const p = core.store.fetchBlocks!(ino, indexes).then((bufs) => {
    // Only if nothing changed meanwhile: no write, no remote change, still the table's inode.
    if (inode.contentGen !== gen || inode.deleted || core.table.peek(ino) !== inode) return;
    for (let j = 0; j < indexes.length; j++) {
      const b = bufs[j];
      const i = indexes[j]!;
      if (b !== undefined && inode.pages?.has(i) !== true) core.cache.set(ino, i, b);
    }
  }, () => undefined).finally(() => {
    for (const i of indexes) core.fetching.delete(BlockCache.key(ino, i));
  });
  for (const i of indexes) core.fetching.set(BlockCache.key(ino, i), p);
  return p;
}

export function write(core: CoreState, ctx: Ctx, ino: Ino, fh: Fh, offset: number, data: Buffer, killSuidgid?: boolean): number {
  const h = handle(core, ino, fh);
  if ((h.flags & O_ACCMODE) === O_RDONLY) throw fsErr('EBADF');
  core.rw();
  const inode = h.inode;
  if (offset < 0) throw fsErr('EINVAL');
  if ((h.flags & O_APPEND) !== 0) offset = inode.size;
  core.content.write(inode, offset, data);
  const t = core.now();
  inode.mtime = t;
  inode.ctime = t;
  if ((ctx.uid !== 0 || killSuidgid) && (inode.mode & (S_ISUID | S_ISGID)) !== 0) clearSuidgid(inode);
  core.io.bytesWritten += data.length;
  return data.length;
}

export function flush(core: CoreState, _ctx: Ctx, ino: Ino, fh: Fh, lockOwner?: bigint | number): void {
  if (lockOwner !== undefined) { core.locks.releaseOwner(ino, lockOwner); core.lockGone(ino); }
  // close(2) of a writer reports a failing commit that holds its data (as NFS reports writeback
  // errors): the data is still in memory, but nothing will persist it while commits fail.
  const h = core.handles.get(fh);
  if (h !== undefined && (h.flags & O_ACCMODE) !== O_RDONLY && core.committer.needsSync(h.inode)) {
    const failed = core.committer.failedWith;
    if (failed !== null) throw failed;
  }
}

export function release(core: CoreState, ino: Ino, fh: Fh): void {
  const h = core.handles.get(fh);
  if (h === undefined || h.inode.ino !== ino) return;
  core.handles.delete(fh);
  if (h.lockOwners) { for (const o of h.lockOwners) core.locks.releaseOwner(ino, BigInt(o)); core.lockGone(ino); }
  h.inode.opens--;
  core.maybeReap(h.inode);
}

export async function fsync(core: CoreState, ino: Ino, _fh: Fh, _datasync: boolean): Promise<void> {
  const inode = core.table.peek(ino);
  const pending = core.committer.pendingError;
  if (pending === null && (inode === undefined || !core.committer.needsSync(inode)) && !core.committer.hasDirt) return;
  await core.committer.durable();
  const err = core.committer.pendingError;
  if (err !== null) {
    core.committer.pendingError = null;
    throw err;
  }
}

export function fallocate(core: CoreState, ctx: Ctx, ino: Ino, fh: Fh, mode: number, offset: number, length: number): void {
  const h = handle(core, ino, fh);
  checkFallocateArgs(mode, offset, length);
  if ((h.flags & O_ACCMODE) === O_RDONLY) throw fsErr('EBADF');
  core.rw();
  const inode = h.inode;
  if (inode.isDir) throw fsErr('EISDIR');
  if (!inode.isReg) throw fsErr('EOPNOTSUPP');
  const changed = applyFallocate(core.content, inode, mode, offset, length);
  const t = core.now();
  inode.ctime = t;
  if (changed) inode.mtime = t;
  if (ctx.uid !== 0) clearSuidgid(inode);
  core.touch(inode);
}

export function lseek(core: CoreState, ino: Ino, fh: Fh, offset: number, whence: number): number {
  const h = handle(core, ino, fh);
  const inode = h.inode;
  switch (whence) {
    case SEEK_SET: if (offset < 0) throw fsErr('EINVAL'); return offset;
    case SEEK_END: { const r = inode.size + offset; if (r < 0) throw fsErr('EINVAL'); return r; }
    case SEEK_DATA: case SEEK_HOLE:
      if (!inode.isReg) throw fsErr('EINVAL');
      return core.content.seek(inode, offset, whence === SEEK_HOLE);
    default: throw fsErr('EINVAL');
  }
}

export function copyFileRange(
  core: CoreState, ctx: Ctx, inIno: Ino, inFh: Fh, inOff: number, outIno: Ino, outFh: Fh, outOff: number, len: number,
): number {
  const hi = handle(core, inIno, inFh);
  const ho = handle(core, outIno, outFh);
  if ((hi.flags & O_ACCMODE) === O_WRONLY) throw fsErr('EBADF');
  if ((ho.flags & O_ACCMODE) === O_RDONLY || (ho.flags & O_APPEND) !== 0) throw fsErr('EBADF');
  core.rw();
  if (hi.inode.isDir || ho.inode.isDir) throw fsErr('EISDIR');
  if (!hi.inode.isReg || !ho.inode.isReg) throw fsErr('EINVAL');
  if (inOff < 0 || outOff < 0 || len < 0) throw fsErr('EINVAL');
  if (hi.inode === ho.inode && inOff < outOff + len && outOff < inOff + len) throw fsErr('EINVAL');
  // copy_file_range may copy less than asked (callers loop; cp asks for the whole file at once).
  // A call runs synchronously and leaves its copy dirty in memory: bounded, so commits and write
  // backpressure get a turn between calls instead of after gigabytes.
  len = Math.min(len, MAX_COPY_PER_CALL);
  let done = 0;
  const chunk = 4 * 1024 * 1024;
  while (done < len) {
    const data = core.content.read(hi.inode, inOff + done, Math.min(chunk, len - done));
    if (data.length === 0) break;
    write(core, ctx, outIno, outFh, outOff + done, data);
    done += data.length;
  }
  return done;
}
