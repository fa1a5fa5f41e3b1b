import * as nodeCrypto from 'node:crypto';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { describe, expect, it } from 'vitest';
import {
  assertSignature,
  generateSigningKeyPair,
  InvalidSignature,
  keyFingerprint,
  MalformedEncoding,
  SIGNATURE_LEN,
  SIGNING_PUBLIC_KEY_LEN,
  signingPublicKeyOf,
  signMessage,
  UnsupportedAlgorithm,
  verifySignature,
} from '../../src/crypto/index.js';
import { ed25519PrivateKeyFromSeed, ed25519RawPublicKey, ed25519Sign, ed25519Verify } from '../../src/crypto/ed25519.js';
import { componentSeeds, signedMessage } from '../../src/crypto/signatures.js';
import { flip, hex } from './crypto-helpers.js';

describe('Ed25519 via the seed -> PKCS#8 path (RFC 8032 §7.1)', () => {
  const cases = [
    {
      sk: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      pk: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      msg: '',
      sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    },
    {
      sk: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
      pk: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
      msg: '72',
      sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    },
  ];
  for (const [i, c] of cases.entries()) {
    it(`test ${i + 1}`, () => {
      const key = ed25519PrivateKeyFromSeed(hex(c.sk));
      expect(ed25519RawPublicKey(key).toString('hex')).toBe(c.pk);
      expect(ed25519Sign(key, hex(c.msg)).toString('hex')).toBe(c.sig);
      expect(ed25519Verify(hex(c.pk), hex(c.msg), hex(c.sig))).toBe(true);
      expect(ed25519Verify(hex(c.pk), hex(c.msg), flip(hex(c.sig), 5))).toBe(false);
    });
  }
});

