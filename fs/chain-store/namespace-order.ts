/**
 * The order in which a batch's name changes are committed when the batch is cut into several
 * commits (see ChainStore.apply): a crash between two of them must leave a tree that a prefix of
 * the user's operations could have made, as far as names go.
 *
 * - A rename's two entries (the new name, and the removal of the old name that held the same
 *   inode) go into one group, so one commit: never under neither name, never under both.
 * - A name inside a directory comes after the group that names that directory (a new directory,
 *   or one renamed in this batch): otherwise a crash shows the new child under the directory's
 *   old name, or under a directory no name reaches yet (`mkdir N; mv x N/x` would lose x).
 * - Removals inside a directory renamed in this batch come before that rename (else a crash shows
 *   the removed name under the directory's new name: `rm c/x; mv c a` must never show a/x); other
 *   removals that are no rename's come last (`cp x y; rm x` never loses both names).
 * So: adds outside renamed directories, removals inside them, renames and what is inside them
 * (parents first), the other removals.
 */
import type { Ino } from '../core/api.js';
import type { FsBatch } from '../core/store.js';

export type DentryChange = FsBatch['dentries'][number];

/** One commit's worth of the namespace that must not be split: adds, then removals. */
export interface NameGroup { adds: DentryChange[]; removes: DentryChange[] }

/**
 * @param current the inode a name holds in the committed state (undefined: none), to recognise
 *   the removal that belongs to a rename.
 */
export function orderNamespace(
  dentries: FsBatch['dentries'],
  current: (parent: Ino, name: Buffer) => Ino | undefined,
  parentOf: (dir: Ino) => Ino | undefined,
): NameGroup[] {
  const adds = dentries.filter((d) => d.ino !== null);
  const removals = dentries.filter((d) => d.ino === null);
  // Removals whose committed inode is named again elsewhere in this batch: renames.
  const addedInos = new Set(adds.map((d) => d.ino!));
  const renameRemovals = new Map<Ino, DentryChange[]>();
  const plainRemovals: DentryChange[] = [];
  for (const r of removals) {
    const was = current(r.parent, r.name);
    if (was !== undefined && addedInos.has(was)) {
      const list = renameRemovals.get(was);
      if (list) list.push(r);
      else renameRemovals.set(was, [r]);
    } else plainRemovals.push(r);
  }
  const groups: NameGroup[] = adds.map((d) => ({ adds: [d], removes: [] }));
  // The removals of a rename join the first group that names the inode again.
  for (const g of groups) {
    const ino = g.adds[0]!.ino!;
    const rs = renameRemovals.get(ino);
    if (rs) { g.removes.push(...rs); renameRemovals.delete(ino); }
  }
  // Parents first: a group whose directory is named by another group follows that group.
  const namingGroups = new Map<Ino, NameGroup[]>();
  for (const g of groups) {
    const ino = g.adds[0]!.ino!;
    const list = namingGroups.get(ino);
    if (list) list.push(g);
    else namingGroups.set(ino, [g]);
  }
  // Directories renamed here, and whether a directory lies inside one (walking up its parents).
  const renamed = new Set(groups.filter((g) => g.removes.length > 0).map((g) => g.adds[0]!.ino!));
  const inside = new Map<Ino, boolean>();
  const insideRenamed = (dir: Ino): boolean => {
    if (renamed.size === 0) return false;
    const seen: Ino[] = [];
    let d: Ino | undefined = dir;
    let found = false;
    for (let depth = 0; d !== undefined && depth < 4096; depth++) {
      const known = inside.get(d);
      if (known !== undefined) { found = known; break; }
      if (renamed.has(d)) { found = true; break; }
      seen.push(d);
      const up = parentOf(d);
      if (up === d) break; // the root
      d = up;
    }
    for (const s of seen) inside.set(s, found);
    return found;
  };
  const late = (g: NameGroup) => g.removes.length > 0 || insideRenamed(g.adds[0]!.parent);

  const ordered: NameGroup[] = [];
  const state = new Map<NameGroup, 'visiting' | 'done'>();
  const visit = (g: NameGroup): void => {
    if (state.has(g)) return; // done, or a cycle (not in a tree; keep the batch order then)
    state.set(g, 'visiting');
    for (const p of namingGroups.get(g.adds[0]!.parent) ?? []) visit(p);
    state.set(g, 'done');
    ordered.push(g);
  };
  for (const g of groups) if (!late(g)) visit(g);
  const last: DentryChange[] = [];
  for (const r of plainRemovals) {
    if (insideRenamed(r.parent)) ordered.push({ adds: [], removes: [r] });
    else last.push(r);
  }
  for (const g of groups) visit(g);
  for (const r of last) ordered.push({ adds: [], removes: [r] });
  return ordered;
}
