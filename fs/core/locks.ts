import type { Ino, PosixLock } from './api.js';
import { F_RDLCK, F_UNLCK, F_WRLCK } from './constants.js';
import { fsErr } from './errors.js';

interface HeldLock { owner: string; start: number; end: number; type: number; pid: number }
interface Waiter { owner: string; lock: PosixLock; resolve: () => void; reject: (e: Error) => void }

/** Lock owners arrive as bigint (kernel transport) or number; one key type internally. */
export function ownerKey(owner: bigint | number): string { return typeof owner === 'bigint' ? owner.toString() : String(owner); }

function overlaps(a: { start: number; end: number }, b: { start: number; end: number }): boolean {
  return a.start <= b.end && b.start <= a.end;
}

/**
 * POSIX record locks (fcntl F_GETLK / F_SETLK / F_SETLKW), per inode, keyed by lock owner.
 * Ranges are inclusive; `end` OFFSET_MAX means "to EOF and beyond". Locks are advisory and live
 * only in memory (they die with the mount, as on any filesystem).
 */
export class LockTable {
  private readonly held = new Map<Ino, HeldLock[]>();
  private readonly waiters = new Map<Ino, Waiter[]>();

  getlk(ino: Ino, owner: bigint | number, lock: PosixLock): PosixLock {
    const c = this.conflict(ino, ownerKey(owner), lock);
    if (c === undefined) return { start: lock.start, end: lock.end, type: F_UNLCK, pid: lock.pid };
    return { start: c.start, end: c.end, type: c.type, pid: c.pid };
  }

  setlk(ino: Ino, owner: bigint | number, lock: PosixLock, wait: boolean): Promise<void> {
    const key = ownerKey(owner);
    if (lock.type !== F_RDLCK && lock.type !== F_WRLCK && lock.type !== F_UNLCK) return Promise.reject(fsErr('EINVAL'));
    if (lock.start < 0 || lock.end < lock.start) return Promise.reject(fsErr('EINVAL'));
    if (lock.type === F_UNLCK) { this.apply(ino, key, lock); this.wake(ino); return Promise.resolve(); }
    if (this.conflict(ino, key, lock) === undefined) { this.apply(ino, key, lock); this.wake(ino); return Promise.resolve(); }
    if (!wait) return Promise.reject(fsErr('EAGAIN'));
    return new Promise((resolve, reject) => {
      let list = this.waiters.get(ino);
      if (!list) this.waiters.set(ino, list = []);
      list.push({ owner: key, lock: { ...lock }, resolve, reject });
    });
  }

  /** Drops every lock of `owner` on `ino` (close of the owner's descriptor). */
  releaseOwner(ino: Ino, owner: bigint | number): void {
    const list = this.held.get(ino);
    if (!list) return;
    const key = ownerKey(owner);
    const rest = list.filter((l) => l.owner !== key);
    if (rest.length === list.length) return;
    if (rest.length) this.held.set(ino, rest); else this.held.delete(ino);
    this.wake(ino);
  }

  /** Drops every lock and fails every waiter on `ino` (the inode is gone). */
  releaseAll(ino: Ino): void {
    this.held.delete(ino);
    const w = this.waiters.get(ino);
    this.waiters.delete(ino);
    if (w) for (const x of w) x.reject(fsErr('ENOENT'));
  }

  /** Fails the owner's waiting requests on `ino` with EINTR. */
  interrupt(ino: Ino, owner: bigint | number): void {
    const list = this.waiters.get(ino);
    if (!list) return;
    const key = ownerKey(owner);
    const keep = list.filter((w) => w.owner !== key);
    for (const w of list) if (w.owner === key) w.reject(fsErr('EINTR'));
    if (keep.length) this.waiters.set(ino, keep); else this.waiters.delete(ino);
  }

  hasLocks(ino: Ino): boolean { return this.held.has(ino) || this.waiters.has(ino); }

  /** Fails all waiters (unmount). */
  cancelAll(): void {
    for (const [, list] of this.waiters) for (const w of list) w.reject(fsErr('EINTR'));
    this.waiters.clear();
  }

  private conflict(ino: Ino, owner: string, lock: PosixLock): HeldLock | undefined {
    const list = this.held.get(ino);
    if (!list) return undefined;
    for (const l of list) {
      if (l.owner === owner || !overlaps(l, lock)) continue;
      if (l.type === F_WRLCK || lock.type === F_WRLCK) return l;
    }
    return undefined;
  }

  /** Replaces the owner's locks on [start, end] with `lock` (or nothing, for F_UNLCK), merging neighbours. */
  private apply(ino: Ino, owner: string, lock: PosixLock): void {
    const list = this.held.get(ino) ?? [];
    const out: HeldLock[] = [];
    for (const l of list) {
      if (l.owner !== owner || !overlaps(l, lock)) { out.push(l); continue; }
      if (l.start < lock.start) out.push({ ...l, end: lock.start - 1 });
      if (l.end > lock.end) out.push({ ...l, start: lock.end + 1 });
    }
    if (lock.type !== F_UNLCK) {
      let n: HeldLock = { owner, start: lock.start, end: lock.end, type: lock.type, pid: lock.pid };
      // Merge with the owner's adjacent locks of the same type.
      for (let i = out.length - 1; i >= 0; i--) {
        const l = out[i]!;
        if (l.owner !== owner || l.type !== n.type) continue;
        if (l.end + 1 === n.start || n.end + 1 === l.start) {
          n = { ...n, start: Math.min(l.start, n.start), end: Math.max(l.end, n.end) };
          out.splice(i, 1);
        }
      }
      out.push(n);
    }
    if (out.length) this.held.set(ino, out); else this.held.delete(ino);
  }

  private wake(ino: Ino): void {
    const list = this.waiters.get(ino);
    if (!list) return;
    for (let i = 0; i < list.length; i++) {
      const w = list[i]!;
      if (this.conflict(ino, w.owner, w.lock) !== undefined) continue;
      this.apply(ino, w.owner, w.lock);
      list.splice(i--, 1);
      w.resolve();
    }
    if (list.length === 0) this.waiters.delete(ino);
  }
}
