// The JetStream store: every chain of the cluster in one JetStream stream, one subject per chain
// (`<prefix>.<encoded chain name>`), so that any atedb node connected to the same NATS cluster
// serves any chain and all of them see one order per chain (jetstream-chain.ts has the append and
// tail protocol). The stream is created on first start (replicas 3 on a cluster, 1 on a single
// server, or --replicas); deletes and purges are denied on it, since a chain's history must not
// shrink under its clients.
import { type JetStreamManager, type StreamInfo, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type NatsConnection, connect } from '@nats-io/transport-node';
import type { SizeLimits } from '../../src/chain/index.js';
import type { CryptoPool } from '../../src/crypto/index.js';
import { type CreationPolicy, checkCreation, isChainName } from '../chain-host.js';
import { AppendRejected } from '../hosted-chain.js';
import type { AppendStats } from '../stats.js';
import { VerifyBatcher } from '../verify-batcher.js';
import type { ChainStore } from './chain-store.js';
import { JetStreamLeases } from './jetstream-leases.js';
import { type JetStreamContext, JetStreamChain } from './jetstream-chain.js';
import { OpenChains } from './open-chains.js';

export class StoreUnavailable extends Error {
  override name = 'StoreUnavailable';
}

export const DEFAULT_STREAM = 'ATEDB';
export const DEFAULT_SUBJECT_PREFIX = 'atedb.chain';

/** nats://h1:4222,h2:4222 -> ['h1:4222', 'h2:4222'] (a bare host gets port 4222). */
export function parseStoreUrl(url: string): string[] {
  const m = /^nats:\/\/(.+)$/i.exec(url.trim());
  if (!m) throw new StoreUnavailable(`'${url}' is not a NATS URL list (nats://host[:port][,host[:port]...])`);
  const servers = m[1]!.replace(/\/+$/, '').split(',').map((s) => s.trim());
  if (!servers.length || servers.some((s) => !/^([^/:,\s]+|\[[^\]]+\])(:\d{1,5})?$/.test(s))) {
    throw new StoreUnavailable(`'${url}': give host[:port] entries separated by commas`);
  }
  return servers.map((s) => (/:\d+$/.test(s) && !/^\[[^\]]+\]$/.test(s) ? s : `${s}:4222`));
}

/**
 * One subject token per chain, reversible and readable: letters, digits and '-' stay, every other
 * character (a chain name also has '.', '_' and '/') becomes '_' and two hex digits. A '.' must not
 * stay ('.' separates subject tokens) and neither may '*', '>' or white space (never in a name).
 */
