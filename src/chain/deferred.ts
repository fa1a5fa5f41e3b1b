// Deferred signatures: a commit made durable before it is signed.
//
// A hybrid signature costs ~5 ms of ML-DSA-65 (more under load); an fsync that waits for one is
// ten times slower than the disk. A writer that opts in (View `deferSignatures`, local chains only)
// stores in each signature slot, instead of a signature, an HMAC of the commit hash under a key
// derived from the signing secret key:
//     [DEFERRED_MAC, v1] || HMAC-SHA-256(K, "atefs/chain/deferred/v1\0" || commitHash)
//     K = SHA-256-domain("atefs/chain/deferred-mac-key/v1", signing secret key)
// and, in the background, appends a sign-off: an event-less commit whose header lists the hashes of
// the deferred commits it covers, hybrid-signed by every key they named (src/view/deferred-signer.ts). A signature
// over the sign-off's hash signs the listed hashes, so it covers each of those commits as if they had
// been signed one by one.
//
// Who accepts a deferred slot:
//  - the holder of the key (the mount reopening its own log): by its MAC. Only that key's holder
//    can compute it, so it proves what a signature would prove to that holder; it proves nothing to
//    anyone else.
//  - anyone: through a later sign-off in the same log whose verified signers include the slot's key
//    (SignoffIndex, loader.ts verifyChain). Compaction drops sign-offs (they hold no DAO); the
//    index then lists the kept deferred commits as unsigned again and the writer signs them off anew.
//  - nobody else: the server and every other validator refuse a deferred slot like a bad
//    signature (verifySignatures without a DeferredCheck), so a deferred commit never leaves the
//    machine that made it; a remote view never defers.
import { Alg, VERSION_1, constantTimeEqual, domainHash, hmacSha256 } from '../crypto/index.js';
import { publicKeyId } from './ids.js';
import type { Commit, CommitSignature, KeyId } from './types.js';

const MAC_DOMAIN = Buffer.from('atefs/chain/deferred/v1\0', 'utf8');
const MAC_LEN = 32;

/** Most commit hashes one sign-off lists (a sign-off is one small record; more make several sign-offs). */
export const MAX_SIGNOFF_HASHES = 4096;

/** The MAC key of a signing secret key (never stored: derived when needed). */
export function deferredMacKey(signingSecretKey: Uint8Array): Buffer {
  return domainHash('atefs/chain/deferred-mac-key/v1', signingSecretKey);
}

/** What a deferred slot holds for `hash` under `macKey`. */
export function deferredSignature(macKey: Uint8Array, hash: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([Alg.DEFERRED_MAC, VERSION_1]), hmacSha256(macKey, MAC_DOMAIN, hash)]);
}

export function isDeferredSignature(sig: Uint8Array): boolean {
  return sig.length === 2 + MAC_LEN && sig[0] === Alg.DEFERRED_MAC;
}

/** Whether any signature slot of the commit is deferred. */
export function hasDeferredSignature(commit: Commit): boolean {
  return commit.signatures.some((s) => isDeferredSignature(s.signature));
}

/**
 * Decides one deferred slot of a commit: true when the caller can vouch for it (its own MAC, a
 * verified sign-off). `seq` is the record's, when the caller knows it.
 */
export type DeferredCheck = (slot: CommitSignature, commit: Commit, seq?: number) => boolean;

/** Accepts a deferred slot whose MAC verifies under one of `secretKeys` (the opener's own keys). */
export function macCheck(secretKeys: ReadonlyArray<{ publicKey: Buffer; secretKey: Buffer }>): DeferredCheck {
  const keys = new Map<KeyId, Buffer>();
  for (const k of secretKeys) keys.set(publicKeyId(k.publicKey), deferredMacKey(k.secretKey));
  return (slot, commit) => {
    const mk = keys.get(publicKeyId(slot.publicKey));
    return !!mk && isDeferredSignature(slot.signature) && constantTimeEqual(deferredSignature(mk, commit.hash), slot.signature);
  };
}

/** Accepts a slot when either check does. */
export function eitherCheck(a: DeferredCheck | undefined, b: DeferredCheck | undefined): DeferredCheck | undefined {
  if (!a) return b;
  if (!b) return a;
  return (slot, commit, seq) => a(slot, commit, seq) || b(slot, commit, seq);
}

/**
 * Sign-offs seen in a log: commit hash (hex) -> ids of the keys that signed a sign-off listing it. Only
 * sign-offs whose own signatures verified are added (see loader.ts verifyChain).
 */
export class SignoffIndex {
  private readonly by = new Map<string, Set<KeyId>>();

  add(signoff: Commit, verifiedSigners: ReadonlySet<KeyId>): void {
    for (const h of signoff.header.signs ?? []) {
      const k = h.toString('hex');
      let s = this.by.get(k);
      if (!s) this.by.set(k, (s = new Set()));
      for (const id of verifiedSigners) s.add(id);
    }
  }

  get size(): number {
    return this.by.size;
  }

  check: DeferredCheck = (slot, commit) => !!this.by.get(commit.hash.toString('hex'))?.has(publicKeyId(slot.publicKey));
}

/** The public keys that hold deferred slots in a commit (what its sign-off must be signed by). */
export function deferredKeys(commit: Commit): Buffer[] {
  return commit.signatures.filter((s) => isDeferredSignature(s.signature)).map((s) => s.publicKey);
}
