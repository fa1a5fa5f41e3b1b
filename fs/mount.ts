import type { FsCore } from './core/api.js';

/**
 * Mounting an FsCore through one of the transports. The transports live in fs/fuse-native/
 * (libfuse 2 through the fuse-native addon) and fs/kernel/ (the FUSE kernel protocol spoken over
 * /dev/fuse; root mounts with mount(2), other users through fusermount). Both serve requests from the calling
 * process's main thread, so the caller must be a dedicated process (the mount daemon), and
 * nothing in that process may touch the mountpoint with a synchronous fs call (deadlock).
 */

export type TransportName = 'fuse-native' | 'kernel';

export interface MountOptions {
  transport: TransportName;
  /** Other users may enter the mount (allow_other; the kernel still checks modes). */
  allowOther?: boolean;
  readOnly?: boolean;
  /** Shown as the source in the mount table. Default 'atefs'. */
  fsname?: string;
  /** libfuse / protocol debugging output on stderr. */
  debug?: boolean;
  /**
   * Seconds the kernel may cache entries and attributes (the store's cacheTimeout: long for a
   * local chain, short for a replicated one). Default 1.
   */
  cacheTimeout?: number;
  /** Keep the page cache across opens (local chains: nobody else changes the content). */
  kernelCache?: boolean;
  /**
   * flock(2) locks served by the filesystem instead of the kernel (kernel transport), so that a
   * replicated store's other mounts see them (its lock leases). Default off: the kernel keeps them.
   */
  flockLocks?: boolean;
  /**
   * fcntl/lockf record locks served by the filesystem (kernel transport, FUSE_POSIX_LOCKS; default
   * on). Off, the kernel keeps them itself, as for any local filesystem: a local chain has one
   * mount, so nothing is lost, and a database's lock calls cost no round trip to the daemon.
   */
  posixLocks?: boolean;
  /**
   * Called for failures that are not an FsError (a bug or a failing store, answered with EIO or
   * the mapped errno), so the daemon can log them and show the last one.
   */
  onError?: (op: string, err: unknown) => void;
}

export interface MountHandle {
  /** Absolute path of the mountpoint. */
  readonly mountpoint: string;
  readonly transport: string;
  /** Requests served so far, per opcode (cheap counters; the benchmark reads them). */
  counters(): Record<string, number>;
  /**
   * Detaches the mount (lazily if it is busy), then commits everything dirty through
   * core.destroy(). Resolves when both are done; idempotent. Also used after the mount vanished
   * (external `fusermount -u`).
   */
  unmount(): Promise<void>;
}

/** A mount could not be made or undone; the message is meant for the user. */
export class MountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MountError';
  }
}

export async function mountFilesystem(core: FsCore, mountpoint: string, opts: MountOptions): Promise<MountHandle> {
  switch (opts.transport) {
    case 'fuse-native': {
      const m = await import('./fuse-native/index.js');
      return m.mountFuseNative(core, mountpoint, opts);
    }
    case 'kernel': {
      // A variable specifier: this module typechecks and runs whether or not fs/kernel exists yet.
      const spec = './kernel/index.js';
      let k: { mountKernel?: (core: FsCore, mountpoint: string, opts: MountOptions) => Promise<MountHandle> };
      try {
        k = await import(spec) as typeof k;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ERR_MODULE_NOT_FOUND') throw new MountError('the kernel transport is not available in this build; use --transport fuse-native');
        throw err;
      }
      if (typeof k.mountKernel !== 'function') throw new MountError('the kernel transport does not export mountKernel');
      return k.mountKernel(core, mountpoint, opts);
    }
    default:
      throw new MountError(`unknown transport '${String(opts.transport)}' (kernel or fuse-native)`);
  }
}
