import type { Attr, Ctx, DirEntry, Fh, FsCore, Ino, SetAttr } from '../core/api.js';
import { FsError, isMissingKey, toErrno } from '../core/errors.js';
import { PathCache } from './path-cache.js';
import { direntStat, statArray, statfsArray, timespecOfMs } from './stat.js';

/**
 * Maps fuse-native's path-based handlers (libfuse 2 high-level API) onto the inode-based FsCore.
 *
 * The methods here replace fuse-native's own `_op_<name>` methods on the Fuse instance (see
 * index.ts), so a request costs: fuse-native's dispatch -> one of these -> the core -> signal.
 * Conventions of fuse-native's native side that shape the code:
 *  - the first argument of `signal` is the result: 0 / a byte count / a *negative* errno;
 *  - read, write and the xattr handlers must pass their buffer's ArrayBuffer back to `signal`,
 *    which detaches it (passing nothing makes the addon's assert abort the process);
 *  - those buffers point into libfuse memory valid only until `signal`: the core's read/write are
 *    synchronous and copy what they keep, so no copy is made here;
 *  - the caller's uid/gid/pid are not exposed (libfuse's fuse_get_context is not bound), so every
 *    request runs as the mounting user; the kernel enforces modes (default_permissions), and new
 *    files are owned by the mounting user whoever creates them (the kernel transport gets it right);
 *  - names and symlink targets cross as UTF-8 JS strings: bytes that are not UTF-8 are replaced.
 * Because every caller looks like the mounting user, a mount that lets other users in
 * (--allow-other) strips setuid and setgid from every mode it is given for anything but a
 * directory (create, mknod, chmod), and setuid from directories (mkdir, chmod): otherwise anyone
 * could make a file the chain records as the mounting user's — root's, when root mounts — with
 * setuid or setgid on, which any mount without nosuid, or a `cp -a` out of it, would honour.
 * setgid on a directory stays: it only passes the directory's group on to new entries, which
 * grants nothing here (every entry gets the mounting user's ids anyway). The mounting user cannot
 * set the stripped bits either (the two are indistinguishable); the kernel transport sees the
 * caller and has no such limit.
 */

type Signal = (res: number, ...rest: unknown[]) => void;

/** The handlers implemented, in fuse-native's op names (also the counter keys). */
export const FUSE_NATIVE_OPS = [
  'access', 'statfs', 'getattr', 'flush', 'fsync', 'fsyncdir', 'readdir', 'truncate', 'ftruncate',
  'utimens', 'readlink', 'chown', 'chmod', 'mknod', 'setxattr', 'getxattr', 'listxattr', 'removexattr',
  'open', 'read', 'write', 'release', 'create', 'unlink', 'rename', 'link', 'symlink', 'mkdir', 'rmdir',
] as const;
export type FuseNativeOp = typeof FUSE_NATIVE_OPS[number];

const TWO32 = 4294967296;
const EIO = 5;
const ERANGE = 34;
const O_RDWR = 2;
const O_CREAT = 0o100;
const UNSET_ID = 0xffffffff;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const DIR_BATCH = 4096;
const BACKPRESSURE_MAX_MS = 5000;

function split(path: string): { parent: string; name: Buffer; cut: number } {
  const cut = path.lastIndexOf('/');
  return { parent: cut <= 0 ? '/' : path.slice(0, cut), name: Buffer.from(path.slice(cut + 1)), cut };
}

export class FuseNativeAdapter {
  readonly counts: Record<FuseNativeOp, number>;
  readonly cache: PathCache;
  /** Open handle -> inode, so I/O on a handle needs no path lookup (and survives renames). */
  private readonly fhIno = new Map<Fh, Ino>();
  /** The last unexpected (non-FsError) failure, for the status panel. */
  lastError: { at: number; op: string; message: string } | null = null;
  errors = 0;

  /** Mode bits a request may not set on files / on directories (--allow-other; see above). */
  private readonly deniedFileBits: number;
  private readonly deniedDirBits: number;

  constructor(
    private readonly core: FsCore,
    private readonly ctx: Ctx,
    private readonly onError?: (op: string, err: unknown) => void,
    o: { stripSetId?: boolean } = {},
  ) {
    this.deniedFileBits = o.stripSetId ? S_ISUID | S_ISGID : 0;
    this.deniedDirBits = o.stripSetId ? S_ISUID : 0;
    this.cache = new PathCache(core, ctx);
    const counts = {} as Record<FuseNativeOp, number>;
    for (const op of FUSE_NATIVE_OPS) counts[op] = 0;
    this.counts = counts;
  }

