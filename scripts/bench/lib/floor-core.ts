/**
 * The kernel-transport floor's filesystem: a trivial in-memory FsCore (inode table + a Map per
 * directory), no crypto, no commits, no permission logic beyond what the kernel's
 * default_permissions already does. Served by fs/kernel exactly like atefs's Filesystem, it shows
 * what the transport alone costs. Kernel-visible behaviour that changes request counts follows
 * atefs: the same entry/attr timeouts (the store's cacheTimeout), "." and ".." with zero timeouts
 * in READDIRPLUS, system.* xattrs unsupported.
 */
import type {
  Attr, Ctx, DirEntry, Entry, Fh, FsCore, Ino, OpenResult, PosixLock, SetAttr, StatFs, Timespec,
} from '../../../fs/core/api.js';
import { RENAME_EXCHANGE, RENAME_NOREPLACE } from '../../../fs/core/api.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../../fs/core/constants.js';
import { FsError } from '../../../fs/core/errors.js';

export const CHUNK = 1 << 20;

/** Cuts 1 MiB chunks of file content down to `size` bytes (zeroing the rest of the last one). */
export function shrinkChunks(chunks: Buffer[], size: number): void {
  const ci = Math.floor(size / CHUNK);
  const c = chunks[ci];
  if (c && size - ci * CHUNK < c.length) c.fill(0, size - ci * CHUNK);
  chunks.length = Math.min(chunks.length, ci + 1);
}

interface INode {
  ino: Ino;
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  nlink: number;
  size: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  lookups: number;
  opens: number;
  parent: Ino;
  chunks: Buffer[] | null;
  children: Map<string, Ino> | null;   // name (latin1: bytes preserved) -> ino
  target: Buffer | null;
  xattrs: Map<string, Buffer> | null;
}

const err = (code: ConstructorParameters<typeof FsError>[0]): FsError => new FsError(code);
const key = (name: Buffer): string => name.toString('latin1');

function nowTs(): Timespec {
  const ms = Date.now();
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: (ms - sec * 1000) * 1e6 };
}

export class FloorCore implements FsCore {
  private readonly table = new Map<Ino, INode>();
  private readonly handles = new Map<Fh, INode>();
  private readonly dirHandles = new Map<Fh, Array<{ name: Buffer; ino: Ino }>>();
  private nextIno = 2;
  private nextFh = 1;
  onInvalidate?: FsCore['onInvalidate'];

  constructor(private readonly cacheTimeout = 60) {
    const root = this.make(S_IFDIR | 0o755, 0, 0, 1);
    root.lookups = Infinity;
    root.nlink = 2;
  }

  private make(mode: number, uid: number, gid: number, ino = this.nextIno++): INode {
    const t = nowTs();
    const n: INode = {
      ino, mode, uid, gid, rdev: 0, nlink: 1, size: 0, atime: t, mtime: t, ctime: t, lookups: 0, opens: 0, parent: 1,
      chunks: (mode & S_IFMT) === S_IFREG ? [] : null,
      children: (mode & S_IFMT) === S_IFDIR ? new Map() : null,
      target: null, xattrs: null,
    };
    this.table.set(ino, n);
    return n;
  }

  private get(ino: Ino): INode {
    const n = this.table.get(ino);
    if (!n) throw err('ENOENT');
    return n;
  }

  private dir(ino: Ino): INode {
    const d = this.get(ino);
    if (!d.children) throw err('ENOTDIR');
    return d;
  }

  private attr(n: INode): Attr {
    return { ino: n.ino, mode: n.mode, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev, size: n.size,
      blocks: Math.ceil(n.size / 512), blksize: 4096, atime: n.atime, mtime: n.mtime, ctime: n.ctime };
  }

  private entry(n: INode): Entry {
    n.lookups++;
    return { ino: n.ino, generation: 0, attr: this.attr(n), entryTimeout: this.cacheTimeout, attrTimeout: this.cacheTimeout };
  }

  private reap(n: INode): void {
    if (n.nlink > 0 || n.lookups > 0 || n.opens > 0) return;
    this.table.delete(n.ino);
  }

  private touchDir(d: INode): void { d.mtime = d.ctime = nowTs(); }

  private add(ctx: Ctx, parent: Ino, name: Buffer, mode: number): INode {
    if (name.length > 255) throw err('ENAMETOOLONG');
    const d = this.dir(parent);
    const k = key(name);
    if (d.children!.has(k)) throw err('EEXIST');
    const n = this.make(mode, ctx.uid, ctx.gid);
    n.parent = parent;
    d.children!.set(k, n.ino);
    if (n.children) { n.nlink = 2; d.nlink++; }
    this.touchDir(d);
    return n;
  }

