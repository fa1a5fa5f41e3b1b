import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { describe, expect, it } from 'vitest';
import {
  aesGcmOpen,
  aesGcmSeal,
  DecryptError,
  MalformedEncoding,
  UnsupportedAlgorithm,
  randomBytes,
  xchachaOpen,
  xchachaSeal,
} from '../../src/crypto/index.js';
import { aesGcmDecryptRaw, aesGcmEncryptRaw } from '../../src/crypto/aes-gcm.js';
import { hchacha20, xchachaEncryptRaw } from '../../src/crypto/xchacha.js';
import { flip, hex } from './crypto-helpers.js';

describe('AES-256-GCM raw primitive (McGrew-Viega GCM spec test cases)', () => {
  it('test case 13 (zero key, empty plaintext)', () => {
    const r = aesGcmEncryptRaw(Buffer.alloc(32), Buffer.alloc(12), new Uint8Array(0));
    expect(r.ciphertext.length).toBe(0);
    expect(r.tag.toString('hex')).toBe('530f8afbc74536b9a963b4f1c4cb738b');
  });
  it('test case 14 (zero key, one zero block)', () => {
    const r = aesGcmEncryptRaw(Buffer.alloc(32), Buffer.alloc(12), Buffer.alloc(16));
    expect(r.ciphertext.toString('hex')).toBe('cea7403d4d606b6e074ec5d3baf39d18');
    expect(r.tag.toString('hex')).toBe('d0d1c8a799996bf0265b98b5d48ab919');
  });
  it('test case 16 (with associated data), and decryption', () => {
    const key = hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308');
    const iv = hex('cafebabefacedbaddecaf888');
    const pt = hex(
      'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
    );
    const aad = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
    const ct =
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662';
    const tag = '76fc6ece0f4e1768cddf8853bb2d551b';
    const r = aesGcmEncryptRaw(key, iv, pt, aad);
    expect(r.ciphertext.toString('hex')).toBe(ct);
    expect(r.tag.toString('hex')).toBe(tag);
    expect(aesGcmDecryptRaw(key, iv, hex(ct), hex(tag), aad)).toEqual(pt);
    expect(() => aesGcmDecryptRaw(key, iv, hex(ct), flip(hex(tag), 15, 7), aad)).toThrow(DecryptError);
  });
});

describe('AES-256-GCM sealed format', () => {
  const key = randomBytes(32);
  const pt = Buffer.from('file block contents');
  const aad = Buffer.from('chain|dao|v1');

  it('round trips, with and without aad, including empty and large plaintexts', () => {
    expect(aesGcmOpen(key, aesGcmSeal(key, pt, aad), aad)).toEqual(pt);
    expect(aesGcmOpen(key, aesGcmSeal(key, pt))).toEqual(pt);
    expect(aesGcmOpen(key, aesGcmSeal(key, new Uint8Array(0), aad), aad).length).toBe(0);
    const big = randomBytes(1 << 20);
    expect(aesGcmOpen(key, aesGcmSeal(key, big, aad), aad).equals(big)).toBe(true);
  });

  it('is self-describing: id 0x01, version 1, 12-byte nonce, 16-byte tag; nonces are random', () => {
    const a = aesGcmSeal(key, pt, aad);
    const b = aesGcmSeal(key, pt, aad);
    expect(a[0]).toBe(0x01);
    expect(a[1]).toBe(1);
    expect(a.length).toBe(2 + 12 + pt.length + 16);
    expect(a.subarray(2, 14).equals(b.subarray(2, 14))).toBe(false);
  });

  it('never repeats a nonce across refills of the nonce pool (3,000 seals = several 4 KiB refills)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const s = aesGcmSeal(key, pt);
      const n = s.subarray(2, 14).toString('hex');
      expect(n).not.toBe('000000000000000000000000');
      seen.add(n);
      expect(aesGcmOpen(key, s)).toEqual(pt);
    }
    expect(seen.size).toBe(3000);
  });

  it('the header is authenticated and the body matches the raw primitive with aad = header || aad', () => {
    const s = aesGcmSeal(key, pt, aad);
    const raw = aesGcmEncryptRaw(key, s.subarray(2, 14), pt, Buffer.concat([s.subarray(0, 2), aad]));
    expect(Buffer.concat([raw.ciphertext, raw.tag])).toEqual(s.subarray(14));
  });

  it('rejects a flipped bit anywhere in nonce, ciphertext or tag, wrong aad, wrong key', () => {
    const s = aesGcmSeal(key, pt, aad);
    for (const at of [2, 13, 14, 14 + pt.length - 1, s.length - 16, s.length - 1]) {
      expect(() => aesGcmOpen(key, flip(s, at, 3), aad)).toThrow(DecryptError);
    }
    expect(() => aesGcmOpen(key, s, flip(aad, 0))).toThrow(DecryptError);
    expect(() => aesGcmOpen(key, s)).toThrow(DecryptError);
    expect(() => aesGcmOpen(randomBytes(32), s, aad)).toThrow(DecryptError);
    expect(() => aesGcmOpen(key, Buffer.concat([s, Buffer.from([0])]), aad)).toThrow(DecryptError);
  });

  it('rejects bad headers and truncation with typed errors', () => {
    const s = aesGcmSeal(key, pt, aad);
    expect(() => aesGcmOpen(key, flip(s, 1, 1), aad)).toThrow(UnsupportedAlgorithm);
    expect(() => aesGcmOpen(key, flip(s, 0, 7), aad)).toThrow(UnsupportedAlgorithm);
    const asXchacha = Buffer.from(s);
    asXchacha[0] = 0x02;
    expect(() => aesGcmOpen(key, asXchacha, aad)).toThrow(MalformedEncoding);
    for (const n of [0, 1, 2, 10, 29]) {
      expect(() => aesGcmOpen(key, s.subarray(0, n), aad)).toThrow(MalformedEncoding);
    }
  });

  it('rejects keys of the wrong size', () => {
    expect(() => aesGcmSeal(randomBytes(16), pt)).toThrow();
  });
});

