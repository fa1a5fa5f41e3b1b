// The tamper-evident head of a replicated chain, computed the same way by server and client:
//   chain hash(0) = 32 zero bytes; chain hash(seq) = domainHash(label, chain hash(seq-1), commit hash)
// and the server's signature over domainHash(label, genesis hash, u64be(seq), chain hash(seq)).
// A client recomputes every chain hash itself from the commits it validated, so a signed head
// that does not match its own computation exposes a server that rewrote, dropped or reordered
// history; a signed head older than one already seen exposes a rollback.
import { type CryptoPool, domainHash, signMessage, verifySignature } from '../crypto/index.js';
import type { SignedHead } from './messages.js';

const CHAIN_HASH = 'atedb/v1/chain-hash';
const HEAD = 'atedb/v1/signed-head';
export const ZERO_CHAIN_HASH = Buffer.alloc(32);

export function nextChainHash(prev: Buffer, commitHash: Buffer): Buffer {
  return domainHash(CHAIN_HASH, prev, commitHash);
}

export function headMessage(genesis: Buffer, seq: number, chainHash: Buffer): Buffer {
  const s = Buffer.alloc(8);
  s.writeBigUInt64BE(BigInt(seq));
  return domainHash(HEAD, genesis, s, chainHash);
}

export async function signHead(
  secretKey: Buffer, genesis: Buffer, seq: number, chainHash: Buffer, pool?: CryptoPool | null,
): Promise<SignedHead> {
  const m = headMessage(genesis, seq, chainHash);
  const sig = pool ? await pool.sign(secretKey, m) : signMessage(secretKey, m);
  return { seq, chainHash, sig };
}

export function verifyHead(serverKey: Buffer, genesis: Buffer, h: SignedHead): boolean {
  return verifySignature(serverKey, headMessage(genesis, h.seq, h.chainHash), h.sig);
}