  lookup(_ctx: Ctx, parent: Ino, name: Buffer): Entry {
    const d = this.dir(parent);
    const ino = d.children!.get(key(name));
    if (ino === undefined) throw err('ENOENT');
    return this.entry(this.get(ino));
  }

  forget(ino: Ino, nlookup: number): void {
    const n = this.table.get(ino);
    if (!n || ino === 1) return;
    n.lookups = Math.max(0, n.lookups - nlookup);
    this.reap(n);
  }

  getattr(_ctx: Ctx, ino: Ino): Attr { return this.attr(this.get(ino)); }

  setattr(_ctx: Ctx, ino: Ino, set: SetAttr, _fh?: Fh): Attr {
    const n = this.get(ino);
    const t = nowTs();
    if (set.mode !== undefined) n.mode = (n.mode & S_IFMT) | (set.mode & 0o7777);
    if (set.uid !== undefined) n.uid = set.uid;
    if (set.gid !== undefined) n.gid = set.gid;
    if (set.killSuidgid) n.mode &= ~0o6000;
    if (set.size !== undefined) { this.truncate(n, set.size); n.mtime = t; }
    if (set.atime !== undefined) n.atime = set.atime === 'now' ? t : set.atime;
    if (set.mtime !== undefined) n.mtime = set.mtime === 'now' ? t : set.mtime;
    n.ctime = set.ctime ?? t;
    return this.attr(n);
  }

  access(): void { /* default_permissions: the kernel checks modes */ }

  readlink(_ctx: Ctx, ino: Ino): Buffer {
    const n = this.get(ino);
    if (!n.target) throw err('EINVAL');
    return n.target;
  }

  mknod(ctx: Ctx, parent: Ino, name: Buffer, mode: number, rdev: number): Entry {
    const n = this.add(ctx, parent, name, mode);
    n.rdev = rdev;
    return this.entry(n);
  }

  mkdir(ctx: Ctx, parent: Ino, name: Buffer, mode: number): Entry {
    return this.entry(this.add(ctx, parent, name, S_IFDIR | (mode & 0o7777)));
  }

  symlink(ctx: Ctx, parent: Ino, name: Buffer, target: Buffer): Entry {
    const n = this.add(ctx, parent, name, S_IFLNK | 0o777);
    n.target = Buffer.from(target);
    n.size = target.length;
    return this.entry(n);
  }

  link(_ctx: Ctx, ino: Ino, newParent: Ino, newName: Buffer): Entry {
    const n = this.get(ino);
    if (n.children) throw err('EPERM');
    const d = this.dir(newParent);
    const k = key(newName);
    if (d.children!.has(k)) throw err('EEXIST');
    d.children!.set(k, ino);
    n.nlink++;
    n.ctime = nowTs();
    this.touchDir(d);
    return this.entry(n);
  }

  private remove(d: INode, k: string, n: INode): void {
    d.children!.delete(k);
    if (n.children) { d.nlink--; n.nlink = 0; } else n.nlink--;
    n.ctime = nowTs();
    this.touchDir(d);
    this.reap(n);
  }

  unlink(_ctx: Ctx, parent: Ino, name: Buffer): void {
    const d = this.dir(parent);
    const k = key(name);
    const ino = d.children!.get(k);
    if (ino === undefined) throw err('ENOENT');
    const n = this.get(ino);
    if (n.children) throw err('EISDIR');
    this.remove(d, k, n);
  }

  rmdir(_ctx: Ctx, parent: Ino, name: Buffer): void {
    const d = this.dir(parent);
    const k = key(name);
    const ino = d.children!.get(k);
    if (ino === undefined) throw err('ENOENT');
    const n = this.get(ino);
    if (!n.children) throw err('ENOTDIR');
    if (n.children.size) throw err('ENOTEMPTY');
    this.remove(d, k, n);
  }

  private isAncestor(a: Ino, b: Ino): boolean {
    for (let x = b; ; x = this.get(x).parent) {
      if (x === a) return true;
      if (x === 1) return false;
    }
  }

