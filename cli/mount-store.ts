import { Filesystem, MemoryStore, type FsStore } from '../fs/core/index.js';
import { UserError } from './errors.js';
import type { MountArgs } from './mount-args.js';

/**
 * Chooses and opens the store a mount serves. The only store today is MemoryStore (--temp); the
 * persistent local chain and remote chains plug in at openPersistentLocalStore / openRemoteStore,
 * or through setStoreFactory() without editing this file.
 */

/** Live figures for the status panel; every field is optional. */
export interface StoreStatus {
  logBytes?: number;
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
  /** Called after the core committed everything (core.destroy()). */
  close(): Promise<void>;
}

export type StoreFactory = (args: MountArgs) => Promise<OpenedStore>;

let injected: StoreFactory | null = null;
/** Lets the layer that owns chains provide the store for non --temp mounts. */
export function setStoreFactory(f: StoreFactory | null): void { injected = f; }

export async function openStore(args: MountArgs): Promise<OpenedStore> {
  if (args.temp) return openTempStore(args);
  if (injected) return injected(args);
  if (args.remote) return openRemoteStore(args);
  return openPersistentLocalStore(args);
}

/** Local kernel-cache timeout (seconds): nobody else changes a temp or local chain. */
const LOCAL_CACHE_SECONDS = 60;

export async function openTempStore(args: MountArgs): Promise<OpenedStore> {
  const store = new MemoryStore({ cacheTimeout: LOCAL_CACHE_SECONDS });
  if (args.readOnly) {
    // A read-only temp mount is an empty tree: create its root, then the core opens it read-only.
    await (await Filesystem.open(store)).destroy();
  }
  return { store, chain: 'temp', mode: 'temp (in memory, not persisted)', local: true, close: () => store.close() };
}

/** THE place to wire the chain-backed store (local chain under --log-path or the XDG data dir). */
export async function openPersistentLocalStore(_args: MountArgs): Promise<OpenedStore> {
  throw new UserError('persistent local chains are not wired yet; use --temp');
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
