// Leases of a cluster: the same rules as server/leases.ts (one holder per key, renew and release by
// the holder's connection only, expiry by TTL, released when the holder disconnects), kept in a
// JetStream KV bucket so that every atedb node sees one table. Every change is a compare-and-set
// on the entry's revision (create = only if absent, update/delete = only at the revision read), so
// two nodes granting the same key at once cannot both succeed. A holder is (identity, node,
// connection); expiry is checked on access against the `expires` time in the entry. A node that
// dies leaves its leases until they expire; the bucket's max age (the longest TTL plus a minute)
// removes stale entries.
import { randomBytes } from 'node:crypto';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { type LeaseResult, MAX_LEASE_TTL_MS } from '../leases.js';
import { subjectToken } from './jetstream-store.js';

export const LEASE_BUCKET = 'atedb-leases';

interface Entry {
  owner: string;
  node: string;
  conn: number;
  expires: number;
}

export interface LeaseService {
  request(op: 'acquire' | 'renew' | 'release' | 'get', chain: string, key: string, ttlMs: number, owner: string, conn: object): Promise<LeaseResult> | LeaseResult;
  releaseAll(conn: object): unknown;
}

export class JetStreamLeases implements LeaseService {
  /** This process among the nodes (a restarted node is another node: its old connections are gone). */
  private readonly node = randomBytes(8).toString('hex');
  private readonly connIds = new WeakMap<object, number>();
  private nextConn = 1;
  /** Keys each connection holds, to release them when it disconnects. */
  private readonly held = new Map<number, Set<string>>();

  private constructor(private readonly kv: KV, private readonly now: () => number) {}

  static async open(nc: NatsConnection, replicas: number, now: () => number = Date.now): Promise<JetStreamLeases> {
    const kv = await new Kvm(nc).create(LEASE_BUCKET, { replicas, history: 1, ttl: MAX_LEASE_TTL_MS + 60_000 });
    return new JetStreamLeases(kv, now);
  }

  private connId(conn: object): number {
    let id = this.connIds.get(conn);
    if (id === undefined) {
      id = this.nextConn++;
      this.connIds.set(conn, id);
    }
    return id;
  }

  private static kvKey(chain: string, key: string): string {
    return `${subjectToken(chain)}.${Buffer.from(key).toString('hex') || '_'}`;
  }

  private async read(k: string): Promise<{ e: Entry | null; rev: number }> {
    const got = await this.kv.get(k);
    if (!got || got.operation !== 'PUT' || got.length === 0) return { e: null, rev: got?.revision ?? 0 };
    const e = got.json<Entry>();
    return { e: e.expires > this.now() ? e : null, rev: got.revision };
  }

  async request(op: 'acquire' | 'renew' | 'release' | 'get', chain: string, key: string, ttlMs: number, owner: string, conn: object): Promise<LeaseResult> {
    const k = JetStreamLeases.kvKey(chain, key);
    const id = this.connId(conn);
    const ttl = Math.max(1, Math.min(ttlMs, MAX_LEASE_TTL_MS));
    // A lost compare-and-set means another node changed the entry meanwhile: read it again.
    for (let attempt = 0; attempt < 5; attempt++) {
      const { e, rev } = await this.read(k);
      const mine = !!e && e.owner === owner && e.node === this.node && e.conn === id;
      const refused = (): LeaseResult => ({ ok: false, holder: e?.owner ?? null, expires: e?.expires ?? 0 });
      try {
        switch (op) {
          case 'get':
            return { ok: !!e, holder: e?.owner ?? null, expires: e?.expires ?? 0 };
          case 'acquire':
          case 'renew': {
            if (op === 'renew' ? !mine : e && !mine) return refused();
            const next: Entry = { owner, node: this.node, conn: id, expires: this.now() + ttl };
            const body = JSON.stringify(next);
            if (rev === 0) await this.kv.create(k, body);
            else await this.kv.update(k, body, rev);
            this.track(id, k, true);
            return { ok: true, holder: owner, expires: next.expires };
          }
          case 'release':
            if (!mine) return refused();
            await this.kv.delete(k, { previousSeq: rev });
            this.track(id, k, false);
            return { ok: true, holder: null, expires: 0 };
        }
      } catch (err) {
        if (!/wrong last sequence|key exists/i.test((err as Error).message)) throw err;
      }
    }
    const { e } = await this.read(k);
    return { ok: false, holder: e?.owner ?? null, expires: e?.expires ?? 0 };
  }

  private track(conn: number, k: string, on: boolean): void {
    let s = this.held.get(conn);
    if (on) {
      if (!s) this.held.set(conn, (s = new Set()));
      s.add(k);
    } else if (s) {
      s.delete(k);
      if (s.size === 0) this.held.delete(conn);
    }
  }

  /** Drops every lease a connection holds (it disconnected); best effort, TTL does the rest. */
  async releaseAll(conn: object): Promise<number> {
    const id = this.connIds.get(conn);
    const keys = id === undefined ? undefined : this.held.get(id);
    if (!keys) return 0;
    this.held.delete(id!);
    let n = 0;
    for (const k of keys) {
      try {
        const got = await this.kv.get(k);
        if (!got || got.operation !== 'PUT') continue;
        const e = got.json<Entry>();
        if (e.node !== this.node || e.conn !== id) continue;
        await this.kv.delete(k, { previousSeq: got.revision });
        n++;
      } catch {
        // another node took it meanwhile, or JetStream is electing: the TTL releases it
      }
    }
    return n;
  }
}