  private fail(op: string, err: unknown): number {
    const n = toErrno(err);
    if (!(err instanceof FsError) && !isMissingKey(err)) {
      this.errors++;
      this.lastError = { at: Date.now(), op, message: (err as Error)?.message ?? String(err) };
      try { this.onError?.(op, err); } catch { /* a logger must not break a request */ }
    }
    return -(n || EIO);
  }

  private inoOf(fh: Fh, path: string): Ino {
    return this.fhIno.get(fh) ?? this.cache.resolve(path);
  }

  // --- attributes

  getattr(signal: Signal, path: string): void {
    this.counts.getattr++;
    try {
      signal(0, statArray(this.core.getattr(this.ctx, this.cache.resolve(path))));
    } catch (e) { signal(this.fail('getattr', e)); }
  }

  access(signal: Signal, path: string, mode: number): void {
    this.counts.access++;
    try {
      this.core.access(this.ctx, this.cache.resolve(path), mode);
      signal(0);
    } catch (e) { signal(this.fail('access', e)); }
  }

  private setattr(op: FuseNativeOp, signal: Signal, path: string, set: SetAttr, fh?: Fh): void {
    this.counts[op]++;
    try {
      const ino = fh !== undefined ? this.inoOf(fh, path) : this.cache.resolve(path);
      if (set.mode !== undefined && this.deniedFileBits) {
        const dir = (this.core.getattr(this.ctx, ino).mode & S_IFMT) === S_IFDIR;
        set = { ...set, mode: set.mode & ~(dir ? this.deniedDirBits : this.deniedFileBits) };
      }
      this.core.setattr(this.ctx, ino, set, fh) as Attr;
      signal(0);
    } catch (e) { signal(this.fail(op, e)); }
  }

  chmod(signal: Signal, path: string, mode: number): void {
    this.setattr('chmod', signal, path, { mode: mode & 0o7777 });
  }

  chown(signal: Signal, path: string, uid: number, gid: number): void {
    const set: SetAttr = {};
    if (uid !== UNSET_ID) set.uid = uid;
    if (gid !== UNSET_ID) set.gid = gid;
    this.setattr('chown', signal, path, set);
  }

  truncate(signal: Signal, path: string, lo: number, hi: number): void {
    this.setattr('truncate', signal, path, { size: lo + hi * TWO32 });
  }

  ftruncate(signal: Signal, path: string, fh: Fh, lo: number, hi: number): void {
    this.setattr('ftruncate', signal, path, { size: lo + hi * TWO32 }, fh);
  }

  /**
   * fuse-native passes atime twice (mtime is lost in its C code), in milliseconds; libfuse only
   * calls this when both times are set. Best effort: the value is applied to both. See stat.ts.
   */
  utimens(signal: Signal, path: string, aLo: number, aHi: number): void {
    const t = timespecOfMs(aLo + aHi * TWO32);
    this.setattr('utimens', signal, path, { atime: t, mtime: t });
  }

  // --- namespace

  readlink(signal: Signal, path: string): void {
    this.counts.readlink++;
    try {
      signal(0, this.core.readlink(this.ctx, this.cache.resolve(path)).toString());
    } catch (e) { signal(this.fail('readlink', e)); }
  }

  mknod(signal: Signal, path: string, mode: number, dev: number): void {
    this.counts.mknod++;
    try {
      const { parent, name } = split(path);
      const entry = this.core.mknod(this.ctx, this.cache.resolve(parent), name, mode & ~this.deniedFileBits, dev);
      this.cache.adopt(path, entry.ino);
      signal(0);
    } catch (e) { signal(this.fail('mknod', e)); }
  }

  mkdir(signal: Signal, path: string, mode: number): void {
    this.counts.mkdir++;
    try {
      const { parent, name } = split(path);
      const entry = this.core.mkdir(this.ctx, this.cache.resolve(parent), name, mode & ~this.deniedDirBits);
      this.cache.adopt(path, entry.ino);
      signal(0);
    } catch (e) { signal(this.fail('mkdir', e)); }
  }

  /** libfuse's symlink(linkname, path): the first argument is the target. */
  symlink(signal: Signal, target: string, path: string): void {
    this.counts.symlink++;
    try {
      const { parent, name } = split(path);
      const entry = this.core.symlink(this.ctx, this.cache.resolve(parent), name, Buffer.from(target));
      this.cache.adopt(path, entry.ino);
      signal(0);
    } catch (e) { signal(this.fail('symlink', e)); }
  }

  link(signal: Signal, src: string, dest: string): void {
    this.counts.link++;
    try {
      const ino = this.cache.resolve(src);
      const { parent, name } = split(dest);
      const entry = this.core.link(this.ctx, ino, this.cache.resolve(parent), name);
      this.cache.adopt(dest, entry.ino);
      signal(0);
    } catch (e) { signal(this.fail('link', e)); }
  }

