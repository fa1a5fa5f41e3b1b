/**
 * The order in which a batch's name changes are committed when the batch is cut into several
 * commits (see ChainStore.apply): a crash between two of them must leave a tree that a prefix of
 * the user's operations could have made, as far as names go.
 *
 * - A rename's entries go into one group, so one commit: the new name, and the change of the old
 *   name that held the same inode — its removal, or a new inode put in its place (`mv a c; mkdir a`:
 *   the new `a` alone would leave the old directory under neither name). Renames that touch each
 *   other's names (a swap) form one group, and so do a rename out of a directory and the rename
 *   of that directory (or of one above it).
 * - A name inside a directory comes after the group that names that directory (a new directory,
 *   or one renamed in this batch): otherwise a crash shows the new child under the directory's
 *   old name, or under a directory no name reaches yet (`mkdir N; mv x N/x` would lose x).
 * - Removals inside a directory renamed in this batch come before that rename (else a crash shows
 *   the removed name under the directory's new name: `rm c/x; mv c a` must never show a/x); other
 *   removals that are no rename's come last (`cp x y; rm x` never loses both names).
 * - A new inode put in place of one removed for good comes after the renames that move entries out
 *   of the removed one (`mv c/a b; rmdir c; mkdir c`: the new c first would leave a under no name).
 * So: removals inside renamed directories, adds outside them, renames and what is inside them
 * (parents first), the other removals.
 */
import type { Ino } from '../core/api.js';
import type { FsBatch } from '../core/store.js';

export type DentryChange = FsBatch['dentries'][number];

/** One commit's worth of the namespace that must not be split: adds, then removals. */
export interface NameGroup { adds: DentryChange[]; removes: DentryChange[] }

/**
 * @param current the inode a name holds in the committed state (undefined: none), to recognise
 *   the old half of a rename.
 * @param parentOf a directory's parent (the batch's new records first), to find what lies inside a
 *   renamed directory.
 */
