import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';

/**
 * `cp -a` at the core level, over the real chain store on a chain on disk: files created with
 * owner-only modes (private keys), written in 4 KiB..1 MiB chunks, chmodded to their final mode
 * (re-seal private <-> shared), then copied within the filesystem by copy_file_range; commits are
 * started by a small dirty-bytes limit, a short timer, commitSoon and fsync at random points, with
 * yields between operations so commits (cut into several by a small commit budget) run while
 * writes go on. A tiny block cache makes reads go to the store. Every file's bytes are compared
 * while mounted and after the chain is reopened from its log (index deleted: a full replay).
 */
const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
const MODES = [0o644, 0o644, 0o644, 0o600, 0o755, 0o640, 0o700, 0o664];
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** xorshift32: reproducible sizes and decisions (not security-related). */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));
const sha = (d: Buffer): string => createHash('sha256').update(d).digest('hex');

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-copy-stress-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

function readAll(fs: Filesystem, ino: number): Buffer {
  const { fh } = fs.open(ROOT, ino, 0);
  const size = fs.getattr(ROOT, ino).size;
  const parts: Buffer[] = [];
  for (let off = 0; off < size; off += 128 * 1024) parts.push(Buffer.from(fs.read(ROOT, ino, fh, off, 128 * 1024)));
  fs.release(ino, fh);
  return Buffer.concat(parts);
}

describe('cp -a through the core over a chain store (stress)', () => {
  for (const seed of [20261122, 7]) {
    it(`copies in and within keep every byte, mode and size (seed ${seed})`, async () => {
      const rnd = prng(seed);
      const chainOpts = { chainDir: join(base, `chain-${seed}`), configDir: join(base, `cfg-${seed}`), commitBudget: 300 * 1024 };
      const chain: LocalChain = await openLocalChain(chainOpts);
      const opts = { commitDelayMs: 2, maxDirtyBytes: 512 * 1024, cacheBytes: 128 * 1024 };
      const fs = await Filesystem.open(chain.store, opts);
      const maybeCommit = async (): Promise<void> => {
        const r = rnd() % 100;
        if (r < 30) await yieldNow();
        else if (r < 35) fs.commitSoon();
        else if (r < 37) await fs.sync();
      };
      const files: Array<{ name: string; data: Buffer; mode: number }> = [];
      for (let i = 0; i < 120; i++) {
        const r = rnd() % 100;
        const size = r < 40 ? rnd() % 4096 : r < 80 ? rnd() % 65536 : r < 95 ? 65536 + (rnd() % 200_000) : 300_000 + (rnd() % 700_000);
        files.push({ name: `f${i}`, data: randomBytes(size), mode: MODES[rnd() % MODES.length]! });
      }
      const a = fs.mkdir(ROOT, 1, Buffer.from('a'), 0o700).ino;
      const bdir = fs.mkdir(ROOT, 1, Buffer.from('b'), 0o700).ino;

      // cp -a SRC a: create owner-only, write in chunks, chown/chmod/utimens, close.
      for (const f of files) {
        const { entry, open } = fs.create(ROOT, a, Buffer.from(f.name), 0o100000 | (f.mode & 0o700), 0o1 | 0o100 | 0o200);
        let off = 0;
        while (off < f.data.length) {
          const n = Math.min(f.data.length - off, 4096 * (1 + (rnd() % 256)));
          fs.write(ROOT, entry.ino, open.fh, off, f.data.subarray(off, off + n));
          off += n;
          await maybeCommit();
        }
        fs.setattr(ROOT, entry.ino, { uid: 0, gid: 0 });
        fs.setattr(ROOT, entry.ino, { mode: f.mode });
        fs.setattr(ROOT, entry.ino, { atime: { sec: 1_600_000_000, nsec: 0 }, mtime: { sec: 1_600_000_000, nsec: 0 } });
        fs.flush(ROOT, entry.ino, open.fh);
        fs.release(entry.ino, open.fh);
        fs.forget(entry.ino, 1);
        await maybeCommit();
      }
      // cp -a a b: SEEK_DATA/SEEK_HOLE on the source, copy_file_range in chunks, then chmod.
      for (const f of files) {
        const src = fs.lookup(ROOT, a, Buffer.from(f.name)).ino;
        const si = fs.open(ROOT, src, 0).fh;
        const { entry, open } = fs.create(ROOT, bdir, Buffer.from(f.name), 0o100000 | (f.mode & 0o700), 0o1 | 0o100 | 0o200);
        const size = f.data.length;
        let off = 0;
        while (off < size) {
          const data = fs.lseek(src, si, off, SEEK_DATA);
          const hole = fs.lseek(src, si, data, SEEK_HOLE);
          expect([data, hole]).toEqual([off, size]); // written files have no holes
          const n = Math.min(size - off, 4096 * (1 + (rnd() % 512)));
          expect(fs.copyFileRange(ROOT, src, si, off, entry.ino, open.fh, off, n)).toBe(n);
          off += n;
          await maybeCommit();
        }
        fs.setattr(ROOT, entry.ino, { mode: f.mode });
        fs.release(entry.ino, open.fh);
        fs.release(src, si);
        fs.forget(entry.ino, 1);
        fs.forget(src, 1);
        await maybeCommit();
      }

      const check = (x: Filesystem, when: string): void => {
        const ad = x.lookup(ROOT, 1, Buffer.from('a')).ino;
        const bd = x.lookup(ROOT, 1, Buffer.from('b')).ino;
        for (const f of files) {
          for (const dir of [ad, bd]) {
            const e = x.lookup(ROOT, dir, Buffer.from(f.name));
            expect(e.attr.size, `${when} ${f.name} size`).toBe(f.data.length);
            expect(e.attr.mode & 0o7777, `${when} ${f.name} mode`).toBe(f.mode);
            expect(sha(readAll(x, e.ino)), `${when} ${f.name} content`).toBe(sha(f.data));
          }
        }
      };
      check(fs, 'mounted');
      await fs.sync();
      check(fs, 'after sync');
      await fs.destroy();
      await chain.close();
      // A new process's view of it: the chain reopened from its files, the index deleted so the
      // whole log is replayed (nothing is carried over in memory).
      rmSync(join(chainOpts.chainDir, 'index'), { recursive: true, force: true });
      const chain2 = await openLocalChain(chainOpts);
      expect(chain2.created).toBe(false);
      expect(chain2.view.openReport.mode).not.toBe('tail');
      const again = await Filesystem.open(chain2.store, opts);
      check(again, 'reopened from the log');
      await again.destroy();
      await chain2.close();
    }, 120_000);
  }
});
