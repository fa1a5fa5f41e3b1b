// Sealed box ("wrap this key for that public key"): one-shot KEM to the recipient, then
// XChaCha20-Poly1305 under a key derived from the KEM secret. The KEM secret is already bound to
// the ciphertext and recipient public key (see kem.ts); the box header and the caller's associated
// data are authenticated by the AEAD.
// Layout: [Alg.SEALED_BOX, version] | KEM ciphertext encoding (1122) | XChaCha20-Poly1305 sealed.
import { Alg, HEADER_LEN, expectHeader, writeHeader } from './algorithms.js';
import { hkdfSha256 } from './hash.js';
import { KEM_CIPHERTEXT_LEN, kemDecapsulate, kemEncapsulate } from './kem.js';
import { XCHACHA_OVERHEAD, xchachaOpen, xchachaSeal } from './xchacha.js';

const WRAP_KEY_INFO = 'atefs/sealed-box/v1/wrap-key';
export const SEALED_BOX_OVERHEAD = HEADER_LEN + KEM_CIPHERTEXT_LEN + XCHACHA_OVERHEAD;

function boxAad(header: Uint8Array, aad?: Uint8Array): Buffer {
  return aad && aad.length ? Buffer.concat([header, aad]) : Buffer.from(header);
}

export function sealForPublicKey(publicKey: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  const { ciphertext, sharedSecret } = kemEncapsulate(publicKey);
  const key = hkdfSha256(sharedSecret, new Uint8Array(0), WRAP_KEY_INFO, 32);
  sharedSecret.fill(0);
  const header = Buffer.allocUnsafe(HEADER_LEN);
  writeHeader(header, Alg.SEALED_BOX);
  const inner = xchachaSeal(key, plaintext, boxAad(header, aad));
  key.fill(0);
  return Buffer.concat([header, ciphertext, inner]);
}

export function openSealed(secretKey: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer {
  expectHeader(sealed, Alg.SEALED_BOX, 'sealed box', { min: SEALED_BOX_OVERHEAD });
  const ctEnd = HEADER_LEN + KEM_CIPHERTEXT_LEN;
  const sharedSecret = kemDecapsulate(secretKey, sealed.subarray(HEADER_LEN, ctEnd));
  const key = hkdfSha256(sharedSecret, new Uint8Array(0), WRAP_KEY_INFO, 32);
  sharedSecret.fill(0);
  try {
    return xchachaOpen(key, sealed.subarray(ctEnd), boxAad(sealed.subarray(0, HEADER_LEN), aad));
  } finally {
    key.fill(0);
  }
}
