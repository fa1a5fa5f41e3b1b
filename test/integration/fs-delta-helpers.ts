// Helpers of the page-delta tests (fs-block-delta.test.ts, fs-chain-features.test.ts): a local
// chain with a file system core over it, reads through a fresh handle, the pages a block's
// deltas hold.
import { join } from 'node:path';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import type { OpenLocalChainOptions } from '../../fs/chain-store/open-local.js';
import { deltaKey, recentDeltaKey } from '../../fs/chain-store/keys.js';
import { decodeDelta } from '../../fs/chain-store/block-delta.js';

export const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
export const BS = 64 * 1024;
export const b = (s: string) => Buffer.from(s);

export interface Mounted { chain: LocalChain; fs: Filesystem }

/** Chain `name` under `base` (configuration in base/config), page deltas on unless `extra` says otherwise. */
export async function mountIn(base: string, name: string, extra: OpenLocalChainOptions = {}): Promise<Mounted> {
  const chain = await openLocalChain({ chainDir: join(base, name), configDir: join(base, 'config'), deferCompaction: false, pageDeltas: true, ...extra });
  const fs = await Filesystem.open(chain.store);
  return { chain, fs };
}

export async function unmount(m: Mounted): Promise<void> {
  await m.fs.destroy();
  await m.chain.close();
}

export function readAll(fs: Filesystem, ino: number): Buffer {
  const { fh } = fs.open(ROOT, ino, 0);
  const out = Buffer.from(fs.read(ROOT, ino, fh, 0, fs.getattr(ROOT, ino).size + 10));
  fs.release(ino, fh);
  return out;
}

/** Creates `name` in the root with `data`, fsynced and closed; its inode. */
export async function createSynced(fs: Filesystem, name: string, data: Buffer): Promise<number> {
  const { entry, open } = fs.create(ROOT, 1, b(name), 0o644, 2);
  fs.write(ROOT, entry.ino, open.fh, 0, data);
  await fs.fsync(entry.ino, open.fh, false);
  fs.release(entry.ino, open.fh);
  return entry.ino;
}

export async function writeSync(fs: Filesystem, ino: number, offset: number, data: Buffer): Promise<void> {
  const { fh } = fs.open(ROOT, ino, 2);
  fs.write(ROOT, ino, fh, offset, data);
  await fs.fsync(ino, fh, false);
  fs.release(ino, fh);
}

/** Pages of one delta DAO in the chain (null: none or emptied). */
export function pagesOf(chain: LocalChain, key: string): number[] | null {
  const d = chain.view.tryGet(key)?.data;
  return d ? decodeDelta(d).pages : null;
}

/** Pages of a block held by its deltas, both levels (null: none). */
export function deltaPages(chain: LocalChain, ino: number, index: number): number[] | null {
  const all = [...(pagesOf(chain, deltaKey(ino, index)) ?? []), ...(pagesOf(chain, recentDeltaKey(ino, index)) ?? [])];
  return all.length ? [...new Set(all)].sort((x, y) => x - y) : null;
}
