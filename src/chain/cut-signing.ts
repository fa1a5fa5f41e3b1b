// Signing and checking the cut certificate compaction leaves in the log's MANIFEST
// (src/log/chain-hash.ts). The log cannot sign; the chain can: a cut is signed by a root key of
// the chain's genesis, so anyone holding the chain (a validator, the server) can check that the
// gaps below it were made by a compaction its owner ran, not by someone who edited the storage.
import { type CryptoPool, signMessage, verifySignature } from '../crypto/index.js';
import { type Certify, type RedoLog, cutMessage } from '../log/index.js';
import { decodeCommit } from './codec.js';
import type { Keyring } from './confidentiality.js';

/** Signs cuts with the keyring's first signing key (a root key of its own chains). */
export function cutCertifier(keyring: Keyring, pool: CryptoPool | null): Certify | undefined {
  const k = keyring.signingKeys()[0];
  if (!k) return undefined;
  return async (message) => ({
    sig: pool ? await pool.sign(k.secretKey, message) : signMessage(k.secretKey, message),
    signer: k.publicKey,
  });
}

/** The genesis root keys of the log's chain (its first record), or [] when it has none. */
export function genesisRootKeys(log: RedoLog): Buffer[] {
  for (const rec of log.records()) {
    try {
      return decodeCommit(rec.payload).header.genesis?.rootKeys ?? [];
    } catch {
      return [];
    }
  }
  return [];
}

/**
 * Why the log's cut certificate does not hold (unsigned, signed by a key that is neither a root key
 * of the chain nor one of `alsoTrusted` — the opener's own keys: a writer who is not a root
 * compacts too —, bad signature), or null when it holds or there is none.
 */
export function cutProblem(log: RedoLog, alsoTrusted: readonly Buffer[] = []): string | null {
  const cut = log.chain.cut;
  if (!cut) return null;
  if (cut.sig.length === 0) return `the compaction certificate (cut at seq ${cut.seq}) in the MANIFEST is not signed`;
  const roots = genesisRootKeys(log);
  if (!roots.some((k) => k.equals(cut.signer)) && !alsoTrusted.some((k) => k.equals(cut.signer))) return `the compaction certificate (cut at seq ${cut.seq}) is signed by a key that is not a root key of the chain (nor the opener's)`;
  if (!verifySignature(cut.signer, cutMessage(log.chainId, log.chain.genesis ?? null, cut), cut.sig)) return `the compaction certificate (cut at seq ${cut.seq}) has a bad signature`;
  return null;
}
