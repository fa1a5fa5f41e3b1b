// Hybrid KEM: X-Wing (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem) as shipped by
// @noble/post-quantum as `ml_kem768_x25519`. X-Wing's combiner binds both component secrets and
// the X25519 ciphertext and public key (ML-KEM binds its own through the FO transform); on top of
// it we derive our shared secret with HKDF over (X-Wing secret, the full encoded ciphertext, the
// full encoded recipient public key, a domain label), so the output is also bound to both
// ciphertexts and both public keys in their encoded, versioned form, as issue 2 asks.
// We never see the two component secrets separately: X-Wing consumes them, and replacing it with
// a hand-made combiner is what DESIGN.md §4 advises against.
//
// Seeds: an X-Wing secret key *is* its 32-byte seed (keygen(seed) is deterministic and the spec's
// key expansion runs on every decapsulation), so generateKemKeyPair(seed) is deterministic for free.
import { ml_kem768_x25519 as xwing } from '@noble/post-quantum/hybrid.js';
import { Alg, HEADER_LEN, expectHeader, writeHeader } from './algorithms.js';
import { CryptoError, MalformedEncoding } from './errors.js';
import { domainHash, hkdfSha256, randomBytes } from './hash.js';
import { BoundedCache } from './lru.js';

export const XWING_PUBLIC_KEY_LEN = 1216;
export const XWING_CIPHERTEXT_LEN = 1120;
export const XWING_SEED_LEN = 32;
export const XWING_ENCAPS_RANDOMNESS_LEN = 64;
export const KEM_PUBLIC_KEY_LEN = HEADER_LEN + XWING_PUBLIC_KEY_LEN;
export const KEM_SECRET_KEY_LEN = HEADER_LEN + XWING_SEED_LEN;
export const KEM_CIPHERTEXT_LEN = HEADER_LEN + XWING_CIPHERTEXT_LEN;
export const KEM_SHARED_SECRET_LEN = 32;

const KDF_LABEL = 'atefs/kem/v1/x-wing-hkdf';

export interface KemKeyPair {
  publicKey: Buffer;
  secretKey: Buffer;
}

// Deriving the public key means a full X-Wing key expansion (~0.5 ms); decapsulation needs it for
// the HKDF binding, so remember it per secret key.
const publicKeyCache = new BoundedCache<string, Buffer>(64);

function encodePublicKey(raw: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(KEM_PUBLIC_KEY_LEN);
  writeHeader(out, Alg.KEM_PUBLIC_KEY);
  out.set(raw, HEADER_LEN);
  return out;
}

function decodeSecretKey(secretKey: Uint8Array): Uint8Array {
  expectHeader(secretKey, Alg.KEM_SECRET_KEY, 'KEM secret key', { exact: KEM_SECRET_KEY_LEN });
  return secretKey.subarray(HEADER_LEN);
}

export function generateKemKeyPair(seed?: Uint8Array): KemKeyPair {
  if (seed !== undefined && seed.length !== XWING_SEED_LEN) {
    throw new CryptoError(`KEM seed must be ${XWING_SEED_LEN} bytes`);
  }
  const secretKey = Buffer.allocUnsafe(KEM_SECRET_KEY_LEN);
  writeHeader(secretKey, Alg.KEM_SECRET_KEY);
  if (seed) secretKey.set(seed, HEADER_LEN);
  else randomBytes(XWING_SEED_LEN).copy(secretKey, HEADER_LEN);
  return { publicKey: kemPublicKeyOf(secretKey), secretKey };
}

export function kemPublicKeyOf(secretKey: Uint8Array): Buffer {
  const seed = decodeSecretKey(secretKey);
  const k = domainHash('atefs/kem/v1/cache-key', seed).toString('base64');
  let pk = publicKeyCache.get(k);
  if (!pk) {
    pk = encodePublicKey(xwing.getPublicKey(seed));
    publicKeyCache.set(k, pk);
  }
  return Buffer.from(pk);
}

function deriveSharedSecret(xwingSecret: Uint8Array, ciphertext: Uint8Array, publicKey: Uint8Array): Buffer {
  const transcript = domainHash(KDF_LABEL, ciphertext, publicKey);
  return hkdfSha256(xwingSecret, transcript, KDF_LABEL, KEM_SHARED_SECRET_LEN);
}

/**
 * Encapsulation with caller-supplied randomness (64 bytes: 32 ML-KEM coins + 32 X25519 ephemeral
 * seed), for deterministic test vectors only. Reusing randomness reuses the shared secret.
 */
export function kemEncapsulateDeterministic(
  publicKey: Uint8Array,
  randomness: Uint8Array,
): { ciphertext: Buffer; sharedSecret: Buffer } {
  expectHeader(publicKey, Alg.KEM_PUBLIC_KEY, 'KEM public key', { exact: KEM_PUBLIC_KEY_LEN });
  if (randomness.length !== XWING_ENCAPS_RANDOMNESS_LEN) {
    throw new CryptoError(`KEM randomness must be ${XWING_ENCAPS_RANDOMNESS_LEN} bytes`);
  }
  let enc: { cipherText: Uint8Array; sharedSecret: Uint8Array };
  try {
    enc = xwing.encapsulate(publicKey.subarray(HEADER_LEN), randomness);
  } catch (e) {
    // noble rejects e.g. an ML-KEM public key whose coefficients are out of range
    throw new MalformedEncoding(`KEM public key rejected: ${(e as Error).message}`);
  }
  const ciphertext = Buffer.allocUnsafe(KEM_CIPHERTEXT_LEN);
  writeHeader(ciphertext, Alg.KEM_CIPHERTEXT);
  ciphertext.set(enc.cipherText, HEADER_LEN);
  const sharedSecret = deriveSharedSecret(enc.sharedSecret, ciphertext, publicKey);
  enc.sharedSecret.fill(0);
  return { ciphertext, sharedSecret };
}

export function kemEncapsulate(publicKey: Uint8Array): { ciphertext: Buffer; sharedSecret: Buffer } {
  const r = randomBytes(XWING_ENCAPS_RANDOMNESS_LEN);
  try {
    return kemEncapsulateDeterministic(publicKey, r);
  } finally {
    r.fill(0);
  }
}

/**
 * Implicit rejection (ML-KEM semantics): a tampered but well-formed ciphertext yields a different,
 * pseudorandom secret rather than an error; the AEAD that uses the secret is what fails.
 */
export function kemDecapsulate(secretKey: Uint8Array, ciphertext: Uint8Array): Buffer {
  const seed = decodeSecretKey(secretKey);
  expectHeader(ciphertext, Alg.KEM_CIPHERTEXT, 'KEM ciphertext', { exact: KEM_CIPHERTEXT_LEN });
  const publicKey = kemPublicKeyOf(secretKey);
  let ss: Uint8Array;
  try {
    ss = xwing.decapsulate(ciphertext.subarray(HEADER_LEN), seed);
  } catch (e) {
    throw new MalformedEncoding(`KEM ciphertext rejected: ${(e as Error).message}`);
  }
  const out = deriveSharedSecret(ss, ciphertext, publicKey);
  ss.fill(0);
  return out;
}
