/**
 * Path-level operations over the fs core, the way a shell reaches it through a transport: every
 * lookup the kernel would make is made (and forgotten again), handles are opened and released.
 * Shared by the commit-window regression tests and the model-based test of the commit path.
 */
import { createHash } from 'node:crypto';
import { Filesystem, type Ctx } from '../../fs/core/index.js';

export const ROOT_CTX: Ctx = { uid: 0, gid: 0, pid: 1 };
const ctx = ROOT_CTX;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

const split = (path: string): string[] => path.split('/').filter(Boolean);

export class PathFs {
  constructor(readonly fs: Filesystem) {}

  /** The inode of `path` (the lookups made on the way are forgotten again). */
  ino(path: string): number {
    let ino = 1;
    for (const part of split(path)) {
      const e = this.fs.lookup(ctx, ino, Buffer.from(part));
      this.fs.forget(e.ino, 1);
      ino = e.ino;
    }
    return ino;
  }

  private parent(path: string): { dir: number; name: Buffer } {
    const parts = split(path);
    const name = parts.pop();
    if (name === undefined) throw new Error(`no name in '${path}'`);
    return { dir: this.ino(parts.join('/')), name: Buffer.from(name) };
  }

  mkdir(path: string, mode = 0o755): void {
    const { dir, name } = this.parent(path);
    this.fs.forget(this.fs.mkdir(ctx, dir, name, mode).ino, 1);
  }

  /** Creates an empty file (EEXIST if it exists). */
  touch(path: string, mode = 0o644): void {
    const { dir, name } = this.parent(path);
    const { entry, open } = this.fs.create(ctx, dir, name, mode, 2);
    this.fs.release(entry.ino, open.fh);
    this.fs.forget(entry.ino, 1);
  }

  write(path: string, offset: number, data: Buffer): void {
    const ino = this.ino(path);
    const { fh } = this.fs.open(ctx, ino, 2);
    this.fs.write(ctx, ino, fh, offset, data);
    this.fs.release(ino, fh);
  }

  /** Creates (or replaces the content of) a file. */
  writeFile(path: string, data: Buffer, mode = 0o644): void {
    if (this.exists(path)) this.truncate(path, 0);
    else this.touch(path, mode);
    if (data.length) this.write(path, 0, data);
  }

  read(path: string): Buffer {
    const ino = this.ino(path);
    const { fh } = this.fs.open(ctx, ino, 0);
    const out = Buffer.from(this.fs.read(ctx, ino, fh, 0, this.fs.getattr(ctx, ino).size + 1));
    this.fs.release(ino, fh);
    return out;
  }

  unlink(path: string): void { const { dir, name } = this.parent(path); this.fs.unlink(ctx, dir, name); }
  rmdir(path: string): void { const { dir, name } = this.parent(path); this.fs.rmdir(ctx, dir, name); }

  rename(from: string, to: string): void {
    const a = this.parent(from);
    const b = this.parent(to);
    this.fs.rename(ctx, a.dir, a.name, b.dir, b.name, 0);
  }

  link(existing: string, to: string): void {
    const ino = this.ino(existing);
    const { dir, name } = this.parent(to);
    this.fs.forget(this.fs.link(ctx, ino, dir, name).ino, 1);
  }

  truncate(path: string, size: number): void { this.fs.setattr(ctx, this.ino(path), { size }); }
  chmod(path: string, mode: number): void { this.fs.setattr(ctx, this.ino(path), { mode }); }
  setxattr(path: string, name: string, value: Buffer): void { this.fs.setxattr(ctx, this.ino(path), name, value, 0); }
  removexattr(path: string, name: string): void { this.fs.removexattr(ctx, this.ino(path), name); }

  /** fsync of one file (a handle is opened for it, as a process would). */
  async fsync(path: string): Promise<void> {
    const ino = this.ino(path);
    const { fh } = this.fs.open(ctx, ino, 0);
    try { await this.fs.fsync(ino, fh, false); } finally { this.fs.release(ino, fh); }
  }

  exists(path: string): boolean {
    try { this.ino(path); return true; } catch { return false; }
  }

  names(dirIno: number): Buffer[] {
    const { fh } = this.fs.opendir(ctx, dirIno, 0);
    const out: Buffer[] = [];
    let off = 0;
    for (;;) {
      const list = this.fs.readdir(ctx, dirIno, fh, off, 1000);
      if (list.length === 0) break;
      for (const e of list) {
        const n = e.name.toString();
        if (n !== '.' && n !== '..') out.push(Buffer.from(e.name));
      }
      off = list[list.length - 1]!.offset;
    }
    this.fs.releasedir(dirIno, fh);
    return out;
  }

  /**
   * Everything visible about the tree, one line per path in name order: type and mode, link
   * count, size, xattrs and a content hash; hard links show as the same `#n` (first path seen).
   * Times are left out on purpose: callers compare with a model that has none.
   */
  tree(): string[] {
    const out: string[] = [];
    const seen = new Map<number, string>();
    const walk = (dirIno: number, prefix: string): void => {
      const names = this.names(dirIno).sort(Buffer.compare);
      for (const n of names) {
        const e = this.fs.lookup(ctx, dirIno, n);
        const a = e.attr;
        this.fs.forget(e.ino, 1);
        const path = `${prefix}${n.toString()}`;
        const type = a.mode & S_IFMT;
        const xs = this.fs.listxattr(ctx, a.ino).sort().map((x) => `${x}=${this.fs.getxattr(ctx, a.ino, x).toString('hex')}`);
        const id = seen.get(a.ino) ?? path;
        seen.set(a.ino, id);
        let line = `${path} ${type === S_IFDIR ? 'd' : 'f'}${(a.mode & 0o7777).toString(8)} nlink=${a.nlink} id=${id}`;
        if (type === S_IFREG) line += ` size=${a.size} sha=${createHash('sha256').update(this.read(path)).digest('hex').slice(0, 16)}`;
        if (xs.length) line += ` ${xs.join(',')}`;
        out.push(line);
        if (type === S_IFDIR) walk(a.ino, `${path}/`);
      }
    };
    walk(1, '');
    return out;
  }
}