  rename(_ctx: Ctx, parent: Ino, name: Buffer, newParent: Ino, newName: Buffer, flags: number): void {
    const sd = this.dir(parent);
    const dd = this.dir(newParent);
    const sk = key(name);
    const dk = key(newName);
    const sino = sd.children!.get(sk);
    if (sino === undefined) throw err('ENOENT');
    const s = this.get(sino);
    if (s.children && this.isAncestor(sino, newParent)) throw err('EINVAL');
    const dino = dd.children!.get(dk);
    if (dino === sino) return;
    if (flags & RENAME_EXCHANGE) {
      if (dino === undefined) throw err('ENOENT');
      const d = this.get(dino);
      sd.children!.set(sk, dino);
      dd.children!.set(dk, sino);
      s.parent = newParent; d.parent = parent;
      if (!!s.children !== !!d.children && parent !== newParent) {
        const delta = s.children ? 1 : -1;
        dd.nlink += delta; sd.nlink -= delta;
      }
      this.touchDir(sd); this.touchDir(dd);
      return;
    }
    if (dino !== undefined) {
      if (flags & RENAME_NOREPLACE) throw err('EEXIST');
      const d = this.get(dino);
      if (d.children) {
        if (!s.children) throw err('EISDIR');
        if (d.children.size) throw err('ENOTEMPTY');
      } else if (s.children) throw err('ENOTDIR');
      this.remove(dd, dk, d);
    }
    sd.children!.delete(sk);
    dd.children!.set(dk, sino);
    if (s.children && parent !== newParent) { sd.nlink--; dd.nlink++; }
    s.parent = newParent;
    s.ctime = nowTs();
    this.touchDir(sd); this.touchDir(dd);
  }

  private open1(n: INode): OpenResult {
    n.opens++;
    const fh = this.nextFh++;
    this.handles.set(fh, n);
    return { fh };
  }

  create(ctx: Ctx, parent: Ino, name: Buffer, mode: number, _flags: number): { entry: Entry; open: OpenResult } {
    const n = this.add(ctx, parent, name, (mode & S_IFMT) ? mode : S_IFREG | mode);
    return { entry: this.entry(n), open: this.open1(n) };
  }

  open(_ctx: Ctx, ino: Ino, flags: number): OpenResult {
    const n = this.get(ino);
    if (flags & 0o1000 /* O_TRUNC */) this.truncate(n, 0);
    return this.open1(n);
  }

  read(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, size: number): Buffer {
    const n = this.handles.get(fh) ?? this.get(ino);
    const end = Math.min(n.size, offset + size);
    if (end <= offset) return Buffer.alloc(0);
    const ci = Math.floor(offset / CHUNK);
    const off = offset - ci * CHUNK;
    const c = n.chunks![ci];
    // Within one chunk (the common case): a view, no copy; the transport writes it out at once.
    if (off + (end - offset) <= CHUNK && c && off + (end - offset) <= c.length) return c.subarray(off, off + (end - offset));
    const out = Buffer.alloc(end - offset);
    for (let at = offset; at < end;) {
      const i = Math.floor(at / CHUNK);
      const o = at - i * CHUNK;
      const k = Math.min(end - at, CHUNK - o);
      const ch = n.chunks![i];
      if (ch && o < ch.length) ch.copy(out, at - offset, o, Math.min(o + k, ch.length));
      at += k;
    }
    return out;
  }

  write(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, data: Buffer): number {
    const n = this.handles.get(fh) ?? this.get(ino);
    const len = data.length;
    for (let done = 0; done < len;) {
      const at = offset + done;
      const ci = Math.floor(at / CHUNK);
      const off = at - ci * CHUNK;
      const k = Math.min(len - done, CHUNK - off);
      data.copy(this.chunk(n, ci, off + k), off, done, done + k);
      done += k;
    }
    if (offset + len > n.size) n.size = offset + len;
    n.mtime = n.ctime = nowTs();
    return len;
  }

  /** Chunk `ci`, at least `need` bytes long; zero-filled (invariant: bytes past size are zero). */
  private chunk(n: INode, ci: number, need: number): Buffer {
    let c = n.chunks![ci];
    if (ci === 0) {
      if (!c || c.length < need) {
        const g = Buffer.alloc(Math.min(CHUNK, Math.max(need, (c?.length ?? 0) * 2, 4096)));
        if (c) c.copy(g);
        n.chunks![0] = c = g;
      }
    } else if (!c) n.chunks![ci] = c = Buffer.alloc(CHUNK);
    return c;
  }

  private truncate(n: INode, size: number): void {
    if (!n.chunks) throw err(n.children ? 'EISDIR' : 'EINVAL');
    if (size < n.size) shrinkChunks(n.chunks, size);
    n.size = size;
  }

  flush(): void { /* nothing buffered */ }

  release(_ino: Ino, fh: Fh): void {
    const n = this.handles.get(fh);
    if (!n) return;
    this.handles.delete(fh);
    n.opens--;
    this.reap(n);
  }

  fsync(): Promise<void> { return Promise.resolve(); }

  fallocate(_ctx: Ctx, ino: Ino, _fh: Fh, mode: number, offset: number, length: number): void {
    if (mode !== 0) throw err('EOPNOTSUPP');
    const n = this.get(ino);
    if (offset + length > n.size) n.size = offset + length;
  }

