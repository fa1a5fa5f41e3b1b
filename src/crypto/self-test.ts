// Quick end-to-end check of the suite (seal/open, sign/verify, KEM round trip); throws on failure.
import { aesGcmOpen, aesGcmSeal } from './aes-gcm.js';
import { CryptoError } from './errors.js';
import { constantTimeEqual, randomBytes } from './hash.js';
import { generateKemKeyPair, kemDecapsulate, kemEncapsulate } from './kem.js';
import { openSealed, sealForPublicKey } from './sealed-box.js';
import { generateSigningKeyPair, signMessage, verifySignature } from './signatures.js';
import { xchachaOpen, xchachaSeal } from './xchacha.js';

function check(ok: boolean, what: string): void {
  if (!ok) throw new CryptoError(`crypto self-test failed: ${what}`);
}

function throws(f: () => unknown): boolean {
  try {
    f();
    return false;
  } catch {
    return true;
  }
}

export async function selfTest(): Promise<void> {
  const key = randomBytes(32);
  const msg = Buffer.from('atefs crypto self-test');
  const aad = Buffer.from('context');

  const gcm = aesGcmSeal(key, msg, aad);
  check(constantTimeEqual(aesGcmOpen(key, gcm, aad), msg), 'AES-256-GCM round trip');
  gcm[gcm.length - 1]! ^= 1;
  check(throws(() => aesGcmOpen(key, gcm, aad)), 'AES-256-GCM rejects a flipped tag bit');

  const xc = xchachaSeal(key, msg, aad);
  check(constantTimeEqual(xchachaOpen(key, xc, aad), msg), 'XChaCha20-Poly1305 round trip');
  check(throws(() => xchachaOpen(key, xc, Buffer.from('other'))), 'XChaCha20-Poly1305 binds aad');

  const sk = generateSigningKeyPair();
  const sig = signMessage(sk.secretKey, msg);
  check(verifySignature(sk.publicKey, msg, sig), 'hybrid signature verifies');
  check(!verifySignature(sk.publicKey, aad, sig), 'hybrid signature rejects another message');

  const kem = generateKemKeyPair();
  const enc = kemEncapsulate(kem.publicKey);
  check(constantTimeEqual(kemDecapsulate(kem.secretKey, enc.ciphertext), enc.sharedSecret), 'KEM round trip');
  const box = sealForPublicKey(kem.publicKey, key, aad);
  check(constantTimeEqual(openSealed(kem.secretKey, box, aad), key), 'sealed box round trip');
}
