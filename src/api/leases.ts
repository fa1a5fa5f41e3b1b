// Leases (advisory locks with an owner and a TTL) as the API offers them: asynchronous, because on
// a replicated chain they are the server's (a round trip); on a local chain they live in the
// view's index, shared by every process that opens it.
import { type Lease, type LeaseKey, LeaseHeld, LeaseNotOwner, type View } from '../view/index.js';

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

/** The part of the replication client RemoteLeases talks through (src/net RemoteChain). */
export interface LeaseWire {
  readonly identity: string | null;
  lease(op: 'acquire' | 'renew' | 'release' | 'get', key: string, ttlMs: number): Promise<{ ok: boolean; holder: string | null; expires: number }>;
}

/**
 * Leases of a chain on an atedb server: the server's lease table, one round trip each. The holder
 * is this connection (the server names it by the identity proven in the handshake): another
 * connection under the same identity does not hold it, and the server drops every lease of a
 * connection that closes, so a crashed process frees its leases at once, a frozen one when the
 * TTL ends. A request while the server is unreachable throws Disconnected. `settle` resolves once
 * the commits received before the reply are applied to the view: a lease granted after someone
 * committed and released it sees that commit.
 */
export class RemoteLeases implements LeaseService {
  constructor(private readonly wire: LeaseWire, private readonly settle: () => Promise<void>) {}

  /** The identity the server knows this connection by (the holder name in LeaseHeld). */
  get owner(): string {
    return this.wire.identity ?? 'anonymous';
  }

  private async request(op: 'acquire' | 'renew' | 'release' | 'get', key: LeaseKey, ttlMs: number) {
    const r = await this.wire.lease(op, wireKey(key), ttlMs);
    await this.settle();
    return r;
  }

  async acquire(key: LeaseKey, ttlMs: number): Promise<Lease> {
    const r = await this.request('acquire', key, ttlMs);
    if (!r.ok) throw new LeaseHeld(keyBytes(key), r.holder ?? '?', r.expires);
    return { key: keyBytes(key), owner: r.holder ?? this.owner, expiresAt: r.expires };
  }

  async tryAcquire(key: LeaseKey, ttlMs: number): Promise<Lease | null> {
    const r = await this.request('acquire', key, ttlMs);
    return r.ok ? { key: keyBytes(key), owner: r.holder ?? this.owner, expiresAt: r.expires } : null;
  }

  /** Extends a lease this connection holds; LeaseNotOwner otherwise (expired, or another's). */
  async renew(key: LeaseKey, ttlMs: number): Promise<Lease> {
    const r = await this.request('renew', key, ttlMs);
    if (!r.ok) throw new LeaseNotOwner(keyBytes(key), r.holder, this.owner);
    return { key: keyBytes(key), owner: r.holder ?? this.owner, expiresAt: r.expires };
  }

  async release(key: LeaseKey): Promise<void> {
    const r = await this.request('release', key, 0);
    if (!r.ok) throw new LeaseNotOwner(keyBytes(key), r.holder, this.owner);
  }

  async get(key: LeaseKey): Promise<Lease | null> {
    const r = await this.request('get', key, 0);
    return r.ok && r.holder !== null ? { key: keyBytes(key), owner: r.holder, expiresAt: r.expires } : null;
  }
}

// A lease key names the same bytes locally and on the wire: a string is a DAO key (hex).
function keyBytes(k: LeaseKey): Buffer {
  return typeof k === 'string' ? Buffer.from(k, 'hex') : Buffer.from(k.buffer, k.byteOffset, k.length);
}

function wireKey(k: LeaseKey): string {
  return keyBytes(k).toString('hex');
}
