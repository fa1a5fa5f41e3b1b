// Leases (advisory locks) on keys of a chain, held by a connection under its identity: acquire
// with a TTL, renew and release by the holder only; released when the holder disconnects or the
// TTL runs out (checked lazily on every access, so no timer per lease).
export const MAX_LEASE_TTL_MS = 10 * 60 * 1000;

interface Lease {
  owner: string;
  conn: object;
  expires: number;
}

export interface LeaseResult {
  ok: boolean;
  holder: string | null;
  expires: number;
}

export class LeaseTable {
  private readonly leases = new Map<string, Lease>();

  constructor(private readonly now: () => number = Date.now) {}

  private live(k: string): Lease | undefined {
    const l = this.leases.get(k);
    if (l && l.expires <= this.now()) {
      this.leases.delete(k);
      return undefined;
    }
    return l;
  }

  request(op: 'acquire' | 'renew' | 'release' | 'get', chain: string, key: string, ttlMs: number, owner: string, conn: object): LeaseResult {
    const k = `${chain}\0${key}`;
    const cur = this.live(k);
    const mine = !!cur && cur.owner === owner && cur.conn === conn;
    const ttl = Math.max(1, Math.min(ttlMs, MAX_LEASE_TTL_MS));
    switch (op) {
      case 'acquire':
        if (cur && !mine) return { ok: false, holder: cur.owner, expires: cur.expires };
        this.leases.set(k, { owner, conn, expires: this.now() + ttl });
        return { ok: true, holder: owner, expires: this.now() + ttl };
      case 'renew':
        if (!mine) return { ok: false, holder: cur?.owner ?? null, expires: cur?.expires ?? 0 };
        cur.expires = this.now() + ttl;
        return { ok: true, holder: owner, expires: cur.expires };
      case 'get':
        // Who holds it (ok = it is held), changing nothing.
        return { ok: !!cur, holder: cur?.owner ?? null, expires: cur?.expires ?? 0 };
      case 'release':
        if (!mine) return { ok: false, holder: cur?.owner ?? null, expires: cur?.expires ?? 0 };
        this.leases.delete(k);
        return { ok: true, holder: null, expires: 0 };
    }
  }

  /** Drops every lease a connection holds (it disconnected). */
  releaseAll(conn: object): number {
    let n = 0;
    for (const [k, l] of this.leases) {
      if (l.conn === conn) {
        this.leases.delete(k);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.leases.size;
  }
}
