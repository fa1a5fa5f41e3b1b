import type { Ctx, FsCore, Ino } from '../core/api.js';

/**
 * path -> inode cache for the path-based libfuse 2 API.
 *
 * Every cached node holds exactly one lookup reference on its inode in the core (the core counts
 * lookups like the FUSE low-level protocol does); dropping a node forgets that reference. A flat
 * map answers the hot case (the full path was seen before) with one Map.get; the tree lets
 * rename/rmdir drop a whole subtree without scanning every cached path.
 */
interface Node {
  ino: Ino;
  name: string;
  parent: Node | null;
  children: Map<string, Node> | null;
  path: string;
}

const ROOT_INO = 1;
/** Above this many cached paths the cache starts over (bounded memory; re-lookups are cheap). */
const MAX_ENTRIES = 200_000;

export class PathCache {
  private readonly byPath = new Map<string, Node>();
  private readonly root: Node = { ino: ROOT_INO, name: '', parent: null, children: null, path: '/' };

  constructor(private readonly core: FsCore, private readonly ctx: Ctx) {
    this.byPath.set('/', this.root);
  }

  get size(): number { return this.byPath.size - 1; }

  /** The inode of `path`, looking up uncached components in the core (throws FsError ENOENT...). */
  resolve(path: string): Ino {
    const hit = this.byPath.get(path);
    if (hit !== undefined) return hit.ino;
    if (this.byPath.size > MAX_ENTRIES) this.clear();
    return this.walk(path).ino;
  }

  private walk(path: string): Node {
    const hit = this.byPath.get(path);
    if (hit !== undefined) return hit;
    const cut = path.lastIndexOf('/');
    const parent = this.walk(cut <= 0 ? '/' : path.slice(0, cut));
    const name = path.slice(cut + 1);
    const entry = this.core.lookup(this.ctx, parent.ino, Buffer.from(name));
    return this.insert(parent, name, path, entry.ino);
  }

  /**
   * Records a new name the core has just counted a lookup for (create, mkdir, link...). When the
   * parent is not cached the reference is returned to the core at once.
   */
  adopt(path: string, ino: Ino): void {
    const cut = path.lastIndexOf('/');
    const parent = this.byPath.get(cut <= 0 ? '/' : path.slice(0, cut));
    if (parent === undefined) { this.core.forget(ino, 1); return; }
    this.drop(path);
    this.insert(parent, path.slice(cut + 1), path, ino);
  }

  /** Forgets `path` and everything cached below it (unlink, rmdir, rename source and target). */
  drop(path: string): void {
    const node = this.byPath.get(path);
    if (node === undefined || node === this.root) return;
    node.parent?.children?.delete(node.name);
    this.release(node);
  }

  /** Drops everything (remote changes: the transport cannot tell which paths they touched). */
  clear(): void {
    const kids = this.root.children;
    this.root.children = null;
    if (kids) for (const child of kids.values()) this.release(child);
  }

  private insert(parent: Node, name: string, path: string, ino: Ino): Node {
    const node: Node = { ino, name, parent, children: null, path };
    (parent.children ??= new Map()).set(name, node);
    this.byPath.set(path, node);
    return node;
  }

  private release(node: Node): void {
    this.byPath.delete(node.path);
    if (node.children) for (const child of node.children.values()) this.release(child);
    node.children = null;
    this.core.forget(node.ino, 1);
  }
}
