// The chains of one server: each in <data-dir>/chains/<name, '/' as '+'>/log, opened on first
// use, at most `maxOpen` open at once (least recently used idle chains are closed beyond that),
// created under the server's creation policy. Chain names are checked before they become paths.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { SizeLimits } from '../src/chain/index.js';
import type { CryptoPool } from '../src/crypto/index.js';
import { AppendRejected, HostedChain, type HostedChainOptions } from './hosted-chain.js';
import type { AppendStats } from './stats.js';
import type { ChainStore } from './store/chain-store.js';
import { VerifyBatcher } from './verify-batcher.js';

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}(\/[a-z0-9][a-z0-9._-]{0,62}){0,3}$/i;

export function isChainName(name: string): boolean {
  return NAME.test(name) && !name.split('/').some((s) => s === '.' || s === '..');
}

/** Directory name of a chain: reversible ('+' never occurs in a name) and never nested. */
export function chainDirName(name: string): string {
  return name.replaceAll('/', '+');
}

/** Who may create a chain. `open`: the first valid genesis creates it. `auth` comes with the user
 *  service (personal chains rooted at the user's key, group chains at the group's). */
export interface CreationPolicy {
  readonly name: string;
  /** null = allowed; a string = the refusal. `genesis`: the bytes of the chain's genesis commit. */
  mayCreate(chain: string, clientIdentity: string | null, genesis?: Buffer): string | null;
}

export const OPEN_POLICY: CreationPolicy = { name: 'open', mayCreate: () => null };

export interface ChainHostOptions {
  dataDir: string;
  pool: CryptoPool | null;
  signingKey: Buffer;
  policy: CreationPolicy;
  maxOpen?: number;
  limits?: Partial<SizeLimits>;
  stats?: AppendStats;
}

/** The file store: atedb's default backend (server/store/chain-store.ts). */
export class ChainHost implements ChainStore {
  readonly kind = 'file';
  // Map iteration order is insertion order: re-inserting on use keeps it an LRU.
  private readonly open = new Map<string, HostedChain>();
  private readonly opening = new Map<string, Promise<HostedChain | null>>();
  private readonly closingChains = new Map<string, Promise<void>>();
  readonly chainsDir: string;
  private closed = false;

  constructor(private readonly o: ChainHostOptions) {
    this.chainsDir = path.join(o.dataDir, 'chains');
    this.verifier = new VerifyBatcher(o.pool);
  }

  get openCount(): number {
    return this.open.size;
  }

  private readonly verifier: VerifyBatcher;

  private opts(name: string): HostedChainOptions {
    return {
      dir: path.join(this.chainsDir, chainDirName(name)), name, pool: this.o.pool, signingKey: this.o.signingKey, verifier: this.verifier,
      onBroken: (c) => this.evict(name, c),
      ...(this.o.limits ? { limits: this.o.limits } : {}),
      ...(this.o.stats ? { stats: this.o.stats } : {}),
    };
  }

  /** The chain, opened if needed; null if the server does not host it. */
  async get(name: string): Promise<HostedChain | null> {
    if (this.closed) throw new AppendRejected('unavailable', 'the server is shutting down');
    if (!isChainName(name)) throw new AppendRejected('unknown-chain', `'${name}' is not a chain name`);
    const hit = this.open.get(name);
    if (hit && !hit.closing) {
      this.open.delete(name);
      this.open.set(name, hit);
      hit.lastUsed = Date.now();
      return hit;
    }
    let p = this.opening.get(name);
    if (!p) {
      p = this.load(name).finally(() => this.opening.delete(name));
      this.opening.set(name, p);
    }
    return p;
  }

  private async load(name: string): Promise<HostedChain | null> {
    // An evicted chain finishes closing (its log lock released) before it is opened again.
    await this.closingChains.get(name);
    const o = this.opts(name);
    const exists = await fsp.access(path.join(o.dir, 'log')).then(() => true, () => false);
    if (!exists) return null;
    const chain = await HostedChain.open(o);
    this.remember(name, chain);
    return chain;
  }

  /** Creates a chain from its genesis (serialised with other opens of the same name). */
  async create(name: string, genesis: Buffer, clientIdentity: string | null): Promise<HostedChain> {
    const refusal = this.o.policy.mayCreate(name, clientIdentity, genesis);
    if (refusal) throw new AppendRejected('policy', refusal);
    const existing = await this.get(name);
    if (existing) throw new AppendRejected('wrong-genesis', `chain '${name}' already exists`);
    let p = this.opening.get(name);
    if (p) {
      await p;
      throw new AppendRejected('wrong-genesis', `chain '${name}' was created meanwhile`);
    }
    const o = this.opts(name);
    p = (async () => {
      await fsp.mkdir(o.dir, { recursive: true, mode: 0o700 });
      const c = await HostedChain.create(o, genesis);
      this.remember(name, c);
      return c;
    })().finally(() => this.opening.delete(name));
    this.opening.set(name, p);
    return (await p)!;
  }

  /** Drops a chain whose log failed a write; the next use reopens (and re-validates) it from disk. */
  private evict(name: string, chain: HostedChain): void {
    if (this.open.get(name) !== chain) return;
    this.open.delete(name);
    chain.closing = true;
    this.closingChains.set(name, chain.close().catch(() => undefined).finally(() => this.closingChains.delete(name)));
  }

  private remember(name: string, chain: HostedChain): void {
    this.open.set(name, chain);
    const max = this.o.maxOpen ?? 256;
    if (this.open.size <= max) return;
    for (const [n, c] of this.open) {
      if (this.open.size <= max) break;
      if (c === chain || !c.idle) continue;
      this.open.delete(n);
      c.closing = true;
      this.closingChains.set(n, c.close().catch(() => undefined).finally(() => this.closingChains.delete(n)));
    }
  }

  /** Finishes in-flight appends and closes every chain. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.opening.values()]);
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all([...all.map((c) => c.close()), ...this.closingChains.values()]);
  }
}
