// A remote mount (RemoteFs and the filesystem core, as `atefs mount DIR tcp://...` runs them,
// without FUSE) of a chain the server compacted (atedb --compact-mode; SIGUSR2 compacts now): a
// machine that opens it for the first time sees the files the writing machine sees.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Filesystem } from '../../fs/core/index.js';
import { ROOT, names, readAll } from './remote-fs-helpers.js';
import { RemoteFs } from '../../fs/remote/remote-store.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { type Solo, sleep, startSolo, tempDir } from './atedb/harness.js';

const b = (s: string) => Buffer.from(s);

async function until(what: string, pred: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Machine { rfs: RemoteFs; fs: Filesystem }

let solo: Solo;
beforeAll(async () => {
  // Deletions are compacted at once: a machine offline across the cut must not keep a removed file.
  solo = await startSolo({ args: ['--compact-mode', 'timer', '--tombstone-retention', '0'] });
}, 60_000);
afterAll(async () => {
  await solo?.kill();
});

async function machine(base: string, chain: string, session: Session, name: string, warnings?: string[]): Promise<Machine> {
  const rfs = await RemoteFs.open({
    url: `tcp://127.0.0.1:${solo.port}/${chain}`, session, dir: join(base, `state-${name}`), configDir: join(base, `config-${name}`), machineName: name,
    ...(warnings ? { onWarning: (m: string) => warnings.push(m) } : {}),
  });
  return { rfs, fs: await Filesystem.open(rfs.store, { rootUid: 0, rootGid: 0, commitDelayMs: 60_000 }) };
}

async function compactNow(chain: string): Promise<void> {
  const before = solo.stderr().length;
  process.kill(solo.pid, 'SIGUSR2');
  const re = new RegExp(`compact(ed|ion of) '${chain.replace('/', '\\/')}'`);
  await until('the compaction', () => re.test(solo.stderr().slice(before)));
  expect(solo.stderr().slice(before)).toMatch(new RegExp(`compacted '${chain.replace('/', '\\/')}'`));
}

function rewrite(fs: Filesystem, ino: number, data: Buffer): void {
  const { fh } = fs.open(ROOT, ino, 2);
  fs.write(ROOT, ino, fh, 0, data);
  fs.release(ino, fh);
}

describe('remote mount of a compacted chain', () => {
  it('a machine offline across the cut drops a file removed meanwhile and serves the writer\'s files', async () => {
    const base = await tempDir('atefs-compacted-offline-');
    const session = Session.of(createIdentity('alice'));
    const A = await machine(base, 'team/offline', session, 'alpha');
    let B: Machine | undefined;
    const warnings: string[] = [];
    try {
      const { rfs: ra, fs } = A;
      const dir = fs.mkdir(ROOT, 1, b('docs'), 0o755).ino;
      const keep = fs.create(ROOT, dir, b('keep.txt'), 0o644, 2);
      fs.release(keep.entry.ino, keep.open.fh);
      const old = fs.create(ROOT, dir, b('old.txt'), 0o644, 2);
      fs.write(ROOT, old.entry.ino, old.open.fh, 0, b('soon gone'));
      fs.release(old.entry.ino, old.open.fh);
      await fs.sync();
      await until("A's commits confirmed", () => ra.rc.pendingCount === 0);
      B = await machine(base, 'team/offline', session, 'beta', warnings);
      await B.rfs.store.settle();
      expect(names(B.fs, B.fs.lookup(ROOT, 1, b('docs')).ino)).toEqual(['keep.txt', 'old.txt']);
      await B.fs.destroy();
      await B.rfs.close();
      B = undefined;

      // While B is away: old.txt removed, keep.txt rewritten many times, the server compacts.
      fs.unlink(ROOT, dir, b('old.txt'));
      for (let r = 0; r < 8; r++) {
        rewrite(fs, keep.entry.ino, Buffer.alloc(20_000 + r, 65 + r));
        await fs.sync();
      }
      await until("A's commits confirmed", () => ra.rc.pendingCount === 0);
      await compactNow('team/offline');

      B = await machine(base, 'team/offline', session, 'beta', warnings);
      await until('the rebase on B', () => warnings.some((w) => /behind the server's compaction cut/.test(w)) && B!.rfs.rc.status === 'online');
      await B.rfs.store.settle();
      const bdir = B.fs.lookup(ROOT, 1, b('docs')).ino;
      await until('old.txt gone on B', () => names(B!.fs, bdir).length === 1, 10_000);
      expect(names(B.fs, bdir)).toEqual(['keep.txt']);
      // B's view was rebuilt from its rebased replica (the resync says so).
      await until('the resync on B', () => warnings.some((w) => /resynced|compacted history this machine held/.test(w)), 10_000);
      expect(readAll(B.fs, B.fs.lookup(ROOT, bdir, b('keep.txt')).ino).equals(readAll(fs, keep.entry.ino))).toBe(true);
    } finally {
      for (const m of [A, B]) await m?.fs.destroy().catch(() => undefined);
      for (const m of [A, B]) await m?.rfs.close().catch(() => undefined);
    }
  }, 120_000);

  it('a machine opening it for the first time sees the files, contents and names the writer sees', async () => {
    const base = await tempDir('atefs-compacted-');
    const session = Session.of(createIdentity('alice'));
    const A = await machine(base, 'team/fs', session, 'alpha');
    let C: Machine | undefined;
    try {
      const { rfs: ra, fs } = A;
      const dir = fs.mkdir(ROOT, 1, b('docs'), 0o755).ino;
      const files: number[] = [];
      for (let i = 0; i < 4; i++) {
        const { entry, open } = fs.create(ROOT, dir, b(`f${i}.dat`), 0o644, 2);
        fs.release(entry.ino, open.fh);
        files.push(entry.ino);
      }
      // Many rewrites of the same files (each synced: one commit per round), a rename, a removal.
      for (let r = 0; r < 10; r++) {
        for (let i = 0; i < 4; i++) {
          const { fh } = fs.open(ROOT, files[i]!, 2);
          fs.write(ROOT, files[i]!, fh, 0, Buffer.alloc(30_000 + r * 100, 97 + ((r + i) % 26)));
          fs.release(files[i]!, fh);
        }
        await fs.sync();
      }
      fs.rename(ROOT, dir, b('f1.dat'), dir, b('renamed.dat'), 0);
      fs.unlink(ROOT, dir, b('f3.dat'));
      await fs.sync();
      await until("A's commits confirmed", () => ra.rc.pendingCount === 0);

      await compactNow('team/fs');

      C = await machine(base, 'team/fs', session, 'gamma');
      await C.rfs.store.settle();
      const cdir = C.fs.lookup(ROOT, 1, b('docs')).ino;
      expect(names(C.fs, cdir)).toEqual(names(fs, dir));
      expect(names(C.fs, cdir)).toEqual(['f0.dat', 'f2.dat', 'renamed.dat']);
      for (const n of names(fs, dir)) {
        const mine = readAll(fs, fs.lookup(ROOT, dir, b(n)).ino);
        const theirs = readAll(C.fs, C.fs.lookup(ROOT, cdir, b(n)).ino);
        expect(theirs.equals(mine), n).toBe(true);
      }
      // And it writes on: A sees what C writes after the compaction.
      const { entry, open } = C.fs.create(ROOT, cdir, b('from-c.txt'), 0o644, 2);
      C.fs.write(ROOT, entry.ino, open.fh, 0, b('hello from gamma'));
      C.fs.release(entry.ino, open.fh);
      await C.fs.sync();
      await until("C's commit confirmed", () => C!.rfs.rc.pendingCount === 0);
      await until('the new file on A', () => {
        try {
          fs.lookup(ROOT, dir, b('from-c.txt'));
          return true;
        } catch {
          return false;
        }
      });
      expect(readAll(fs, fs.lookup(ROOT, dir, b('from-c.txt')).ino).toString()).toBe('hello from gamma');
      // C reopens (its replica under the server's cut, its view holding kept commits) and serves the same.
      await C.fs.destroy();
      await C.rfs.close();
      C = await machine(base, 'team/fs', session, 'gamma');
      await C.rfs.store.settle();
      const again = C.fs.lookup(ROOT, 1, b('docs')).ino;
      expect(names(C.fs, again)).toEqual(['f0.dat', 'f2.dat', 'from-c.txt', 'renamed.dat']);
      expect(readAll(C.fs, C.fs.lookup(ROOT, again, b('f2.dat')).ino).equals(readAll(fs, fs.lookup(ROOT, dir, b('f2.dat')).ino))).toBe(true);
    } finally {
      for (const m of [A, C]) await m?.fs.destroy().catch(() => undefined);
      for (const m of [A, C]) await m?.rfs.close().catch(() => undefined);
    }
  }, 120_000);
});