  lseek(ino: Ino, _fh: Fh, offset: number, whence: number): number {
    const n = this.get(ino);
    if (offset >= n.size) throw err('ENXIO');
    return whence === 3 /* SEEK_DATA */ ? offset : n.size;
  }

  copyFileRange(ctx: Ctx, inIno: Ino, inFh: Fh, inOff: number, outIno: Ino, outFh: Fh, outOff: number, len: number): number {
    const data = Buffer.from(this.read(ctx, inIno, inFh, inOff, len));
    return this.write(ctx, outIno, outFh, outOff, data);
  }

  opendir(_ctx: Ctx, ino: Ino, _flags = 0): OpenResult {
    const d = this.dir(ino);
    const fh = this.nextFh++;
    const list: Array<{ name: Buffer; ino: Ino }> = [];
    for (const [k, v] of d.children!) list.push({ name: Buffer.from(k, 'latin1'), ino: v });
    this.dirHandles.set(fh, list);
    return { fh };
  }

  private listing(ino: Ino, fh: Fh, offset: number, max: number, plus: boolean): Array<DirEntry & { entry?: Entry }> {
    const d = this.dir(ino);
    let list = this.dirHandles.get(fh);
    if (!list) { this.opendir({ uid: 0, gid: 0, pid: 0 }, ino); list = this.dirHandles.get(this.nextFh - 1)!; }
    const out: Array<DirEntry & { entry?: Entry }> = [];
    const dot = (name: string, n: INode, cookie: number): void => {
      const e: DirEntry & { entry?: Entry } = { name: Buffer.from(name), ino: n.ino, type: S_IFDIR, offset: cookie };
      if (plus) e.entry = { ino: n.ino, generation: 0, attr: this.attr(n), entryTimeout: 0, attrTimeout: 0 };
      out.push(e);
    };
    if (offset < 1 && out.length < max) dot('.', d, 1);
    if (offset < 2 && out.length < max) dot('..', this.table.get(d.parent) ?? d, 2);
    for (let i = Math.max(0, offset - 2); i < list.length && out.length < max; i++) {
      const it = list[i]!;
      const n = this.table.get(it.ino);
      if (!n) continue; // removed since opendir
      const e: DirEntry & { entry?: Entry } = { name: it.name, ino: it.ino, type: n.mode & S_IFMT, offset: i + 3 };
      if (plus) e.entry = this.entry(n);
      out.push(e);
    }
    return out;
  }

  readdir(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): DirEntry[] {
    return this.listing(ino, fh, offset, maxEntries, false);
  }

  readdirplus(_ctx: Ctx, ino: Ino, fh: Fh, offset: number, maxEntries: number): Array<DirEntry & { entry: Entry }> {
    return this.listing(ino, fh, offset, maxEntries, true) as Array<DirEntry & { entry: Entry }>;
  }

  releasedir(_ino: Ino, fh: Fh): void { this.dirHandles.delete(fh); }

  fsyncdir(): Promise<void> { return Promise.resolve(); }

  private xattrNs(name: string): void {
    if (!name.startsWith('user.') && !name.startsWith('security.') && !name.startsWith('trusted.')) throw err('EOPNOTSUPP');
  }

  setxattr(_ctx: Ctx, ino: Ino, name: string, value: Buffer, flags: number): void {
    this.xattrNs(name);
    const n = this.get(ino);
    n.xattrs ??= new Map();
    if (flags === 1 && n.xattrs.has(name)) throw err('EEXIST');
    if (flags === 2 && !n.xattrs.has(name)) throw err('ENODATA');
    n.xattrs.set(name, Buffer.from(value));
    n.ctime = nowTs();
  }

  getxattr(_ctx: Ctx, ino: Ino, name: string): Buffer {
    this.xattrNs(name);
    const v = this.get(ino).xattrs?.get(name);
    if (!v) throw err('ENODATA');
    return v;
  }

  listxattr(_ctx: Ctx, ino: Ino): string[] { return [...(this.get(ino).xattrs?.keys() ?? [])]; }

  removexattr(_ctx: Ctx, ino: Ino, name: string): void {
    this.xattrNs(name);
    if (!this.get(ino).xattrs?.delete(name)) throw err('ENODATA');
  }

  getlk(_ino: Ino, _fh: Fh, _owner: bigint | number, lock: PosixLock): PosixLock { return { ...lock, type: 2 /* F_UNLCK */ }; }
  setlk(): Promise<void> { return Promise.resolve(); }

  statfs(): StatFs {
    return { bsize: 4096, frsize: 4096, blocks: 1 << 24, bfree: 1 << 23, bavail: 1 << 23, files: 1 << 24, ffree: 1 << 23, favail: 1 << 23, namemax: 255 };
  }

  destroy(): Promise<void> { return Promise.resolve(); }
}
