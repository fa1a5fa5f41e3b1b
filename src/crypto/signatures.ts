// Hybrid signatures: ML-DSA-65 (@noble/post-quantum) + Ed25519 (node:crypto). A signature verifies
// only if BOTH halves verify, so it stays sound while either scheme stands.
//
// Both halves sign the same domain-separated message M' = SIGN_PREFIX || message, so neither half
// can be replayed as a plain Ed25519 / ML-DSA signature over the same bytes in another protocol.
// Secret keys are a 32-byte master seed; the component seeds are derived from it with HKDF, which
// keeps stored keys small and makes keypairs deterministic from a seed. Expanding an ML-DSA key
// costs ~1.4 ms, so expanded keys are kept in a small bounded cache.
import type * as nodeCrypto from 'node:crypto';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { Alg, HEADER_LEN, expectHeader, writeHeader } from './algorithms.js';
import {
  ED25519_PUBLIC_KEY_LEN,
  ED25519_SIGNATURE_LEN,
  ed25519PrivateKeyFromSeed,
  ed25519PublicKeyObject,
  ed25519RawPublicKey,
  ed25519Sign,
  ed25519Verify,
} from './ed25519.js';
import { CryptoError, InvalidSignature, MalformedEncoding } from './errors.js';
import { domainHash, hkdfSha256, randomBytes } from './hash.js';
import { BoundedCache } from './lru.js';
import { mlDsa65VerifyPrepared, prepareMlDsa65 } from './mldsa65-prepared.js';

export const MLDSA65_PUBLIC_KEY_LEN = 1952;
export const MLDSA65_SIGNATURE_LEN = 3309;
export const SIGNING_SEED_LEN = 32;
export const SIGNING_SECRET_KEY_LEN = HEADER_LEN + SIGNING_SEED_LEN;
export const SIGNING_PUBLIC_KEY_LEN = HEADER_LEN + ED25519_PUBLIC_KEY_LEN + MLDSA65_PUBLIC_KEY_LEN;
export const SIGNATURE_LEN = HEADER_LEN + ED25519_SIGNATURE_LEN + MLDSA65_SIGNATURE_LEN;

export const SIGN_PREFIX = Buffer.from('atefs hybrid signature v1\0', 'utf8');
const ED_SEED_INFO = 'atefs/sig/v1/ed25519-seed';
const MLDSA_SEED_INFO = 'atefs/sig/v1/ml-dsa-65-seed';

export interface SigningKeyPair {
  publicKey: Buffer;
  secretKey: Buffer;
}

/** Component seeds of a hybrid secret key; what a pool worker needs to sign. */
export interface ComponentSeeds {
  edSeed: Buffer;
  mlSeed: Buffer;
}

interface Expanded {
  edKey: nodeCrypto.KeyObject;
  mlSecretKey: Uint8Array;
  publicKey: Buffer;
}

const expandedCache = new BoundedCache<string, Expanded>(64);
const edPublicCache = new BoundedCache<string, nodeCrypto.KeyObject>(256);

export function componentSeeds(masterSeed: Uint8Array): ComponentSeeds {
  if (masterSeed.length !== SIGNING_SEED_LEN) {
    throw new CryptoError(`signing seed must be ${SIGNING_SEED_LEN} bytes`);
  }
  const empty = new Uint8Array(0);
  return {
    edSeed: hkdfSha256(masterSeed, empty, ED_SEED_INFO, 32),
    mlSeed: hkdfSha256(masterSeed, empty, MLDSA_SEED_INFO, 32),
  };
}

export function decodeSigningSecretKey(secretKey: Uint8Array): Buffer {
  expectHeader(secretKey, Alg.SIG_SECRET_KEY, 'signing secret key', { exact: SIGNING_SECRET_KEY_LEN });
  return Buffer.from(secretKey.buffer, secretKey.byteOffset + HEADER_LEN, SIGNING_SEED_LEN);
}

export function decodeSigningPublicKey(publicKey: Uint8Array): { ed: Uint8Array; ml: Uint8Array } {
  expectHeader(publicKey, Alg.SIG_PUBLIC_KEY, 'signing public key', { exact: SIGNING_PUBLIC_KEY_LEN });
  const edEnd = HEADER_LEN + ED25519_PUBLIC_KEY_LEN;
  return { ed: publicKey.subarray(HEADER_LEN, edEnd), ml: publicKey.subarray(edEnd) };
}

export function decodeSignature(signature: Uint8Array): { ed: Uint8Array; ml: Uint8Array } {
  expectHeader(signature, Alg.SIGNATURE, 'signature', { exact: SIGNATURE_LEN });
  const edEnd = HEADER_LEN + ED25519_SIGNATURE_LEN;
  return { ed: signature.subarray(HEADER_LEN, edEnd), ml: signature.subarray(edEnd) };
}