describe('hybrid ML-DSA-65 + Ed25519 signatures', () => {
  const kp = generateSigningKeyPair();
  const msg = Buffer.from('commit hash 0123456789abcdef0123456789abcdef');
  const sig = signMessage(kp.secretKey, msg);

  it('has versioned encodings of the documented sizes', () => {
    expect(kp.publicKey.length).toBe(SIGNING_PUBLIC_KEY_LEN);
    expect(kp.publicKey.subarray(0, 2)).toEqual(Buffer.from([0x10, 1]));
    expect(kp.secretKey.subarray(0, 2)).toEqual(Buffer.from([0x11, 1]));
    expect(sig.length).toBe(SIGNATURE_LEN);
    expect(sig.subarray(0, 2)).toEqual(Buffer.from([0x12, 1]));
  });

  it('verifies, and derives the public key from the secret key', () => {
    expect(verifySignature(kp.publicKey, msg, sig)).toBe(true);
    expect(() => assertSignature(kp.publicKey, msg, sig)).not.toThrow();
    expect(signingPublicKeyOf(kp.secretKey)).toEqual(kp.publicKey);
    expect(verifySignature(kp.publicKey, new Uint8Array(0), signMessage(kp.secretKey, new Uint8Array(0)))).toBe(true);
  });

  it('is deterministic from a seed, different seeds give different keys', () => {
    const seed = Buffer.alloc(32, 7);
    const a = generateSigningKeyPair(seed);
    const b = generateSigningKeyPair(seed);
    expect(a.publicKey).toEqual(b.publicKey);
    expect(a.secretKey).toEqual(b.secretKey);
    expect(generateSigningKeyPair(Buffer.alloc(32, 8)).publicKey).not.toEqual(a.publicKey);
    expect(() => generateSigningKeyPair(Buffer.alloc(31))).toThrow();
  });

  it('each half is a standard signature over the domain-separated message', () => {
    const m = signedMessage(msg);
    const edPk = kp.publicKey.subarray(2, 34);
    const mlPk = kp.publicKey.subarray(34);
    expect(ed25519Verify(edPk, m, sig.subarray(2, 66))).toBe(true);
    expect(ml_dsa65.verify(sig.subarray(66), m, mlPk)).toBe(true);
    // ...and not over the raw message, so neither half can be lifted into another protocol.
    expect(ed25519Verify(edPk, msg, sig.subarray(2, 66))).toBe(false);
  });

  it('rejects another message and another key', () => {
    expect(verifySignature(kp.publicKey, flip(msg, 0), sig)).toBe(false);
    expect(() => assertSignature(kp.publicKey, flip(msg, 0), sig)).toThrow(InvalidSignature);
    expect(verifySignature(generateSigningKeyPair().publicKey, msg, sig)).toBe(false);
  });

  it('rejects a flipped bit in either half of the signature', () => {
    for (const at of [2, 40, 65]) {
      expect(verifySignature(kp.publicKey, msg, flip(sig, at, 2))).toBe(false);
      expect(() => assertSignature(kp.publicKey, msg, flip(sig, at, 2))).toThrow(InvalidSignature);
    }
    for (const at of [66, 1000, 3000, sig.length - 1]) {
      expect(verifySignature(kp.publicKey, msg, flip(sig, at, 6))).toBe(false);
      expect(() => assertSignature(kp.publicKey, msg, flip(sig, at, 6))).toThrow(InvalidSignature);
    }
  });

  it('rejects when only one half is valid (halves spliced from another key)', () => {
    const other = generateSigningKeyPair();
    const otherSig = signMessage(other.secretKey, msg);
    const spliced = Buffer.concat([sig.subarray(0, 66), otherSig.subarray(66)]);
    expect(verifySignature(kp.publicKey, msg, spliced)).toBe(false);
    const pkSpliced = Buffer.concat([kp.publicKey.subarray(0, 34), other.publicKey.subarray(34)]);
    expect(verifySignature(pkSpliced, msg, sig)).toBe(false);
    expect(verifySignature(pkSpliced, msg, spliced)).toBe(true); // sanity: the splice itself is consistent
  });

  it('rejects a flipped bit in either half of the public key', () => {
    for (const at of [2, 20, 33, 34, 500, kp.publicKey.length - 1]) {
      expect(verifySignature(flip(kp.publicKey, at, 4), msg, sig)).toBe(false);
      expect(() => assertSignature(flip(kp.publicKey, at, 4), msg, sig)).toThrow(InvalidSignature);
    }
  });

  it('malformed encodings: false from verify, typed errors from assert/sign, never a crash', () => {
    const bad: Array<[Uint8Array, Uint8Array]> = [
      [kp.publicKey.subarray(0, 100), sig],
      [Buffer.concat([kp.publicKey, Buffer.from([0])]), sig],
      [kp.publicKey, sig.subarray(0, sig.length - 1)],
      [kp.publicKey, Buffer.concat([sig, Buffer.from([0])])],
      [new Uint8Array(0), new Uint8Array(0)],
      [kp.publicKey, kp.publicKey],
      [sig, sig],
    ];
    for (const [pk, s] of bad) {
      expect(verifySignature(pk, msg, s)).toBe(false);
      expect(() => assertSignature(pk, msg, s)).toThrow(MalformedEncoding);
    }
    expect(() => assertSignature(flip(kp.publicKey, 1), msg, sig)).toThrow(UnsupportedAlgorithm);
    expect(() => assertSignature(kp.publicKey, msg, flip(sig, 1))).toThrow(UnsupportedAlgorithm);
    expect(verifySignature(null as unknown as Uint8Array, msg, sig)).toBe(false);
    expect(() => signMessage(kp.secretKey.subarray(0, 10), msg)).toThrow(MalformedEncoding);
    expect(() => signMessage(kp.publicKey, msg)).toThrow(MalformedEncoding);
    expect(() => signingPublicKeyOf(Buffer.concat([kp.secretKey, Buffer.from([1])]))).toThrow(MalformedEncoding);
  });

  it('derives independent component seeds', () => {
    const s = componentSeeds(Buffer.alloc(32, 1));
    expect(s.edSeed.equals(s.mlSeed)).toBe(false);
    expect(s.edSeed.equals(Buffer.alloc(32, 1))).toBe(false);
  });

  it('fingerprints are short, stable and distinct', () => {
    const f = keyFingerprint(kp.publicKey);
    expect(f).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){5}$/);
    expect(keyFingerprint(kp.publicKey)).toBe(f);
    expect(keyFingerprint(flip(kp.publicKey, 100))).not.toBe(f);
  });
});

describe('X25519 through node:crypto (RFC 7748)', () => {
  const pkcs8 = (k: Buffer) =>
    nodeCrypto.createPrivateKey({ key: Buffer.concat([hex('302e020100300506032b656e04220420'), k]), format: 'der', type: 'pkcs8' });
  const spki = (k: Buffer) =>
    nodeCrypto.createPublicKey({ key: Buffer.concat([hex('302a300506032b656e032100'), k]), format: 'der', type: 'spki' });
  const raw = (k: nodeCrypto.KeyObject) => nodeCrypto.createPublicKey(k).export({ format: 'der', type: 'spki' }).subarray(12);

  it('§5.2 first test vector', () => {
    const out = nodeCrypto.diffieHellman({
      privateKey: pkcs8(hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4')),
      publicKey: spki(hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c')),
    });
    expect(out.toString('hex')).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552');
  });

  it('§6.1 Diffie-Hellman', () => {
    const alice = pkcs8(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    const bob = pkcs8(hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
    expect(raw(alice).toString('hex')).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(raw(bob).toString('hex')).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const k1 = nodeCrypto.diffieHellman({ privateKey: alice, publicKey: spki(raw(bob)) });
    const k2 = nodeCrypto.diffieHellman({ privateKey: bob, publicKey: spki(raw(alice)) });
    expect(k1.toString('hex')).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    expect(k2).toEqual(k1);
  });
});
