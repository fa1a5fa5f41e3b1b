// Sequences inside one commit window (one batch) that create and remove directories, on a real
// local chain (log + LMDB index in a temp dir): each must commit, leave later work committable,
// and read back the same after a reopen. Regression of issue 11 ("the wedge"): a batch holding the
// tombstone of d/f, with d created and removed in the same batch, failed with "DAO ... not found:
// parent of a named entry" and was retried for ever; nothing later was persisted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Filesystem } from '../../fs/core/index.js';
import { NotFound } from '../../src/view/index.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import type { FsBatch } from '../../fs/core/store.js';
import { PathFs } from './fs-path-ops.js';

let base: string;
let n = 0;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-window-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

interface Opened { chain: LocalChain; fs: Filesystem; p: PathFs }

async function open(dir: string): Promise<Opened> {
  const chain = await openLocalChain({ chainDir: dir, configDir: join(base, 'config') });
  // One window: nothing commits on a timer while the sequence runs.
  const fs = await Filesystem.open(chain.store, { commitDelayMs: 60_000 });
  return { chain, fs, p: new PathFs(fs) };
}

async function close(x: Opened): Promise<void> {
  await x.fs.destroy();
  await x.chain.close();
}

const big = randomBytes(300_000);

/** Each: what runs inside one window (after `setup`, which is committed first), and the tree it leaves. */
const SEQUENCES: Array<{ name: string; setup?: (p: PathFs) => void; run: (p: PathFs) => void; tree: string[]; files?: Record<string, string> }> = [
  {
    name: 'mkdir d; touch d/f; rm d/f; rmdir d',
    run: (p) => { p.mkdir('d'); p.touch('d/f'); p.unlink('d/f'); p.rmdir('d'); },
    tree: [],
  },
  {
    name: 'mkdir d; mkdir d/e; rmdir d/e; rmdir d',
    run: (p) => { p.mkdir('d'); p.mkdir('d/e'); p.rmdir('d/e'); p.rmdir('d'); },
    tree: [],
  },
  {
    name: 'mkdir d; touch d/f; mv d/f g; rmdir d',
    run: (p) => { p.mkdir('d'); p.touch('d/f'); p.rename('d/f', 'g'); p.rmdir('d'); },
    tree: ['g f644 nlink=1 id=g size=0'],
  },
  {
    name: 'one level deeper: mkdir -p d/e; touch d/e/f; rm d/e/f; rmdir d/e d',
    run: (p) => { p.mkdir('d'); p.mkdir('d/e'); p.touch('d/e/f'); p.unlink('d/e/f'); p.rmdir('d/e'); p.rmdir('d'); },
    tree: [],
  },
  {
    name: 'one level deeper: mkdir -p d/e/x; rmdir d/e/x d/e d',
    run: (p) => { p.mkdir('d'); p.mkdir('d/e'); p.mkdir('d/e/x'); p.rmdir('d/e/x'); p.rmdir('d/e'); p.rmdir('d'); },
    tree: [],
  },
  {
    name: 'one level deeper: mkdir -p d/e; echo > d/e/f; mv d/e/f g; rmdir d/e d',
    run: (p) => { p.mkdir('d'); p.mkdir('d/e'); p.writeFile('d/e/f', Buffer.from('kept\n')); p.rename('d/e/f', 'g'); p.rmdir('d/e'); p.rmdir('d'); },
    tree: ['g f644 nlink=1 id=g size=5'],
    files: { g: 'kept\n' },
  },
  {
    name: 'hard link out of a doomed directory: mkdir d; echo > d/f; ln d/f h; rm d/f; rmdir d',
    run: (p) => { p.mkdir('d'); p.writeFile('d/f', Buffer.from('linked\n')); p.link('d/f', 'h'); p.unlink('d/f'); p.rmdir('d'); },
    tree: ['h f644 nlink=1 id=h size=7'],
    files: { h: 'linked\n' },
  },
  {
    name: 'a directory moved out of a doomed one keeps its entries: mkdir -p d/e; echo > d/e/f; mv d/e e2; rmdir d',
    run: (p) => { p.mkdir('d'); p.mkdir('d/e'); p.writeFile('d/e/f', Buffer.from('moved\n')); p.rename('d/e', 'e2'); p.rmdir('d'); },
    tree: ['e2 d755 nlink=2 id=e2', 'e2/f f644 nlink=1 id=e2/f size=6'],
    files: { 'e2/f': 'moved\n' },
  },
  {
    name: 'blocks and xattrs inside a doomed directory',
    run: (p) => {
      p.mkdir('d'); p.setxattr('d', 'user.dir', Buffer.from('x')); p.writeFile('d/f', big); p.setxattr('d/f', 'user.f', Buffer.from('y'));
      p.truncate('d/f', 100_000); p.chmod('d/f', 0o600); p.unlink('d/f'); p.rmdir('d');
    },
    tree: [],
  },
  {
    name: 'inside a committed directory that is removed in the same window',
    setup: (p) => { p.mkdir('p'); p.writeFile('p/old', Buffer.from('old')); },
    run: (p) => { p.mkdir('p/d'); p.touch('p/d/f'); p.unlink('p/d/f'); p.rmdir('p/d'); p.unlink('p/old'); p.rmdir('p'); },
    tree: [],
  },
  {
    name: 'the name comes back: mkdir d; touch d/f; rm d/f; rmdir d; mkdir d; echo > d/f',
    run: (p) => { p.mkdir('d'); p.touch('d/f'); p.unlink('d/f'); p.rmdir('d'); p.mkdir('d'); p.writeFile('d/f', Buffer.from('again\n')); },
    tree: ['d d755 nlink=2 id=d', 'd/f f644 nlink=1 id=d/f size=6'],
    files: { 'd/f': 'again\n' },
  },
  {
    name: 'a doomed directory renamed before removal: mkdir -p a/d; touch a/d/f; mv a/d b; rm b/f; rmdir b a',
    run: (p) => { p.mkdir('a'); p.mkdir('a/d'); p.touch('a/d/f'); p.rename('a/d', 'b'); p.unlink('b/f'); p.rmdir('b'); p.rmdir('a'); },
    tree: [],
  },
];

