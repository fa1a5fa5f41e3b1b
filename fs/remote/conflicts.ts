// The conflict rules of a shared filesystem chain (README: "Remote mounts"). Server order
// decides; nothing is lost. When the server refuses staged commits of this machine (another
// machine's commit on the same records was confirmed first), their changes are re-made on top of
// what the server holds:
//  - records nobody else touched since: this machine's version, as it was;
//  - a file whose content both sides changed: the server's version keeps the name; this
//    machine's is kept beside it as `name.conflict-<machine>-<UTC time>.ext`;
//  - a name both sides created (to different files): the same — the first confirmed keeps it;
//  - a file deleted here but changed elsewhere: the change wins (the file stays);
//    changed here but deleted elsewhere: re-created, under its names;
//  - attributes only (mode, owner, xattrs): this machine's, the later one in server order;
//  - a directory removed elsewhere while this machine added into it: re-created with what was
//    added (its name, if taken meanwhile, gets the conflict suffix);
//  - directories changed on both sides: merged (entries of both, the newer times).
import type { EventMeta } from '../../src/chain/index.js';
import type { Commit } from '../../src/chain/index.js';
import type { Ino, Timespec } from '../core/api.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../core/constants.js';
import type { FsBatch, InodeRecord } from '../core/store.js';
import type { ChainStore } from '../chain-store/chain-store.js';
import { decodeDentry, decodeInode } from '../chain-store/codec.js';
import { inodeKey } from '../chain-store/keys.js';
import { inoOfKey } from './remote-batch.js';


/**
 * `read()`, or `sealed` when it throws NoReadKey: an inode sealed for keys this mount does not
 * hold (another member's 0600 file) is there, but unreadable; resolving a conflict must not stop
 * at it (that stopped the mount's replication for good).
 */
function sealedOr<T, S>(read: () => T, sealed: S): T | S {
  try {
    return read();
  } catch (e) {
    if ((e as Error).name === 'NoReadKey') return sealed;
    throw e;
  }
}

export interface ConflictNote { at: string; text: string; kept: string }

export interface ResolveInput {
  lost: Commit[];
  /** The view before: holds this machine's lost changes. */
  old: ChainStore;
  /** The view rebuilt from the server's state. */
  now: ChainStore;
  machine: string;
  alloc: () => Ino;
  /** Opens a lost event's payload. */
  payload: (meta: EventMeta, payload: Buffer | null) => Buffer | null;
  /** The payload of DAO `key` at `version` (the base a lost change was made on), if known. */
  base: (key: string, version: number) => Buffer | null;
  /** UTC time of the conflict (tests fix it). */
  time?: Date;
  /**
   * Whether version `version` of DAO `key` was written by this machine (one of its own commits the
   * server confirmed, a re-made lost change included). Versions between a lost change's base and
   * the server's that are all this machine's own are no change "elsewhere": no conflict copy.
   */
  ownVersion?: (key: string, version: number) => boolean;
}

const isDir = (r: InodeRecord) => (r.mode & S_IFMT) === S_IFDIR;
const isReg = (r: InodeRecord) => (r.mode & S_IFMT) === S_IFREG;
const ts = (t: Timespec) => t.sec * 1e9 + t.nsec;
const later = (a: Timespec, b: Timespec) => (ts(a) >= ts(b) ? a : b);
const NAME_MAX = 255;

/**
 * The inode `ino` as a replicated store's reader needs it: null when this session holds no key for
 * it (a file sealed for someone else's key only): the change is not this machine's to show.
 */
export function readableInode(store: ChainStore, ino: Ino): InodeRecord | undefined | null {
  try {
    return store.getInode(ino);
  } catch (e) {
    if ((e as Error).name === 'NoReadKey') return null;
    throw e;
  }
}

/**
 * A name of `ino` in `store` (a file keeps no parent): a walk of the directories from `hint`, then
 * from the root, through the ones this session can read. Conflicts are rare.
 */
export function findName(store: ChainStore, ino: Ino, hint?: Ino): { parent: Ino; name: Buffer } | undefined {
  const dirs: Ino[] = hint !== undefined && hint !== 1 ? [hint, 1] : [1];
  const seen = new Set<Ino>();
  while (dirs.length > 0) {
    const d = dirs.shift()!;
    if (seen.has(d)) continue;
    seen.add(d);
    for (const e of store.listDentries(d)) {
      if (e.ino === ino) return { parent: d, name: e.name };
      const r = readableInode(store, e.ino);
      if (r && isDir(r)) dirs.push(e.ino);
    }
  }
  return undefined;
}

