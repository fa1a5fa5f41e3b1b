// Hashes, MACs, KDF and randomness, all on node:crypto (SHA-NI fast path).
import * as nodeCrypto from 'node:crypto';
import { CryptoError } from './errors.js';

// node >= 20.12 has a one-shot crypto.hash (no Hash object per call, ~25 % cheaper for the small
// inputs hashed once per chain event); same digest.
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;

export function sha256(...parts: Uint8Array[]): Buffer {
  if (parts.length === 1 && oneShot) return oneShot('sha256', parts[0]!, 'buffer');
  const h = nodeCrypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

function u32be(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/**
 * SHA-256 over length-prefixed framing: u32be(len(domain)) || domain || (u32be(len(part)) || part)*.
 * The framing is injective (the tuple (domain, parts...) can be parsed back), so two different
 * inputs never frame to the same bytes and hashes of different domains never collide by construction.
 */
export function domainHash(domain: string, ...parts: Uint8Array[]): Buffer {
  const d = domainBytes(domain);
  let total = 4 + d.length;
  for (const p of parts) total += 4 + p.length;
  // Small inputs (event and commit hashes, the index's watermark, key ids: several per commit)
  // are framed into one scratch buffer and hashed in one call: a Hash object and an update() per
  // part cost more than the hashing itself. Same bytes hashed, same digest.
  if (oneShot && total <= FRAME_SCRATCH) {
    const b = frameScratch;
    b.writeUInt32BE(d.length, 0);
    b.set(d, 4);
    let o = 4 + d.length;
    for (const p of parts) {
      b.writeUInt32BE(p.length, o);
      b.set(p, o + 4);
      o += 4 + p.length;
    }
    return oneShot('sha256', b.subarray(0, o), 'buffer');
  }
  const h = nodeCrypto.createHash('sha256');
  h.update(u32be(d.length));
  h.update(d);
  for (const p of parts) {
    if (p.length > 0xffffffff) throw new CryptoError('domainHash: part larger than 4 GiB');
    h.update(u32be(p.length));
    h.update(p);
  }
  return h.digest();
}

/** Framed inputs up to this size take domainHash's one-call path (the copy is cheaper than the calls). */
const FRAME_SCRATCH = 16 << 10;
const frameScratch = Buffer.allocUnsafe(FRAME_SCRATCH);
/** The UTF-8 bytes of the domains seen so far: a handful of constants. */
const domains = new Map<string, Buffer>();
function domainBytes(domain: string): Buffer {
  let d = domains.get(domain);
  if (!d) {
    d = Buffer.from(domain, 'utf8');
    if (domains.size < 256) domains.set(domain, d);
  }
  return d;
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = nodeCrypto.createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array | string,
  length: number,
): Buffer {
  if (!Number.isInteger(length) || length < 1 || length > 255 * 32) {
    throw new CryptoError(`hkdfSha256: invalid output length ${length}`);
  }
  const infoBytes = typeof info === 'string' ? Buffer.from(info, 'utf8') : info;
  // node's hkdfSync refuses info longer than 1024 bytes; callers pass labels and hashes, so longer
  // context belongs in a domainHash first.
  if (infoBytes.length > 1024) throw new CryptoError('hkdfSha256: info longer than 1024 bytes; hash it first');
  return Buffer.from(nodeCrypto.hkdfSync('sha256', ikm, salt, infoBytes, length));
}

export function randomBytes(n: number): Buffer {
  return nodeCrypto.randomBytes(n);
}

/** Constant time for equal lengths; returns false (never throws) on a length mismatch. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return nodeCrypto.timingSafeEqual(a, b);
}
