#!/usr/bin/env node
/**
 * The fuse-native floor: a trivial in-memory filesystem (path-keyed Map) served through fuse-native
 * exactly the way atefs is — the same libfuse options (fuseNativeOptions: big_writes and use_ino
 * injected through fsname, entry/attr/negative timeouts, no per-request timer), the same set of ops
 * registered with libfuse (FUSE_NATIVE_OPS, so libfuse sends the same requests up), and the same
 * dispatch (handlers replace fuse-native's `_op_<name>` methods and answer with raw stat arrays).
 * The gap between it and atefs is then the cost of atefs itself, not of the transport.
 *
 *   node dist/scripts/bench/floor-fuse-native.js <mountpoint> [--stats-file F]
 *        [--cache-timeout S] [--no-kernel-cache]
 *
 * Prints `mounted: <dir>` when ready. SIGUSR2 writes the per-op counters to the stats file
 * ({ counters: {...} }, like atefs); SIGTERM / SIGINT unmount and exit. Runs in its own process:
 * fuse-native serves from the main thread, and a process serving a FUSE mount must never make
 * synchronous fs calls on it.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../fs/core/constants.js';
import { FUSE_NATIVE_OPS, fuseNativeOptions } from '../../fs/fuse-native/index.js';
import { CHUNK, shrinkChunks } from './lib/floor-core.js';
import { writeCountersFile } from './lib/stats-file.js';

type FuseClass = typeof import('fuse-native');
const Fuse = createRequire(import.meta.url)('fuse-native') as FuseClass;

const TWO32 = 4294967296;
const UNSET_ID = 0xffffffff;
const E = { EOPNOTSUPP: -95, ENOENT: -2, EIO: -5, EEXIST: -17, ENOTDIR: -20, EISDIR: -21, EINVAL: -22, EPERM: -1, ERANGE: -34, ENOTEMPTY: -39, ENODATA: -61 };

interface Node {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  nlink: number;
  size: number;
  chunks: Buffer[];
  atime: number;      // ms since the epoch: what fuse-native speaks
  mtime: number;
  ctime: number;
  target?: string;
  children?: Map<string, Node>;
  xattrs?: Map<string, Buffer>;
}

interface Args { dir: string; statsFile?: string; cacheTimeout: number; kernelCache: boolean }

function parseArgs(argv: string[]): Args {
  // Defaults = what `atefs mount --temp` passes (cli/mount-store.ts: local store, 60 s caches).
  const a: Args = { dir: '', cacheTimeout: 60, kernelCache: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => { const x = argv[++i]; if (x === undefined) throw new Error(`${k} needs a value`); return x; };
    if (k === '--stats-file') a.statsFile = resolve(v());
    else if (k === '--cache-timeout') a.cacheTimeout = Number(v());
    else if (k === '--no-kernel-cache') a.kernelCache = false;
    else if (k.startsWith('--')) throw new Error(`unknown option ${k}`);
    else a.dir = resolve(k);
  }
  if (!a.dir) throw new Error('usage: floor-fuse-native <mountpoint> [--stats-file F]');
  return a;
}

const args = parseArgs(process.argv.slice(2));
const counts: Record<string, number> = {};
for (const op of FUSE_NATIVE_OPS) counts[op] = 0;

const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;
let nextIno = 1;
const now = (): number => Date.now();
function newNode(mode: number, extra: Partial<Node> = {}): Node {
  const t = now();
  return { ino: nextIno++, mode, uid, gid, rdev: 0, nlink: 1, size: 0, chunks: [], atime: t, mtime: t, ctime: t, ...extra };
}

const root = newNode(S_IFDIR | 0o755, { nlink: 2, children: new Map() });
const byPath = new Map<string, Node>([['/', root]]);
const handles = new Map<number, Node>();
let nextFh = 1;

const parentOf = (p: string): string => { const i = p.lastIndexOf('/'); return i <= 0 ? '/' : p.slice(0, i); };
const baseOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);
const isDir = (n: Node): boolean => (n.mode & S_IFMT) === S_IFDIR;

function setU64(a: Uint32Array, i: number, n: number): void {
  const lo = n % TWO32;
  a[i] = lo;
  a[i + 1] = (n - lo) / TWO32;
}

/** fuse-native's stat wire shape (Uint32Array(18), see fs/fuse-native/stat.ts). */
function statArray(n: Node): Uint32Array {
  const a = new Uint32Array(18);
  a[0] = n.mode; a[1] = n.uid; a[2] = n.gid;
  setU64(a, 3, n.size);
  a[6] = n.nlink; a[7] = n.ino; a[8] = n.rdev; a[9] = 4096;
  setU64(a, 10, Math.ceil(n.size / 512));
  setU64(a, 12, n.atime); setU64(a, 14, n.mtime); setU64(a, 16, n.ctime);
  return a;
}

