// AES-256-GCM through node:crypto for bulk data (file blocks, names).
// Sealed layout: [Alg.AES_256_GCM, version] | nonce(12) | ciphertext | tag(16).
// The 2-byte header is authenticated as the first associated data, so the algorithm/version
// cannot be swapped without failing the tag; user associated data follows it.
import * as nodeCrypto from 'node:crypto';
import { Alg, HEADER_LEN, expectHeader, writeHeader } from './algorithms.js';
import { CryptoError, DecryptError } from './errors.js';

export const AES_GCM_KEY_LEN = 32;
export const AES_GCM_NONCE_LEN = 12;
export const AES_GCM_TAG_LEN = 16;
export const AES_GCM_OVERHEAD = HEADER_LEN + AES_GCM_NONCE_LEN + AES_GCM_TAG_LEN;

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== AES_GCM_KEY_LEN) {
    throw new CryptoError(`AES-256-GCM key must be ${AES_GCM_KEY_LEN} bytes`);
  }
}

/**
 * Raw primitive with a caller-chosen nonce, for known-answer tests only. Never reuse a nonce
 * with the same key; production code goes through aesGcmSeal (random nonces).
 */
export function aesGcmEncryptRaw(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): { ciphertext: Buffer; tag: Buffer } {
  checkKey(key);
  const c = nodeCrypto.createCipheriv('aes-256-gcm', key, nonce, { authTagLength: AES_GCM_TAG_LEN });
  if (aad && aad.length > 0) c.setAAD(aad);
  const ct = c.update(plaintext);
  const fin = c.final();
  return { ciphertext: fin.length ? Buffer.concat([ct, fin]) : ct, tag: c.getAuthTag() };
}

export function aesGcmDecryptRaw(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad?: Uint8Array,
): Buffer {
  checkKey(key);
  const d = nodeCrypto.createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: AES_GCM_TAG_LEN });
  d.setAuthTag(tag);
  if (aad && aad.length > 0) d.setAAD(aad);
  const pt = d.update(ciphertext);
  try {
    d.final();
  } catch {
    throw new DecryptError('AES-256-GCM: authentication failed');
  }
  return pt;
}

// Nonces come from a pool of fresh random bytes, refilled 4 KiB at a time and consumed exactly once
// (never reused, never handed out twice): one randomFillSync per 341 seals instead of one per seal,
// which is a measurable share of a 64 KiB seal. Each worker thread has its own module instance
// and so its own pool.
const NONCE_POOL_BYTES = 4096 - (4096 % AES_GCM_NONCE_LEN);
const noncePool = Buffer.allocUnsafeSlow(NONCE_POOL_BYTES);
let noncePos = NONCE_POOL_BYTES;

function takeNonce(out: Buffer, at: number): void {
  if (noncePos === NONCE_POOL_BYTES) {
    nodeCrypto.randomFillSync(noncePool);
    noncePos = 0;
  }
  noncePool.copy(out, at, noncePos, noncePos + AES_GCM_NONCE_LEN);
  // Wipe what was handed out, so the pool never holds a nonce already in use.
  noncePool.fill(0, noncePos, noncePos + AES_GCM_NONCE_LEN);
  noncePos += AES_GCM_NONCE_LEN;
}

const TAG_OPTS = { authTagLength: AES_GCM_TAG_LEN };

export function aesGcmSeal(key: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  checkKey(key);
  const n = plaintext.length;
  // One output allocation; the only copy is update()'s result into it (node 20 has no update-into).
  const out = Buffer.allocUnsafe(AES_GCM_OVERHEAD + n);
  writeHeader(out, Alg.AES_256_GCM);
  takeNonce(out, HEADER_LEN);
  const nonce = out.subarray(HEADER_LEN, HEADER_LEN + AES_GCM_NONCE_LEN);
  const c = nodeCrypto.createCipheriv('aes-256-gcm', key, nonce, TAG_OPTS);
  c.setAAD(out.subarray(0, HEADER_LEN));
  if (aad && aad.length > 0) c.setAAD(aad);
  const body = HEADER_LEN + AES_GCM_NONCE_LEN;
  const ct = c.update(plaintext);
  ct.copy(out, body);
  const fin = c.final(); // empty for GCM; kept for correctness
  if (fin.length) fin.copy(out, body + ct.length);
  c.getAuthTag().copy(out, body + n);
  return out;
}

export function aesGcmOpen(key: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer {
  checkKey(key);
  expectHeader(sealed, Alg.AES_256_GCM, 'AES-256-GCM sealed data', { min: AES_GCM_OVERHEAD });
  const body = HEADER_LEN + AES_GCM_NONCE_LEN;
  const tagAt = sealed.length - AES_GCM_TAG_LEN;
  const d = nodeCrypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(HEADER_LEN, body), {
    authTagLength: AES_GCM_TAG_LEN,
  });
  d.setAuthTag(sealed.subarray(tagAt));
  d.setAAD(sealed.subarray(0, HEADER_LEN));
  if (aad && aad.length > 0) d.setAAD(aad);
  const pt = d.update(sealed.subarray(body, tagAt));
  try {
    d.final();
  } catch {
    pt.fill(0);
    throw new DecryptError('AES-256-GCM: authentication failed');
  }
  return pt;
}
