// atedb's network front: the accept loop, handshakes (each with a timeout, none blocking the
// loop or other connections), a connection limit, and graceful shutdown: stop accepting, refuse
// new appends, let in-flight ones confirm or reject, close every chain, close the connections.
import * as net from 'node:net';
import { DEFAULT_LIMITS, type SizeLimits } from '../src/chain/index.js';
import { CryptoPool } from '../src/crypto/index.js';
import { acceptClient } from '../src/net/index.js';
import { ChainHost, type CreationPolicy, OPEN_POLICY } from './chain-host.js';
import { type ServerIdentity, loadOrCreateServerIdentity } from './identity.js';
import { LeaseTable } from './leases.js';
import { ClientHandler, type HandlerContext } from './session.js';
import { ServerStats } from './stats.js';
import type { ChainStore } from './store/chain-store.js';
import type { LeaseService } from './store/jetstream-leases.js';
import { JetStreamStore } from './store/jetstream-store.js';
import type { ServerCompactionOptions } from './chain-compactor.js';

export interface ServerOptions {
  dataDir: string;
  host?: string;
  port?: number;
  policy?: CreationPolicy;
  maxConnections?: number;
  maxOpenChains?: number;
  handshakeTimeoutMs?: number;
  /** Bytes a subscriber may have queued before it is disconnected. */
  subscriberBufferBytes?: number;
  /** Bytes of incomplete frames buffered across all connections (default 512 MiB). */
  receiveBudgetBytes?: number;
  limits?: Partial<SizeLimits>;
  /** Where chains live: the file store under dataDir (default), or a JetStream stream that every
   *  atedb node of a cluster shares (they share the server identity too: copy server.key). */
  store?: { kind: 'file' } | { kind: 'jetstream'; servers: string[]; replicas?: number; stream?: string; timeoutMs?: number };
  poolSize?: number;
  log?: (line: string) => void;
  /** Server-side compaction of the file store's chains (server/chain-compactor.ts); the JetStream
   *  store does not compact (refused with it). Default: none. */
  compaction?: ServerCompactionOptions;
  /** The user/group/token service to answer 'areq' messages (server/auth). */
  auth?: HandlerContext['auth'];
}

export class AtedbServer {
  private server: net.Server | null = null;
  private readonly handlers = new Set<ClientHandler>();
  private readonly handshaking = new Set<net.Socket>();
  private host!: ChainStore;
  private pool!: CryptoPool;
  private accepting = true;
  identity!: ServerIdentity;
  /** Per node with the file store; a KV bucket every node shares with JetStream. */
  leases: LeaseService = new LeaseTable();
  /** Counters for the panel, --json stats lines and --metrics. */
  readonly stats = new ServerStats();
  /** Bytes buffered for incomplete frames across all connections. */
  readonly budget = { used: 0, max: 512 << 20 };
  address = '';
  /** 'file' or 'jetstream'. */
  get storeKind(): string {
    return this.host.kind;
  }

  port = 0;

  constructor(private readonly o: ServerOptions) {
    if (o.receiveBudgetBytes) this.budget.max = o.receiveBudgetBytes;
  }

