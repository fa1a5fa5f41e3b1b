// What the in-process probes (fsync-core, write-core, rewrite-core) stand on: the core
// (Filesystem) over a local chain on disk, no FUSE, and one new file open for writing.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from '../../../fs/core/api.js';
import { Filesystem } from '../../../fs/core/index.js';
import { type LocalChain, openLocalChain, type OpenLocalChainOptions } from '../../../fs/chain-store/index.js';

export interface CoreProbe {
  chain: LocalChain;
  fs: Filesystem;
  ctx: Ctx;
  ino: number;
  fh: number;
  /** Releases the file, ends the filesystem (its last commit) and closes the chain. */
  close(): Promise<void>;
}

/** Opens (creating) the chain under `dir` and creates `name` in its root. */
export async function openCoreProbe(dir: string, name: string, chainOpts: OpenLocalChainOptions = {}): Promise<CoreProbe> {
  mkdirSync(dir, { recursive: true });
  const chain = await openLocalChain({ chainDir: join(dir, 'chain'), configDir: join(dir, 'config'), ...chainOpts });
  const fs = await Filesystem.open(chain.store, {});
  const ctx: Ctx = { uid: 0, gid: 0, pid: 1, umask: 0o022 };
  const { entry, open } = fs.create(ctx, 1, Buffer.from(name), 0o100644, 2);
  return {
    chain, fs, ctx, ino: entry.ino, fh: open.fh,
    async close() {
      fs.release(entry.ino, open.fh);
      await fs.destroy();
      await chain.close();
    },
  };
}
