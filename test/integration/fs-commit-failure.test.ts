// A commit that fails never blocks later work silently (issue 11): fsync and close report it,
// changes are refused while it lasts (ENOSPC / EIO while retried, EROFS when the store rejected
// the batch for good), a retry that succeeds lifts it, and an unmount that cannot commit says
// how much is lost. Real chains: a log on a real, small tmpfs that fills up; a batch the real
// chain store rejects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CommitFailed, Filesystem, FsError, type FsBatch, type FsStore } from '../../fs/core/index.js';
import { openLocalChain, type ChainStore } from '../../fs/chain-store/index.js';
import { NotFound } from '../../src/view/index.js';
import { PathFs, ROOT_CTX } from './fs-path-ops.js';

let base: string;
const tmpfsMounts: string[] = [];
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-commitfail-')); });
afterAll(() => {
  for (const m of tmpfsMounts) if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
  rmSync(base, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
function errno(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { if (e instanceof FsError) return e.code; throw e; }
  return undefined;
}

/** A chain whose log directory lives on its own small tmpfs (the index stays on the disk). */
async function chainWithLogOnTmpfs(name: string, sizeKiB: number): Promise<{ chainDir: string; logDir: string } | null> {
  const chainDir = join(base, name);
  const created = await openLocalChain({ chainDir, configDir: join(base, 'config') });
  await (await Filesystem.open(created.store)).destroy();
  await created.close();
  const logDir = join(chainDir, 'log');
  renameSync(logDir, `${logDir}.disk`);
  mkdirSync(logDir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tmpfs', logDir], { encoding: 'utf8' });
  if (r.status !== 0) { console.warn(`tmpfs mount failed (needs root): ${r.stderr}`); return null; }
  tmpfsMounts.push(logDir);
  cpSync(`${logDir}.disk`, logDir, { recursive: true });
  return { chainDir, logDir };
}

describe('a commit that fails for a condition that clears (disk full on a real tmpfs)', () => {
  it('fsync and close report ENOSPC, changes are refused meanwhile, the retry after space returns commits everything', async (ctx) => {
    const at = await chainWithLogOnTmpfs('full', 4096);
    if (!at) return ctx.skip();
    const chain = await openLocalChain({ chainDir: at.chainDir, configDir: join(base, 'config') });
    const fs = await Filesystem.open(chain.store, { commitDelayMs: 100 });
    const p = new PathFs(fs);
    try {
      p.writeFile('before', Buffer.from('committed before the disk filled\n'));
      await fs.sync();
      // Leave ~256 KiB: the next commit (2 MiB of file data) cannot fit, not even with the 1 MiB of
      // zeros the log keeps written past its end (src/log/runway.ts).
      const free = () => { const s = statfsSync(at.logDir); return s.bavail * s.bsize; };
      const filler = join(at.logDir, 'filler');
      writeFileSync(filler, Buffer.alloc(Math.max(0, free() - (256 << 10))));
      const data = randomBytes(2 << 20);
      p.touch('big');
      const ino = p.ino('big');
      const h = fs.open(ROOT_CTX, ino, 2);
      fs.write(ROOT_CTX, ino, h.fh, 0, data);

      const err = await fs.fsync(ino, h.fh, false).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(CommitFailed);
      expect(err).toMatchObject({ code: 'ENOSPC', kind: 'transient', error: { name: 'DiskFull' } });
      expect((err as Error).message).toMatch(/not committed/);
      expect(fs.commitStats).toMatchObject({ health: 'retrying', refusedWith: 'ENOSPC' });
      // close(2) of the writer reports it; nothing new is accepted; reads still see everything.
      expect(errno(() => fs.flush(ROOT_CTX, ino, h.fh))).toBe('ENOSPC');
      fs.release(ino, h.fh);
      expect(errno(() => p.writeFile('refused', Buffer.from('x')))).toBe('ENOSPC');
      expect(errno(() => p.mkdir('dir'))).toBe('ENOSPC');
      expect(errno(() => p.unlink('before'))).toBe('ENOSPC');
      expect(errno(() => fs.open(ROOT_CTX, ino, 1))).toBe('ENOSPC');
      expect(p.read('big').equals(data)).toBe(true);
      expect(fs.uncommitted.bytes).toBeGreaterThanOrEqual(1 << 20);
      // Retried on the timer while the disk stays full.
      const failures = fs.commitStats.failures;
      await until(() => fs.commitStats.failures >= failures + 2, 'two more retries');
      expect(fs.commitStats.health).toBe('retrying');

      rmSync(filler);
      await until(() => fs.commitStats.health === 'ok', 'a retry that succeeds');
      expect(fs.commitStats.failing).toBe(0);
      expect(fs.uncommitted).toEqual({ inodes: 0, names: 0, bytes: 0 });
      p.writeFile('later', Buffer.from('written after space returned\n'));
      await fs.sync();
    } finally {
      await fs.destroy().catch(() => undefined);
      await chain.close();
    }
    const again = await openLocalChain({ chainDir: at.chainDir, configDir: join(base, 'config') });
    try {
      const fs2 = await Filesystem.open(again.store);
      const p2 = new PathFs(fs2);
      expect(p2.read('before').toString()).toBe('committed before the disk filled\n');
      expect(p2.read('big').length).toBe(2 << 20);
      expect(p2.read('later').toString()).toBe('written after space returned\n');
      expect(p2.exists('refused')).toBe(false);
      await fs2.destroy();
    } finally {
      await again.close();
    }
  }, 120_000);

  it('an unmount (destroy) while the disk stays full fails and says how much is not committed', async (ctx) => {
    const at = await chainWithLogOnTmpfs('full-unmount', 4096);
    if (!at) return ctx.skip();
    const chain = await openLocalChain({ chainDir: at.chainDir, configDir: join(base, 'config') });
    const fs = await Filesystem.open(chain.store, { commitDelayMs: 60_000 });
    const p = new PathFs(fs);
    try {
      const s = statfsSync(at.logDir);
      writeFileSync(join(at.logDir, 'filler'), Buffer.alloc(Math.max(0, s.bavail * s.bsize - (128 << 10))));
      p.mkdir('d');
      p.writeFile('d/f', randomBytes(600_000));
      const err = await fs.destroy().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(CommitFailed);
      // Root and d changed, f created: 3 records; 2 names; 10 blocks of 64 KiB.
      expect((err as Error).message).toMatch(/^commit failed \(3 inode records, 2 directory entries and 640\.0 KiB of file data not committed\): .*(ENOSPC|no space|disk full)/i);
    } finally {
      await chain.close();
    }
  }, 120_000);
});

/** The real chain store, with a record under a directory the chain never held added to each batch while armed. */
function sabotaged(store: ChainStore): { store: FsStore; arm(on: boolean): void } {
  const ghost = store.allocIno();
  let armed = false;
  const proxy = new Proxy(store, {
    get(target, key) {
      if (key === 'commit') {
        return (batch: FsBatch, d: Parameters<ChainStore['commit']>[1]) => target.commit(armed
          ? { ...batch, dentries: [...batch.dentries, { parent: ghost, name: Buffer.from('x'), ino: 1 }] }
          : batch, d);
      }
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    set(target, key, value) { return Reflect.set(target, key, value, target); },
  });
  return { store: proxy, arm: (on) => { armed = on; } };
}

describe('a batch the store rejects for good (an entry under a directory the chain does not hold)', () => {
  it('the mount turns read-only: EROFS for changes, EIO for fsync and close, no retry loop; a later commit that succeeds lifts it', async () => {
    const chainDir = join(base, 'invalid');
    const chain = await openLocalChain({ chainDir, configDir: join(base, 'config') });
    const s = sabotaged(chain.store);
    const fs = await Filesystem.open(s.store, { commitDelayMs: 50 });
    const p = new PathFs(fs);
    try {
      p.writeFile('a', Buffer.from('a'));
      await fs.sync();
      s.arm(true);
      p.writeFile('b', Buffer.from('bbb'));
      const ino = p.ino('b');
      const h = fs.open(ROOT_CTX, ino, 1);
      fs.write(ROOT_CTX, ino, h.fh, 3, Buffer.from('!'));
      const err = await fs.sync().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(CommitFailed);
      expect(err).toMatchObject({ code: 'EIO', kind: 'permanent' });
      expect((err as CommitFailed).error).toBeInstanceOf(NotFound);
      expect(fs.commitStats).toMatchObject({ health: 'read-only', refusedWith: 'EROFS', failing: 1 });
      expect(errno(() => fs.flush(ROOT_CTX, ino, h.fh))).toBe('EIO');
      fs.release(ino, h.fh);
      expect(errno(() => p.writeFile('c', Buffer.from('c')))).toBe('EROFS');
      expect(errno(() => p.rename('a', 'a2'))).toBe('EROFS');
      expect(errno(() => p.setxattr('a', 'user.x', Buffer.from('1')))).toBe('EROFS');
      expect(p.read('b').toString()).toBe('bbb!');
      // Not retried on its own (it would fail the same way for ever) ...
      await sleep(400);
      expect(fs.commitStats.failures).toBe(1);
      // ... but fsync tries again and reports it again.
      expect(await fs.fsync(ino, 0, false).then(() => null, (e: unknown) => e)).toMatchObject({ code: 'EIO' });
      expect(fs.commitStats.failures).toBe(2);
      const final = await fs.destroy().then(() => null, (e: unknown) => e);
      expect((final as Error).message).toMatch(/^commit failed \(2 inode records, 1 directory entry and 0 bytes of file data not committed\): DAO \w+ not found: parent of a named entry$/);

      s.arm(false);
      await fs.sync();
      expect(fs.commitStats).toMatchObject({ health: 'ok', failing: 0, refusedWith: null });
      p.writeFile('c', Buffer.from('c'));
      await fs.destroy();
    } finally {
      await chain.close();
    }
    const again = await openLocalChain({ chainDir, configDir: join(base, 'config') });
    try {
      const fs2 = await Filesystem.open(again.store);
      const p2 = new PathFs(fs2);
      expect(p2.tree().map((l) => l.split(' ')[0])).toEqual(['a', 'b', 'c']);
      expect(p2.read('b').toString()).toBe('bbb!');
      await fs2.destroy();
    } finally {
      await again.close();
    }
  }, 60_000);
});
