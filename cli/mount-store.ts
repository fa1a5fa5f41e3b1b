import { Filesystem, type FsStore } from '../fs/core/index.js';
import { openLocalChain, type LocalChain } from '../fs/chain-store/index.js';
import { readTokenFile, type Session } from '../src/session/index.js';
import { UserError } from './errors.js';
import type { MountArgs } from './mount-args.js';

/**
 * Chooses and opens the store a mount serves: a local chain (persistent, or in memory for --temp);
 * remote chains plug in at openRemoteStore.
 */

/** Live figures for the status panel; every field is optional. */
export interface StoreStatus {
  logBytes?: number;
  /** Live data: what df shows as used. */
  liveBytes?: number;
  connection?: string;
  pendingUploads?: number;
  compaction?: string;
}

export interface OpenedStore {
  store: FsStore;
  /** What the panel calls the chain (a path, a URL, "temp"). */
  chain: string;
  /** e.g. "temp (in memory)", "local", "replicated". */
  mode: string;
  /** True when nobody else changes the chain: long kernel caches and kernel_cache are safe. */
  local: boolean;
  status?(): StoreStatus;
  /** Commit counters and summed times of the store (stats file), e.g. signing time. */
  timings?(): Record<string, number>;
  /** Called after the core committed everything (core.destroy()). */
  close(): Promise<void>;
}

/** How a mount opens its store (runMount takes another one in tests). */
export type StoreFactory = (args: MountArgs) => Promise<OpenedStore>;

export async function openStore(args: MountArgs): Promise<OpenedStore> {
  if (args.temp) return openTempStore(args);
  if (args.remote) return openRemoteStore(args);
  return openPersistentLocalStore(args);
}

/**
 * --temp: the same encrypted, signed chain code on an in-memory log and a throw-away index, so a
 * temporary mount behaves (and performs) like a persistent one but leaves nothing behind.
 */
export async function openTempStore(args: MountArgs): Promise<OpenedStore> {
  const opened = await openChainStore({ ...args, readOnly: false }, { memory: true });
  if (args.readOnly) {
    // A read-only temp mount is an empty tree: create its root; the core is then opened read-only.
    await (await Filesystem.open(opened.store)).destroy();
  }
  return opened;
}

/** The local chain under --log-path (default $XDG_DATA_HOME/atefs/local), created on first use. */
export async function openPersistentLocalStore(args: MountArgs): Promise<OpenedStore> {
  return openChainStore(args, { chainDir: args.logPath, memory: false });
}

async function openChainStore(args: MountArgs, where: { chainDir?: string; memory: boolean }): Promise<OpenedStore> {
  const session = await sessionFromArgs(args);
  let chain: LocalChain;
  try {
    chain = await openLocalChain({
      ...(session ? { session } : {}),
      ...(where.chainDir ? { chainDir: where.chainDir } : {}),
      memory: where.memory,
      readOnly: args.readOnly,
      ...(args.compactMode ? { compactMode: args.compactMode } : {}),
      onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
    });
  } catch (e) {
    throw chainOpenError(e);
  }
  if (args.compactNow && !args.readOnly) await chain.view.compact('manual');
  return {
    store: chain.store,
    chain: where.memory ? 'temp' : chain.chainDir,
    mode: where.memory ? 'temp (in memory, encrypted, not persisted)' : 'local',
    local: true,
    status: () => {
      const s = chain.view.stats();
      return { logBytes: s.logBytes, liveBytes: s.liveBytes, ...(s.compacting ? { compaction: 'running' } : {}) };
    },
    timings: () => ({ ...chain.store.timings }),
    close: () => chain.close(),
  };
}

/** --token-path (with --passcode or $ATEFS_PASSCODE when it is encrypted): that token's keys. */
async function sessionFromArgs(args: MountArgs): Promise<Session | undefined> {
  const passphrase = args.passcode ?? process.env.ATEFS_PASSCODE;
  if (!args.tokenPath) {
    if (args.passcode) throw new UserError('--passcode unlocks a token file: give it with --token-path');
    return undefined;
  }
  try {
    return (await readTokenFile(args.tokenPath, passphrase ? { passphrase } : {})).session;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new UserError(`no token file at ${args.tokenPath}`);
    switch (err.name) {
      case 'TokenExpired': case 'BadPassphrase': case 'PassphraseRequired': case 'TokenInvalid':
        throw new UserError(`${args.tokenPath}: ${err.message}`);
    }
    throw e;
  }
}

/** Typed failures of opening a chain become one clear line; anything else stays an error. */
function chainOpenError(e: unknown): Error {
  const err = e as Error;
  switch (err?.name) {
    case 'LogLockedError': return new UserError(`the chain is in use by another process: ${err.message}`);
    case 'LogCorruptError': return new UserError(`the chain's log is damaged: ${err.message} (see 'atefs verify' and 'atefs repair')`);
    case 'GenesisMismatch': case 'LogHeaderMismatch': return new UserError(`refusing a chain that is not the one pinned: ${err.message}`);
    case 'DiskFull': return new UserError(`disk full: ${err.message}`);
    default: return err instanceof Error ? err : new Error(String(e));
  }
}

export async function openRemoteStore(args: MountArgs): Promise<OpenedStore> {
  throw new UserError(`remote chains are not wired yet (${args.remote}); use --temp`);
}

/** The core over an opened store; an empty writable store gets a root owned by the mounting user. */
export async function openCore(opened: OpenedStore, args: MountArgs): Promise<Filesystem> {
  try {
    return await Filesystem.open(opened.store, { readOnly: args.readOnly });
  } catch (e) {
    if ((e as Error).name === 'FsError' && (e as { code?: string }).code === 'EROFS') {
      throw new UserError('cannot mount an empty chain read-only: it has no root directory yet');
    }
    throw e;
  }
}
