import { describe, expect, it } from 'vitest';
import {
  Filesystem, MemoryStore, SETATTR_NOW, posix, type Durability, type FilesystemOptions, type FsBatch,
} from '../../fs/core/index.js';
import { ROOT, USER, b, errnoOf, readFile, writeFile } from './fs-helpers.js';

/** A real MemoryStore that records every commit it receives. */
class CountingStore extends MemoryStore {
  commits: Array<{ batch: FsBatch; durability: Durability }> = [];
  override commit(batch: FsBatch, durability: Durability): Promise<void> {
    this.commits.push({ batch, durability });
    return super.commit(batch, durability);
  }
}

/** A MemoryStore whose commits wait for a gate (a slow disk), applied only once it opens. */
class GatedStore extends CountingStore {
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => {};
  applied = 0;
  close_(): void { this.gate = new Promise((r) => { this.openGate = r; }); }
  open_(): void { this.openGate(); }
  override async commit(batch: FsBatch, durability: Durability): Promise<void> {
    this.commits.push({ batch, durability });
    await this.gate;
    await MemoryStore.prototype.commit.call(this, batch, durability);
    this.applied++;
  }
}

/** A MemoryStore that fails the next `failNext` commits (a full or broken disk). */
class FailingStore extends MemoryStore {
  failNext = 0;
  override commit(batch: FsBatch, durability: Durability): Promise<void> {
    if (this.failNext > 0) { this.failNext--; return Promise.reject(Object.assign(new Error('disk full'), { name: 'DiskFull' })); }
    return super.commit(batch, durability);
  }
}

const ticks = async (n = 5): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r)); };

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) { if (cond()) return; await new Promise((r) => setTimeout(r, 5)); }
  throw new Error(`timed out waiting for ${what}`);
}

const opts = (o: FilesystemOptions = {}): FilesystemOptions => ({
  rootUid: 0, rootGid: 0, rootMode: 0o755, commitDelayMs: 60_000, blockSize: 4096, inlineMax: 1024, atime: 'noatime', ...o,
});

/** Everything observable about a tree, through the core API only. */
function snapshot(fs: Filesystem): unknown[] {
  const out: unknown[] = [];
  const walk = (dir: number, path: string): void => {
    const { fh } = fs.opendir(ROOT, dir, 0);
    // Listing order is not part of the tree: compare by name.
    const list = fs.readdir(ROOT, dir, fh, 0, 100_000).sort((x, y) => Buffer.compare(x.name, y.name));
    fs.releasedir(dir, fh);
    for (const e of list) {
      const name = e.name.toString('latin1');
      if (name === '.' || name === '..') { out.push([path, name, e.ino]); continue; }
      const a = fs.getattr(ROOT, e.ino);
      const xattrs = fs.listxattr(ROOT, e.ino).sort().map((n) => [n, fs.getxattr(ROOT, e.ino, n).toString('hex')]);
      const rec: Record<string, unknown> = { path: path + '/' + name, type: e.type, attr: a, xattrs };
      if ((a.mode & posix.S_IFMT) === posix.S_IFLNK) rec.target = fs.readlink(ROOT, e.ino).toString('hex');
      if ((a.mode & posix.S_IFMT) === posix.S_IFREG) {
        const { fh: f } = fs.open(ROOT, e.ino, 0);
        rec.content = fs.read(ROOT, e.ino, f, 0, a.size + 1).toString('base64');
        rec.data = a.size > 0 ? fs.lseek(e.ino, f, 0, posix.SEEK_DATA) : -1;
        fs.release(e.ino, f);
      }
      out.push(rec);
      if (e.type === posix.S_IFDIR) walk(e.ino, path + '/' + name);
    }
  };
  walk(1, '');
  return out;
}

