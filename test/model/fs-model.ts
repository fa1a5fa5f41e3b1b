/**
 * A small reference filesystem for model-based tests: directories, regular files with content,
 * hard links, permission bits and user xattrs, with Linux's rules for which call fails with which
 * errno (path resolution, rename(2) over files and directories, link(2), unlink(2), rmdir(2)...).
 * No times, owners or permissions checks: the tests run as root and compare what is kept.
 *
 * The same operations (Op) drive the fs core over a real chain (test/integration/fs-commit-model)
 * and a real mount (test/e2e/commit-model); both compare their tree with `tree()` here, whose lines
 * have the format of PathFs.tree() (test/integration/fs-path-ops.ts).
 */
import { createHash } from 'node:crypto';

export type Errno = 'ENOENT' | 'ENOTDIR' | 'EISDIR' | 'EEXIST' | 'ENOTEMPTY' | 'EINVAL' | 'EPERM' | 'ENODATA';

/**
 * Paths are relative to the model's root, components joined with '/', never empty. `pick`
 * (optional, on every operation but commit) lets `concretize` redirect a path that would only be
 * refused to something that exists.
 */
export type Op = (

  | { op: 'create'; path: string; mode: number }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'rename'; from: string; to: string }
  | { op: 'link'; from: string; to: string }
  | { op: 'unlink'; path: string }
  | { op: 'rmdir'; path: string }
  | { op: 'write'; path: string; offset: number; length: number; seed: number }
  | { op: 'truncate'; path: string; size: number }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'setxattr'; path: string; name: string; value: string /* hex */ }
  | { op: 'removexattr'; path: string; name: string }
  /** fsync(2) of a file or directory: everything dirty becomes durable (the committer commits all). */
  | { op: 'fsync'; path: string }
  /**
   * Open handles, in numbered slots (a process keeping files open): `open` opens a file read-write
   * into a slot (closing what the slot held); `hwrite`/`hread` write and read through it — after
   * an unlink or rename too; `close` closes it. An empty slot makes the three a no-op.
   */
  | { op: 'open'; path: string; slot: number }
  | { op: 'close'; slot: number }
  | { op: 'hwrite'; slot: number; offset: number; length: number; seed: number }
  | { op: 'hread'; slot: number }
  /** A commit point of the test driver (Filesystem.sync(), or sync(2) on a mount). */
  | { op: 'commit' }
) & { pick?: number };

export function describeOp(o: Op): string {
  switch (o.op) {
    case 'create': case 'mkdir': case 'chmod': return `${o.op} ${o.path} ${o.mode.toString(8)}`;
    case 'rename': case 'link': return `${o.op} ${o.from} ${o.to}`;
    case 'write': return `write ${o.path} @${o.offset} +${o.length} seed=${o.seed}`;
    case 'truncate': return `truncate ${o.path} ${o.size}`;
    case 'setxattr': return `setxattr ${o.path} ${o.name}=${o.value}`;
    case 'removexattr': return `removexattr ${o.path} ${o.name}`;
    case 'unlink': case 'rmdir': case 'fsync': return `${o.op} ${o.path}`;
    case 'open': return `open ${o.path} as #${o.slot}`;
    case 'close': case 'hread': return `${o.op} #${o.slot}`;
    case 'hwrite': return `hwrite #${o.slot} @${o.offset} +${o.length} seed=${o.seed}`;
    case 'commit': return 'commit';
  }
}

const joinPath = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);
const lastName = (path: string): string => path.slice(path.lastIndexOf('/') + 1);

/**
 * Random paths over a few names mostly name nothing (ENOENT): with `pick` set (three times in four),
 * a path that does not exist is redirected to an existing file or directory, and a name to create
 * is moved into an existing directory, chosen by `pick` among the model's current ones; an empty
 * handle slot to one that holds a file. What is left refused still exercises the errno checks.
 */
