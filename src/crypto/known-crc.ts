// CRC-32 (zlib's) that travels with a buffer: a sealing worker computes the CRC of each sealed
// payload it returns, and every log that writes that payload (a local chain's log; a remote
// mount's staging log, its view's log and its replica) combines it into the frame's CRC instead of
// reading the payload again on the serving thread. Payloads are immutable once sealed (their event
// hash covers them), which is what makes a CRC remembered by object identity safe.
import { crc32 } from 'node:zlib';

const known = new WeakMap<Uint8Array, number>();

/** `buf`'s CRC-32 is `value` (computed elsewhere, e.g. on a worker); `buf` must never change. */
export function rememberCrc(buf: Uint8Array, value: number): void {
  known.set(buf, value >>> 0);
}

/** The remembered CRC-32 of exactly this buffer object, if any. */
export function knownCrc(buf: Uint8Array): number | undefined {
  return known.get(buf);
}

const POLY = 0xedb88320;

/** a(x) * b(x) modulo the CRC polynomial (reflected bit order, as zlib's crc32_combine). */
function multModP(a: number, b: number): number {
  let p = 0;
  for (let m = 0x80000000; ; m >>>= 1) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo the polynomial. */
const X2N = new Uint32Array(32);
X2N[0] = 0x40000000; // x^1
for (let k = 1; k < 32; k++) X2N[k] = multModP(X2N[k - 1]!, X2N[k - 1]!);

/** x^(n * 2^k) modulo the polynomial. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n > 0) {
    if (n % 2 === 1) p = multModP(X2N[k & 31]!, p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}

/** CRC-32 of A followed by B, from crc(A), crc(B) and B's length (zlib's crc32_combine). */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB === 0) return crcA >>> 0;
  return (multModP(x2nModP(lengthB, 3), crcA >>> 0) ^ crcB) >>> 0;
}

/**
 * CRC-32 of `init`'s data followed by every piece of `parts` (zlib.crc32(part, init) chained),
 * combining remembered CRCs instead of reading those pieces.
 */
export function crc32Parts(parts: readonly Uint8Array[], init: number): number {
  let c = init >>> 0;
  for (const p of parts) {
    // (zlib.crc32 of an empty buffer ignores its starting value and returns 0.)
    if (p.length === 0) continue;
    const k = known.get(p);
    c = k === undefined ? crc32(p, c) : crc32Combine(c, k, p.length);
  }
  return c >>> 0;
}
