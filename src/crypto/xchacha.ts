// XChaCha20-Poly1305 for key wrapping and small secrets: random 24-byte nonces are safe.
// Built from noble's hchacha (subkey) + node:crypto chacha20-poly1305 (IETF, 12-byte nonce);
// per draft-irtf-cfrg-xchacha: subkey = HChaCha20(key, nonce[0..16]),
// nonce12 = 0x00000000 || nonce[16..24]. Output is byte-identical to noble's xchacha20poly1305.
// Sealed layout: [Alg.XCHACHA20_POLY1305, version] | nonce(24) | ciphertext | tag(16); the header
// is authenticated as the first associated data.
import * as nodeCrypto from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';
import { Alg, HEADER_LEN, expectHeader, writeHeader } from './algorithms.js';
import { CryptoError, DecryptError } from './errors.js';

export const XCHACHA_KEY_LEN = 32;
export const XCHACHA_NONCE_LEN = 24;
export const XCHACHA_TAG_LEN = 16;
export const XCHACHA_OVERHEAD = HEADER_LEN + XCHACHA_NONCE_LEN + XCHACHA_TAG_LEN;

// "expand 32-byte k" as little-endian words
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== XCHACHA_KEY_LEN) {
    throw new CryptoError(`XChaCha20-Poly1305 key must be ${XCHACHA_KEY_LEN} bytes`);
  }
}

/** HChaCha20(key, nonce16) -> 32-byte subkey. */
export function hchacha20(key: Uint8Array, nonce16: Uint8Array): Buffer {
  // Uint32Array views need 4-byte alignment, so copy into fresh word arrays (little-endian host;
  // noble's hchacha swaps on big-endian hosts itself).
  const k = new Uint32Array(8);
  new Uint8Array(k.buffer).set(key.subarray(0, 32));
  const n = new Uint32Array(4);
  new Uint8Array(n.buffer).set(nonce16.subarray(0, 16));
  const out = new Uint32Array(8);
  hchacha(SIGMA, k, n, out);
  k.fill(0);
  return Buffer.from(out.buffer, out.byteOffset, 32);
}

function chachaNonce(nonce24: Uint8Array): Buffer {
  const n = Buffer.alloc(12);
  n.set(nonce24.subarray(16, 24), 4);
  return n;
}

/** Raw primitive with a caller-chosen 24-byte nonce (tests); returns ciphertext || tag. */
export function xchachaEncryptRaw(
  key: Uint8Array,
  nonce24: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): Buffer {
  checkKey(key);
  const sub = hchacha20(key, nonce24);
  const c = nodeCrypto.createCipheriv('chacha20-poly1305', sub, chachaNonce(nonce24), {
    authTagLength: XCHACHA_TAG_LEN,
  });
  sub.fill(0);
  if (aad && aad.length > 0) c.setAAD(aad, { plaintextLength: plaintext.length });
  const ct = c.update(plaintext);
  c.final();
  return Buffer.concat([ct, c.getAuthTag()]);
}

export function xchachaSeal(key: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  checkKey(key);
  const n = plaintext.length;
  const out = Buffer.allocUnsafe(XCHACHA_OVERHEAD + n);
  writeHeader(out, Alg.XCHACHA20_POLY1305);
  nodeCrypto.randomFillSync(out, HEADER_LEN, XCHACHA_NONCE_LEN);
  const nonce = out.subarray(HEADER_LEN, HEADER_LEN + XCHACHA_NONCE_LEN);
  const sub = hchacha20(key, nonce);
  const c = nodeCrypto.createCipheriv('chacha20-poly1305', sub, chachaNonce(nonce), {
    authTagLength: XCHACHA_TAG_LEN,
  });
  sub.fill(0);
  c.setAAD(out.subarray(0, HEADER_LEN), { plaintextLength: n });
  if (aad && aad.length > 0) c.setAAD(aad, { plaintextLength: n });
  const body = HEADER_LEN + XCHACHA_NONCE_LEN;
  c.update(plaintext).copy(out, body);
  c.final();
  c.getAuthTag().copy(out, body + n);
  return out;
}

export function xchachaOpen(key: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer {
  checkKey(key);
  expectHeader(sealed, Alg.XCHACHA20_POLY1305, 'XChaCha20-Poly1305 sealed data', {
    min: XCHACHA_OVERHEAD,
  });
  const body = HEADER_LEN + XCHACHA_NONCE_LEN;
  const tagAt = sealed.length - XCHACHA_TAG_LEN;
  const nonce = sealed.subarray(HEADER_LEN, body);
  const sub = hchacha20(key, nonce);
  const d = nodeCrypto.createDecipheriv('chacha20-poly1305', sub, chachaNonce(nonce), {
    authTagLength: XCHACHA_TAG_LEN,
  });
  sub.fill(0);
  d.setAuthTag(sealed.subarray(tagAt));
  d.setAAD(sealed.subarray(0, HEADER_LEN), { plaintextLength: tagAt - body });
  if (aad && aad.length > 0) d.setAAD(aad, { plaintextLength: tagAt - body });
  const pt = d.update(sealed.subarray(body, tagAt));
  try {
    d.final();
  } catch {
    pt.fill(0);
    throw new DecryptError('XChaCha20-Poly1305: authentication failed');
  }
  return pt;
}