export function concretize(o: Op, m: FsModel): Op {
  const r = o.pick;
  if (r === undefined || r % 4 === 0 || o.op === 'commit') return o;
  if (o.op === 'close' || o.op === 'hwrite' || o.op === 'hread') {
    // An empty slot: one that holds a file, if any.
    const open = m.openSlots();
    return m.isOpen(o.slot) || open.length === 0 ? o : { ...o, slot: open[r % open.length]! };
  }
  const { files, dirs } = m.listing();
  const all = [...files, ...dirs].sort();
  const some = (list: string[], salt: number, fallback: string): string => (list.length ? list[(r + salt) % list.length]! : fallback);
  const existing = (path: string, list: string[]): string => (m.exists(path) ? path : some(list, 0, path));
  const creatable = (path: string, salt: number): string => (m.isDir(path.slice(0, Math.max(0, path.lastIndexOf('/')))) ? path : joinPath(some(['', ...dirs], salt, ''), lastName(path)));
  switch (o.op) {
    case 'create': case 'mkdir': return { ...o, path: creatable(o.path, 0) };
    case 'write': case 'truncate': case 'unlink': case 'open': return { ...o, path: existing(o.path, files) };
    case 'rmdir': return { ...o, path: existing(o.path, dirs) };
    case 'chmod': case 'setxattr': case 'fsync': return { ...o, path: existing(o.path, all) };
    case 'removexattr': return { ...o, path: existing(o.path, all.filter((p) => m.hasXattr(p, o.name))) };
    case 'rename': return { ...o, from: existing(o.from, all), to: creatable(o.to, 7) };
    case 'link': return { ...o, from: existing(o.from, files), to: creatable(o.to, 7) };
  }
}

