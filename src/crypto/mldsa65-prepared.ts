// Main-thread instance of the prepared ML-DSA-65 verifier (the same source text the pool worker
// evaluates), with a bounded cache of prepared public keys.
import { genCrystals, XOF128 } from '@noble/post-quantum/_crystals.js';
import { equalBytes } from '@noble/post-quantum/utils.js';
import { shake256 } from '@noble/hashes/sha3.js';
import { MLDSA65_PREPARED_SOURCE } from './mldsa65-prepared-source.js';
import { BoundedCache } from './lru.js';

export interface PreparedMlDsa65 {
  readonly __prepared: unique symbol;
}

interface Verifier {
  prepare(pk: Uint8Array): PreparedMlDsa65 | null;
  verify(prep: PreparedMlDsa65 | null, sig: Uint8Array, msg: Uint8Array): boolean;
}

let verifier: Verifier | undefined;
function instance(): Verifier {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  verifier ??= new Function(`${MLDSA65_PREPARED_SOURCE}; return createMlDsa65Verifier;`)()({
    genCrystals,
    XOF128,
    shake256,
    equalBytes,
  }) as Verifier;
  return verifier;
}

const prepared = new BoundedCache<string, PreparedMlDsa65 | null>(16);

/** The prepared form of an ML-DSA-65 public key (cached); null if it is not one. */
export function prepareMlDsa65(publicKey: Uint8Array): PreparedMlDsa65 | null {
  const k = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length).toString('latin1');
  let p = prepared.get(k);
  if (p === undefined) {
    p = instance().prepare(publicKey);
    prepared.set(k, p);
  }
  return p;
}

/** ML-DSA-65 Verify (empty context) against a prepared key: same result as ml_dsa65.verify. */
export function mlDsa65VerifyPrepared(prep: PreparedMlDsa65 | null, signature: Uint8Array, message: Uint8Array): boolean {
  return instance().verify(prep, signature, message);
}
