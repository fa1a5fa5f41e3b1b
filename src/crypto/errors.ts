// Typed errors of the crypto layer. Callers map them to errno / exit codes in one place;
// everything thrown on purpose by src/crypto is a CryptoError subclass.

export class CryptoError extends Error {
  override name = 'CryptoError';
}

/** Authentication failed: wrong key, tampered ciphertext/tag/nonce/associated data. */
export class DecryptError extends CryptoError {
  override name = 'DecryptError';
}

/** A signature that is well-formed but does not verify (either half of a hybrid signature). */
export class InvalidSignature extends CryptoError {
  override name = 'InvalidSignature';
}

/** Bytes that do not parse: truncated, oversized, wrong kind, absurd parameters. */
export class MalformedEncoding extends CryptoError {
  override name = 'MalformedEncoding';
}

/** A well-framed encoding whose algorithm id or version this build does not know. */
export class UnsupportedAlgorithm extends CryptoError {
  override name = 'UnsupportedAlgorithm';
}