export function encodeSignature(ed: Uint8Array, ml: Uint8Array): Buffer {
  if (ed.length !== ED25519_SIGNATURE_LEN || ml.length !== MLDSA65_SIGNATURE_LEN) {
    throw new CryptoError('signature component has the wrong length');
  }
  const out = Buffer.allocUnsafe(SIGNATURE_LEN);
  writeHeader(out, Alg.SIGNATURE);
  out.set(ed, HEADER_LEN);
  out.set(ml, HEADER_LEN + ED25519_SIGNATURE_LEN);
  return out;
}

function encodePublicKey(ed: Uint8Array, ml: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(SIGNING_PUBLIC_KEY_LEN);
  writeHeader(out, Alg.SIG_PUBLIC_KEY);
  out.set(ed, HEADER_LEN);
  out.set(ml, HEADER_LEN + ED25519_PUBLIC_KEY_LEN);
  return out;
}

/** The bytes both halves actually sign. */
export function signedMessage(message: Uint8Array): Buffer {
  return Buffer.concat([SIGN_PREFIX, message]);
}

function cacheKey(seed: Uint8Array): string {
  return domainHash('atefs/sig/v1/cache-key', seed).toString('base64');
}

function expand(masterSeed: Uint8Array): Expanded {
  const k = cacheKey(masterSeed);
  const hit = expandedCache.get(k);
  if (hit) return hit;
  const { edSeed, mlSeed } = componentSeeds(masterSeed);
  const edKey = ed25519PrivateKeyFromSeed(edSeed);
  const ml = ml_dsa65.keygen(mlSeed);
  edSeed.fill(0);
  mlSeed.fill(0);
  const e: Expanded = {
    edKey,
    mlSecretKey: ml.secretKey,
    publicKey: encodePublicKey(ed25519RawPublicKey(edKey), ml.publicKey),
  };
  expandedCache.set(k, e);
  return e;
}

export function generateSigningKeyPair(seed?: Uint8Array): SigningKeyPair {
  if (seed !== undefined && seed.length !== SIGNING_SEED_LEN) {
    throw new CryptoError(`signing seed must be ${SIGNING_SEED_LEN} bytes`);
  }
  const secretKey = Buffer.allocUnsafe(SIGNING_SECRET_KEY_LEN);
  writeHeader(secretKey, Alg.SIG_SECRET_KEY);
  if (seed) secretKey.set(seed, HEADER_LEN);
  else randomBytes(SIGNING_SEED_LEN).copy(secretKey, HEADER_LEN);
  const publicKey = Buffer.from(expand(secretKey.subarray(HEADER_LEN)).publicKey);
  return { publicKey, secretKey };
}

export function signingPublicKeyOf(secretKey: Uint8Array): Buffer {
  return Buffer.from(expand(decodeSigningSecretKey(secretKey)).publicKey);
}

export function signMessage(secretKey: Uint8Array, message: Uint8Array): Buffer {
  const e = expand(decodeSigningSecretKey(secretKey));
  const m = signedMessage(message);
  return encodeSignature(ed25519Sign(e.edKey, m), ml_dsa65.sign(m, e.mlSecretKey));
}

function edPublicKey(raw: Uint8Array): nodeCrypto.KeyObject {
  const k = Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('base64');
  let key = edPublicCache.get(k);
  if (!key) {
    key = ed25519PublicKeyObject(raw);
    edPublicCache.set(k, key);
  }
  return key;
}

/** Verifies decoded components; shared with the pool's main-thread fallback. */
export function verifyComponents(
  edPk: Uint8Array,
  mlPk: Uint8Array,
  m: Uint8Array,
  edSig: Uint8Array,
  mlSig: Uint8Array,
): boolean {
  let edKey: nodeCrypto.KeyObject;
  try {
    edKey = edPublicKey(edPk);
  } catch {
    return false;
  }
  if (!ed25519Verify(edKey, m, edSig)) return false;
  try {
    return mlDsa65VerifyPrepared(prepareMlDsa65(mlPk), mlSig, m);
  } catch {
    return false;
  }
}

/** Throws MalformedEncoding / UnsupportedAlgorithm on bad encodings, InvalidSignature if it does not verify. */
export function assertSignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): void {
  const pk = decodeSigningPublicKey(publicKey);
  const sig = decodeSignature(signature);
  if (!(message instanceof Uint8Array)) throw new MalformedEncoding('message: expected bytes');
  if (!verifyComponents(pk.ed, pk.ml, signedMessage(message), sig.ed, sig.ml)) {
    throw new InvalidSignature('hybrid signature does not verify');
  }
}

/** false on any failure (bad encoding included); never throws. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    assertSignature(publicKey, message, signature);
    return true;
  } catch {
    return false;
  }
}

/** Short human-readable fingerprint of any encoded public key: 120 bits of a domain hash in base32. */
export function keyFingerprint(publicKey: Uint8Array): string {
  const h = domainHash('atefs/key-fingerprint/v1', publicKey).subarray(0, 15);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of h) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out.match(/.{1,4}/g)!.join('-');
}
