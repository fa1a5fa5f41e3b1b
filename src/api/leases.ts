// Leases (advisory locks with an owner and a TTL) as the API offers them: asynchronous, because on
// a replicated chain they are the server's (a round trip); on a local chain they live in the
// view's index, shared by every process that opens it.
import type { Lease, LeaseKey, View } from '../view/index.js';

export interface LeaseService {
  /** Takes (or renews, for the same owner) the lease; LeaseHeld when someone else holds it. */
  acquire(key: LeaseKey, ttlMs: number): Promise<Lease>;
  /** Like acquire, but null when someone else holds it. */
  tryAcquire(key: LeaseKey, ttlMs: number): Promise<Lease | null>;
  /** Releases a lease this owner holds; LeaseNotOwner otherwise. */
  release(key: LeaseKey): Promise<void>;
  /** The live lease on `key`, or null. */
  get(key: LeaseKey): Promise<Lease | null>;
  readonly owner: string;
}

export class LocalLeases implements LeaseService {
  constructor(private readonly view: View, readonly owner: string) {}

  async acquire(key: LeaseKey, ttlMs: number): Promise<Lease> {
    return this.view.leases.acquire(key, this.owner, ttlMs);
  }

  async tryAcquire(key: LeaseKey, ttlMs: number): Promise<Lease | null> {
    return this.view.leases.tryAcquire(key, this.owner, ttlMs);
  }

  async release(key: LeaseKey): Promise<void> {
    this.view.leases.release(key, this.owner);
  }

  async get(key: LeaseKey): Promise<Lease | null> {
    return this.view.leases.get(key);
  }
}