/** Inserts a new node at `p`; returns a negative errno or 0. */
function insert(p: string, n: Node): number {
  const dir = byPath.get(parentOf(p));
  if (!dir || !dir.children) return E.ENOENT;
  if (byPath.has(p)) return E.EEXIST;
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

// File data: 1 MiB chunks (the first one grows by doubling, for small files), zero-filled at
// allocation (calloc'd: untouched pages cost nothing), so one copy per write and holes read as zeros.
// Invariant: every byte past `size` is zero.

function chunkFor(n: Node, ci: number, end: number): Buffer {
  let c = n.chunks[ci];
  if (ci === 0) {
    const need = Math.min(CHUNK, end);
    if (!c || c.length < need) {
      const grown = Buffer.alloc(Math.min(CHUNK, Math.max(need, (c?.length ?? 0) * 2, 4096)));
      if (c) c.copy(grown);
      n.chunks[0] = c = grown;
    }
  } else if (!c) n.chunks[ci] = c = Buffer.alloc(CHUNK);
  return c;
}

function writeData(n: Node, src: Buffer, len: number, pos: number): void {
  let done = 0;
  while (done < len) {
    const at = pos + done;
    const ci = Math.floor(at / CHUNK);
    const off = at - ci * CHUNK;
    const k = Math.min(len - done, CHUNK - off);
    src.copy(chunkFor(n, ci, off + k + ci * CHUNK), off, done, done + k);
    done += k;
  }
  if (pos + len > n.size) n.size = pos + len;
}

function readData(n: Node, dst: Buffer, len: number, pos: number): number {
  const end = Math.min(n.size, pos + len);
  let at = pos;
  while (at < end) {
    const ci = Math.floor(at / CHUNK);
    const off = at - ci * CHUNK;
    const k = Math.min(end - at, CHUNK - off);
    const c = n.chunks[ci];
    if (c && off < c.length) c.copy(dst, at - pos, off, Math.min(off + k, c.length));
    if (!c || off + k > c.length) dst.fill(0, at - pos + Math.max(0, (c?.length ?? 0) - off), at - pos + k);
    at += k;
  }
  return Math.max(0, end - pos);
}

function setSize(n: Node, size: number): void {
  if (size < n.size) shrinkChunks(n.chunks, size);
  n.size = size;
  n.mtime = n.ctime = now();
}

function open(n: Node): number {
  const fh = nextFh++;
  handles.set(fh, n);
  return fh;
}

type Signal = (res: number, ...rest: unknown[]) => void;
type Handler = (signal: Signal, ...args: any[]) => void;

/** Handlers at fuse-native's `_op_<name>` level, the same level the atefs adapter plugs in at. */
const handlers: Record<(typeof FUSE_NATIVE_OPS)[number], Handler> = {
  getattr(signal, p: string) { counts.getattr!++; const n = byPath.get(p); n ? signal(0, statArray(n)) : signal(E.ENOENT); },
  access(signal) { counts.access!++; signal(0); },
  statfs(signal) {
    counts.statfs!++;
    const a = new Uint32Array(11);
    a[0] = 4096; a[1] = 4096; a[2] = 1 << 24; a[3] = 1 << 23; a[4] = 1 << 23; a[5] = 1 << 24; a[6] = 1 << 23; a[7] = 1 << 23; a[10] = 255;
    signal(0, a);
  },
  chmod(signal, p: string, mode: number) {
    counts.chmod!++;
    const n = byPath.get(p);
    if (!n) return signal(E.ENOENT);
    n.mode = (n.mode & S_IFMT) | (mode & 0o7777);
    n.ctime = now();
    signal(0);
  },
  chown(signal, p: string, u: number, g: number) {
    counts.chown!++;
    const n = byPath.get(p);
    if (!n) return signal(E.ENOENT);
    if (u !== UNSET_ID) n.uid = u;
    if (g !== UNSET_ID) n.gid = g;
    n.ctime = now();
    signal(0);
  },
  truncate(signal, p: string, lo: number, hi: number) {
    counts.truncate!++;
    const n = byPath.get(p);
    if (!n) return signal(E.ENOENT);
    setSize(n, lo + hi * TWO32);
    signal(0);
  },
  ftruncate(signal, p: string, fh: number, lo: number, hi: number) {
    counts.ftruncate!++;
    const n = handles.get(fh) ?? byPath.get(p);
    if (!n) return signal(E.ENOENT);
    setSize(n, lo + hi * TWO32);
    signal(0);
  },
  utimens(signal, p: string, aLo: number, aHi: number) {
    counts.utimens!++;
    const n = byPath.get(p);
    if (!n) return signal(E.ENOENT);
    n.atime = n.mtime = aLo + aHi * TWO32; // fuse-native passes atime twice (fs/fuse-native/stat.ts)
    n.ctime = now();
    signal(0);
  },
  readlink(signal, p: string) { counts.readlink!++; const n = byPath.get(p); n?.target !== undefined ? signal(0, n.target) : signal(E.EINVAL); },
  mknod(signal, p: string, mode: number, dev: number) { counts.mknod!++; signal(insert(p, newNode(mode, { rdev: dev }))); },
  mkdir(signal, p: string, mode: number) { counts.mkdir!++; signal(insert(p, newNode(S_IFDIR | (mode & 0o7777), { nlink: 2, children: new Map() }))); },
  symlink(signal, target: string, p: string) { counts.symlink!++; signal(insert(p, newNode(S_IFLNK | 0o777, { target, size: Buffer.byteLength(target) }))); },
  link(signal, src: string, dest: string) {
    counts.link!++;
    const n = byPath.get(src);
    if (!n) return signal(E.ENOENT);
    if (isDir(n)) return signal(E.EPERM);
    const e = insert(dest, n);
    if (!e) { n.nlink++; n.ctime = now(); }
    signal(e);
  },
  unlink(signal, p: string) {
    counts.unlink!++;
    const n = byPath.get(p);
    if (!n) return signal(E.ENOENT);
    if (isDir(n)) return signal(E.EISDIR);
    detach(p);
    n.nlink--;
    n.ctime = now();
    signal(0);
  },
  rmdir(signal, p: string) {
    counts.rmdir!++;
    const n = byPath.get(p);
    if (!n) return signal(E.ENOENT);
    if (!n.children) return signal(E.ENOTDIR);
    if (n.children.size) return signal(E.ENOTEMPTY);
    detach(p);
    signal(0);
  },
  rename(signal, src: string, dest: string) {
    counts.rename!++;
    const n = byPath.get(src);
    if (!n) return signal(E.ENOENT);
    if (dest === src) return signal(0);
    if (isDir(n) && dest.startsWith(src + '/')) return signal(E.EINVAL);
    const old = byPath.get(dest);
    if (old) {
      if (isDir(old)) {
        if (!isDir(n)) return signal(E.EISDIR);
        if (old.children!.size) return signal(E.ENOTEMPTY);
      } else if (isDir(n)) return signal(E.ENOTDIR);
      detach(dest);
      old.nlink--;
    }
    detach(src);
    const e = insert(dest, n);
    if (e) return signal(e);
    if (n.children) {
      // Path-keyed: re-key the whole subtree. Fine for a floor; the workloads never rename directories.
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
    signal(0);
  },
  create(signal, p: string, mode: number) {
    counts.create!++;
    const n = newNode((mode & S_IFMT) ? mode : S_IFREG | mode);
    const e = insert(p, n);
    e ? signal(e) : signal(0, open(n));
  },
  open(signal, p: string) { counts.open!++; const n = byPath.get(p); n ? signal(0, open(n)) : signal(E.ENOENT); },
  read(signal, p: string, fh: number, buf: Buffer, len: number, lo: number, hi: number) {
    counts.read!++;
    const n = handles.get(fh) ?? byPath.get(p);
    signal(n ? readData(n, buf, len, lo + hi * TWO32) : E.ENOENT, 0, buf.buffer);
  },
  write(signal, p: string, fh: number, buf: Buffer, len: number, lo: number, hi: number) {
    counts.write!++;
    const n = handles.get(fh) ?? byPath.get(p);
    if (n) {
      writeData(n, buf, len, lo + hi * TWO32); // copies: buf is libfuse memory, valid only during this call
      n.mtime = n.ctime = now();
    }
    signal(n ? len : E.ENOENT, 0, buf.buffer);
  },
  flush(signal) { counts.flush!++; signal(0); },
  release(signal, _p: string, fh: number) { counts.release!++; handles.delete(fh); signal(0); },
  fsync(signal) { counts.fsync!++; signal(0); },
  fsyncdir(signal) { counts.fsyncdir!++; signal(0); },
  readdir(signal, p: string) {
    counts.readdir!++;
    const n = byPath.get(p);
    if (!n?.children) return signal(E.ENOTDIR);
    // Names and per-entry type+ino arrays, like the atefs adapter (libfuse's filler uses both).
    const names = ['.', '..'];
    const stats: Uint32Array[] = [direntStat(n), direntStat(byPath.get(parentOf(p)) ?? n)];
    for (const [k, c] of n.children) { names.push(k); stats.push(direntStat(c)); }
    signal(0, names, stats);
  },
  setxattr(signal, p: string, name: string, value: Buffer, _pos: number, flags: number) {
    counts.setxattr!++;
    const n = byPath.get(p);
    let res = 0;
    if (!n) res = E.ENOENT;
    else if (name.startsWith('system.')) res = E.EOPNOTSUPP;
    else {
      n.xattrs ??= new Map();
      if (flags === 1 && n.xattrs.has(name)) res = E.EEXIST;
      else if (flags === 2 && !n.xattrs.has(name)) res = E.ENODATA;
      else { n.xattrs.set(name, Buffer.from(value)); n.ctime = now(); }
    }
    signal(res, value.buffer);
  },
  /** system.* (POSIX ACLs) is not supported, as in atefs (fs/core/xattrs.ts): the kernel then stops asking. */
  getxattr(signal, p: string, name: string, out: Buffer) {
    counts.getxattr!++;
    const n = byPath.get(p);
    const v = n?.xattrs?.get(name);
    const res = !n ? E.ENOENT : name.startsWith('system.') ? E.EOPNOTSUPP : !v ? E.ENODATA : out.length === 0 ? v.length : v.length > out.length ? E.ERANGE : v.copy(out);
    signal(res, out.buffer);
  },
  listxattr(signal, p: string, out: Buffer) {
    counts.listxattr!++;
    const n = byPath.get(p);
    let res: number;
    if (!n) res = E.ENOENT;
    else {
      const names = [...(n.xattrs?.keys() ?? [])];
      let size = 0;
      for (const k of names) size += Buffer.byteLength(k) + 1;
      if (out.length === 0) res = size;
      else if (size > out.length) res = E.ERANGE;
      else { let at = 0; for (const k of names) { at += out.write(k, at); out[at++] = 0; } res = at; }
    }
    signal(res, out.buffer);
  },
  removexattr(signal, p: string, name: string) {
    counts.removexattr!++;
    const n = byPath.get(p);
    signal(!n ? E.ENOENT : name.startsWith('system.') ? E.EOPNOTSUPP : n.xattrs?.delete(name) ? 0 : E.ENODATA);
  },
};

function direntStat(n: Node): Uint32Array {
  const a = new Uint32Array(18);
  a[0] = n.mode & S_IFMT;
  a[6] = 1;
  a[7] = n.ino;
  return a;
}

// Register exactly the ops atefs registers, then swap in the handlers (see fs/fuse-native/index.ts).
const present: Record<string, () => void> = {};
for (const op of FUSE_NATIVE_OPS) present[op] = () => {};
const options = fuseNativeOptions({ transport: 'fuse-native', fsname: 'floor', cacheTimeout: args.cacheTimeout, kernelCache: args.kernelCache });
const fuse = new Fuse(args.dir, present, options as never) as InstanceType<FuseClass> & Record<string, unknown>;
for (const op of FUSE_NATIVE_OPS) fuse[`_op_${op}`] = handlers[op];

const dumpStats = (): void => {
  if (args.statsFile) writeCountersFile(args.statsFile, { transport: 'fuse-native', pid: process.pid, counters: counts });
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
