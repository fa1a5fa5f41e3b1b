import { describe, expect, it } from 'vitest';
import {
  DecryptError,
  generateKemKeyPair,
  KEM_CIPHERTEXT_LEN,
  KEM_PUBLIC_KEY_LEN,
  kemDecapsulate,
  kemEncapsulate,
  kemPublicKeyOf,
  MalformedEncoding,
  openSealed,
  randomBytes,
  sealForPublicKey,
  UnsupportedAlgorithm,
} from '../../src/crypto/index.js';
import { kemEncapsulateDeterministic } from '../../src/crypto/kem.js';
import { flip } from './crypto-helpers.js';

describe('hybrid KEM (X-Wing + HKDF binding)', () => {
  const kp = generateKemKeyPair();

  it('round trips with versioned encodings', () => {
    expect(kp.publicKey.length).toBe(KEM_PUBLIC_KEY_LEN);
    expect(kp.publicKey.subarray(0, 2)).toEqual(Buffer.from([0x20, 1]));
    expect(kp.secretKey.subarray(0, 2)).toEqual(Buffer.from([0x21, 1]));
    const enc = kemEncapsulate(kp.publicKey);
    expect(enc.ciphertext.length).toBe(KEM_CIPHERTEXT_LEN);
    expect(enc.ciphertext.subarray(0, 2)).toEqual(Buffer.from([0x22, 1]));
    expect(enc.sharedSecret.length).toBe(32);
    expect(kemDecapsulate(kp.secretKey, enc.ciphertext)).toEqual(enc.sharedSecret);
    expect(kemEncapsulate(kp.publicKey).sharedSecret).not.toEqual(enc.sharedSecret);
    expect(kemPublicKeyOf(kp.secretKey)).toEqual(kp.publicKey);
  });

  it('is deterministic from seeds', () => {
    const a = generateKemKeyPair(Buffer.alloc(32, 3));
    expect(generateKemKeyPair(Buffer.alloc(32, 3)).publicKey).toEqual(a.publicKey);
    expect(generateKemKeyPair(Buffer.alloc(32, 4)).publicKey).not.toEqual(a.publicKey);
    const r = Buffer.alloc(64, 9);
    expect(kemEncapsulateDeterministic(a.publicKey, r)).toEqual(kemEncapsulateDeterministic(a.publicKey, r));
  });

  it('a flipped bit in either half of the ciphertext gives another secret (implicit rejection)', () => {
    const enc = kemEncapsulate(kp.publicKey);
    for (const at of [2, 500, 1089, 1090, KEM_CIPHERTEXT_LEN - 1]) {
      const ss = kemDecapsulate(kp.secretKey, flip(enc.ciphertext, at, 3));
      expect(ss.length).toBe(32);
      expect(ss.equals(enc.sharedSecret)).toBe(false);
    }
  });

  it('a flipped bit in the public key gives a secret the real key holder does not get', () => {
    for (const at of [2, 600, 1185, 1190, KEM_PUBLIC_KEY_LEN - 1]) {
      let enc: { ciphertext: Buffer; sharedSecret: Buffer };
      try {
        enc = kemEncapsulate(flip(kp.publicKey, at, 1));
      } catch (e) {
        expect(e).toBeInstanceOf(MalformedEncoding); // ML-KEM rejects out-of-range coefficients
        continue;
      }
      expect(kemDecapsulate(kp.secretKey, enc.ciphertext).equals(enc.sharedSecret)).toBe(false);
    }
  });

  it('rejects truncated, oversized and mistyped encodings with typed errors', () => {
    const enc = kemEncapsulate(kp.publicKey);
    expect(() => kemEncapsulate(kp.publicKey.subarray(0, 100))).toThrow(MalformedEncoding);
    expect(() => kemEncapsulate(Buffer.concat([kp.publicKey, Buffer.from([0])]))).toThrow(MalformedEncoding);
    expect(() => kemEncapsulate(kp.secretKey)).toThrow(MalformedEncoding);
    expect(() => kemEncapsulate(flip(kp.publicKey, 1))).toThrow(UnsupportedAlgorithm);
    expect(() => kemDecapsulate(kp.secretKey, enc.ciphertext.subarray(0, 1000))).toThrow(MalformedEncoding);
    expect(() => kemDecapsulate(kp.secretKey, Buffer.concat([enc.ciphertext, Buffer.from([0])]))).toThrow(MalformedEncoding);
    expect(() => kemDecapsulate(kp.publicKey, enc.ciphertext)).toThrow(MalformedEncoding);
    expect(() => kemDecapsulate(kp.secretKey.subarray(0, 33), enc.ciphertext)).toThrow(MalformedEncoding);
    expect(() => kemDecapsulate(kp.secretKey, new Uint8Array(0))).toThrow(MalformedEncoding);
    expect(() => kemPublicKeyOf(new Uint8Array(1))).toThrow(MalformedEncoding);
  });
});

describe('sealed box', () => {
  const kp = generateKemKeyPair();
  const secret = randomBytes(32);
  const aad = Buffer.from('grant: chain acme/docs, node 42');

  it('round trips and is versioned', () => {
    const box = sealForPublicKey(kp.publicKey, secret, aad);
    expect(box.subarray(0, 2)).toEqual(Buffer.from([0x23, 1]));
    expect(openSealed(kp.secretKey, box, aad)).toEqual(secret);
    expect(openSealed(kp.secretKey, sealForPublicKey(kp.publicKey, new Uint8Array(0))).length).toBe(0);
  });

  it('rejects another recipient, wrong aad, and flipped bits anywhere', () => {
    const box = sealForPublicKey(kp.publicKey, secret, aad);
    expect(() => openSealed(generateKemKeyPair().secretKey, box, aad)).toThrow(DecryptError);
    expect(() => openSealed(kp.secretKey, box, flip(aad, 3))).toThrow(DecryptError);
    expect(() => openSealed(kp.secretKey, box)).toThrow(DecryptError);
    for (const at of [4, 600, 1123, 1126, 1149, 1150, box.length - 20, box.length - 1]) {
      expect(() => openSealed(kp.secretKey, flip(box, at, 2), aad)).toThrow(DecryptError);
    }
    expect(() => openSealed(kp.secretKey, flip(box, 1), aad)).toThrow(UnsupportedAlgorithm);
    expect(() => openSealed(kp.secretKey, flip(box, 3), aad)).toThrow(UnsupportedAlgorithm); // inner KEM ct version
    for (const n of [0, 1, 2, 100, 1124, box.length - secret.length - 1]) {
      expect(() => openSealed(kp.secretKey, box.subarray(0, n), aad)).toThrow(MalformedEncoding);
    }
  });
});