export function subjectToken(chain: string): string {
  return chain.replace(/[^A-Za-z0-9-]/g, (ch) => `_${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function chainOfToken(token: string): string {
  return token.replace(/_([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export interface JetStreamStoreOptions {
  servers: string[];
  stream?: string;
  subjectPrefix?: string;
  /** Stream replicas when the stream is created (default 3 on a cluster, 1 on a single server). */
  replicas?: number;
  pool: CryptoPool | null;
  signingKey: Buffer;
  policy: CreationPolicy;
  maxOpen?: number;
  limits?: Partial<SizeLimits>;
  stats?: AppendStats;
  /** How long to wait for JetStream at start (a cluster electing its meta leader) and per append. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class JetStreamStore implements ChainStore {
  readonly kind = 'jetstream';
  private readonly chains: OpenChains<JetStreamChain>;
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly ctx: JetStreamContext,
    private readonly o: JetStreamStoreOptions,
    readonly info: StreamInfo,
  ) {
    this.chains = new OpenChains(o.maxOpen ?? 256);
  }

  get openCount(): number {
    return this.chains.size;
  }

  get replicas(): number {
    return this.info.config.num_replicas;
  }

  /** The cluster's lease table (a KV bucket with the stream's replicas). */
  async openLeases(): Promise<JetStreamLeases> {
    // Like the stream: right after a cluster (re)starts, JetStream may still be electing.
    const deadline = Date.now() + (this.o.timeoutMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      try {
        return await JetStreamLeases.open(this.nc, this.replicas);
      } catch (e) {
        if (Date.now() > deadline) throw new StoreUnavailable(`cannot open the lease bucket: ${(e as Error).message}`);
        await sleep(Math.min(1000, 100 * 2 ** attempt));
      }
    }
  }

  get stream(): string {
    return this.ctx.stream;
  }

  /** Connects, waits for JetStream, and creates the stream if it is not there yet. */
  static async connect(o: JetStreamStoreOptions): Promise<JetStreamStore> {
    const timeoutMs = o.timeoutMs ?? 30_000;
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: o.servers, name: 'atedb', maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: Math.min(timeoutMs, 10_000) });
    } catch (e) {
      throw new StoreUnavailable(`cannot reach NATS at ${o.servers.join(',')}: ${(e as Error).message}`);
    }
    try {
      const deadline = Date.now() + timeoutMs;
      let jsm: JetStreamManager | null = null;
      let last: Error | null = null;
      // A cluster that just started has no JetStream meta leader for a second or two.
      while (!jsm && Date.now() < deadline) {
        try {
          jsm = await jetstreamManager(nc, { timeout: 5000 });
        } catch (e) {
          last = e as Error;
          await sleep(250);
        }
      }
      if (!jsm) throw new StoreUnavailable(`JetStream is not available at ${o.servers.join(',')}: ${last?.message}`);
      const stream = o.stream ?? DEFAULT_STREAM;
      const prefix = o.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
      const replicas = o.replicas ?? (nc.info?.cluster ? 3 : 1);
      const info = await ensureStream(jsm, stream, prefix, replicas, deadline, o.log);
      const ctx: JetStreamContext = {
        js: jetstream(nc, { timeout: 5000 }), jsQuick: jetstream(nc, { timeout: 1500 }), jsm, stream, maxPayload: nc.info?.max_payload ?? 1 << 20,
        pool: o.pool, verifier: new VerifyBatcher(o.pool), signingKey: o.signingKey, publishTimeoutMs: timeoutMs,
        ...(o.limits ? { limits: o.limits } : {}), ...(o.stats ? { stats: o.stats } : {}),
      };
      return new JetStreamStore(nc, ctx, { ...o, subjectPrefix: prefix }, info);
    } catch (e) {
      await nc.close().catch(() => undefined);
      throw e;
    }
  }

  private subject(name: string): string {
    return `${this.o.subjectPrefix}.${subjectToken(name)}`;
  }

  async get(name: string): Promise<JetStreamChain | null> {
    if (this.closed) throw new AppendRejected('unavailable', 'the server is shutting down');
    if (!isChainName(name)) throw new AppendRejected('unknown-chain', `'${name}' is not a chain name`);
    return this.chains.get(name, () => this.load(name));
  }

  private async load(name: string): Promise<JetStreamChain | null> {
    let chain: JetStreamChain | null;
    try {
      chain = await JetStreamChain.open(this.ctx, name, this.subject(name), (c, e) => this.evict(name, c, e));
    } catch (e) {
      if (e instanceof AppendRejected) throw e;
      throw new AppendRejected('unavailable', `chain '${name}' could not be loaded from JetStream: ${(e as Error).message}`);
    }
    if (chain) this.chains.remember(name, chain);
    return chain;
  }

  async create(name: string, genesis: Buffer, clientIdentity: string | null): Promise<JetStreamChain> {
    await checkCreation(this.o.policy, name, clientIdentity, genesis);
    if (await this.get(name)) throw new AppendRejected('wrong-genesis', `chain '${name}' already exists`);
    // The genesis is the subject's first message only if the subject is still empty (the CAS at
    // 0), so two nodes creating the same chain at once cannot both succeed.
    const hash = await JetStreamChain.publishGenesis(this.ctx, name, this.subject(name), genesis);
    const c = await this.get(name);
    if (!c) throw new AppendRejected('unavailable', `chain '${name}' was created but cannot be read back`);
    // Two creations racing past the CAS (see JetStreamChain.applyMessage): the first one stored wins.
    if (!c.genesisHash.equals(hash)) throw new AppendRejected('wrong-genesis', `chain '${name}' was created meanwhile with another genesis`);
    return c;
  }

  /** A chain whose tail failed (a gap, a commit that does not validate): dropped, reopened on next use. */
  private evict(name: string, chain: JetStreamChain, e: Error): void {
    this.o.log?.(`chain '${name}': ${e.message}; reopening it on next use`);
    this.chains.drop(name, chain, false);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chains.closeAll();
    await this.nc.drain().catch(() => this.nc.close());
  }
}

async function ensureStream(jsm: JetStreamManager, stream: string, prefix: string, replicas: number, deadline: number, log?: (l: string) => void): Promise<StreamInfo> {
  const subjects = [`${prefix}.>`];
  for (let attempt = 0; ; attempt++) {
    try {
      try {
        const info = await jsm.streams.info(stream);
        if (!info.config.subjects?.includes(subjects[0]!)) {
          throw new StoreUnavailable(`stream ${stream} exists but does not take ${subjects[0]} (its subjects: ${info.config.subjects?.join(', ')})`);
        }
        return info;
      } catch (e) {
        if (e instanceof StoreUnavailable || !/not found/i.test((e as Error).message)) throw e;
      }
      const info = await jsm.streams.add({
        name: stream, subjects, num_replicas: replicas,
        // Chains are never trimmed: no limits, and nobody deletes or purges a commit.
        deny_delete: true, deny_purge: true, allow_rollup_hdrs: false,
        // The window in which a retried publish (same msgID) is recognised as a copy.
        duplicate_window: 120 * 1e9,
      });
      log?.(`created JetStream stream ${stream} (subjects ${subjects[0]}, replicas ${replicas})`);
      return info;
    } catch (e) {
      if (e instanceof StoreUnavailable) throw e;
      // Another node created it at the same moment, or the cluster is still electing: look again.
      if (Date.now() > deadline) throw new StoreUnavailable(`cannot create or read stream ${stream}: ${(e as Error).message}`);
      await sleep(Math.min(1000, 100 * 2 ** attempt));
    }
  }
}