export function orderNamespace(
  dentries: FsBatch['dentries'],
  current: (parent: Ino, name: Buffer) => Ino | undefined,
  parentOf: (dir: Ino) => Ino | undefined,
): NameGroup[] {
  // A directory and the ones above it, up to the root (bounded: a cycle in a broken tree ends it).
  function* upFrom(dir: Ino | undefined): Generator<Ino> {
    for (let depth = 0; dir !== undefined && depth < 4096; depth++) {
      yield dir;
      const next = parentOf(dir);
      if (next === dir) return; // the root
      dir = next;
    }
  }
  // One node per change, joined (union-find) into the groups that must share a commit.
  const up = dentries.map((_, i) => i);
  const find = (i: number): number => { while (up[i] !== i) { up[i] = up[up[i]!]!; i = up[i]!; } return i; };
  const join = (a: number, b: number) => { up[find(a)] = find(b); };
  const firstAdd = new Map<Ino, number>();
  dentries.forEach((d, i) => { if (d.ino !== null && !firstAdd.has(d.ino)) firstAdd.set(d.ino, i); });
  // Inodes that leave a name they hold now for another name in this batch: moved.
  const moved = new Set<Ino>();
  const oldHalf = new Set<number>();
  dentries.forEach((d, i) => {
    const was = current(d.parent, d.name);
    if (was === undefined || was === d.ino) return;
    const to = firstAdd.get(was);
    if (to === undefined) return; // removed or replaced for good: no rename
    moved.add(was);
    oldHalf.add(i);
    join(i, to);
  });
  // An inode that moves out of a directory which itself moves in this batch (or lies inside one
  // that does) moves in the same commit as that directory: `mv a/b c; touch a/b; mv a d` cut
  // between them would show the old a/b as d/b, a name it has neither before nor after.
  oldHalf.forEach((i) => {
    for (const d of upFrom(dentries[i]!.parent)) {
      if (moved.has(d)) {
        join(i, firstAdd.get(d)!);
        return;
      }
    }
  });
  const byRoot = new Map<number, NameGroup>();
  const groupOf: NameGroup[] = [];
  dentries.forEach((d, i) => {
    const r = find(i);
    let g = byRoot.get(r);
    if (!g) { g = { adds: [], removes: [] }; byRoot.set(r, g); }
    if (d.ino === null) g.removes.push(d);
    else g.adds.push(d);
    groupOf[i] = g;
  });
  const groups = [...new Set(groupOf)];

  // Whether a directory lies inside (or is) one that moves in this batch.
  const inside = new Map<Ino, boolean>();
  const insideMoved = (dir: Ino): boolean => {
    if (moved.size === 0) return false;
    const seen: Ino[] = [];
    let found = false;
    for (const d of upFrom(dir)) {
      const known = inside.get(d);
      if (known !== undefined) { found = known; break; }
      if (moved.has(d)) { found = true; break; }
      seen.push(d);
    }
    for (const x of seen) inside.set(x, found);
    return found;
  };
  const renames = new Set<NameGroup>();
  oldHalf.forEach((i) => renames.add(groupOf[i]!));
  const late = (g: NameGroup) => renames.has(g) || g.adds.some((d) => insideMoved(d.parent));

  // Parents first: a group naming a directory precedes the groups naming entries inside it.
  const namingGroups = new Map<Ino, NameGroup[]>();
  for (const g of groups) for (const d of g.adds) {
    const list = namingGroups.get(d.ino!);
    if (!list) namingGroups.set(d.ino!, [g]);
    else if (!list.includes(g)) list.push(g);
  }
  // A name given to a new inode in place of one removed for good (`mv c/a b; rmdir c; mkdir c`)
  // comes after the renames that move entries out of the removed one: before them, a crash shows
  // those entries under neither name (their directory no longer reachable).
  const after = new Map<NameGroup, NameGroup[]>();
  dentries.forEach((d, i) => {
    if (d.ino === null) return;
    const was = current(d.parent, d.name);
    if (was === undefined || was === d.ino || firstAdd.has(was)) return;
    oldHalf.forEach((j) => {
      for (const p of upFrom(dentries[j]!.parent)) {
        if (p === was) {
          const list = after.get(groupOf[i]!) ?? [];
          list.push(groupOf[j]!);
          after.set(groupOf[i]!, list);
          return;
        }
      }
    });
  });
  const ordered: NameGroup[] = [];
  const state = new Set<NameGroup>();
  const visit = (g: NameGroup): void => {
    if (state.has(g)) return; // done, or a cycle (not in a tree; keep the batch order then)
    state.add(g);
    for (const r of after.get(g) ?? []) if (r !== g) visit(r);
    for (const d of g.adds) {
      for (const p of namingGroups.get(d.parent) ?? []) if (p !== g) visit(p);
      // An ancestor further up that moves in this batch moves first (`touch a/b/x; mv a c`: a
      // crash between them must not show a/b/x, a name neither before nor after has).
      if (moved.size === 0) continue;
      for (const a of upFrom(parentOf(d.parent))) {
        if (moved.has(a)) for (const p of namingGroups.get(a) ?? []) if (p !== g) visit(p);
      }
    }
    ordered.push(g);
  };
  const plain = groups.filter((g) => g.adds.length === 0 && !renames.has(g));
  const named = groups.filter((g) => g.adds.length > 0 || renames.has(g));
  // Removals inside a moved directory go before it moves — first of all, since an add outside
  // it can pull the rename in ahead of itself (`mv c a; rmdir a/a; mkdir c; create c/a`: the new
  // c/a is named after the group that names the new c, which is the rename's); other removals last.
  const last: NameGroup[] = [];
  for (const g of plain) {
    if (g.removes.some((d) => insideMoved(d.parent))) { state.add(g); ordered.push(g); } else last.push(g);
  }
  for (const g of named) if (!late(g)) visit(g);
  for (const g of named) visit(g);
  ordered.push(...last);
  return ordered;
}