describe('one commit window: directories created and removed in the same batch (real chain)', () => {
  it.each(SEQUENCES.map((s) => [s.name, s] as const))('%s', async (_name, s) => {
    const dir = join(base, `seq-${n++}`);
    const x = await open(dir);
    if (s.setup) { s.setup(x.p); await x.fs.sync(); }
    const before = x.fs.commitStats.commits;
    s.run(x.p);
    // The sequence and the next write commit, and nothing is left to retry.
    await x.fs.sync();
    x.p.writeFile('after', Buffer.from('written after the sequence\n'));
    await x.fs.sync();
    expect(x.fs.commitStats.failures).toBe(0);
    expect(x.fs.commitStats.lastError).toBeNull();
    expect(x.fs.commitStats.commits).toBeGreaterThan(before);
    const tree = x.p.tree();
    expect(tree.map((l) => l.replace(/ sha=\w+/, ''))).toEqual([...s.tree, 'after f644 nlink=1 id=after size=27'].sort());
    for (const [path, text] of Object.entries(s.files ?? {})) expect(x.p.read(path).toString()).toBe(text);
    await close(x);

    const again = await open(dir);
    try {
      expect(again.p.tree()).toEqual(tree);
      expect(again.p.read('after').toString()).toBe('written after the sequence\n');
      for (const [path, text] of Object.entries(s.files ?? {})) expect(again.p.read(path).toString()).toBe(text);
    } finally {
      await close(again);
    }
  }, 60_000);
});

describe('ChainStore batches naming a directory that is not in the chain', () => {
  const empty = (): FsBatch => ({ inodes: [], deletedInodes: [], dentries: [], blocks: [] });

  it('the tombstone of an entry under a directory the chain never held commits as nothing', async () => {
    const dir = join(base, `raw-${n++}`);
    const chain = await openLocalChain({ chainDir: dir, configDir: join(base, 'config') });
    try {
      const fs = await Filesystem.open(chain.store);
      await fs.destroy();
      const nextSeq = chain.view.log.nextSeq;
      const ghost = chain.store.allocIno();
      await chain.store.commit({ ...empty(), dentries: [{ parent: ghost, name: Buffer.from('f'), ino: null }], deletedInodes: [ghost] }, 'durable');
      // The allocated inode number moves the superblock; the ghost itself adds no event.
      expect(chain.store.getInode(ghost)).toBeUndefined();
      expect(chain.store.lookupDentry(ghost, Buffer.from('f'))).toBeUndefined();
      expect(chain.view.log.nextSeq).toBeLessThanOrEqual(nextSeq + 1);
    } finally {
      await chain.close();
    }
  });

  it('an entry stored under a directory the chain does not hold is a NotFound error, and the next batch still commits', async () => {
    const dir = join(base, `raw-${n++}`);
    const chain = await openLocalChain({ chainDir: dir, configDir: join(base, 'config') });
    try {
      const fs = await Filesystem.open(chain.store);
      await fs.destroy();
      const ghost = chain.store.allocIno();
      const bad = { ...empty(), dentries: [{ parent: ghost, name: Buffer.from('f'), ino: 1 }] };
      await expect(chain.store.commit(bad, 'durable')).rejects.toBeInstanceOf(NotFound);
      await chain.store.commit({ ...empty(), dentries: [{ parent: 1, name: Buffer.from('ok'), ino: 1 }] }, 'durable');
      expect(chain.store.lookupDentry(1, Buffer.from('ok'))).toBe(1);
    } finally {
      await chain.close();
    }
  });
});

describe('commit delay of a burst (a remote mount: small changes soon, a big copy in large batches)', () => {
  it('a small change commits after the short delay; one with `burst.bytes` dirty waits until `burst.maxMs`', async () => {
    const chain = await openLocalChain({ chainDir: join(base, `burst-${n++}`), configDir: join(base, 'config') });
    const fs = await Filesystem.open(chain.store, { commitDelayMs: 50, commitBurst: { bytes: 1 << 20, maxMs: 1500 } });
    const p = new PathFs(fs);
    try {
      const commits = () => fs.commitStats.commits;
      const waitFor = async (pred: () => boolean, ms: number) => {
        for (const end = Date.now() + ms; !pred() && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
        return pred();
      };
      p.writeFile('small', Buffer.from('a small edit'));
      const c0 = commits();
      expect(await waitFor(() => commits() > c0, 1000)).toBe(true);
      const c1 = commits();
      const t0 = Date.now();
      p.writeFile('big', randomBytes(2 << 20));
      // Past the short delay: still dirty, not committed.
      await new Promise((r) => setTimeout(r, 500));
      expect(commits()).toBe(c1);
      expect(await waitFor(() => commits() > c1, 5000)).toBe(true);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
      expect(p.read('big').length).toBe(2 << 20);
    } finally {
      await fs.destroy();
      await chain.close();
    }
  });
});
