// Algorithm ids and versions of every encoded key, signature and ciphertext. Each encoding starts
// with [id, version]; ids are unique across kinds so a blob of one kind can never be mistaken for
// another. Never reuse or renumber an id: they are stored on disk and sent on the wire.
import { MalformedEncoding, UnsupportedAlgorithm } from './errors.js';

export const Alg = {
  /** AES-256-GCM: header | nonce(12) | ciphertext | tag(16) */
  AES_256_GCM: 0x01,
  /** XChaCha20-Poly1305: header | nonce(24) | ciphertext | tag(16) */
  XCHACHA20_POLY1305: 0x02,
  /** Hybrid ML-DSA-65 + Ed25519 public key: header | ed25519 pk(32) | ml-dsa-65 pk(1952) */
  SIG_PUBLIC_KEY: 0x10,
  /** Hybrid signing secret key: header | master seed(32) */
  SIG_SECRET_KEY: 0x11,
  /** Hybrid signature: header | ed25519 sig(64) | ml-dsa-65 sig(3309) */
  SIGNATURE: 0x12,
  /**
   * Deferred signature (src/chain/deferred.ts): header | HMAC-SHA-256(32) under a key derived from
   * the signing secret key; stands in for a SIGNATURE until a later signed seal covers the commit.
   */
  DEFERRED_MAC: 0x13,
  /** X-Wing (ML-KEM-768 + X25519) public key: header | pk(1216) */
  KEM_PUBLIC_KEY: 0x20,
  /** X-Wing secret key: header | seed(32) */
  KEM_SECRET_KEY: 0x21,
  /** X-Wing ciphertext: header | ct(1120) */
  KEM_CIPHERTEXT: 0x22,
  /** Sealed box: header | KEM ciphertext encoding | XChaCha20-Poly1305 sealed */
  SEALED_BOX: 0x23,
  /** scrypt parameters: header | log2(N)(1) | r(u32) | p(u32) | keyLen(u16) | saltLen(1) | salt */
  SCRYPT_PARAMS: 0x30,
} as const;

export type AlgId = (typeof Alg)[keyof typeof Alg];

/** Current version for every id. A new version of an id means a changed layout or construction. */
export const VERSION_1 = 0x01;

export const HEADER_LEN = 2;

const NAMES = new Map<number, string>(Object.entries(Alg).map(([k, v]) => [v, k]));

export function algName(id: number): string {
  return NAMES.get(id) ?? `0x${id.toString(16).padStart(2, '0')}`;
}

export function writeHeader(out: Uint8Array, id: AlgId, offset = 0): void {
  out[offset] = id;
  out[offset + 1] = VERSION_1;
}

/**
 * Checks the [id, version] header of `b` against the expected kind and, for fixed-size
 * encodings, the exact total length. Unknown ids/versions -> UnsupportedAlgorithm; a known id of
 * another kind, or a bad length -> MalformedEncoding.
 */
export function expectHeader(
  b: Uint8Array,
  id: AlgId,
  what: string,
  len?: { exact?: number; min?: number },
): void {
  if (!(b instanceof Uint8Array)) throw new MalformedEncoding(`${what}: expected bytes`);
  if (b.length < HEADER_LEN) throw new MalformedEncoding(`${what}: truncated (${b.length} bytes)`);
  if (b[0] !== id) {
    if (NAMES.has(b[0]!)) {
      throw new MalformedEncoding(`${what}: got a ${algName(b[0]!)} encoding instead`);
    }
    throw new UnsupportedAlgorithm(`${what}: unknown algorithm id ${algName(b[0]!)}`);
  }
  if (b[1] !== VERSION_1) {
    throw new UnsupportedAlgorithm(`${what}: unsupported version ${b[1]} of ${algName(id)}`);
  }
  if (len?.exact !== undefined && b.length !== len.exact) {
    throw new MalformedEncoding(
      `${what}: ${b.length < len.exact ? 'truncated' : 'oversized'} (${b.length} bytes, expected ${len.exact})`,
    );
  }
  if (len?.min !== undefined && b.length < len.min) {
    throw new MalformedEncoding(`${what}: truncated (${b.length} bytes, need at least ${len.min})`);
  }
}
