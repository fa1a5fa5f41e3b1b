import { describe, expect, it } from 'vitest';
import { constantTimeEqual, domainHash, hkdfSha256, hmacSha256, randomBytes, sha256 } from '../../src/crypto/index.js';
import { hex } from './crypto-helpers.js';

const range = (a: number, b: number) => Buffer.from(Array.from({ length: b - a + 1 }, (_, i) => a + i));

describe('SHA-256 (FIPS 180-2 examples)', () => {
  it('abc', () => {
    expect(sha256(Buffer.from('abc')).toString('hex')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
  it('empty message', () => {
    expect(sha256().toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256(new Uint8Array(0)).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });
  it('448-bit message, also when split into parts', () => {
    const m = 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq';
    const want = '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1';
    expect(sha256(Buffer.from(m)).toString('hex')).toBe(want);
    expect(sha256(Buffer.from(m.slice(0, 10)), Buffer.from(m.slice(10))).toString('hex')).toBe(want);
  });
});

describe('HMAC-SHA-256 (RFC 4231)', () => {
  it('test case 1', () => {
    expect(hmacSha256(Buffer.alloc(20, 0x0b), Buffer.from('Hi There')).toString('hex')).toBe(
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    );
  });
  it('test case 2', () => {
    expect(hmacSha256(Buffer.from('Jefe'), Buffer.from('what do ya want '), Buffer.from('for nothing?')).toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });
  it('test case 6 (key longer than the block)', () => {
    const data = Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First');
    expect(hmacSha256(Buffer.alloc(131, 0xaa), data).toString('hex')).toBe(
      '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
    );
  });
});

describe('HKDF-SHA-256 (RFC 5869)', () => {
  it('test case 1', () => {
    expect(hkdfSha256(Buffer.alloc(22, 0x0b), range(0x00, 0x0c), range(0xf0, 0xf9), 42).toString('hex')).toBe(
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
  });
  it('test case 2 (long inputs)', () => {
    expect(hkdfSha256(range(0x00, 0x4f), range(0x60, 0xaf), range(0xb0, 0xff), 82).toString('hex')).toBe(
      'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c' +
        '59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71' +
        'cc30c58179ec3e87c14c01d5c1f3434f1d87',
    );
  });
  it('test case 3 (empty salt and info)', () => {
    expect(hkdfSha256(Buffer.alloc(22, 0x0b), new Uint8Array(0), '', 42).toString('hex')).toBe(
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    );
  });
  it('string info is UTF-8', () => {
    const ikm = randomBytes(32);
    expect(hkdfSha256(ikm, new Uint8Array(0), 'label é', 32)).toEqual(
      hkdfSha256(ikm, new Uint8Array(0), Buffer.from('label é', 'utf8'), 32),
    );
  });
  it('rejects absurd lengths', () => {
    expect(() => hkdfSha256(Buffer.alloc(32), Buffer.alloc(0), '', 0)).toThrow();
    expect(() => hkdfSha256(Buffer.alloc(32), Buffer.alloc(0), '', 255 * 32 + 1)).toThrow();
    expect(() => hkdfSha256(Buffer.alloc(32), Buffer.alloc(0), Buffer.alloc(1025), 32)).toThrow(/hash it first/);
  });
});

describe('domainHash', () => {
  it('is SHA-256 over u32be-length-prefixed domain and parts', () => {
    const framed = Buffer.concat([hex('00000001'), Buffer.from('d'), hex('00000002'), hex('abcd'), hex('00000000')]);
    expect(domainHash('d', hex('abcd'), new Uint8Array(0))).toEqual(sha256(framed));
  });
  it('frames the same around the size where it stops hashing in one call', () => {
    const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
    // Framed: n + 22 bytes; the one-call path takes up to 16 KiB.
    for (const n of [0, 1, 16 * 1024 - 23, 16 * 1024 - 22, 16 * 1024 - 21, 100_000]) {
      const a = randomBytes(n);
      const b = randomBytes(7);
      const framed = Buffer.concat([u32(3), Buffer.from('dom'), u32(n), a, u32(7), b]);
      expect(domainHash('dom', a, b)).toEqual(sha256(framed));
    }
    // Two calls in a row share nothing (the framing buffer is reused).
    const x = domainHash('dom', Buffer.from('x'));
    domainHash('dom', Buffer.alloc(1000, 1));
    expect(domainHash('dom', Buffer.from('x'))).toEqual(x);
  });
  it('framing is unambiguous', () => {
    const a = domainHash('x', Buffer.from('ab'), Buffer.from('c'));
    expect(a).not.toEqual(domainHash('x', Buffer.from('a'), Buffer.from('bc')));
    expect(a).not.toEqual(domainHash('x', Buffer.from('abc')));
    expect(a).not.toEqual(domainHash('xa', Buffer.from('b'), Buffer.from('c')));
    expect(domainHash('x')).not.toEqual(domainHash('x', new Uint8Array(0)));
    expect(domainHash('a')).not.toEqual(domainHash('b'));
  });
});

describe('constantTimeEqual / randomBytes', () => {
  it('compares', () => {
    expect(constantTimeEqual(hex('0102'), hex('0102'))).toBe(true);
    expect(constantTimeEqual(hex('0102'), hex('0103'))).toBe(false);
    expect(constantTimeEqual(hex('0102'), hex('010203'))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });
  it('random bytes differ and have the asked length', () => {
    const a = randomBytes(32);
    expect(a.length).toBe(32);
    expect(a.equals(randomBytes(32))).toBe(false);
  });
});