describe('XChaCha20-Poly1305', () => {
  it('HChaCha20 test vector (draft-irtf-cfrg-xchacha §2.2.1)', () => {
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const nonce = hex('000000090000004a0000000031415927');
    expect(hchacha20(key, nonce).toString('hex')).toBe(
      '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc',
    );
  });

  it('AEAD test vector (draft-irtf-cfrg-xchacha §A.3.1)', () => {
    const pt = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const aad = hex('50515253c0c1c2c3c4c5c6c7');
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const iv = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
    const out = xchachaEncryptRaw(key, iv, pt, aad);
    expect(out.subarray(0, pt.length).toString('hex')).toBe(
      'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e',
    );
    expect(out.subarray(pt.length).toString('hex')).toBe('c0875924c1c7987947deafd8780acf49');
  });

  it('is byte-identical to noble xchacha20poly1305 for many sizes', () => {
    for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 1000, 4096]) {
      const key = randomBytes(32);
      const nonce = randomBytes(24);
      const pt = randomBytes(n);
      const aad = randomBytes(n % 37);
      const ours = xchachaEncryptRaw(key, nonce, pt, aad);
      const theirs = xchacha20poly1305(key, nonce, aad).encrypt(pt);
      expect(ours.equals(Buffer.from(theirs))).toBe(true);
    }
  });

  it('sealed output opens with noble (header || aad as associated data)', () => {
    const key = randomBytes(32);
    const pt = randomBytes(32);
    const aad = Buffer.from('wrap context');
    const s = xchachaSeal(key, pt, aad);
    expect(s[0]).toBe(0x02);
    expect(s[1]).toBe(1);
    expect(s.length).toBe(2 + 24 + 32 + 16);
    const opened = xchacha20poly1305(key, s.subarray(2, 26), Buffer.concat([s.subarray(0, 2), aad])).decrypt(s.subarray(26));
    expect(Buffer.from(opened)).toEqual(pt);
    expect(xchachaOpen(key, s, aad)).toEqual(pt);
  });

  it('rejects flipped bits in nonce, ciphertext, tag and aad; bad headers; truncation', () => {
    const key = randomBytes(32);
    const pt = randomBytes(32);
    const aad = Buffer.from('ctx');
    const s = xchachaSeal(key, pt, aad);
    for (const at of [2, 17, 25, 26, 26 + 31, s.length - 16, s.length - 1]) {
      expect(() => xchachaOpen(key, flip(s, at, 5), aad)).toThrow(DecryptError);
    }
    expect(() => xchachaOpen(key, s, flip(aad, 2))).toThrow(DecryptError);
    expect(() => xchachaOpen(key, s)).toThrow(DecryptError);
    expect(() => xchachaOpen(randomBytes(32), s, aad)).toThrow(DecryptError);
    expect(() => xchachaOpen(key, flip(s, 1), aad)).toThrow(UnsupportedAlgorithm);
    expect(() => xchachaOpen(key, flip(s, 0, 1), aad)).toThrow(UnsupportedAlgorithm); // id 0x00: unknown
    const asAes = Buffer.from(s);
    asAes[0] = 0x01; // a known id of another kind
    expect(() => xchachaOpen(key, asAes, aad)).toThrow(MalformedEncoding);
    for (const n of [0, 1, 2, 25, 41]) {
      expect(() => xchachaOpen(key, s.subarray(0, n), aad)).toThrow(MalformedEncoding);
    }
    expect(xchachaOpen(key, xchachaSeal(key, new Uint8Array(0))).length).toBe(0);
  });
});