/** `name.conflict-<machine>-<UTC time>.ext`: the extension stays last (as Syncthing does). */
export function conflictName(name: Buffer, machine: string, time: Date, n = 0): Buffer {
  const s = name.toString('utf8');
  const dot = s.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [s.slice(0, dot), s.slice(dot)] : [s, ''];
  const stamp = time.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const tag = `.conflict-${machine.replace(/[/\0]/g, '_')}-${stamp}${n > 0 ? `-${n}` : ''}`;
  let out = Buffer.from(stem + tag + ext);
  if (out.length > NAME_MAX) out = Buffer.concat([Buffer.from(stem).subarray(0, Math.max(1, NAME_MAX - Buffer.byteLength(tag + ext))), Buffer.from(tag + ext)]);
  return out;
}

function sameContent(a: ChainStore, b: ChainStore, ino: Ino, ra: InodeRecord, rb: InodeRecord): boolean {
  if (ra.size !== rb.size) return false;
  if (ra.inline || rb.inline) return !!ra.inline && !!rb.inline && ra.inline.equals(rb.inline);
  const ia = a.blockIndexes(ino);
  const ib = b.blockIndexes(ino);
  if (ia.join() !== ib.join()) return false;
  return ia.every((i) => (a.getBlock(ino, i) ?? Buffer.alloc(0)).equals(b.getBlock(ino, i) ?? Buffer.alloc(0)));
}

const contentDiffers = (x: InodeRecord, y: InodeRecord) =>
  x.size !== y.size || ts(x.mtime) !== ts(y.mtime) || !(x.inline ?? Buffer.alloc(0)).equals(y.inline ?? Buffer.alloc(0)) ||
  !(x.symlinkTarget ?? Buffer.alloc(0)).equals(y.symlinkTarget ?? Buffer.alloc(0));

const attrsDiffer = (x: InodeRecord, y: InodeRecord) =>
  x.mode !== y.mode || x.uid !== y.uid || x.gid !== y.gid ||
  JSON.stringify(Object.entries(x.xattrs).map(([k, v]) => [k, v.toString('hex')]).sort()) !== JSON.stringify(Object.entries(y.xattrs).map(([k, v]) => [k, v.toString('hex')]).sort());

