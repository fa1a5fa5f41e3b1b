// The genesis: the signed first commit of a chain. It names the chain, its root write keys (public
// halves) and policy, and carries the root data key wrapped for the chain-wide readers. Its hash is
// the chain id: clients pin it and never adopt root keys from anywhere else.
import type { CryptoPool } from '../crypto/index.js';
import { assembleCommit, hashCommitParts, signCommitHash } from './codec.js';
import { type DataKeyCache, type Keyring, wrapDataKey } from './confidentiality.js';
import { GenesisMismatch } from './errors.js';
import { newDataKey, publicKeyId } from './ids.js';
import { DEFAULT_FUTURE_TOLERANCE_MS, type Commit, type CommitHeader, type GenesisInfo, type ReaderRef } from './types.js';

export interface CreateGenesisOptions {
  name: string;
  /** Signs the genesis with every signing key it holds that is a root key; wraps the root data key. */
  keyring: Keyring;
  /** Root write keys (encoded public keys). Default: every signing key of the keyring. */
  rootKeys?: Buffer[];
  /** Chain-wide readers (e.g. the owner's symmetric read key). */
  chainReaders: ReaderRef[];
  openRoot?: boolean;
  futureToleranceMs?: number;
  /** Timestamps never go backwards (default true; false only to make an old-style chain in tests). */
  monotonicTime?: boolean;
  /** Remembers the root data key so the creator can write at once without unwrapping it. */
  keys?: DataKeyCache;
  pool?: CryptoPool | null;
  now?: () => number;
}

export async function createGenesis(o: CreateGenesisOptions): Promise<Commit> {
  const mine = o.keyring.signingKeys();
  const rootKeys = o.rootKeys ?? mine.map((k) => k.publicKey);
  const rootIds = new Set(rootKeys.map((k) => publicKeyId(k)));
  const signers = mine.filter((k) => rootIds.has(k.id));
  if (signers.length === 0) throw new GenesisMismatch('the keyring holds none of the root keys: it cannot sign the genesis');
  if (o.chainReaders.length === 0) throw new GenesisMismatch('a chain needs at least one chain-wide reader');
  const rootDataKey = newDataKey();
  const grant = wrapDataKey(rootDataKey, o.chainReaders, o.keyring, () => undefined);
  o.keys?.remember(rootDataKey);
  const now = (o.now ?? Date.now)();
  const info: GenesisInfo = {
    name: o.name,
    createdAt: now,
    rootKeys,
    policy: {
      chainReaders: o.chainReaders,
      openRoot: o.openRoot ?? false,
      futureToleranceMs: o.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS,
      ...(o.monotonicTime ?? true ? { monotonicTime: true } : {}),
    },
    rootDataKey: grant,
  };
  const header: CommitHeader = { chain: null, timestamp: now, genesis: info };
  const { headerBytes, hash } = hashCommitParts(header, []);
  return assembleCommit(header, headerBytes, hash, [], await signCommitHash(hash, signers, o.pool));
}

/** Normalizes a pinned genesis hash given as hex or bytes. */
export function toGenesisHash(pin: Uint8Array | string): Buffer {
  const b = typeof pin === 'string' ? Buffer.from(pin, 'hex') : Buffer.from(pin);
  if (b.length !== 32) throw new GenesisMismatch('a pinned genesis hash is 32 bytes');
  return b;
}
