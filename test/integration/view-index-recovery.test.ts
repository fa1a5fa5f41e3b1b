// LMDB's own failures under a commit (lmdb-js's free-list code once failed in CI with "MDB_BAD_TXN:
// ... reserved freelist had a data entry with zero-size", after which every later commit of that
// mount failed and 263 MiB of a `cp -a` were lost at unmount). The index is derived from the log, so
// the view recovers: it reopens the LMDB environment and replays the tail, or, if LMDB fails again,
// deletes the index and rebuilds it from the log. The commit that hit the failure is kept and applied.
// The failure is injected at the index's transaction (IndexStore.injectFaults); everything else is
// the real chain: log, LMDB, crypto, filesystem.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';

const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
let base: string;
let chainDir: string;
let configDir: string;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'atefs-index-recovery-'));
  chainDir = join(base, 'chain');
  configDir = join(base, 'config');
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

async function writeFile(fs: Filesystem, name: string, content: string): Promise<void> {
  const { entry, open } = fs.create(ROOT, 1, Buffer.from(name), 0o644, 2);
  fs.write(ROOT, entry.ino, open.fh, 0, Buffer.from(content));
  fs.release(entry.ino, open.fh);
  await fs.sync();
}

function readFile(fs: Filesystem, name: string): string {
  const e = fs.lookup(ROOT, 1, Buffer.from(name));
  const { fh } = fs.open(ROOT, e.ino, 0);
  const b = fs.read(ROOT, e.ino, fh, 0, 1 << 20);
  fs.release(e.ino, fh);
  return Buffer.from(b as Uint8Array).toString();
}

/** Mounts the chain's filesystem, runs `fn`, closes everything; then reopens and returns what it reads. */
async function session(fn: (fs: Filesystem, chain: Awaited<ReturnType<typeof openLocalChain>>) => Promise<void>): Promise<void> {
  const chain = await openLocalChain({ chainDir, configDir, compactMode: 'never' });
  const fs = await Filesystem.open(chain.store);
  try {
    await fn(fs, chain);
  } finally {
    await fs.destroy().catch(() => undefined);
    await chain.close().catch(() => undefined);
  }
}

describe('the view recovers from LMDB failing under a commit', () => {
  for (const [faults, how] of [[1, 'reopened'], [2, 'rebuilt']] as const) {
    it(`${faults} failing transaction(s): the index is ${how}, the commit is applied and later commits go on`, async () => {
      await session(async (fs, chain) => {
        await writeFile(fs, 'before', 'one');
        chain.view.store.injectFaults = faults;
        await writeFile(fs, 'hit', 'two'); // its commit meets the failure(s)
        expect(chain.view.store.injectFaults).toBe(0);
        expect(chain.view.indexRecoveries.map((r) => r.how)).toEqual([how]);
        expect(chain.view.indexRecoveries[0]!.cause).toMatch(/^MDB_BAD_TXN/);
        await writeFile(fs, 'after', 'three');
        expect(readFile(fs, 'hit')).toBe('two');
      });
      // Everything is in the log and the index: a later open finds all three files.
      await session(async (fs, chain) => {
        expect(chain.view.openReport?.mode).toBe('tail');
        expect([readFile(fs, 'before'), readFile(fs, 'hit'), readFile(fs, 'after')]).toEqual(['one', 'two', 'three']);
      });
    });
  }

  it('when the rebuild fails too, the view fails with IndexFailed, the commit stays in the log and the next open has it', async () => {
    await session(async (fs, chain) => {
      await writeFile(fs, 'before', 'one');
      chain.view.store.injectFaults = 3; // the commit, the reopened replay, the rebuild
      const err = await writeFile(fs, 'hit', 'two').then(() => null, (e: Error) => e);
      expect(err).not.toBeNull();
      expect(String(err?.message) + String((err as { cause?: Error } | null)?.cause?.message)).toMatch(/index failed \(MDB_BAD_TXN/);
    });
    await session(async (fs, chain) => {
      expect(chain.view.openReport?.mode).not.toBe('tail'); // built from the log again
      expect([readFile(fs, 'before'), readFile(fs, 'hit')]).toEqual(['one', 'two']);
    });
  });
});