/** The bytes a `write` op writes: a cheap deterministic pattern of its seed. */
export function writeData(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

interface FileNode { kind: 'file'; id: number; mode: number; data: Buffer; nlink: number; xattrs: Map<string, Buffer> }
interface DirNode { kind: 'dir'; id: number; mode: number; entries: Map<string, Node>; xattrs: Map<string, Buffer> }
type Node = FileNode | DirNode;

class ModelError extends Error {
  constructor(readonly code: Errno) { super(code); }
}

const fail = (code: Errno): never => { throw new ModelError(code); };

export class FsModel {
  private root: DirNode;
  private nextId = 1;
  /** Open handles by slot (not part of clone(): a snapshot is for comparing trees). */
  private readonly handles = new Map<number, FileNode>();

  constructor() {
    this.root = { kind: 'dir', id: 0, mode: 0o755, entries: new Map(), xattrs: new Map() };
  }

  /** A deep copy (the state at a commit point, for crash images). */
  clone(): FsModel {
    const c = new FsModel();
    c.nextId = this.nextId;
    const copies = new Map<Node, Node>();
    const copy = (n: Node): Node => {
      const seen = copies.get(n);
      if (seen) return seen;
      const xattrs = new Map([...n.xattrs].map(([k, v]) => [k, Buffer.from(v)]));
      let out: Node;
      if (n.kind === 'file') out = { ...n, data: Buffer.from(n.data), xattrs };
      else {
        out = { kind: 'dir', id: n.id, mode: n.mode, entries: new Map(), xattrs };
        for (const [k, v] of n.entries) out.entries.set(k, copy(v));
      }
      copies.set(n, out);
      return out;
    };
    c.root = copy(this.root) as DirNode;
    return c;
  }

  /** Applies `o`: null when it succeeds, else the errno Linux answers (the state is then unchanged). */
  apply(o: Op): Errno | null {
    try {
      this.run(o);
      return null;
    } catch (e) {
      if (e instanceof ModelError) return e.code;
      throw e;
    }
  }

  /** The parent directory of `path` and its last name; ENOENT/ENOTDIR as path resolution gives them. */
  private parentOf(path: string): { dir: DirNode; name: string; node: Node | undefined } {
    const parts = path.split('/');
    const name = parts.pop()!;
    let dir: DirNode = this.root;
    for (const p of parts) {
      const next = dir.entries.get(p);
      if (next === undefined) fail('ENOENT');
      if (next!.kind !== 'dir') fail('ENOTDIR');
      dir = next as DirNode;
    }
    return { dir, name, node: dir.entries.get(name) };
  }

  private existing(path: string): Node {
    const { node } = this.parentOf(path);
    return node ?? fail('ENOENT');
  }

  /** The directories from `root` down to `target` (inclusive), or null if it is not reachable. */
  private static pathTo(root: DirNode, target: DirNode): DirNode[] | null {
    if (root === target) return [root];
    for (const n of root.entries.values()) {
      if (n.kind !== 'dir') continue;
      const p = FsModel.pathTo(n, target);
      if (p) return [root, ...p];
    }
    return null;
  }

  private run(o: Op): void {
    switch (o.op) {
      case 'create': case 'mkdir': {
        const { dir, name, node } = this.parentOf(o.path);
        if (node !== undefined) fail('EEXIST');
        const id = this.nextId++;
        dir.entries.set(name, o.op === 'create'
          ? { kind: 'file', id, mode: o.mode & 0o7777, data: Buffer.alloc(0), nlink: 1, xattrs: new Map() }
          : { kind: 'dir', id, mode: o.mode & 0o1777, entries: new Map(), xattrs: new Map() });
        return;
      }
      case 'unlink': {
        const { dir, name, node } = this.parentOf(o.path);
        if (node === undefined) fail('ENOENT');
        if (node!.kind === 'dir') fail('EISDIR');
        dir.entries.delete(name);
        (node as FileNode).nlink--;
        return;
      }
      case 'rmdir': {
        const { dir, name, node } = this.parentOf(o.path);
        if (node === undefined) fail('ENOENT');
        if (node!.kind !== 'dir') fail('ENOTDIR');
        if ((node as DirNode).entries.size > 0) fail('ENOTEMPTY');
        dir.entries.delete(name);
        return;
      }
      case 'link': {
        const src = this.existing(o.from);
        const { dir, name, node } = this.parentOf(o.to);
        if (node !== undefined) fail('EEXIST');
        if (src.kind === 'dir') fail('EPERM');
        dir.entries.set(name, src);
        (src as FileNode).nlink++;
        return;
      }
      case 'rename': return this.rename(o.from, o.to);
      case 'write': {
        const n = this.existing(o.path);
        if (n.kind === 'dir') fail('EISDIR');
        FsModel.write(n as FileNode, o.offset, o.length, o.seed);
        return;
      }
      case 'open': {
        const n = this.existing(o.path);
        if (n.kind === 'dir') fail('EISDIR');
        this.handles.set(o.slot, n as FileNode);
        return;
      }
      case 'close': this.handles.delete(o.slot); return;
      case 'hwrite': {
        const f = this.handles.get(o.slot);
        if (f) FsModel.write(f, o.offset, o.length, o.seed);
        return;
      }
      case 'hread': return;
      case 'truncate': {
        const n = this.existing(o.path);
        if (n.kind === 'dir') fail('EISDIR');
        const f = n as FileNode;
        const next = Buffer.alloc(o.size);
        f.data.copy(next, 0, 0, Math.min(o.size, f.data.length));
        f.data = next;
        return;
      }
      case 'chmod': {
        const n = this.existing(o.path);
        n.mode = o.mode & 0o7777;
        return;
      }
      case 'setxattr': {
        this.existing(o.path).xattrs.set(o.name, Buffer.from(o.value, 'hex'));
        return;
      }
      case 'removexattr': {
        const n = this.existing(o.path);
        if (!n.xattrs.delete(o.name)) fail('ENODATA');
        return;
      }
      case 'fsync': {
        this.existing(o.path);
        return;
      }
      case 'commit': return;
    }
  }

  private static write(f: FileNode, offset: number, length: number, seed: number): void {
    if (length === 0) return;
    const end = offset + length;
    if (end > f.data.length) {
      const grown = Buffer.alloc(end);
      f.data.copy(grown);
      f.data = grown;
    }
    writeData(length, seed).copy(f.data, offset);
  }

  /** Whether `slot` holds an open file. */
  isOpen(slot: number): boolean { return this.handles.has(slot); }

  /** The content of the file open in `slot` (null: the slot is empty). */
  handleContent(slot: number): Buffer | null { return this.handles.get(slot)?.data ?? null; }

  /** The open slots (a driver closes them all before a reopen). */
  openSlots(): number[] { return [...this.handles.keys()].sort((a, b) => a - b); }

  /** The slots holding the file at `path` open (empty if none, or no such file). */
  slotsOf(path: string): number[] {
    let n: Node;
    try { n = this.existing(path); } catch { return []; }
    return this.openSlots().filter((s) => this.handles.get(s) === n);
  }

  /** Closes every handle. */
  closeAll(): void { this.handles.clear(); }

  /** rename(2) without flags, with Linux's order of checks (fs/namei.c do_renameat2, vfs_rename). */
  private rename(from: string, to: string): void {
    const a = this.parentOf(from);
    const b = this.parentOf(to);
    const src = a.node ?? fail('ENOENT');
    // lock_rename's trap: the child of the upper parent on the way to the lower one.
    const pa = FsModel.pathTo(this.root, a.dir)!;
    const pb = FsModel.pathTo(this.root, b.dir)!;
    if (a.dir !== b.dir) {
      // Source directory an ancestor of the target's parent (a directory into itself): EINVAL.
      if (pb.includes(a.dir) && pb[pa.length] === src) fail('EINVAL');
      // Target an ancestor of the source's parent: it cannot be empty.
      if (pa.includes(b.dir) && b.node !== undefined && pa[pb.length] === b.node) fail('ENOTEMPTY');
    }
    const dst = b.node;
    if (dst === src) return; // the same inode (one name, or two hard links): nothing happens
    if (dst !== undefined) {
      if (src.kind === 'dir' && dst.kind !== 'dir') fail('ENOTDIR');
      if (src.kind !== 'dir' && dst.kind === 'dir') fail('EISDIR');
      if (dst.kind === 'dir' && dst.entries.size > 0) fail('ENOTEMPTY');
    }
    a.dir.entries.delete(a.name);
    if (dst !== undefined && dst.kind === 'file') dst.nlink--;
    b.dir.entries.set(b.name, src);
  }

  /**
   * One line per path, depth first with names in byte order (PathFs.tree()'s format): type and
   * permission bits, link count, `id` (the first path of that inode), size and a content hash of
   * files, xattrs in hex.
   */
  tree(): string[] {
    const out: string[] = [];
    const seen = new Map<number, string>();
    const walk = (dir: DirNode, prefix: string): void => {
      const names = [...dir.entries.keys()].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      for (const name of names) {
        const n = dir.entries.get(name)!;
        const path = `${prefix}${name}`;
        const id = seen.get(n.id) ?? path;
        seen.set(n.id, id);
        const nlink = n.kind === 'dir' ? 2 + [...n.entries.values()].filter((c) => c.kind === 'dir').length : n.nlink;
        let line = `${path} ${n.kind === 'dir' ? 'd' : 'f'}${n.mode.toString(8)} nlink=${nlink} id=${id}`;
        if (n.kind === 'file') line += ` size=${n.data.length} sha=${createHash('sha256').update(n.data).digest('hex').slice(0, 16)}`;
        const xs = [...n.xattrs.keys()].sort().map((k) => `${k}=${n.xattrs.get(k)!.toString('hex')}`);
        if (xs.length) line += ` ${xs.join(',')}`;
        out.push(line);
        if (n.kind === 'dir') walk(n, `${path}/`);
      }
    };
    walk(this.root, '');
    return out;
  }

  exists(path: string): boolean {
    try { this.existing(path); return true; } catch { return false; }
  }

  hasXattr(path: string, name: string): boolean {
    try { return this.existing(path).xattrs.has(name); } catch { return false; }
  }

  /** True for '' (the root) and for existing directories. */
  isDir(path: string): boolean {
    if (path === '') return true;
    try { return this.existing(path).kind === 'dir'; } catch { return false; }
  }

  /** Every file and every directory (not the root) by path, sorted. */
  listing(): { files: string[]; dirs: string[] } {
    const files: string[] = [];
    const dirs: string[] = [];
    const walk = (dir: DirNode, prefix: string): void => {
      for (const [name, n] of dir.entries) {
        const path = `${prefix}${name}`;
        if (n.kind === 'file') files.push(path);
        else { dirs.push(path); walk(n, `${path}/`); }
      }
    };
    walk(this.root, '');
    return { files: files.sort(), dirs: dirs.sort() };
  }

  /** Every file's and directory's paths, by its identity (kept by clone(): compares two states). */
  pathsById(): Map<number, string[]> {
    const out = new Map<number, string[]>();
    const walk = (dir: DirNode, prefix: string): void => {
      for (const [name, n] of dir.entries) {
        const path = `${prefix}${name}`;
        const list = out.get(n.id);
        if (list) list.push(path);
        else out.set(n.id, [path]);
        if (n.kind === 'dir') walk(n, `${path}/`);
      }
    };
    walk(this.root, '');
    return out;
  }

  /** The content of a file (tests read it back byte for byte at the end). */
  content(path: string): Buffer | null {
    try {
      const n = this.existing(path);
      return n.kind === 'file' ? n.data : null;
    } catch {
      return null;
    }
  }

  /** Every file path (for reading them all back). */
  files(): string[] { return this.listing().files; }
}
