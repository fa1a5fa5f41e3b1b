// Every decoder of an encoded key / signature / ciphertext, fed truncations, extensions and random
// garbage: it must fail with a CryptoError subclass (or false from verify), never crash or hang.
import { describe, expect, it } from 'vitest';
import {
  aesGcmOpen,
  aesGcmSeal,
  assertSignature,
  CryptoError,
  decodeScryptParams,
  encodeScryptParams,
  generateKemKeyPair,
  generateSigningKeyPair,
  kemDecapsulate,
  kemEncapsulate,
  kemPublicKeyOf,
  MalformedEncoding,
  openSealed,
  randomBytes,
  sealForPublicKey,
  signingPublicKeyOf,
  signMessage,
  TEST_SCRYPT,
  verifySignature,
  xchachaOpen,
  xchachaSeal,
} from '../../src/crypto/index.js';

const sk = generateSigningKeyPair();
const kem = generateKemKeyPair();
const key = randomBytes(32);
const msg = Buffer.from('m');
const sig = signMessage(sk.secretKey, msg);
const enc = kemEncapsulate(kem.publicKey);

// anyBody: every body of the right length is legitimately valid (32-byte seeds; ML-KEM ciphertexts
// decapsulate to a pseudorandom secret by design - implicit rejection).
const cases: Array<{ name: string; valid: Buffer; fixed: boolean; anyBody?: boolean; use: (b: Uint8Array) => unknown }> = [
  { name: 'signing public key', valid: sk.publicKey, fixed: true, use: (b) => assertSignature(b, msg, sig) },
  { name: 'signing secret key', valid: sk.secretKey, fixed: true, anyBody: true, use: (b) => signingPublicKeyOf(b) },
  { name: 'signature', valid: sig, fixed: true, use: (b) => assertSignature(sk.publicKey, msg, b) },
  { name: 'KEM public key', valid: kem.publicKey, fixed: true, use: (b) => kemEncapsulate(b) },
  { name: 'KEM secret key', valid: kem.secretKey, fixed: true, anyBody: true, use: (b) => kemPublicKeyOf(b) },
  { name: 'KEM ciphertext', valid: enc.ciphertext, fixed: true, anyBody: true, use: (b) => kemDecapsulate(kem.secretKey, b) },
  { name: 'AES-GCM sealed', valid: aesGcmSeal(key, msg), fixed: false, use: (b) => aesGcmOpen(key, b) },
  { name: 'XChaCha sealed', valid: xchachaSeal(key, msg), fixed: false, use: (b) => xchachaOpen(key, b) },
  { name: 'sealed box', valid: sealForPublicKey(kem.publicKey, msg), fixed: false, use: (b) => openSealed(kem.secretKey, b) },
  {
    name: 'scrypt params',
    valid: encodeScryptParams(TEST_SCRYPT, randomBytes(16)),
    fixed: true,
    use: (b) => decodeScryptParams(b),
  },
];

function outcome(f: () => unknown): 'ok' | CryptoError {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (e instanceof CryptoError) return e;
    throw new Error(`non-crypto error escaped: ${String(e)}`);
  }
}

describe('encoding robustness', () => {
  for (const c of cases) {
    it(`${c.name}: valid works; every truncation and an extension are typed errors`, () => {
      expect(outcome(() => c.use(c.valid))).toBe('ok');
      // every length for small encodings, a sample for big ones
      const step = c.valid.length > 256 ? 7 : 1;
      for (let n = 0; n < c.valid.length; n += step) {
        const r = outcome(() => c.use(c.valid.subarray(0, n)));
        expect(r, `${c.name} truncated to ${n}`).toBeInstanceOf(CryptoError);
        if (c.fixed || n < 30) expect(r, `${c.name} truncated to ${n}`).toBeInstanceOf(MalformedEncoding);
      }
      const longer = outcome(() => c.use(Buffer.concat([c.valid, Buffer.alloc(1)])));
      expect(longer).toBeInstanceOf(CryptoError);
      if (c.fixed) expect(longer).toBeInstanceOf(MalformedEncoding);
    });

    it(`${c.name}: random garbage of the right length is a typed error (or valid, where any body is)`, () => {
      for (let i = 0; i < 20; i++) {
        const g = randomBytes(c.valid.length);
        if (i % 2 === 0 || c.anyBody) c.valid.copy(g, 0, 0, 2);
        const r = outcome(() => c.use(g));
        if (!c.anyBody) expect(r).not.toBe('ok');
      }
    });
  }

  it('verifySignature never throws, whatever it is given', () => {
    const junk: unknown[] = [undefined, null, 42, 'str', {}, new Uint8Array(0), randomBytes(5000)];
    for (const a of junk) {
      expect(verifySignature(a as Uint8Array, msg, sig)).toBe(false);
      expect(verifySignature(sk.publicKey, a as Uint8Array, sig)).toBe(false);
      expect(verifySignature(sk.publicKey, msg, a as Uint8Array)).toBe(false);
    }
  });
});
