/**
 * The kernel transport: serves an FsCore over /dev/fuse, speaking the FUSE protocol itself.
 *
 * fs/mount.ts loads this module lazily and calls mountKernel(); nothing else in fs/ depends on it.
 */
import { closeSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FsCore } from '../core/api.js';
import { type BulkCryptoPool, defaultBulkPool } from '../../src/crypto/index.js';
import { RequestLoop, type LoopMode } from './loop.js';
import {
  KernelMountError, abortConnection, attachFuse, kernelMountMethod, kernelTransportAvailable, recoverStale, umount,
} from './mount-syscall.js';
import { PAGE_SIZE } from './protocol.js';
import { Session } from './session.js';

export { KernelMountError, kernelTransportAvailable };
export type { LoopMode };

export interface KernelMountOptions {
  transport?: string;
  allowOther?: boolean;
  readOnly?: boolean;
  fsname?: string;
  debug?: boolean;
  /**
   * Kernel writeback cache. The kernel then owns size and mtime of regular files it has cached and
   * ignores the server's values, so it suits local chains only (nobody else changes content).
   * Default off, by measurement (bench:fs, floor-k): 250 MiB dd 615 vs 294 MB/s, rm -rf 20k vs 28k
   * requests (a SETATTR per evicted inode); untar saves 7% of requests with it. Env ATEFS_KERNEL_WRITEBACK=0|1.
   */
  writebackCache?: boolean;
  /** fs/mount.ts: the content is only changed through this mount (local chain). */
  kernelCache?: boolean;
  /** fs/mount.ts: seconds entries/attributes may be cached; default for attr and negative timeouts. */
  cacheTimeout?: number;
  /** Read loop design (default 'blocking'). Env ATEFS_KERNEL_LOOP. */
  loop?: LoopMode;
  /** Largest WRITE/READ request in bytes (default 1 MiB). */
  maxWrite?: number;
  /** Seconds a failed lookup may be cached (default 1). Env ATEFS_KERNEL_NEGATIVE_TIMEOUT. */
  negativeTimeout?: number;
  /** Seconds GETATTR/SETATTR replies may be cached when no entry told us otherwise (default 1). */
  attrTimeout?: number;
  /**
   * Read-ahead of the mount in KiB (default: max_write, 1 MiB). The kernel starts FUSE mounts at
   * 128 KiB, which turns a sequential read into 8x more READ requests than max_pages allows.
   */
  readAheadKb?: number;
  /**
   * Worker threads that serve large reads of committed blocks whole (read, decrypt and reply to the
   * kernel without the serving thread touching the data; see Session). Default: the process-wide
   * bulk pool when the core can plan such reads; null disables. Env ATEFS_KERNEL_BULK_READ=0.
   */
  bulk?: BulkCryptoPool | null;
  /** Let the kernel cache directory listings across opens (default off). Env ATEFS_KERNEL_CACHE_DIR. */
  cacheDir?: boolean;
  /** fs/mount.ts: serve flock(2) locks here (FUSE_FLOCK_LOCKS) instead of in the kernel. */
  flockLocks?: boolean;
  /** fs/mount.ts: serve fcntl record locks here (FUSE_POSIX_LOCKS; default true). */
  posixLocks?: boolean;
}

export interface MountHandle {
  mountpoint: string;
  transport: string;
  counters(): Record<string, number>;
  unmount(): Promise<void>;
}

export interface KernelMountHandle extends MountHandle {
  /** Resolves when the connection ends, whoever unmounted (null) or on a fatal read error. */
  readonly ended: Promise<Error | null>;
  /** Negotiated protocol (major, minor, INIT flags). */
  readonly protocol: { major: number; minor: number; kernelMinor: number; flags: number; maxReadahead: number };
}

const WAKE_NAME = '.atefs-kernel-wake';
const MiB = 1 << 20;

function envBool(name: string): boolean | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  return v !== '0' && v.toLowerCase() !== 'false';
}

function envNum(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** major:minor of the mount at `dir`, from mountinfo (stat would ask our own, not yet serving, loop). */
function mountDev(dir: string): number | undefined {
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f[4] === dir) {
        const [maj, min] = f[2]!.split(':').map(Number);
        return ((min! & 0xff) | ((maj! & 0xfff) << 8) | ((min! & ~0xff) << 12)) >>> 0;
      }
    }
  } catch { /* fall through */ }
  return undefined;
}