  /** Compacts every open chain of the file store now (with --compact-mode other than never). */
  async compactNow(): Promise<void> {
    if (this.host instanceof ChainHost) await this.host.compactOpen();
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  get connections(): number {
    return this.handlers.size + this.handshaking.size;
  }

  async start(): Promise<this> {
    this.identity = await loadOrCreateServerIdentity(this.o.dataDir);
    this.pool = new CryptoPool(this.o.poolSize ? { size: this.o.poolSize } : {});
    const common = {
      pool: this.pool, signingKey: this.identity.keys.secretKey, policy: this.o.policy ?? OPEN_POLICY,
      ...(this.o.maxOpenChains ? { maxOpen: this.o.maxOpenChains } : {}),
      ...(this.o.limits ? { limits: this.o.limits } : {}),
      stats: this.stats,
    };
    const st = this.o.store;
    try {
      if (st?.kind === 'jetstream') {
        const js = await JetStreamStore.connect({
          ...common, servers: st.servers, log: (l) => this.log(l),
          ...(st.replicas ? { replicas: st.replicas } : {}), ...(st.stream ? { stream: st.stream } : {}), ...(st.timeoutMs ? { timeoutMs: st.timeoutMs } : {}),
        });
        this.host = js;
        try {
          this.leases = await js.openLeases();
        } catch (e) {
          await js.close();
          throw e;
        }
      } else {
        this.host = new ChainHost({
          ...common, dataDir: this.o.dataDir, log: (l) => this.log(l),
          ...(this.o.compaction ? { compaction: this.o.compaction } : {}),
        });
      }
    } catch (e) {
      await this.pool.close();
      throw e;
    }
    this.stats.live = {
      connectionsOpen: () => this.connections,
      chainsOpen: () => this.host.openCount,
      openBytes: () => {
        let bytesIn = 0;
        let bytesOut = 0;
        for (const h of this.handlers) {
          bytesIn += h.conn.stats.bytesIn;
          bytesOut += h.conn.stats.bytesOut;
        }
        for (const s of this.handshaking) {
          bytesIn += s.bytesRead;
          bytesOut += s.bytesWritten;
        }
        return { bytesIn, bytesOut };
      },
    };
    const server = net.createServer({ noDelay: true }, (socket) => this.onSocket(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const failed = (e: Error) => {
        // The store holds a NATS connection (JetStream) that would keep the process alive.
        void this.host.close().then(() => this.pool.close()).catch(() => undefined);
        reject(e);
      };
      server.once('error', failed);
      server.listen(this.o.port ?? 5000, this.o.host ?? '127.0.0.1', () => {
        server.off('error', failed);
        resolve();
      });
    });
    const a = server.address() as net.AddressInfo;
    this.address = a.address;
    this.port = a.port;
    return this;
  }

  private onSocket(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (!this.accepting || this.connections >= (this.o.maxConnections ?? 1024)) {
      socket.destroy();
      return;
    }
    this.handshaking.add(socket);
    this.stats.connectionsTotal++;
    const maxCommit = this.o.limits?.maxCommitBytes ?? DEFAULT_LIMITS.maxCommitBytes;
    acceptClient(socket, {
      hostKey: this.identity.keys, pool: this.pool, budget: this.budget, maxFrame: maxCommit + (64 << 10),
      ...(this.o.handshakeTimeoutMs ? { timeoutMs: this.o.handshakeTimeoutMs } : {}),
    }).then(
      (session) => {
        this.handshaking.delete(socket);
        if (!this.accepting) {
          session.conn.close();
          return;
        }
        const h = new ClientHandler(session, {
          host: this.host, leases: this.leases, maxBuffer: this.o.subscriberBufferBytes ?? 32 << 20,
          accepting: () => this.accepting, log: (l) => this.log(l), rejected: (r) => this.stats.rejectedFor(r),
          ...(this.o.auth ? { auth: this.o.auth } : {}),
        });
        this.handlers.add(h);
        h.conn.on('close', (e) => {
          if (this.handlers.delete(h)) this.stats.connectionClosed(h.conn.stats.bytesIn, h.conn.stats.bytesOut);
          if (e && process.env.ATEDB_DEBUG) this.log(`connection ${h.conn.remote} closed: ${e.message}`);
        });
      },
      (e: Error) => {
        this.handshaking.delete(socket);
        this.stats.connectionClosed(socket.bytesRead, socket.bytesWritten);
        if (process.env.ATEDB_DEBUG) this.log(`handshake failed: ${e.message}`);
      },
    );
  }

  async shutdown(): Promise<void> {
    if (!this.accepting) return;
    this.accepting = false;
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    for (const s of this.handshaking) s.destroy();
    // In-flight appends finish (their 'ok' / 'rej' goes out) before chains and connections close.
    while ([...this.handlers].some((h) => h.inflight > 0)) await new Promise((r) => setTimeout(r, 5));
    await this.host.close();
    for (const h of this.handlers) h.conn.close();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
    await this.pool.close();
  }
}