/** The changes that re-make `lost` on top of `now`, and what conflicted. */
export function resolveLost(r: ResolveInput): { batch: FsBatch; notes: ConflictNote[] } {
  const { old: O, now: N } = r;
  const time = r.time ?? new Date();
  const batch: FsBatch = { inodes: [], deletedInodes: [], dentries: [], blocks: [] };
  const notes: ConflictNote[] = [];
  // Final state of each key the lost commits touched, with the version they started from.
  const inodes = new Map<Ino, { base: number; tomb: boolean }>();
  const entries = new Map<string, { base: number; tomb: boolean; parent: Ino; meta: EventMeta; payload: Buffer | null }>();
  const wroteBlocks = new Set<Ino>();
  for (const c of r.lost) {
    for (const ev of c.events) {
      const m = ev.meta;
      if (m.type === 'inode') {
        const ino = inoOfKey(m.key);
        const prev = inodes.get(ino);
        inodes.set(ino, { base: prev?.base ?? m.version - 1, tomb: m.tombstone });
      } else if (m.type === 'dentry' && m.parent) {
        const prev = entries.get(m.key);
        entries.set(m.key, { base: prev?.base ?? m.version - 1, tomb: m.tombstone, parent: inoOfKey(m.parent.key), meta: m, payload: ev.payload });
      } else if (m.type === 'block' || m.type === 'blockdelta') wroteBlocks.add(inoOfKey(m.key));
    }
  }

  const stored = new Map<Ino, InodeRecord>();
  const put = (rec: InodeRecord) => {
    const i = batch.inodes.findIndex((x) => x.ino === rec.ino);
    if (i >= 0) batch.inodes[i] = rec; else batch.inodes.push(rec);
    stored.set(rec.ino, rec);
  };
  const exists = (ino: Ino) => stored.has(ino) || sealedOr(() => N.getInode(ino) !== undefined, true);
  const added = new Map<string, Ino | null>();
  const slot = (p: Ino, name: Buffer) => `${p}/${name.toString('hex')}`;
  const lookup = (p: Ino, name: Buffer): Ino | undefined => {
    const k = slot(p, name);
    if (added.has(k)) return added.get(k) ?? undefined;
    return N.lookupDentry(p, name);
  };
  const setName = (p: Ino, name: Buffer, ino: Ino | null) => {
    added.set(slot(p, name), ino);
    batch.dentries.push({ parent: p, name, ino });
  };
  const copyBlocks = (from: Ino, to: Ino) => {
    for (const i of O.blockIndexes(from)) batch.blocks.push({ ino: to, index: i, data: O.getBlock(from, i) ?? Buffer.alloc(0) });
  };
  const replaceBlocks = (ino: Ino) => {
    const mine = new Set(O.blockIndexes(ino));
    copyBlocks(ino, ino);
    for (const i of N.blockIndexes(ino)) if (!mine.has(i)) batch.blocks.push({ ino, index: i, data: null });
  };
  const giveName = (p: Ino, name: Buffer, ino: Ino, why: string) => {
    const cur = lookup(p, name);
    if (cur === ino) return;
    if (cur === undefined) return setName(p, name, ino);
    let n = 0;
    let alt = conflictName(name, r.machine, time);
    while (lookup(p, alt) !== undefined) alt = conflictName(name, r.machine, time, ++n);
    setName(p, alt, ino);
    notes.push({ at: time.toISOString(), text: `${why}: '${name.toString()}' kept as '${alt.toString()}'`, kept: alt.toString() });
  };
  /** Re-creates (from the old view) a directory the server no longer has, under its old name. */
  const ensureDir = (d: Ino, depth = 0): boolean => {
    if (exists(d)) return true;
    const rec = O.getInode(d);
    if (!rec || depth > 256) return false;
    const parent = rec.parent ?? 1;
    if (!ensureDir(parent, depth + 1)) return false;
    put(rec);
    const at = findName(O, d, parent);
    if (at) giveName(at.parent, at.name, d, 'a directory removed elsewhere got new entries here and was re-created');
    return true;
  };
  const ensureInode = (ino: Ino) => {
    if (exists(ino)) return;
    const rec = O.getInode(ino);
    if (!rec) return;
    put(rec);
    copyBlocks(ino, ino);
  };

  /** Versions base+1..to of `key` were all written by this machine. */
  const onlyOwn = (key: string, base: number, to: number): boolean => {
    if (!r.ownVersion || to - base > 4096) return false;
    for (let v = base + 1; v <= to; v++) if (!r.ownVersion(key, v)) return false;
    return true;
  };

  // Inodes: content and attributes.
  const keep = new Set<Ino>();
  for (const [ino, f] of inodes) {
    const o = O.getInode(ino);
    const n = N.getInode(ino);
    const nv = N.view.node(inodeKey(ino));
    const theirVersion = nv && !nv.deleted ? nv.version : (nv?.version ?? 0);
    if (o && !n) {
      if (f.base === 0 || isDir(o)) { if (isDir(o)) ensureDir(ino); else ensureInode(ino); continue; }
      // Changed here, deleted elsewhere: the change wins; the file comes back under its name.
      ensureInode(ino);
      const at = findName(O, ino);
      if (at && ensureDir(at.parent)) giveName(at.parent, at.name, ino, 'a file deleted elsewhere was changed here');
      notes.push({ at: time.toISOString(), text: `'${at?.name.toString() ?? ino}' was deleted elsewhere and changed here: kept`, kept: at?.name.toString() ?? String(ino) });
      continue;
    }
    if (!o && n) {
      if (theirVersion > f.base) keep.add(ino); // deleted here, changed elsewhere: the change wins
      else {
        batch.deletedInodes.push(ino);
        for (const i of N.blockIndexes(ino)) batch.blocks.push({ ino, index: i, data: null });
      }
      continue;
    }
    if (!o || !n) continue;
    if (theirVersion === f.base || (theirVersion > f.base && onlyOwn(inodeKey(ino), f.base, theirVersion))) {
      // Nobody else touched it (what came in between was this machine's own): its version as it was.
      put(o);
      if (wroteBlocks.has(ino)) replaceBlocks(ino);
      continue;
    }
    const baseBytes = f.base > 0 ? r.base(inodeKey(ino), f.base) : null;
    const base = baseBytes ? decodeInode(baseBytes) : null;
    if (isDir(o)) {
      put({ ...n, mtime: later(n.mtime, o.mtime), ctime: later(n.ctime, o.ctime), ...(base && attrsDiffer(o, base) ? { mode: o.mode, uid: o.uid, gid: o.gid, xattrs: o.xattrs } : {}) });
      continue;
    }
    const ours = !base || wroteBlocks.has(ino) || contentDiffers(o, base);
    const theirs = !base || contentDiffers(n, base);
    if (ours && theirs && !sameContent(O, N, ino, o, n)) {
      // Both changed the content: the server's version keeps the name, ours goes beside it.
      const copy = r.alloc();
      const at = findName(O, ino);
      const parent = at && ensureDir(at.parent) ? at.parent : 1;
      const name = at?.name ?? Buffer.from(`inode-${ino}`);
      put({ ...o, ino: copy, nlink: 1 });
      copyBlocks(ino, copy);
      let k = 0;
      let alt = conflictName(name, r.machine, time);
      while (lookup(parent, alt) !== undefined) alt = conflictName(name, r.machine, time, ++k);
      setName(parent, alt, copy);
      notes.push({ at: time.toISOString(), text: `'${name.toString()}' was changed here and elsewhere: the other version keeps the name, this one is '${alt.toString()}'`, kept: alt.toString() });
    } else if (ours && !theirs) {
      put({ ...o, nlink: n.nlink });
      replaceBlocks(ino);
    } else if (base ? attrsDiffer(o, base) : attrsDiffer(o, n)) {
      // Attributes only: the later change in server order (this one) wins.
      put({ ...n, mode: (n.mode & S_IFMT) | (o.mode & ~S_IFMT), uid: o.uid, gid: o.gid, xattrs: o.xattrs, ctime: later(n.ctime, o.ctime) });
    }
  }

  // Names.
  for (const [key, f] of entries) {
    if (!f.tomb) {
      const data = r.payload(f.meta, f.payload);
      if (!data) continue;
      const d = decodeDentry(data);
      if (!ensureDir(f.parent)) continue;
      if (!exists(d.ino)) { const rec = O.getInode(d.ino); if (rec && isDir(rec)) ensureDir(d.ino); else ensureInode(d.ino); }
      if (!exists(d.ino)) continue;
      const cur = lookup(f.parent, d.name);
      if (cur === d.ino) continue;
      giveName(f.parent, d.name, d.ino, `'${d.name.toString()}' was created here and elsewhere`);
      continue;
    }
    // Removed here: only if it still names what it named (and that was not changed elsewhere).
    const nowData = N.view.tryGet(key)?.data;
    if (!nowData) continue;
    const d = decodeDentry(nowData);
    const nv = N.view.node(key);
    if ((nv?.version ?? 0) > f.base || keep.has(d.ino)) continue;
    if (lookup(f.parent, d.name) !== d.ino) continue;
    setName(f.parent, d.name, null);
  }

  // Directory link counts (2 + subdirectories) where entries came or went.
  const dirs = new Set(batch.dentries.map((d) => d.parent));
  for (const d of dirs) {
    const rec = stored.get(d) ?? N.getInode(d);
    if (!rec) continue;
    const names = new Map<string, Ino>();
    for (const e of N.listDentries(d)) names.set(e.name.toString('hex'), e.ino);
    for (const e of batch.dentries) if (e.parent === d) { if (e.ino === null) names.delete(e.name.toString('hex')); else names.set(e.name.toString('hex'), e.ino); }
    let subdirs = 0;
    for (const ino of names.values()) {
      // A file sealed for another member's key (their 0600 file) is no directory: directories
      // always inherit a key every member holds.
      const c = stored.get(ino) ?? sealedOr(() => N.getInode(ino) ?? O.getInode(ino), undefined);
      if (c && isDir(c)) subdirs++;
    }
    if (rec.nlink !== 2 + subdirs || !stored.has(d)) put({ ...rec, nlink: 2 + subdirs, mtime: later(rec.mtime, { sec: Math.floor(time.getTime() / 1000), nsec: 0 }) });
  }
  void isReg;
  return { batch, notes };
}