function buildTree(fs: Filesystem): void {
  const u = { ...USER, umask: 0o022 };
  const home = fs.mkdir(ROOT, 1, b('home'), 0o755);
  fs.setattr(ROOT, home.ino, { uid: 1000, gid: 1000 });
  const proj = fs.mkdir(u, home.ino, b('proj'), 0o2775);
  fs.setattr(USER, proj.ino, { mode: 0o2775 });
  writeFile(fs, u, proj.ino, 'README', 'hello\n', 0o644);
  const big = writeFile(fs, u, proj.ino, 'big.bin', Buffer.from(Buffer.alloc(50_000).map((_, i) => i * 31)), 0o600);
  fs.link(u, big, home.ino, b('hardlink'));
  const sparse = fs.create(u, proj.ino, b('sparse'), 0o644, 2);
  fs.write(u, sparse.entry.ino, sparse.open.fh, 300_000, b('tail'));
  fs.release(sparse.entry.ino, sparse.open.fh);
  fs.symlink(u, proj.ino, b('link'), b('../hardlink'));
  fs.symlink(u, proj.ino, b('long'), Buffer.alloc(4095, 'L'));
  fs.mknod(ROOT, 1, b('fifo'), posix.S_IFIFO | 0o600, 0);
  fs.mknod(ROOT, 1, b('tty'), posix.S_IFCHR | 0o620, 0x0405);
  fs.mknod(ROOT, 1, b('sock'), posix.S_IFSOCK | 0o777, 0);
  fs.setxattr(u, big, 'user.mime', b('application/octet-stream'), 0);
  fs.setxattr(ROOT, big, 'trusted.x', Buffer.from([0, 1, 2]), 0);
  fs.setxattr(u, proj.ino, 'user.dir', b('attr'), 0);
  fs.setattr(u, big, { atime: { sec: 123, nsec: 456_789_012 }, mtime: { sec: 1_234_567_890, nsec: 999_999_999 } });
  fs.setattr(ROOT, fs.lookup(ROOT, proj.ino, b('README')).ino, { mode: 0o4755, uid: 0 });
  const tmp = fs.mkdir(ROOT, 1, b('tmp'), 0o1777);
  writeFile(fs, u, tmp.ino, Buffer.from([0xc3, 0x28, 0xff]).toString('latin1'), 'bad utf8 name');
  fs.rename(ROOT, 1, b('tmp'), 1, b('tmp2'), 0);
  fs.unlink(ROOT, 1, b('sock'));
  fs.mknod(ROOT, 1, b('sock'), posix.S_IFSOCK | 0o755, 0);
}

describe('fs core: persistence through the store', () => {
  it('a new Filesystem over the same store sees exactly the same tree', async () => {
    const store = new MemoryStore();
    const fs = await Filesystem.open(store, opts());
    buildTree(fs);
    const before = snapshot(fs);
    await fs.destroy();
    const fs2 = await Filesystem.open(store, opts());
    expect(snapshot(fs2)).toEqual(before);
    // Hard links are the same inode after the reload, too.
    const home = fs2.lookup(ROOT, 1, b('home')).ino;
    const proj = fs2.lookup(ROOT, home, b('proj')).ino;
    expect(fs2.lookup(ROOT, home, b('hardlink')).ino).toBe(fs2.lookup(ROOT, proj, b('big.bin')).ino);
    expect(fs2.lookup(ROOT, proj, b('..')).ino).toBe(home);
    // And the reloaded filesystem keeps working and persisting.
    fs2.setxattr(ROOT, proj, 'user.more', b('1'), 0);
    writeFile(fs2, ROOT, proj, 'after', 'x');
    const again = snapshot(fs2);
    await fs2.destroy();
    const fs3 = new Filesystem(store, opts());
    expect(snapshot(fs3)).toEqual(again);
  });

  it('the same holds with a tiny inode table (eviction and reload)', async () => {
    const store = new MemoryStore();
    const fs = await Filesystem.open(store, opts({ maxInodes: 16 }));
    buildTree(fs);
    const d = fs.mkdir(ROOT, 1, b('many'), 0o755);
    for (let i = 0; i < 200; i++) fs.forget(writeFile(fs, ROOT, d.ino, `f${i}`, `content ${i}`), 1);
    await fs.sync();
    const before = snapshot(fs);
    for (let i = 0; i < 200; i += 13) fs.forget(fs.lookup(ROOT, d.ino, b(`f${i}`)).ino, 1);
    expect(fs.cachedInodes).toBeLessThan(100);
    expect(snapshot(fs)).toEqual(before);
    await fs.destroy();
    expect(snapshot(new Filesystem(store, opts()))).toEqual(before);
  });

  it('an empty store gets a root owned as asked; open() commits it durably', async () => {
    const store = new CountingStore();
    const fs = await Filesystem.open(store, { rootUid: 1000, rootGid: 100, rootMode: 0o700 });
    expect(store.commits.length).toBe(1);
    expect(store.commits[0]!.durability).toBe('durable');
    expect(store.getInode(1)?.mode).toBe(posix.S_IFDIR | 0o700);
    const a = fs.getattr(ROOT, 1);
    expect([a.uid, a.gid, a.nlink]).toEqual([1000, 100, 2]);
    await fs.destroy();
  });
});

