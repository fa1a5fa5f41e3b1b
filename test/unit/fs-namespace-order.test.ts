// The order of a batch's name changes when it is cut into several commits (namespace-order.ts).
import { describe, expect, it } from 'vitest';
import { orderNamespace, type NameGroup } from '../../fs/chain-store/namespace-order.js';

// Directories' parents (1 is the root): 5 and 9 in the root, 10 inside 5.
const parents = new Map([[1, 1], [5, 1], [9, 1], [10, 5]]);

const b = (s: string) => Buffer.from(s);
/** The groups of `dentries` against the committed names (`parent/name` -> ino), shown. */
const order = (committed: Map<string, number>, dentries: Parameters<typeof orderNamespace>[0], parentOf = (d: number) => parents.get(d)) =>
  show(orderNamespace(dentries, (p, n) => committed.get(`${p}/${n}`), parentOf));
const show = (gs: NameGroup[]) => gs.map((g) => [...g.adds.map((d) => `+${d.parent}/${d.name}=${d.ino}`), ...g.removes.map((d) => `-${d.parent}/${d.name}`)].join(' '));

describe('namespace order of a batch cut into several commits', () => {
  it('keeps a rename in one group and names a renamed directory before a new name inside it', () => {
    // committed: 1/a = 5; the batch: mv a c; mkdir c/a (ino 6)
    const committed = new Map([['1/a', 5]]);
    expect(order(committed, [
      { parent: 5, name: b('a'), ino: 6 },
      { parent: 1, name: b('c'), ino: 5 },
      { parent: 1, name: b('a'), ino: null },
    ])).toEqual(['+1/c=5 -1/a', '+5/a=6']);
  });

  it('names a new directory before a file moved into it, and leaves other removals for the end', () => {
    // committed: 1/x = 7, 1/old = 8; the batch: mkdir N (9); mv x N/x; rm old
    const committed = new Map([['1/x', 7], ['1/old', 8]]);
    expect(order(committed, [
      { parent: 1, name: b('old'), ino: null },
      { parent: 9, name: b('x'), ino: 7 },
      { parent: 1, name: b('x'), ino: null },
      { parent: 1, name: b('N'), ino: 9 },
    ])).toEqual(['+1/N=9', '+9/x=7 -1/x', '-1/old']);
  });

  it('a name created and removed in the batch is a plain removal', () => {
    const gs = orderNamespace([{ parent: 1, name: b('t'), ino: null }, { parent: 1, name: b('u'), ino: 4 }], () => undefined, () => 1);
    expect(show(gs)).toEqual(['+1/u=4', '-1/t']);
  });

  it('removes names inside a renamed directory before the rename, and copies elsewhere before plain removals', () => {
    // committed: 1/c = 5, 5/x = 7, 5/d = 10, 10/y = 11, 1/z = 12; the batch: rm c/x; rm c/d/y; mv c a; cp z w (13); rm z
    const committed = new Map([['1/c', 5], ['5/x', 7], ['5/d', 10], ['10/y', 11], ['1/z', 12]]);
    expect(order(committed, [
      { parent: 5, name: b('x'), ino: null },
      { parent: 10, name: b('y'), ino: null },
      { parent: 1, name: b('a'), ino: 5 },
      { parent: 1, name: b('c'), ino: null },
      { parent: 1, name: b('w'), ino: 13 },
      { parent: 1, name: b('z'), ino: null },
    ])).toEqual(['-5/x', '-10/y', '+1/w=13', '+1/a=5 -1/c', '-1/z']);
  });

  it('a name added deep inside a directory renamed in this batch follows that rename', () => {
    // committed: 1/a = 5, 5/b = 10 (directories); the batch: touch a/b/x (20); mv a c.
    // Found by the model test: a crash between the two commits showed a/b/x.
    const committed = new Map([['1/a', 5], ['5/b', 10]]);
    expect(order(committed, [
      { parent: 10, name: b('x'), ino: 20 },
      { parent: 1, name: b('c'), ino: 5 },
      { parent: 1, name: b('a'), ino: null },
    ])).toEqual(['+1/c=5 -1/a', '+10/x=20']);
  });

  it('removes names inside a renamed directory first even when an add elsewhere pulls the rename forward', () => {
    // committed: 1/a = 9 (empty), 1/c = 5, 5/a = 10; the batch: mv c a; rmdir a/a; mkdir c (3); touch c/a (6).
    // The new c/a follows the group naming the new c — the rename's — which must come after -5/a
    // (found by the model test: a crash image showed a/a, a name neither before nor after has).
    const committed = new Map([['1/a', 9], ['1/c', 5], ['5/a', 10]]);
    expect(order(committed, [
      { parent: 1, name: b('a'), ino: 5 },
      { parent: 1, name: b('c'), ino: 3 },
      { parent: 5, name: b('a'), ino: null },
      { parent: 3, name: b('a'), ino: 6 },
    ], (d) => (d === 3 ? 1 : parents.get(d)))).toEqual(['-5/a', '+1/a=5 +1/c=3', '+3/a=6']);
  });

  it('a rename whose old name gets a new inode, and a swap, each commit as one group', () => {
    // committed: 1/a = 5 (a directory), 5/a = 10; the batch: mv a c; mkdir a (9)
    let committed = new Map([['1/a', 5], ['5/a', 10]]);
    expect(order(committed, [
      { parent: 1, name: b('a'), ino: 9 },
      { parent: 1, name: b('c'), ino: 5 },
    ])).toEqual(['+1/a=9 +1/c=5']);
    // committed: 1/x = 7, 1/y = 8; the batch swaps them
    committed = new Map([['1/x', 7], ['1/y', 8]]);
    expect(order(committed, [
      { parent: 1, name: b('x'), ino: 8 },
      { parent: 1, name: b('y'), ino: 7 },
    ])).toEqual(['+1/x=8 +1/y=7']);
  });

  it('a rename out of a directory renamed in the same batch shares its commit', () => {
    // committed: 1/a = 5, 5/b = 10 (directories); the batch: mv a/b c; touch a/b (20); mv a d.
    // Found by the model test: with the rename of a first, a crash showed the old a/b as d/b.
    const committed = new Map([['1/a', 5], ['5/b', 10]]);
    expect(order(committed, [
      { parent: 1, name: b('a'), ino: null },
      { parent: 1, name: b('c'), ino: 10 },
      { parent: 1, name: b('d'), ino: 5 },
      { parent: 5, name: b('b'), ino: 20 },
    ])).toEqual(['+1/c=10 +1/d=5 +5/b=20 -1/a']);
  });

  it('a directory removed for good and re-made under its name: the renames out of it go first', () => {
    // committed: 1/c = 5, 5/a = 10 (directories); the batch: mv c/a b; rmdir c; mkdir c (6).
    // Found by the model test (seed 424242): with the new c first, a crash left a under no name.
    const committed = new Map([['1/c', 5], ['5/a', 10]]);
    expect(order(committed, [
      { parent: 1, name: b('c'), ino: 6 },
      { parent: 1, name: b('b'), ino: 10 },
      { parent: 5, name: b('a'), ino: null },
    ])).toEqual(['+1/b=10 -5/a', '+1/c=6']);
  });
});
