import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { Ctx, FsCore } from '../core/api.js';
import { unmountByPath } from '../daemon/mounttab.js';
import { MountError, type MountHandle, type MountOptions } from '../mount.js';
import { FUSE_NATIVE_OPS, FuseNativeAdapter } from './adapter.js';

export { FuseNativeAdapter, FUSE_NATIVE_OPS } from './adapter.js';

type FuseClass = typeof import('fuse-native');
type FuseInstance = InstanceType<FuseClass> & Record<string, unknown> & { _thread?: Buffer };

const require = createRequire(import.meta.url);

/** See fuseNativeOptions: hard links are distinct kernel inodes on this transport. */
const MAX_ATTR_SECONDS = 1;

/** Loaded on first mount only: the addon is not needed by the kernel transport or the CLI. */
function loadFuse(): { Fuse: FuseClass; binding: { fuse_native_unmount(mnt: string, thread: Buffer): void } | null } {
  const Fuse = require('fuse-native') as FuseClass;
  let binding = null;
  try {
    // The same (cached) native module fuse-native loaded: its unmount releases the loop handle.
    const dir = dirname(require.resolve('fuse-native'));
    binding = createRequire(`${dir}/index.js`)('node-gyp-build')(dir);
  } catch { /* then the caller's process.exit ends the loop */ }
  return { Fuse, binding };
}

/**
 * libfuse options fuse-native does not expose, injected through `fsname`, which it joins into the
 * option string unescaped: big_writes (128 KiB writes instead of 4 KiB), use_ino (our inode
 * numbers as st_ino), and for local stores a negative-entry cache (untar looks up every name
 * before creating it). `ro` for read-only mounts. Zero timeouts must be injected too: fuse-native
 * drops falsy option values.
 *
 * Attribute caching stays at 1 s at most and kernel_cache is never set, whatever the store: the
 * libfuse 2 high-level API gives every *name* its own kernel inode, so hard links are separate
 * inodes to the kernel and a write through one name is not seen through another until its cached
 * attributes expire, and with kernel_cache its page cache would stay stale until evicted
 * (reproduced: `echo x >> h; cat a` printed the old content). The same holds for nlink: after
 * `ln a b`, `stat a` shows 1 until a's attributes expire. libfuse 2 cannot do better: the timeout is
 * one global setting (fuse_lib_getattr replies with conf.attr_timeout), fuse_invalidate() is a stub
 * returning -EINVAL, and the low-level notify calls need libfuse's private node ids. attr_timeout=0
 * would fix it at 2-6x the cost of metadata walks (measured: ls -lR of 3,000 files 0.40-0.77 s ->
 * 1.7-2.0 s, 5x the getattr requests), so 1 s stays. Entries can be cached long: names only change
 * through this mount, and the kernel updates its dentries itself.
 */
export function fuseNativeOptions(opts: MountOptions): Record<string, unknown> {
  const t = opts.cacheTimeout ?? 1;
  const extra = ['big_writes', 'use_ino'];
  if (t <= 0) extra.push('entry_timeout=0', 'attr_timeout=0', 'negative_timeout=0');
  else if (opts.kernelCache) extra.push(`negative_timeout=${t}`);
  if (opts.readOnly) extra.push('ro');
  const fsname = (opts.fsname ?? 'atefs').replace(/[,\s\\]/g, '_');
  return {
    fsname: [fsname, ...extra].join(','),
    subtype: 'atefs',
    defaultPermissions: true,
    allowOther: !!opts.allowOther,
    debug: !!opts.debug,
    ...(t > 0 ? { entryTimeout: t, attrTimeout: Math.min(t, MAX_ATTR_SECONDS) } : {}),
    // No per-request timer: our handlers always answer, and a timer per request costs.
    timeout: false,
  };
}

export async function mountFuseNative(core: FsCore, mountpoint: string, opts: MountOptions): Promise<MountHandle> {
  const abs = resolve(mountpoint);
  const { Fuse, binding } = loadFuse();
  // fuse-native does not expose the caller's uid/gid/pid: requests run as the mounting user.
  const ctx: Ctx = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: 0 };
  // With --allow-other every caller looks like the mounting user: no setuid/setgid (adapter.ts).
  const adapter = new FuseNativeAdapter(core, ctx, opts.onError, { stripSetId: !!opts.allowOther });

  // fuse-native registers with libfuse only the ops present in this object; the real handlers
  // replace its `_op_<name>` methods below, skipping its per-call argument conversion.
  const present: Record<string, () => void> = {};
  for (const op of FUSE_NATIVE_OPS) present[op] = () => {};
  const fuse = new Fuse(abs, present, fuseNativeOptions(opts) as never) as FuseInstance;
  for (const op of FUSE_NATIVE_OPS) {
    const fn = adapter[op] as (...args: unknown[]) => void;
    fuse[`_op_${op}`] = fn.bind(adapter);
  }

  core.onInvalidate = () => adapter.cache.clear();

  await new Promise<void>((ok, fail) => {
    fuse.mount((err) => {
      if (!err) return ok();
      fail(new MountError(`cannot mount ${abs}: ${err.message === 'fuse failed' ? 'libfuse refused the mount (see the line above)' : err.message}`));
    });
  });

  let unmounting: Promise<void> | null = null;
  return {
    mountpoint: abs,
    transport: 'fuse-native',
    counters: () => ({ ...adapter.counts }),
    unmount(): Promise<void> {
      unmounting ??= (async () => {
        const gone = await unmountByPath(abs);
        try { if (binding && fuse._thread) binding.fuse_native_unmount(abs, fuse._thread); } catch { /* best effort */ }
        // After the mount is detached nothing new arrives: commit what is dirty.
        await core.destroy();
        if (!gone) throw new MountError(`could not unmount ${abs}`);
      })();
      return unmounting;
    },
  };
}