/** The mount's backing-device read-ahead (/sys/class/bdi/MAJ:MIN/read_ahead_kb). */
function setReadAhead(dev: number, kb: number, debug: boolean): void {
  const major = (dev >>> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
  try {
    writeFileSync(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(Math.max(4, Math.floor(kb))));
  } catch (e) {
    if (debug) process.stderr.write(`kernel: read_ahead_kb not set: ${(e as Error).message}\n`);
  }
}

export async function mountKernel(core: FsCore, mountpoint: string, opts: KernelMountOptions = {}): Promise<KernelMountHandle> {
  const method = kernelMountMethod();
  if (!method) {
    throw new KernelMountError('the kernel transport needs Linux, /dev/fuse and either root or fusermount (Debian package fuse)');
  }
  const mp = resolve(mountpoint);
  await recoverStale(mp);
  const debug = opts.debug ?? false;
  const maxWrite = Math.max(PAGE_SIZE, Math.floor((opts.maxWrite ?? MiB) / PAGE_SIZE) * PAGE_SIZE);
  const mode: LoopMode = (process.env.ATEFS_KERNEL_LOOP as LoopMode | undefined) ?? opts.loop ?? 'blocking';
  if (mode !== 'blocking' && mode !== 'threadpool') throw new KernelMountError(`unknown loop mode ${mode}`);

  // Mounted first: through fusermount the descriptor only exists once the mount does. Reading it
  // starts only after loop.start() below.
  const fd = await attachFuse({
    mountpoint: mp, fsname: opts.fsname ?? 'atefs', allowOther: opts.allowOther ?? false,
    readOnly: opts.readOnly ?? false, maxRead: maxWrite,
  }, method);
  let initDone!: () => void;
  const inited = new Promise<void>((r) => { initDone = r; });
  let loop: RequestLoop | null = null;
  let session: Session;
  try {
    session = new Session(fd, core, {
      writebackCache: (envBool('ATEFS_KERNEL_WRITEBACK') ?? opts.writebackCache ?? false) && !opts.readOnly,
      maxWrite,
      negativeTimeout: envNum('ATEFS_KERNEL_NEGATIVE_TIMEOUT') ?? opts.negativeTimeout ?? opts.cacheTimeout ?? 1,
      attrTimeout: opts.attrTimeout ?? opts.cacheTimeout ?? 1,
      cacheDir: envBool('ATEFS_KERNEL_CACHE_DIR') ?? opts.cacheDir ?? false,
      flockLocks: opts.flockLocks ?? false,
      posixLocks: opts.posixLocks ?? true,
      wakeName: mode === 'blocking' ? Buffer.from(WAKE_NAME) : null,
      bulk: envBool('ATEFS_KERNEL_BULK_READ') === false ? null : opts.bulk !== undefined ? opts.bulk : core.readPlan ? defaultBulkPool() : null,
      debug,
    }, {
      onInit: () => initDone(),
      onWake: () => loop?.wake(),
      onDestroyed: () => undefined,
    });
    loop = new RequestLoop(fd, session, {
      mode,
      // header + fuse_write_in + max_write, rounded up to whole pages
      bufferSize: maxWrite + 2 * PAGE_SIZE,
      sliceMs: envNum('ATEFS_KERNEL_SLICE_MS') ?? 20,
      idleMs: envNum('ATEFS_KERNEL_IDLE_MS') ?? 10,
      wakePath: `${mp}/${WAKE_NAME}`,
      debug,
    });
  } catch (e) {
    await umount(mp, true);
    closeSync(fd);
    throw e;
  }

  // Reading /dev/fuse before mount(2) attached it fails (EPERM): serve only from here on.
  loop.start();
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000).unref());
  const first = await Promise.race([inited.then(() => 'ok' as const), loop.ended.then(() => 'ended' as const), timeout]);
  if (first !== 'ok') {
    await umount(mp, true);
    loop.stop();
    closeSync(fd);
    throw new KernelMountError(`the kernel did not initialise the mount at ${mp} (${first})`);
  }
  const dev = mountDev(mp);
  if (dev !== undefined) setReadAhead(dev, opts.readAheadKb ?? envNum('ATEFS_KERNEL_READAHEAD_KB') ?? maxWrite / 1024, debug);
  core.onInvalidate = (ev) => session.notify(ev);
  loop.startWaker();

  let unmounting: Promise<void> | null = null;
  let closing: Promise<void> | null = null;
  // Memoized: the end of the connection and unmount() may both get here; both wait for the destroy.
  const closeOnce = (): Promise<void> => closing ??= (async () => {
    if (core.onInvalidate) core.onInvalidate = undefined;
    // Without a DESTROY (plain fuse mounts get none on umount) the core still has to commit.
    let failure: unknown = null;
    try {
      await (session.destroyed ? session.destroyResult : core.destroy());
    } catch (e) {
      failure = e;
    }
    // Let replies to DESTROY get written before the descriptor goes away, and never close it under
    // a worker still writing a read reply (the number could be reused by another file meanwhile).
    while (session.pending.size > 0 || session.bulkInFlight > 0) await new Promise((r) => setTimeout(r, 5));
    try { closeSync(fd); } catch { /* already closed */ }
    // A failed final commit is data not saved: unmount() must fail, not log and succeed.
    if (failure) throw failure;
  })();
  // unmount() reports a failure; this path only makes sure the close happens.
  void loop.ended.then(() => closeOnce()).catch(() => {});

  const handle: KernelMountHandle = {
    mountpoint: mp,
    transport: 'kernel',
    ended: loop.ended,
    get protocol() { return session.proto; },
    counters: () => session.counters(),
    unmount(): Promise<void> {
      if (unmounting) return unmounting;
      unmounting = (async () => {
        loop!.stopWaker();
        let r = await umount(mp);
        if (r.code !== 0 && !/not mounted|not found/.test(r.stderr)) {
          // Busy (a process sits in the mount): detach it and end the connection ourselves.
          r = await umount(mp, true);
          if (dev !== undefined) abortConnection(dev);
        }
        const t = setTimeout(() => { if (dev !== undefined) abortConnection(dev); }, 5_000);
        await loop!.ended;
        clearTimeout(t);
        await closeOnce();
      })();
      return unmounting;
    },
  };
  return handle;
}
