// The chains of one server: each in <data-dir>/chains/<name, '/' as '+'>/log, opened on first
// use, at most `maxOpen` open at once (least recently used idle chains are closed beyond that),
// created under the server's creation policy. Chain names are checked before they become paths.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { SizeLimits } from '../src/chain/index.js';
import type { CryptoPool } from '../src/crypto/index.js';
import { AppendRejected, HostedChain, type HostedChainOptions } from './hosted-chain.js';
import type { ServerCompactionOptions } from './chain-compactor.js';
import type { AppendStats } from './stats.js';
import type { ChainStore } from './store/chain-store.js';
import { OpenChains } from './store/open-chains.js';
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
  /** null = allowed; a string = the refusal. `genesis`: the bytes of the chain's genesis commit.
   *  May answer later (a remote auth service is asked); throws (or rejects) when it cannot decide. */
  mayCreate(chain: string, clientIdentity: string | null, genesis?: Buffer): string | null | Promise<string | null>;
}

export const OPEN_POLICY: CreationPolicy = { name: 'open', mayCreate: () => null };

/**
 * Asks `policy` before a chain is created (every chain store does, before the genesis is stored).
 * A refusal is 'policy'; a policy that cannot decide (its auth service unreachable) refuses as
 * 'unavailable', which clients may retry: a creation is never allowed by a failure.
 */
export async function checkCreation(policy: CreationPolicy, name: string, clientIdentity: string | null, genesis: Buffer): Promise<void> {
  let refusal: string | null;
  try {
    refusal = await policy.mayCreate(name, clientIdentity, genesis);
  } catch (e) {
    throw new AppendRejected('unavailable', `chain '${name}' cannot be created now: ${(e as Error).message}`);
  }
  if (refusal !== null) throw new AppendRejected('policy', refusal);
}

export interface ChainHostOptions {
  dataDir: string;
  pool: CryptoPool | null;
  signingKey: Buffer;
  policy: CreationPolicy;
  maxOpen?: number;
  limits?: Partial<SizeLimits>;
  stats?: AppendStats;
  /** Compaction of every hosted chain (server/chain-compactor.ts); default none. */
  compaction?: ServerCompactionOptions;
  log?: (line: string) => void;
}

/** The file store: atedb's default backend (server/store/chain-store.ts). */
export class ChainHost implements ChainStore {
  readonly kind = 'file';
  private readonly chains: OpenChains<HostedChain>;
  readonly chainsDir: string;
  private closed = false;

  constructor(private readonly o: ChainHostOptions) {
    this.chainsDir = path.join(o.dataDir, 'chains');
    this.verifier = new VerifyBatcher(o.pool);
    this.chains = new OpenChains(o.maxOpen ?? 256);
  }

  get openCount(): number {
    return this.chains.size;
  }

  private readonly verifier: VerifyBatcher;

  private opts(name: string): HostedChainOptions {
    return {
      dir: path.join(this.chainsDir, chainDirName(name)), name, pool: this.o.pool, signingKey: this.o.signingKey, verifier: this.verifier,
      // A chain whose log failed a write is closed; the next use reopens (and re-validates) it from disk.
      onBroken: (c) => this.chains.drop(name, c, true),
      ...(this.o.limits ? { limits: this.o.limits } : {}),
      ...(this.o.stats ? { stats: this.o.stats } : {}),
      ...(this.o.compaction ? { compaction: this.o.compaction } : {}),
      ...(this.o.log ? { log: this.o.log } : {}),
    };
  }

  /** The chain, opened if needed; null if the server does not host it. */
  async get(name: string): Promise<HostedChain | null> {
    if (this.closed) throw new AppendRejected('unavailable', 'the server is shutting down');
    if (!isChainName(name)) throw new AppendRejected('unknown-chain', `'${name}' is not a chain name`);
    return this.chains.get(name, () => this.load(name));
  }

  private async load(name: string): Promise<HostedChain | null> {
    // An evicted chain finishes closing (its log lock released) before it is opened again.
    await this.chains.closed(name);
    const o = this.opts(name);
    const exists = await fsp.access(path.join(o.dir, 'log')).then(() => true, () => false);
    if (!exists) return null;
    const chain = await HostedChain.open(o);
    this.chains.remember(name, chain);
    return chain;
  }

  /** Creates a chain from its genesis (serialised with other opens of the same name). */
  async create(name: string, genesis: Buffer, clientIdentity: string | null): Promise<HostedChain> {
    await checkCreation(this.o.policy, name, clientIdentity, genesis);
    const existing = await this.get(name);
    if (existing) throw new AppendRejected('wrong-genesis', `chain '${name}' already exists`);
    const p = this.chains.pending(name);
    if (p) {
      await p;
      throw new AppendRejected('wrong-genesis', `chain '${name}' was created meanwhile`);
    }
    const o = this.opts(name);
    return this.chains.inFlight(name, (async () => {
      await fsp.mkdir(o.dir, { recursive: true, mode: 0o700 });
      const c = await HostedChain.create(o, genesis);
      this.chains.remember(name, c);
      return c;
    })());
  }

  /** Compacts every open chain now (SIGUSR2); nothing when compaction is off. */
  async compactOpen(): Promise<void> {
    await Promise.allSettled(this.chains.list().map((c) => c.compactNow()));
  }

  /** Finishes in-flight appends and closes every chain. */
  async close(): Promise<void> {
    this.closed = true;
    await this.chains.closeAll();
  }
}
