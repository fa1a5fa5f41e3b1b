import { describe, expect, it } from 'vitest';
import { posix } from '../../fs/core/index.js';
import { errnoOf as errnoOfCode, toErrno } from '../../fs/core/errors.js';
import { OTHER, ROOT, USER, b, errnoOf, makeFs, names, writeFile } from './fs-helpers.js';

describe('fs core: readdir', () => {
  it('lists ".", "..", then entries with types; offsets resume a listing', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    writeFile(fs, ROOT, d.ino, 'f', '');
    fs.mkdir(ROOT, d.ino, b('sub'), 0o755);
    fs.symlink(ROOT, d.ino, b('ln'), b('f'));
    fs.mknod(ROOT, d.ino, b('p'), posix.S_IFIFO | 0o644, 0);
    const { fh } = fs.opendir(ROOT, d.ino, 0);
    const all = fs.readdir(ROOT, d.ino, fh, 0, 100);
    expect(all.map((e) => [e.name.toString(), e.type])).toEqual([
      ['.', posix.S_IFDIR], ['..', posix.S_IFDIR], ['f', posix.S_IFREG], ['sub', posix.S_IFDIR],
      ['ln', posix.S_IFLNK], ['p', posix.S_IFIFO],
    ]);
    expect(all[0]!.ino).toBe(d.ino);
    expect(all[1]!.ino).toBe(1);
    // Paging with every possible page size gives the same listing.
    for (let page = 1; page <= 7; page++) {
      const got: string[] = [];
      let off = 0;
      for (;;) {
        const list = fs.readdir(ROOT, d.ino, fh, off, page);
        expect(list.length).toBeLessThanOrEqual(page);
        if (!list.length) break;
        for (const e of list) { got.push(e.name.toString()); off = e.offset; }
      }
      expect(got).toEqual(all.map((e) => e.name.toString()));
    }
    expect(fs.readdir(ROOT, d.ino, fh, all[all.length - 1]!.offset, 10)).toEqual([]);
    fs.releasedir(d.ino, fh);
  });

  it('offsets stay valid while entries are added and removed during a listing', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o777);
    for (let i = 0; i < 300; i++) writeFile(fs, ROOT, d.ino, `f${i}`, '');
    const { fh } = fs.opendir(ROOT, d.ino, 0);
    const seen = new Map<string, number>();
    const removedUnseen = new Set<string>();
    let off = 0;
    let round = 0;
    for (;;) {
      const list = fs.readdir(ROOT, d.ino, fh, off, 17);
      if (!list.length) break;
      for (const e of list) { seen.set(e.name.toString(), (seen.get(e.name.toString()) ?? 0) + 1); off = e.offset; }
      // Between pages: remove some entries not yet listed and some already listed, add new ones.
      for (let k = 0; k < 5; k++) {
        const victim = `f${(round * 37 + k * 61) % 300}`;
        try {
          fs.unlink(ROOT, d.ino, b(victim));
          if (!seen.has(victim)) removedUnseen.add(victim);
        } catch { /* already gone */ }
      }
      if (round < 10) writeFile(fs, ROOT, d.ino, `new${round}`, ''); // entries added after the cookie are listed
      round++;
    }
    for (const [, n] of seen) expect(n).toBe(1); // nothing twice
    // Every entry that existed from start to end was returned.
    const final = new Set(names(fs, ROOT, d.ino));
    for (let i = 0; i < 300; i++) if (final.has(`f${i}`)) expect(seen.has(`f${i}`)).toBe(true);
    for (let r = 0; r < 10; r++) expect(seen.has(`new${r}`)).toBe(true);
    expect(seen.has('.')).toBe(true);
    expect(removedUnseen.size).toBeGreaterThan(10);
    for (const name of removedUnseen) expect(seen.has(name)).toBe(false); // removed before reached: skipped
  });

  it('removed entries that were not reached yet are skipped; compaction keeps cookies valid', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o777);
    for (let i = 0; i < 200; i++) writeFile(fs, ROOT, d.ino, `f${i}`, '');
    const { fh } = fs.opendir(ROOT, d.ino, 0);
    const first = fs.readdir(ROOT, d.ino, fh, 0, 12); // ., .., f0..f9
    const cookie = first[first.length - 1]!.offset;
    for (let i = 0; i < 190; i++) fs.unlink(ROOT, d.ino, b(`f${i}`)); // triggers compaction
    const rest: string[] = [];
    let off = cookie;
    for (;;) {
      const list = fs.readdir(ROOT, d.ino, fh, off, 5);
      if (!list.length) break;
      for (const e of list) { rest.push(e.name.toString()); off = e.offset; }
    }
    expect(rest).toEqual(Array.from({ length: 10 }, (_, i) => `f${190 + i}`));
  });

  it('readdirplus returns entries with attributes and counts lookups', async () => {
    const { fs, store } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('d'), 0o777);
    const f = fs.create(ROOT, d.ino, b('f'), 0o600, 2);
    fs.release(f.entry.ino, f.open.fh);
    fs.forget(f.entry.ino, 1); // the kernel forgot the create's lookup
    const { fh } = fs.opendir(ROOT, d.ino, 0);
    const list = fs.readdirplus(ROOT, d.ino, fh, 0, 10);
    expect(list.map((e) => e.name.toString())).toEqual(['.', '..', 'f']);
    const fe = list[2]!;
    expect(fe.entry!.ino).toBe(f.entry.ino);
    expect(fe.entry!.attr.mode).toBe(posix.S_IFREG | 0o600);
    expect(fe.entry!.attrTimeout).toBe(store.cacheTimeout);
    fs.unlink(ROOT, d.ino, b('f'));
    expect(fs.getattr(ROOT, f.entry.ino).nlink).toBe(0); // alive: readdirplus counted a lookup
    fs.forget(f.entry.ino, 1);
    expect(errnoOf(() => fs.getattr(ROOT, f.entry.ino))).toBe('ENOENT');
    await fs.sync();
    expect(store.getInode(f.entry.ino)).toBeUndefined();
  });

  it('opendir/readdir errors and permissions', () => {
    const { fs } = makeFs();
    const f = writeFile(fs, ROOT, 1, 'f', '');
    expect(errnoOf(() => fs.opendir(ROOT, f, 0))).toBe('ENOTDIR');
    const d = fs.mkdir(ROOT, 1, b('d'), 0o711);
    expect(errnoOf(() => fs.opendir(USER, d.ino, 0))).toBe('EACCES');
    expect(errnoOf(() => fs.opendir(OTHER, d.ino, 0))).toBe('EACCES');
    expect(fs.opendir(ROOT, d.ino, 0).fh).toBeGreaterThan(0);
    expect(errnoOf(() => fs.opendir(ROOT, 999, 0))).toBe('ENOENT');
  });

  it('an entry whose inode is missing from the store is skipped, not fatal', async () => {
    const { fs, store } = makeFs();
    writeFile(fs, ROOT, 1, 'good', 'x');
    await fs.sync();
    await store.commit({ inodes: [], deletedInodes: [], blocks: [], dentries: [{ parent: 1, name: b('dangling'), ino: 4242 }] }, 'local');
    const { fs: fresh } = makeFs({}, store);
    expect(names(fresh, ROOT, 1)).toEqual(['.', '..', 'good']);
    const { fh } = fresh.opendir(ROOT, 1, 0);
    expect(fresh.readdirplus(ROOT, 1, fh, 0, 10).map((e) => e.name.toString())).toEqual(['.', '..', 'good']);
    expect(errnoOf(() => fresh.lookup(ROOT, 1, b('dangling')))).toBe('ENOENT');
  });

  it('an entry sealed for keys this mount lacks is listed (no type, no attributes); its lookup is EACCES', async () => {
    const { fs, store } = makeFs();
    writeFile(fs, ROOT, 1, 'good', 'x');
    const sealed = writeFile(fs, ROOT, 1, 'sealed', 'not for you');
    await fs.sync();
    // What the chain store throws for an inode sealed for another member's key (src/chain NoReadKey).
    const getInode = store.getInode.bind(store);
    store.getInode = (ino) => {
      if (ino === sealed) throw Object.assign(new Error('no read key'), { name: 'NoReadKey' });
      return getInode(ino);
    };
    const { fs: fresh } = makeFs({}, store);
    const { fh } = fresh.opendir(ROOT, 1, 0);
    const plain = fresh.readdir(ROOT, 1, fh, 0, 10).map((e) => [e.name.toString(), e.ino, e.type]);
    expect(plain.slice(2).sort()).toEqual([['good', expect.any(Number), posix.S_IFREG], ['sealed', sealed, 0]].sort());
    const plus = fresh.readdirplus(ROOT, 1, fh, 0, 10).filter((e) => e.name.toString() === 'sealed');
    expect(plus).toEqual([{ name: b('sealed'), ino: sealed, type: 0, offset: expect.any(Number), entry: null }]);
    const refused = (() => { try { fresh.lookup(ROOT, 1, b('sealed')); return null; } catch (e) { return toErrno(e); } })();
    expect(refused).toBe(errnoOfCode('EACCES'));
    expect(errnoOf(() => fresh.lookup(ROOT, 1, b('good')))).toBeUndefined();
  });

  it('a renamed entry appears under its new name', () => {
    const { fs } = makeFs();
    writeFile(fs, ROOT, 1, 'a', '');
    writeFile(fs, ROOT, 1, 'b', '');
    fs.rename(ROOT, 1, b('a'), 1, b('c'), 0);
    expect(names(fs, ROOT, 1)).toEqual(['.', '..', 'b', 'c']);
  });

  it('a large directory: 10,000 entries, each found by lookup, all listed (lookup speed: bench:fs)', () => {
    const { fs } = makeFs();
    const d = fs.mkdir(ROOT, 1, b('big'), 0o777);
    const inos: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      inos.push(fs.mknod(ROOT, d.ino, b(`entry-${i}`), posix.S_IFREG | 0o644, 0).ino);
    }
    for (let i = 0; i < 10_000; i += 997) expect(fs.lookup(ROOT, d.ino, b(`entry-${i}`)).ino).toBe(inos[i]);
    expect(names(fs, ROOT, d.ino).length).toBe(10_002);
  });
});
