// A sealed payload's CRC-32 is computed on its worker and combined into every log frame that
// carries it (known-crc.ts): the combined CRC must equal zlib's over the whole frame, for any split.
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { BulkCryptoPool, randomBytes } from '../../src/crypto/index.js';
import { crc32Combine, crc32Parts, knownCrc, rememberCrc } from '../../src/crypto/known-crc.js';
import { encodeFrame, encodeFrameHeaderParts, frameOk } from '../../src/log/format.js';

const pool = new BulkCryptoPool({ size: 2 });
afterAll(() => pool.close());

describe('known CRCs', () => {
  it('crc32Combine(crc(A), crc(B), |B|) is crc(A ++ B) for any A and B', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
      expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])));
    }), { numRuns: 300 });
    // Lengths past 2^16 and 2^24 exercise the higher powers of x.
    for (const n of [65_536, 1 << 20, (1 << 24) + 3]) {
      const a = randomBytes(100);
      const b = Buffer.alloc(n, 0x5a);
      expect(crc32Combine(crc32(a), crc32(b), n)).toBe(crc32(Buffer.concat([a, b])));
    }
  });

  it('crc32Parts uses a remembered CRC only for that buffer object, and equals zlib over the concatenation', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.uint8Array({ maxLength: 2000 }), fc.boolean()), { maxLength: 8 }), fc.integer({ min: 0, max: 0xffffffff }), (pieces, init) => {
      const parts = pieces.map(([p, remember]) => {
        const b = Buffer.from(p);
        if (remember) rememberCrc(b, crc32(b));
        return b;
      });
      const whole = Buffer.concat(parts);
      expect(crc32Parts(parts, init)).toBe(whole.length === 0 ? init : crc32(whole, init));
    }), { numRuns: 300 });
    // A remembered value is really used (a wrong one shows): the reason it must never be wrong.
    const p = randomBytes(5000);
    rememberCrc(p, crc32(p) ^ 1);
    expect(crc32Parts([p], 0)).not.toBe(crc32(p));
    expect(knownCrc(Buffer.from(p))).toBeUndefined();
  });

  it('the bulk pool remembers each sealed payload\'s CRC, and a log frame built from it verifies', async () => {
    const key = randomBytes(32);
    const items = [0, 1, 4096, 65_536, 100_000].map((n, i) => ({ key, aad: Buffer.from(`aad ${i}`), meta: Buffer.from(`m${i}`), plaintext: randomBytes(n) }));
    const out = await pool.sealAndHash(items, 'atefs/test/v1');
    for (const o of out) expect(knownCrc(o.sealed)).toBe(crc32(o.sealed));
    const head = Buffer.from('small header part');
    const parts = [head, ...out.flatMap((o) => [Buffer.from('meta'), o.sealed])];
    const size = parts.reduce((n, p) => n + p.length, 0);
    const frame = Buffer.concat([encodeFrameHeaderParts(77, parts, size), ...parts]);
    expect(frame.equals(encodeFrame(77, Buffer.concat(parts)))).toBe(true);
    expect(frameOk(frame, 0, size)).toBe(true);
  });
});