  unlink(signal: Signal, path: string): void {
    this.counts.unlink++;
    try {
      const { parent, name } = split(path);
      this.core.unlink(this.ctx, this.cache.resolve(parent), name);
      this.cache.drop(path);
      signal(0);
    } catch (e) { signal(this.fail('unlink', e)); }
  }

  rmdir(signal: Signal, path: string): void {
    this.counts.rmdir++;
    try {
      const { parent, name } = split(path);
      this.core.rmdir(this.ctx, this.cache.resolve(parent), name);
      this.cache.drop(path);
      signal(0);
    } catch (e) { signal(this.fail('rmdir', e)); }
  }

  /** libfuse 2 has no rename flags (RENAME_NOREPLACE/EXCHANGE fail with EINVAL in the kernel). */
  rename(signal: Signal, src: string, dest: string): void {
    this.counts.rename++;
    try {
      const s = split(src);
      const d = split(dest);
      this.core.rename(this.ctx, this.cache.resolve(s.parent), s.name, this.cache.resolve(d.parent), d.name, 0);
      this.cache.drop(src);
      this.cache.drop(dest);
      signal(0);
    } catch (e) { signal(this.fail('rename', e)); }
  }

  // --- files

  /** fuse-native does not pass create's open flags: the kernel applies O_EXCL/O_APPEND itself. */
  create(signal: Signal, path: string, mode: number): void {
    this.counts.create++;
    try {
      const { parent, name } = split(path);
      const { entry, open } = this.core.create(this.ctx, this.cache.resolve(parent), name, mode & ~this.deniedFileBits, O_CREAT | O_RDWR);
      this.cache.adopt(path, entry.ino);
      this.fhIno.set(open.fh, entry.ino);
      signal(0, open.fh);
    } catch (e) { signal(this.fail('create', e)); }
  }

  open(signal: Signal, path: string, flags: number): void {
    this.counts.open++;
    try {
      const ino = this.cache.resolve(path);
      const r = this.core.open(this.ctx, ino, flags);
      this.fhIno.set(r.fh, ino);
      signal(0, r.fh);
    } catch (e) { signal(this.fail('open', e)); }
  }

  read(signal: Signal, path: string, fh: Fh, buf: Buffer, len: number, lo: number, hi: number): void {
    this.counts.read++;
    let ready: Promise<void> | null = null;
    try {
      ready = this.core.readReady?.(this.ctx, this.inoOf(fh, path), fh, lo + hi * TWO32, len) ?? null;
    } catch { /* read() below reports it */ }
    // Blocks are being decrypted on workers: answer when they are in (libfuse keeps `buf` for us).
    if (ready !== null) { void ready.then(() => this.readNow(signal, path, fh, buf, len, lo, hi)); return; }
    this.readNow(signal, path, fh, buf, len, lo, hi);
  }

  private readNow(signal: Signal, path: string, fh: Fh, buf: Buffer, len: number, lo: number, hi: number): void {
    let res: number;
    try {
      const data = this.core.read(this.ctx, this.inoOf(fh, path), fh, lo + hi * TWO32, len);
      res = data.copy(buf, 0, 0, Math.min(data.length, len));
    } catch (e) { res = this.fail('read', e); }
    signal(res, 0, buf.buffer);
  }

  write(signal: Signal, path: string, fh: Fh, buf: Buffer, len: number, lo: number, hi: number): void {
    this.counts.write++;
    let res: number;
    try {
      res = this.core.write(this.ctx, this.inoOf(fh, path), fh, lo + hi * TWO32, len === buf.length ? buf : buf.subarray(0, len));
    } catch (e) { res = this.fail('write', e); }
    // The core has copied the data; when dirty data far outruns the committer, the reply waits,
    // but never longer than BACKPRESSURE_MAX_MS: it is flow control, and a request that never
    // returns leaves its caller in uninterruptible sleep (libfuse 2 has no INTERRUPT for us).
    const wait = this.core.backpressure?.(res > 0 ? res : 0) ?? null;
    if (wait) {
      let done = false;
      const reply = () => { if (!done) { done = true; clearTimeout(timer); signal(res, 0, buf.buffer); } };
      const timer = setTimeout(reply, BACKPRESSURE_MAX_MS);
      wait.then(reply, reply);
      return;
    }
    signal(res, 0, buf.buffer);
  }

  flush(signal: Signal, path: string, fh: Fh): void {
    this.counts.flush++;
    try {
      this.core.flush(this.ctx, this.inoOf(fh, path), fh);
      signal(0);
    } catch (e) { signal(this.fail('flush', e)); }
  }

