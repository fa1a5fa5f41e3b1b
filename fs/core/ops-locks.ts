import type { Fh, Ino, PosixLock } from './api.js';
import type { FsStore } from './store.js';
import { fsErr } from './errors.js';
import { F_UNLCK } from './constants.js';
import { ownerKey } from './locks.js';
import type { CoreState } from './core-state.js';

// Locks: POSIX record locks (getlk, setlk, and INTERRUPT of a waiting one) — the operations of
// Filesystem (filesystem.ts) over the lock table (locks.ts) and a replicated store's lock lease.

export function getlk(core: CoreState, ino: Ino, _fh: Fh, owner: bigint | number, lock: PosixLock): PosixLock {
  core.table.get(ino);
  return core.locks.getlk(ino, owner, lock);
}

export function setlk(core: CoreState, ino: Ino, fh: Fh, owner: bigint | number, lock: PosixLock, wait: boolean): Promise<void> {
  const h = core.handles.get(fh);
  if (h !== undefined) (h.lockOwners ??= new Set()).add(ownerKey(owner));
  const lease = core.store.lockLease;
  if (lease === undefined) return core.locks.setlk(ino, owner, lock, wait);
  return setlkLeased(core, lease, ino, owner, lock, wait);
}

/**
 * A replicated store's locks are seen by its other mounts: the first lock on an inode takes the
 * store's lease on it (one holder across all mounts; whole file, shared and exclusive alike),
 * released with the last one.
 */
async function setlkLeased(
  core: CoreState, lease: NonNullable<FsStore['lockLease']>, ino: Ino, owner: bigint | number, lock: PosixLock, wait: boolean,
): Promise<void> {
  try {
    if (lock.type !== F_UNLCK && !core.locks.hasLocks(ino)) {
      for (;;) {
        if (await lease.acquire(ino)) break;
        if (!wait) throw fsErr('EAGAIN');
        await new Promise((r) => setTimeout(r, 200));
        if (core.destroyed) throw fsErr('EINTR');
      }
    }
    await core.locks.setlk(ino, owner, lock, wait);
  } finally {
    core.lockGone(ino);
  }
}

/** Fails the pending (wait=true) lock requests of `owner` on `ino` with EINTR (FUSE INTERRUPT). */
export function interruptLock(core: CoreState, ino: Ino, owner: bigint | number): void {
  core.locks.interrupt(ino, owner);
}
