// Leases (advisory locks) on DAO keys: an owner and an expiry. Only the owner releases or renews;
// expiry frees a lease without anyone releasing it (a crashed holder never blocks forever).
// Kept in the view's LMDB environment so that every process sharing the index sees them; they are
// not part of the chain (a lease is coordination, not data), and survive index rebuilds.
// A replicated chain's leases are the server's instead (src/api/leases.ts RemoteLeases, wire
// messages of DESIGN §8).
import { Packr } from 'msgpackr';
import type { IndexStore } from './index-store.js';
import { LeaseHeld, LeaseNotOwner } from './errors.js';

const packr = new Packr({ useRecords: false });

/** A lease key: a DAO key (hex) or raw bytes. */
export type LeaseKey = string | Uint8Array;

function bytes(k: LeaseKey): Buffer {
  return typeof k === 'string' ? Buffer.from(k, 'hex') : Buffer.from(k.buffer, k.byteOffset, k.length);
}

export interface Lease {
  key: Buffer;
  owner: string;
  /** ms since the epoch. */
  expiresAt: number;
}

export class Leases {
  constructor(
    private readonly store: IndexStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** The live lease on `key`, or null (no lease, or expired). */
  get(k: LeaseKey): Lease | null {
    const key = bytes(k);
    const b = this.store.leases.getBinary(key);
    if (!b) return null;
    const [owner, expiresAt] = packr.unpack(b) as [string, number];
    if (expiresAt <= this.now()) return null;
    return { key: Buffer.from(key), owner, expiresAt };
  }

  /**
   * Takes (or renews, for the same owner) the lease for `ttlMs`. Throws LeaseHeld when another
   * owner holds a lease that has not expired. Atomic against other processes on the same index.
   */
  acquire(k: LeaseKey, owner: string, ttlMs: number): Lease {
    const key = bytes(k);
    if (!owner) throw new RangeError('lease owner must be a non-empty string');
    if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) throw new RangeError('lease TTL must be a positive number of ms');
    return this.store.transaction(() => {
      const cur = this.get(key);
      if (cur && cur.owner !== owner) throw new LeaseHeld(Buffer.from(key), cur.owner, cur.expiresAt);
      const expiresAt = this.now() + ttlMs;
      this.store.leases.putSync(key, packr.pack([owner, expiresAt]));
      return { key: Buffer.from(key), owner, expiresAt };
    });
  }

  /** Like acquire, but returns null instead of throwing when someone else holds it. */
  tryAcquire(key: LeaseKey, owner: string, ttlMs: number): Lease | null {
    try {
      return this.acquire(key, owner, ttlMs);
    } catch (e) {
      if (e instanceof LeaseHeld) return null;
      throw e;
    }
  }

  /**
   * Releases the lease. Only its owner may; releasing a lease that expired (or was never taken)
   * by the caller's own name is refused too, because someone else may hold it by now.
   */
  release(k: LeaseKey, owner: string): void {
    const key = bytes(k);
    this.store.transaction(() => {
      const cur = this.get(key);
      if (!cur || cur.owner !== owner) throw new LeaseNotOwner(Buffer.from(key), cur?.owner ?? null, owner);
      this.store.leases.removeSync(key);
    });
  }

  /** Drops expired leases from the table (housekeeping; expired leases are already free). */
  sweep(): number {
    const now = this.now();
    let n = 0;
    this.store.transaction(() => {
      for (const { key, value } of this.store.leases.getRange({})) {
        const [, expiresAt] = packr.unpack(value as Buffer) as [string, number];
        if (expiresAt <= now) {
          this.store.leases.removeSync(key as Buffer);
          n++;
        }
      }
    });
    return n;
  }
}
