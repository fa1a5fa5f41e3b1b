// The crypto suite's public API. Everything else in the code base uses this module and nothing
// below it (no direct node:crypto AEAD/signature calls, no @noble imports elsewhere).
export { CryptoError, DecryptError, InvalidSignature, MalformedEncoding, UnsupportedAlgorithm } from './errors.js';
export { Alg, VERSION_1, algName } from './algorithms.js';
export { sha256, domainHash, hmacSha256, hkdfSha256, randomBytes, constantTimeEqual } from './hash.js';
export { aesGcmSeal, aesGcmOpen, AES_GCM_OVERHEAD } from './aes-gcm.js';
export { xchachaSeal, xchachaOpen, XCHACHA_OVERHEAD } from './xchacha.js';
export {
  type SigningKeyPair,
  generateSigningKeyPair,
  signMessage,
  verifySignature,
  assertSignature,
  signingPublicKeyOf,
  keyFingerprint,
  SIGNATURE_LEN,
  SIGNING_PUBLIC_KEY_LEN,
  SIGNING_SECRET_KEY_LEN,
} from './signatures.js';
export { CryptoPool, defaultPool } from './pool.js';
export { BulkCryptoPool, defaultBulkPool, type SealItem, type SealedItem, type OpenItem } from './bulk-pool.js';
export {
  type KemKeyPair,
  generateKemKeyPair,
  kemEncapsulate,
  kemDecapsulate,
  kemPublicKeyOf,
  KEM_PUBLIC_KEY_LEN,
  KEM_SECRET_KEY_LEN,
  KEM_CIPHERTEXT_LEN,
  KEM_SHARED_SECRET_LEN,
} from './kem.js';
export { sealForPublicKey, openSealed, SEALED_BOX_OVERHEAD } from './sealed-box.js';
export {
  type ScryptParams,
  PRODUCTION_SCRYPT,
  TEST_SCRYPT,
  deriveKeyFromPassword,
  encodeScryptParams,
  decodeScryptParams,
} from './password.js';
export { selfTest } from './self-test.js';
