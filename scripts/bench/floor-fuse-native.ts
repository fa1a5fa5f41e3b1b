#!/usr/bin/env node
/**
 * The fuse-native floor: a trivial in-memory filesystem (path-keyed Map) served through fuse-native
 * exactly the way the atefs adapter is (big_writes + use_ino injected through fsname, same op set
 * including xattrs, same kernel timeouts), so the gap between it and atefs is the cost of atefs
 * itself, not of the transport.
 *
 *   node dist/scripts/bench/floor-fuse-native.js <mountpoint> [--stats-file F]
 *        [--entry-timeout S] [--attr-timeout S] [--op-timeout-ms N] [--no-default-permissions]
 *
 * Prints `mounted: <dir>` when ready. SIGUSR2 writes per-op counters to the stats file; SIGTERM /
 * SIGINT unmount and exit. Runs in its own process: a process serving a FUSE mount must never make
 * synchronous fs calls on it, and fuse-native binds the main loop.
 */
import Fuse from 'fuse-native';
import { resolve } from 'node:path';
import { writeCountersFile } from './lib/stats-file.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const ERR = (name: string): number => Fuse[name] as number;

interface Node {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  nlink: number;
  size: number;
  data: Buffer;       // capacity >= size for regular files
  atime: number;      // ms since the epoch, what fuse-native speaks
  mtime: number;
  ctime: number;
  target?: string;
  children?: Map<string, Node>;
  xattrs?: Map<string, Buffer>;
}

interface Args { dir: string; statsFile?: string; entryTimeout: number; attrTimeout: number; opTimeoutMs: number | false; defaultPermissions: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { dir: '', entryTimeout: 1, attrTimeout: 1, opTimeoutMs: 15000, defaultPermissions: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => { const x = argv[++i]; if (x === undefined) throw new Error(`${k} needs a value`); return x; };
    if (k === '--stats-file') a.statsFile = resolve(v());
    else if (k === '--entry-timeout') a.entryTimeout = Number(v());
    else if (k === '--attr-timeout') a.attrTimeout = Number(v());
    else if (k === '--op-timeout-ms') { const n = Number(v()); a.opTimeoutMs = n > 0 ? n : false; }
    else if (k === '--no-default-permissions') a.defaultPermissions = false;
    else if (k.startsWith('--')) throw new Error(`unknown option ${k}`);
    else a.dir = resolve(k);
  }
  if (!a.dir) throw new Error('usage: floor-fuse-native <mountpoint> [--stats-file F]');
  return a;
}

const args = parseArgs(process.argv.slice(2));
const counts: Record<string, number> = Object.create(null) as Record<string, number>;
const count = (op: string): void => { counts[op] = (counts[op] ?? 0) + 1; };

let nextIno = 1;
const now = (): number => Date.now();
function newNode(mode: number, extra: Partial<Node> = {}): Node {
  const t = now();
  return { ino: nextIno++, mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, rdev: 0, nlink: 1, size: 0, data: EMPTY, atime: t, mtime: t, ctime: t, ...extra };
}
const EMPTY = Buffer.alloc(0);

const root = newNode(S_IFDIR | 0o755, { nlink: 2, children: new Map() });
const byPath = new Map<string, Node>([['/', root]]);

const parentOf = (p: string): string => { const i = p.lastIndexOf('/'); return i <= 0 ? '/' : p.slice(0, i); };
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const isDir = (n: Node): boolean => (n.mode & S_IFMT) === S_IFDIR;

function stat(n: Node): object {
  return { mode: n.mode, uid: n.uid, gid: n.gid, size: n.size, dev: 0, nlink: n.nlink, ino: n.ino, rdev: n.rdev,
    blksize: 4096, blocks: Math.ceil(n.size / 512), atime: n.atime, mtime: n.mtime, ctime: n.ctime };
}

/** Inserts a new node at `p`; returns an errno (negative) or 0. */
function insert(p: string, n: Node): number {
  const dir = byPath.get(parentOf(p));
  if (!dir || !dir.children) return ERR('ENOENT');
  if (byPath.has(p)) return ERR('EEXIST');
  dir.children.set(baseOf(p), n);
  byPath.set(p, n);
  if (isDir(n)) dir.nlink++;
  dir.mtime = dir.ctime = now();
  return 0;
}

function detach(p: string): Node | undefined {
  const n = byPath.get(p);
  const dir = byPath.get(parentOf(p));
  if (!n || !dir?.children) return undefined;
  dir.children.delete(baseOf(p));
  byPath.delete(p);
  if (isDir(n)) dir.nlink--;
  dir.mtime = dir.ctime = now();
  return n;
}