describe('fs core: committer', () => {
  it('batches many files into one commit', async () => {
    const store = new CountingStore();
    const fs = new Filesystem(store, opts());
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    for (let i = 0; i < 100; i++) writeFile(fs, ROOT, d.ino, `f${i}`, Buffer.alloc(5000, i));
    expect(store.commits.length).toBe(0);
    await fs.sync();
    expect(store.commits.length).toBe(1);
    const batch = store.commits[0]!.batch;
    expect(batch.inodes.length).toBe(102); // root, d, 100 files
    expect(batch.dentries.length).toBe(101);
    expect(batch.blocks.length).toBe(200);
    await fs.destroy();
  });

  it('a file created and deleted between two commits never reaches the store', async () => {
    const store = new CountingStore();
    const fs = new Filesystem(store, opts());
    const keep = writeFile(fs, ROOT, 1, 'keep', Buffer.alloc(9000, 1));
    const tmp = writeFile(fs, ROOT, 1, 'tmp', Buffer.alloc(9000, 2));
    fs.unlink(ROOT, 1, b('tmp'));
    fs.forget(tmp, 1);
    await fs.sync();
    const batch = store.commits[0]!.batch;
    expect(batch.inodes.map((r) => r.ino).sort()).toEqual([1, keep]);
    expect(batch.deletedInodes).toEqual([]);
    expect(batch.blocks.every((x) => x.ino === keep)).toBe(true);
    // Once committed, deleting it does send the deletions.
    fs.unlink(ROOT, 1, b('keep'));
    fs.forget(keep, 1);
    await fs.sync();
    const del = store.commits[1]!.batch;
    expect(del.deletedInodes).toEqual([keep]);
    expect(del.blocks.map((x) => [x.ino, x.data])).toEqual([[keep, null], [keep, null], [keep, null]]);
    expect(store.blockCount).toBe(0);
  });

  it('commits on the timer, once, without being asked', async () => {
    const store = new CountingStore();
    const fs = new Filesystem(store, opts({ commitDelayMs: 20 }));
    for (let i = 0; i < 50; i++) writeFile(fs, ROOT, 1, `f${i}`, 'data');
    await until(() => store.commits.length >= 1, 'the timer commit');
    expect(store.commits[0]!.batch.inodes.length).toBe(51);
    expect(store.commits[0]!.durability).toBe('local');
    expect(store.lookupDentry(1, b('f49'))).toBeGreaterThan(1);
    await fs.destroy();
  });

  it('commits early under memory pressure, and offers backpressure', async () => {
    const store = new CountingStore();
    const fs = new Filesystem(store, opts({ maxDirtyBytes: 64 * 1024 }));
    const { entry, open } = fs.create(ROOT, 1, b('f'), 0o644, 2);
    const chunk = Buffer.alloc(4096, 7);
    for (let i = 0; i < 16; i++) fs.write(ROOT, entry.ino, open.fh, i * 4096, chunk);
    // Started at 64 KiB, long before the 60 s timer — but only once the write has returned: a
    // batch is never snapshotted from inside an operation (see fs-commit-trigger.test.ts).
    expect(store.commits.length).toBe(0);
    await Promise.resolve();
    expect(store.commits.length).toBe(1);
    expect(store.commits[0]!.batch.blocks.length).toBe(16);
    for (let i = 16; i < 20; i++) fs.write(ROOT, entry.ino, open.fh, i * 4096, chunk);
    for (let i = 20; i < 100; i++) fs.write(ROOT, entry.ino, open.fh, i * 4096, chunk);
    const wait = fs.backpressure();
    expect(wait).not.toBeNull();
    await wait;
    expect(fs.dirtyBytes).toBeLessThan(128 * 1024);
    await fs.sync();
    expect(store.blockCount).toBe(100);
    await fs.destroy();
  });

  it('fsync resolves only after a durable commit containing its data', async () => {
    const store = new GatedStore();
    const fs = await Filesystem.open(store, opts());
    const { entry, open } = fs.create(ROOT, 1, b('f'), 0o644, 2);
    fs.write(ROOT, entry.ino, open.fh, 0, Buffer.alloc(10_000, 'a'));
    store.close_();
    let done = false;
    const p = fs.fsync(entry.ino, open.fh, false).then(() => { done = true; });
    await ticks();
    expect(done).toBe(false);
    const last = store.commits[store.commits.length - 1]!;
    expect(last.durability).toBe('durable');
    expect(last.batch.blocks.filter((x) => x.ino === entry.ino).length).toBe(3);
    // While the commit is in flight the store lacks the data, yet reads see it; writes copy-on-write.
    expect(store.getBlock(entry.ino, 0)).toBeUndefined();
    fs.write(ROOT, entry.ino, open.fh, 0, b('bbb'));
    expect(fs.read(ROOT, entry.ino, open.fh, 0, 4).toString()).toBe('bbba');
    store.open_();
    await p;
    expect(done).toBe(true);
    expect(store.getBlock(entry.ino, 0)!.subarray(0, 4).toString()).toBe('aaaa'); // the snapshot, not the later write
    // Nothing dirty for this file's committed state: a second fsync needs another durable commit only for 'bbb'.
    await fs.fsync(entry.ino, open.fh, false);
    expect(store.getBlock(entry.ino, 0)!.subarray(0, 4).toString()).toBe('bbba');
    const n = store.commits.length;
    await fs.fsync(entry.ino, open.fh, true);
    expect(store.commits.length).toBe(n); // already durable: no commit
    await fs.destroy();
  });

  it('fsync after a background commit still waits for a durable one', async () => {
    const store = new GatedStore();
    const fs = await Filesystem.open(store, opts());
    const f = writeFile(fs, ROOT, 1, 'f', 'data');
    store.close_();
    fs.commitSoon();
    await Promise.resolve(); // the background commit starts once the caller's operation is over
    expect(store.commits[store.commits.length - 1]!.durability).toBe('local');
    let done = false;
    const p = fs.fsync(f, 0, false).then(() => { done = true; });
    await ticks();
    expect(done).toBe(false);
    store.open_();
    await p;
    expect(store.commits[store.commits.length - 1]!.durability).toBe('durable');
    expect(store.applied).toBe(store.commits.length);
    await fs.destroy();
  });

  it('a rename is never split across batches', async () => {
    const store = new CountingStore();
    const fs = new Filesystem(store, opts());
    const d = fs.mkdir(ROOT, 1, b('d'), 0o755);
    const f = writeFile(fs, ROOT, 1, 'a', 'x');
    await fs.sync();
    fs.rename(ROOT, 1, b('a'), d.ino, b('b'), 0);
    await fs.sync();
    const batch = store.commits[store.commits.length - 1]!.batch;
    const ds = batch.dentries.map((x) => [x.parent, x.name.toString(), x.ino]);
    expect(ds).toContainEqual([1, 'a', null]);
    expect(ds).toContainEqual([d.ino, 'b', f]);
    expect(store.lookupDentry(1, b('a'))).toBeUndefined();
    expect(store.lookupDentry(d.ino, b('b'))).toBe(f);
    await fs.destroy();
  });

  it('a failed commit keeps the data dirty and the next fsync\'s retry persists it (nothing lost: no error)', async () => {
    const store = new FailingStore();
    const errors: Error[] = [];
    const fs = await Filesystem.open(store, opts({ onCommitError: (e) => errors.push(e) }));
    const f = writeFile(fs, ROOT, 1, 'f', Buffer.alloc(9000, 'k'));
    store.failNext = 1;
    fs.commitSoon();
    await ticks();
    expect(errors.length).toBe(1);
    expect(fs.commitStats.failures).toBe(1);
    expect(store.getInode(f)).toBeUndefined();
    expect(readFile(fs, ROOT, f).equals(Buffer.alloc(9000, 'k'))).toBe(true);
    // The failed batch stayed dirty; the fsync's commit takes all of it and succeeds: the data is
    // durable and nothing was lost, so the fsync reports no error (the failure is in the stats and
    // was told to onCommitError).
    expect(fs.commitUnsettled).toBe(true);
    await fs.fsync(f, 0, false);
    expect(store.getInode(f)?.size).toBe(9000);
    expect(fs.commitStats.failures).toBe(1);
    // A failure the fsync's own retry cannot fix is reported (below), and a failure that a
    // background retry fixed before any fsync is not reported either.
    // An fsync whose own commit fails rejects with that error and keeps the data dirty.
    const h = fs.open(ROOT, f, 2);
    fs.write(ROOT, f, h.fh, 0, b('new'));
    store.failNext = 1;
    expect(await fs.fsync(f, h.fh, false).then(() => null, (e: Error) => e)).toMatchObject({ code: 'ENOSPC', error: { name: 'DiskFull' } });
    await fs.fsync(f, h.fh, false);
    await fs.destroy();
    const fs2 = new Filesystem(store, opts());
    expect(readFile(fs2, ROOT, f).subarray(0, 4).toString()).toBe('newk');
  });

  it('destroy commits everything durably', async () => {
    const store = new CountingStore();
    const fs = new Filesystem(store, opts());
    writeFile(fs, ROOT, 1, 'f', 'x');
    await fs.destroy();
    expect(store.commits.length).toBe(1);
    expect(store.commits[0]!.durability).toBe('durable');
    expect(errnoOf(() => writeFile(fs, ROOT, 1, 'g', 'x'))).toBe('EIO');
  });
});