  release(signal: Signal, path: string, fh: Fh): void {
    this.counts.release++;
    try {
      const ino = this.inoOf(fh, path);
      this.fhIno.delete(fh);
      this.core.release(ino, fh);
      signal(0);
    } catch (e) { signal(this.fail('release', e)); }
  }

  fsync(signal: Signal, path: string, datasync: number, fh: Fh): void {
    this.counts.fsync++;
    let p: Promise<void>;
    try {
      p = this.core.fsync(this.inoOf(fh, path), fh, datasync !== 0);
    } catch (e) { signal(this.fail('fsync', e)); return; }
    p.then(() => signal(0), (e: unknown) => signal(this.fail('fsync', e)));
  }

  // --- directories

  /**
   * fuse-native's readdir gets neither the opendir handle nor an offset and answers with the whole
   * listing at once (libfuse buffers it for the kernel's READDIR calls), so it opens, drains and
   * releases a core directory handle itself; opendir/releasedir are not implemented (libfuse
   * answers them without calling up).
   */
  readdir(signal: Signal, path: string): void {
    this.counts.readdir++;
    try {
      const ino = this.cache.resolve(path);
      const { fh } = this.core.opendir(this.ctx, ino, 0);
      const names: string[] = [];
      const stats: Uint32Array[] = [];
      try {
        let offset = 0;
        for (;;) {
          const batch: DirEntry[] = this.core.readdir(this.ctx, ino, fh, offset, DIR_BATCH);
          if (batch.length === 0) break;
          for (const e of batch) {
            names.push(e.name.toString());
            stats.push(direntStat(e));
          }
          offset = batch[batch.length - 1]!.offset;
        }
      } finally {
        this.core.releasedir(ino, fh);
      }
      signal(0, names, stats);
    } catch (e) { signal(this.fail('readdir', e)); }
  }

  fsyncdir(signal: Signal, path: string, datasync: number): void {
    this.counts.fsyncdir++;
    let ino: Ino;
    let fh: Fh;
    let p: Promise<void>;
    try {
      ino = this.cache.resolve(path);
      fh = this.core.opendir(this.ctx, ino, 0).fh;
      p = this.core.fsyncdir(ino, fh, datasync !== 0);
    } catch (e) { signal(this.fail('fsyncdir', e)); return; }
    p.finally(() => { try { this.core.releasedir(ino, fh); } catch { /* already gone */ } })
      .then(() => signal(0), (e: unknown) => signal(this.fail('fsyncdir', e)));
  }

  // --- extended attributes

  setxattr(signal: Signal, path: string, name: string, value: Buffer, _position: number, flags: number): void {
    this.counts.setxattr++;
    let res = 0;
    try {
      this.core.setxattr(this.ctx, this.cache.resolve(path), name, value, flags);
    } catch (e) { res = this.fail('setxattr', e); }
    signal(res, value.buffer);
  }

  /** The size probe (an empty buffer) returns the length; a too-small buffer is ERANGE. */
  getxattr(signal: Signal, path: string, name: string, out: Buffer): void {
    this.counts.getxattr++;
    let res: number;
    try {
      const value = this.core.getxattr(this.ctx, this.cache.resolve(path), name);
      if (out.length === 0) res = value.length;
      else if (value.length > out.length) res = -ERANGE;
      else res = value.copy(out);
    } catch (e) { res = this.fail('getxattr', e); }
    signal(res, out.buffer);
  }

  listxattr(signal: Signal, path: string, out: Buffer): void {
    this.counts.listxattr++;
    let res: number;
    try {
      const names = this.core.listxattr(this.ctx, this.cache.resolve(path));
      let size = 0;
      for (const n of names) size += Buffer.byteLength(n) + 1;
      if (out.length === 0) res = size;
      else if (size > out.length) res = -ERANGE;
      else {
        let p = 0;
        for (const n of names) { p += out.write(n, p); out[p++] = 0; }
        res = p;
      }
    } catch (e) { res = this.fail('listxattr', e); }
    signal(res, out.buffer);
  }

  removexattr(signal: Signal, path: string, name: string): void {
    this.counts.removexattr++;
    try {
      this.core.removexattr(this.ctx, this.cache.resolve(path), name);
      signal(0);
    } catch (e) { signal(this.fail('removexattr', e)); }
  }

  // --- whole filesystem

  statfs(signal: Signal, _path: string): void {
    this.counts.statfs++;
    try {
      signal(0, statfsArray(this.core.statfs(1)));
    } catch (e) { signal(this.fail('statfs', e)); }
  }
}
