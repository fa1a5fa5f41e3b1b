import { describe, expect, it } from 'vitest';
import {
  CryptoError,
  decodeScryptParams,
  deriveKeyFromPassword,
  encodeScryptParams,
  MalformedEncoding,
  PRODUCTION_SCRYPT,
  randomBytes,
  TEST_SCRYPT,
  UnsupportedAlgorithm,
} from '../../src/crypto/index.js';

describe('scrypt (RFC 7914 §12)', () => {
  it('N=16, r=1, p=1, empty password and salt', async () => {
    const k = await deriveKeyFromPassword('', new Uint8Array(0), { N: 16, r: 1, p: 1, keyLen: 64 });
    expect(k.toString('hex')).toBe(
      '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906',
    );
  });
  it('N=1024, r=8, p=16, "password" / "NaCl"', async () => {
    const k = await deriveKeyFromPassword(Buffer.from('password'), Buffer.from('NaCl'), { N: 1024, r: 8, p: 16, keyLen: 64 });
    expect(k.toString('hex')).toBe(
      'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640',
    );
  });
});

describe('deriveKeyFromPassword', () => {
  const salt = randomBytes(16);
  it('depends on password and salt; string passwords are NFKC-normalized UTF-8', async () => {
    const a = await deriveKeyFromPassword('correct horse', salt, TEST_SCRYPT);
    expect(a.length).toBe(32);
    expect(await deriveKeyFromPassword('correct horse', salt, TEST_SCRYPT)).toEqual(a);
    expect(await deriveKeyFromPassword('correct horsf', salt, TEST_SCRYPT)).not.toEqual(a);
    expect(await deriveKeyFromPassword('correct horse', randomBytes(16), TEST_SCRYPT)).not.toEqual(a);
    // U+00E9 (precomposed) and e + U+0301 (combining) are the same typed password
    expect(await deriveKeyFromPassword('caf\u00e9', salt, TEST_SCRYPT)).toEqual(
      await deriveKeyFromPassword('cafe\u0301', salt, TEST_SCRYPT),
    );
    expect(await deriveKeyFromPassword('caf\u00e9', salt, TEST_SCRYPT)).toEqual(
      await deriveKeyFromPassword(Buffer.from('caf\u00e9', 'utf8'), salt, TEST_SCRYPT),
    );
  });
  it('rejects absurd parameters before doing any work', async () => {
    for (const p of [
      { N: 1000, r: 8, p: 1, keyLen: 32 },
      { N: 2 ** 30, r: 8, p: 1, keyLen: 32 },
      { N: 2 ** 20, r: 32, p: 1, keyLen: 32 },
      { N: 1024, r: 0, p: 1, keyLen: 32 },
      { N: 1024, r: 8, p: 1000, keyLen: 32 },
      { N: 1024, r: 8, p: 1, keyLen: 4 },
    ]) {
      await expect(deriveKeyFromPassword('pw', salt, p)).rejects.toBeInstanceOf(CryptoError);
    }
  });
  it('refuses test-strength parameters outside tests', async () => {
    const saved = { VITEST: process.env['VITEST'], NODE_ENV: process.env['NODE_ENV'], W: process.env['ATEFS_ALLOW_WEAK_KDF'] };
    delete process.env['VITEST'];
    delete process.env['NODE_ENV'];
    delete process.env['ATEFS_ALLOW_WEAK_KDF'];
    try {
      await expect(deriveKeyFromPassword('pw', salt, TEST_SCRYPT)).rejects.toThrow(/test-strength/);
      process.env['ATEFS_ALLOW_WEAK_KDF'] = '1';
      expect((await deriveKeyFromPassword('pw', salt, TEST_SCRYPT)).length).toBe(32);
    } finally {
      for (const [k, v] of [['VITEST', saved.VITEST], ['NODE_ENV', saved.NODE_ENV], ['ATEFS_ALLOW_WEAK_KDF', saved.W]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
  it('production parameters are stronger than test ones', () => {
    expect(PRODUCTION_SCRYPT.N * PRODUCTION_SCRYPT.r).toBeGreaterThan(64 * TEST_SCRYPT.N * TEST_SCRYPT.r);
    expect(PRODUCTION_SCRYPT.keyLen).toBe(32);
  });
});

describe('scrypt parameter encoding', () => {
  const salt = randomBytes(16);
  it('round trips and is versioned', () => {
    for (const p of [PRODUCTION_SCRYPT, TEST_SCRYPT, { N: 2 ** 15, r: 16, p: 2, keyLen: 64 }]) {
      const e = encodeScryptParams(p, salt);
      expect(e.subarray(0, 2)).toEqual(Buffer.from([0x30, 1]));
      const d = decodeScryptParams(e);
      expect(d.params).toEqual({ ...p });
      expect(d.salt).toEqual(salt);
    }
  });
  it('rejects truncated, oversized and absurd encodings with MalformedEncoding', () => {
    const e = encodeScryptParams(PRODUCTION_SCRYPT, salt);
    for (let n = 0; n < e.length; n++) {
      expect(() => decodeScryptParams(e.subarray(0, n))).toThrow(MalformedEncoding);
    }
    expect(() => decodeScryptParams(Buffer.concat([e, Buffer.from([0])]))).toThrow(MalformedEncoding);
    const absurd = (at: number, v: number, width = 1) => {
      const b = Buffer.from(e);
      if (width === 1) b[at] = v;
      else b.writeUInt32BE(v, at);
      return b;
    };
    expect(() => decodeScryptParams(absurd(2, 40))).toThrow(MalformedEncoding); // N = 2^40
    expect(() => decodeScryptParams(absurd(2, 0))).toThrow(MalformedEncoding); // N = 1
    expect(() => decodeScryptParams(absurd(3, 0xffffffff, 4))).toThrow(MalformedEncoding); // r
    expect(() => decodeScryptParams(absurd(7, 0xffffffff, 4))).toThrow(MalformedEncoding); // p
    expect(() => decodeScryptParams(absurd(13, 255))).toThrow(MalformedEncoding); // salt length
    expect(() => decodeScryptParams(absurd(1, 9))).toThrow(UnsupportedAlgorithm);
  });
  it('refuses to encode short salts', () => {
    expect(() => encodeScryptParams(PRODUCTION_SCRYPT, randomBytes(4))).toThrow(CryptoError);
  });
});