function ensureCapacity(n: Node, size: number): void {
  if (n.data.length >= size) return;
  const cap = Math.max(size, Math.min(n.data.length * 2, size + (64 << 20)), 4096);
  const b = Buffer.allocUnsafe(cap);
  n.data.copy(b, 0, 0, n.size);
  n.data = b;
}

function setSize(n: Node, size: number): void {
  if (size > n.size) { ensureCapacity(n, size); n.data.fill(0, n.size, size); }
  n.size = size;
  n.mtime = n.ctime = now();
}

type Cb = (...a: any[]) => void;
const ops: Record<string, (...a: any[]) => void> = {
  getattr(p: string, cb: Cb) { count('getattr'); const n = byPath.get(p); n ? cb(0, stat(n)) : cb(ERR('ENOENT')); },
  fgetattr(p: string, _fd: number, cb: Cb) { count('fgetattr'); const n = byPath.get(p); n ? cb(0, stat(n)) : cb(ERR('ENOENT')); },
  access(_p: string, _mode: number, cb: Cb) { count('access'); cb(0); },
  statfs(_p: string, cb: Cb) {
    count('statfs');
    cb(0, { bsize: 4096, frsize: 4096, blocks: 1 << 24, bfree: 1 << 23, bavail: 1 << 23, files: 1 << 24, ffree: 1 << 23, favail: 1 << 23, fsid: 0, flag: 0, namemax: 255 });
  },
  readdir(p: string, cb: Cb) {
    count('readdir');
    const n = byPath.get(p);
    if (!n?.children) return cb(ERR('ENOTDIR'));
    const names = ['.', '..'];
    for (const k of n.children.keys()) names.push(k);
    cb(0, names);
  },
  opendir(_p: string, _flags: number, cb: Cb) { count('opendir'); cb(0, 0); },
  releasedir(_p: string, _fd: number, cb: Cb) { count('releasedir'); cb(0); },
  open(p: string, _flags: number, cb: Cb) { count('open'); byPath.has(p) ? cb(0, 0) : cb(ERR('ENOENT')); },
  create(p: string, mode: number, cb: Cb) {
    count('create');
    const e = insert(p, newNode((mode & S_IFMT) ? mode : S_IFREG | mode));
    e ? cb(e) : cb(0, 0);
  },
  release(_p: string, _fd: number, cb: Cb) { count('release'); cb(0); },
  flush(_p: string, _fd: number, cb: Cb) { count('flush'); cb(0); },
  fsync(_p: string, _ds: number, _fd: number, cb: Cb) { count('fsync'); cb(0); },
  fsyncdir(_p: string, _ds: number, _fd: number, cb: Cb) { count('fsyncdir'); cb(0); },
  read(p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
    count('read');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    if (pos >= n.size) return cb(0);
    const end = Math.min(n.size, pos + len);
    n.data.copy(buf, 0, pos, end);
    cb(end - pos);
  },
  write(p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
    count('write');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    const end = pos + len;
    if (end > n.size) { ensureCapacity(n, end); if (pos > n.size) n.data.fill(0, n.size, pos); n.size = end; }
    buf.copy(n.data, pos, 0, len); // the buffer is libfuse memory, valid only during this call
    n.mtime = n.ctime = now();
    cb(len);
  },
  truncate(p: string, size: number, cb: Cb) { count('truncate'); const n = byPath.get(p); if (!n) return cb(ERR('ENOENT')); setSize(n, size); cb(0); },
  ftruncate(p: string, _fd: number, size: number, cb: Cb) { count('ftruncate'); const n = byPath.get(p); if (!n) return cb(ERR('ENOENT')); setSize(n, size); cb(0); },
  utimens(p: string, atime: number, mtime: number, cb: Cb) {
    count('utimens');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    n.atime = atime; n.mtime = mtime; n.ctime = now();
    cb(0);
  },
  chown(p: string, uid: number, gid: number, cb: Cb) {
    count('chown');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    if (uid !== 0xffffffff && uid !== -1) n.uid = uid;
    if (gid !== 0xffffffff && gid !== -1) n.gid = gid;
    n.ctime = now();
    cb(0);
  },
  chmod(p: string, mode: number, cb: Cb) {
    count('chmod');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    n.mode = (n.mode & S_IFMT) | (mode & 0o7777);
    n.ctime = now();
    cb(0);
  },
  readlink(p: string, cb: Cb) { count('readlink'); const n = byPath.get(p); n?.target !== undefined ? cb(0, n.target) : cb(ERR('EINVAL')); },
  symlink(target: string, p: string, cb: Cb) { count('symlink'); cb(insert(p, newNode(S_IFLNK | 0o777, { target, size: Buffer.byteLength(target) }))); },
  mknod(p: string, mode: number, dev: number, cb: Cb) { count('mknod'); cb(insert(p, newNode(mode, { rdev: dev }))); },
  mkdir(p: string, mode: number, cb: Cb) { count('mkdir'); cb(insert(p, newNode(S_IFDIR | (mode & 0o7777), { nlink: 2, children: new Map() }))); },
  link(src: string, dest: string, cb: Cb) {
    count('link');
    const n = byPath.get(src);
    if (!n) return cb(ERR('ENOENT'));
    if (isDir(n)) return cb(ERR('EPERM'));
    const e = insert(dest, n);
    if (!e) { n.nlink++; n.ctime = now(); }
    cb(e);
  },
  unlink(p: string, cb: Cb) {
    count('unlink');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    if (isDir(n)) return cb(ERR('EISDIR'));
    detach(p);
    n.nlink--;
    n.ctime = now();
    cb(0);
  },
  rmdir(p: string, cb: Cb) {
    count('rmdir');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    if (!n.children) return cb(ERR('ENOTDIR'));
    if (n.children.size) return cb(ERR('ENOTEMPTY'));
    detach(p);
    cb(0);
  },
  rename(src: string, dest: string, cb: Cb) {
    count('rename');
    const n = byPath.get(src);
    if (!n) return cb(ERR('ENOENT'));
    if (dest === src) return cb(0);
    if (isDir(n) && dest.startsWith(src + '/')) return cb(ERR('EINVAL'));
    const old = byPath.get(dest);
    if (old) {
      if (isDir(old)) {
        if (!isDir(n)) return cb(ERR('EISDIR'));
        if (old.children!.size) return cb(ERR('ENOTEMPTY'));
      } else if (isDir(n)) return cb(ERR('ENOTDIR'));
      detach(dest);
      old.nlink--;
    }
    detach(src);
    const e = insert(dest, n);
    if (e) return cb(e);
    if (n.children) {
      // Path-keyed: re-key the whole subtree. Fine for a floor; tar and rm never rename directories.
      const stack: Array<[string, Node]> = [[dest, n]];
      while (stack.length) {
        const [dp, dn] = stack.pop()!;
        for (const [name, c] of dn.children!) {
          const cp = `${dp}/${name}`;
          byPath.delete(`${src}${cp.slice(dest.length)}`);
          byPath.set(cp, c);
          if (c.children) stack.push([cp, c]);
        }
      }
    }
    n.ctime = now();
    cb(0);
  },
  setxattr(p: string, name: string, value: Buffer, _pos: number, flags: number, cb: Cb) {
    count('setxattr');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    n.xattrs ??= new Map();
    if (flags === 1 && n.xattrs.has(name)) return cb(ERR('EEXIST'));
    if (flags === 2 && !n.xattrs.has(name)) return cb(ERR('ENODATA'));
    n.xattrs.set(name, Buffer.from(value));
    n.ctime = now();
    cb(0);
  },
  getxattr(p: string, name: string, _pos: number, cb: Cb) {
    count('getxattr');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    const v = n.xattrs?.get(name);
    v ? cb(0, v) : cb(ERR('ENODATA'));
  },
  listxattr(p: string, cb: Cb) { count('listxattr'); const n = byPath.get(p); n ? cb(0, [...(n.xattrs?.keys() ?? [])]) : cb(ERR('ENOENT')); },
  removexattr(p: string, name: string, cb: Cb) {
    count('removexattr');
    const n = byPath.get(p);
    if (!n) return cb(ERR('ENOENT'));
    if (!n.xattrs?.delete(name)) return cb(ERR('ENODATA'));
    cb(0);
  },
};

const fuse = new Fuse(args.dir, ops, {
  // big_writes for 128 KiB writes, use_ino for our inode numbers: fuse-native exposes neither, and
  // joins fsname into the option string unescaped (DESIGN.md §7).
  fsname: 'floor,big_writes,use_ino',
  defaultPermissions: args.defaultPermissions,
  entryTimeout: args.entryTimeout,
  attrTimeout: args.attrTimeout,
  timeout: args.opTimeoutMs as number, // false disables the per-op timer
});

const dumpStats = (): void => {
  if (args.statsFile) writeCountersFile(args.statsFile, { transport: 'fuse-native', ops: counts });
};
process.on('SIGUSR2', dumpStats);

let stopping = false;
function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  fuse.unmount((err) => {
    if (err) process.stderr.write(`floor: unmount: ${err.message}\n`);
    dumpStats();
    process.exit(code);
  });
}
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));

fuse.mount((err) => {
  if (err) {
    process.stderr.write(`floor: mount ${args.dir}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`mounted: ${args.dir}\n`);
});