describe('fs core: read-only', () => {
  it('every mutating operation fails with EROFS; reads work', async () => {
    const store = new MemoryStore();
    const w = await Filesystem.open(store, opts());
    const f = writeFile(w, ROOT, 1, 'f', 'content');
    w.mkdir(ROOT, 1, b('d'), 0o755);
    w.setxattr(ROOT, f, 'user.a', b('1'), 0);
    await w.destroy();
    const fs = new Filesystem(store, opts({ readOnly: true }));
    const d = fs.lookup(ROOT, 1, b('d')).ino;
    const r = fs.open(ROOT, f, 0);
    const checks: Array<[string, () => unknown]> = [
      ['setattr', () => fs.setattr(ROOT, f, { mode: 0o600 })],
      ['utimens', () => fs.setattr(ROOT, f, { mtime: SETATTR_NOW })],
      ['truncate', () => fs.setattr(ROOT, f, { size: 0 })],
      ['mknod', () => fs.mknod(ROOT, 1, b('n'), posix.S_IFIFO | 0o644, 0)],
      ['mkdir', () => fs.mkdir(ROOT, 1, b('n'), 0o755)],
      ['symlink', () => fs.symlink(ROOT, 1, b('n'), b('t'))],
      ['link', () => fs.link(ROOT, f, 1, b('n'))],
      ['unlink', () => fs.unlink(ROOT, 1, b('f'))],
      ['rmdir', () => fs.rmdir(ROOT, 1, b('d'))],
      ['rename', () => fs.rename(ROOT, 1, b('f'), d, b('f'), 0)],
      ['create', () => fs.create(ROOT, 1, b('n'), 0o644, 2)],
      ['open for writing', () => fs.open(ROOT, f, 1)],
      ['open O_TRUNC', () => fs.open(ROOT, f, posix.O_TRUNC)],
      ['write', () => fs.write(ROOT, f, r.fh, 0, b('x'))],
      ['setxattr', () => fs.setxattr(ROOT, f, 'user.b', b('1'), 0)],
      ['removexattr', () => fs.removexattr(ROOT, f, 'user.a')],
      ['access W', () => fs.access(ROOT, f, 2)],
    ];
    for (const [name, fn] of checks) expect([name, errnoOf(fn)]).toEqual([name, name === 'write' ? 'EBADF' : 'EROFS']);
    expect(fs.read(ROOT, f, r.fh, 0, 100).toString()).toBe('content');
    expect(fs.getxattr(ROOT, f, 'user.a').toString()).toBe('1');
    expect(fs.readdir(ROOT, 1, fs.opendir(ROOT, 1, 0).fh, 0, 10).length).toBe(4);
    await fs.fsync(f, r.fh, false);
    await fs.destroy();
    // A read-only store makes a read-only filesystem; an empty one has no root to show.
    const ro = new MemoryStore({ readOnly: true });
    expect(errnoOf(() => new Filesystem(ro, opts()))).toBe('EROFS');
  });
});

describe('fs core: statfs', () => {
  it('reports sizes from the store and name limits', () => {
    const store = new MemoryStore({ capacityBytes: 1 << 30 });
    const fs = new Filesystem(store, opts());
    writeFile(fs, ROOT, 1, 'f', 'x');
    const s = fs.statfs(1);
    expect(s.frsize).toBe(4096);
    expect(s.bsize).toBe(4096);
    expect(s.blocks).toBe((1 << 30) / 4096);
    expect(s.bfree).toBeLessThanOrEqual(s.blocks);
    expect(s.namemax).toBe(255);
    expect(s.files).toBeGreaterThan(s.ffree - 1);
  });
});
