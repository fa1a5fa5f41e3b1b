import { describe, expect, it } from 'vitest';
import { randomBytes, randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { crc, decodeHeader, decodeManifest, encodeFrame, encodeFrameHeader, encodeHeader, encodeManifest, frameLen, frameOk, frameSeq } from '../../src/log/format.js';

describe('log format', () => {
  it('the table CRC equals zlib.crc32 for every length and alignment', () => {
    const b = randomBytes(1200);
    for (let start = 0; start < 9; start++) for (let len = 0; len < 1100; len += start + 1) expect(crc(b, start, start + len)).toBe(crc32(b.subarray(start, start + len)));
  });

  it('frames carry length and seq (beyond 2^32), and any single flipped bit breaks the checksum', () => {
    const seq = 2 ** 40 + 12345;
    const f = encodeFrame(seq, Buffer.from('hello frame'));
    expect(frameLen(f, 0)).toBe(11);
    expect(frameSeq(f, 0)).toBe(seq);
    expect(frameOk(f, 0, 11)).toBe(true);
    for (let bit = 0; bit < f.length * 8; bit++) {
      const g = Buffer.from(f);
      g[bit >> 3]! ^= 1 << (bit & 7);
      const len = frameLen(g, 0);
      expect(len === 11 && frameOk(g, 0, len)).toBe(false);
    }
  });

  it('a separate frame header (large payloads, written without a copy) is exactly the framed bytes', () => {
    for (const n of [0, 1, 383, 384, 70_000]) {
      const p = randomBytes(n);
      const seq = 2 ** 33 + n;
      expect(Buffer.concat([encodeFrameHeader(seq, p), p]).equals(encodeFrame(seq, p))).toBe(true);
    }
  });

  it('segment headers round-trip and reject damage', () => {
    const g = randomBytes(32);
    const h = encodeHeader({ chainId: 'acme/docs', genesisHash: g, segment: 7, firstSeq: 2 ** 33 });
    const d = decodeHeader(Buffer.concat([h, randomBytes(10)]));
    expect(d).toMatchObject({ chainId: 'acme/docs', segment: 7, firstSeq: 2 ** 33, headerLen: h.length });
    expect((d as { genesisHash: Buffer }).genesisHash.equals(g)).toBe(true);
    expect(decodeHeader(encodeHeader({ chainId: 'x', genesisHash: null, segment: 1, firstSeq: 1 }))).toMatchObject({ genesisHash: null });
    for (let i = 0; i < 50; i++) {
      const x = Buffer.from(h);
      x[randomInt(0, x.length)]! ^= 1 << randomInt(0, 8);
      expect(typeof decodeHeader(x)).toBe('string');
    }
    expect(typeof decodeHeader(h.subarray(0, h.length - 1))).toBe('string');
  });

  it('the manifest round-trips and rejects damage', () => {
    const m = encodeManifest({ chainId: 'c', segments: [3, 9, 4] });
    expect(decodeManifest(m)).toEqual({ chainId: 'c', segments: [3, 9, 4] });
    const x = Buffer.from(m);
    x[3]! ^= 0x10;
    expect(typeof decodeManifest(x)).toBe('string');
  });
});
