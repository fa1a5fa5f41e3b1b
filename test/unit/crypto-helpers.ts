// Shared by the crypto suites: hex literals and single-bit tampering.
export const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** A copy of `b` with one bit flipped (the original is left as it is). */
export function flip(b: Uint8Array, byte: number, bit = 0): Buffer {
  const c = Buffer.from(b);
  c[byte]! ^= 1 << bit;
  return c;
}
