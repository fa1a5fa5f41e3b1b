// The persisted index is a cache that must not lie: whoever can write the chain's storage could
// point a DAO back at an older version, hide an entry or flip bytes, and the view would serve that
// (reads check an entry against the log bytes it points to, not that it is the newest version).
// So the LMDB file is sealed when the view closes: a MAC over its bytes, under a key derived from
// the user's signing key, kept beside it (index/AUTH). On open the seal is checked first and
// removed before anything is written; a missing or wrong seal means the index was changed behind
// the view's back, or the view did not close (a crash): it is deleted and rebuilt from the log,
// which is validated as it is replayed. An older but intact index with its seal is harmless: the
// watermark check then replays the log after it.
//
// The MAC is Poly1305 (ChaCha20-Poly1305 with the file as associated data and nothing encrypted)
// under a fresh random nonce per seal, stored in the seal: a nonce-based MAC, one-time key per
// seal, as strong a check of every byte as the HMAC-SHA-256 it replaces (v1 seals, still
// accepted) but about ten times cheaper. Measured here on a 76 MB index: HMAC-SHA-256 137-200 ms,
// Poly1305 11-23 ms, of which 9-25 ms is reading the file at all (the floor of any whole-file
// check). An HMAC is what made opening with an index 1.24-1.38x slower (issue 13's benchmark).
// A MAC per entry would not cover rollback of single entries to their older, authentic values
// (the rollback test) nor bytes outside the entries (the random-flip test) without a structure
// over all of them that costs the same pass.
//
// Without a signing key (an observer's keyring) the index is not sealed and a view rebuilds it
// on every open.
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createCipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { Keyring } from '../chain/index.js';
import { type CryptoPool, hkdfSha256 } from '../crypto/index.js';

export const INDEX_SEAL = 'AUTH';
const DATA = 'data.mdb';

/** The sealing key of a chain's index, or null when the keyring holds no signing key. */
export function indexSealKey(keyring: Keyring, chainId: string): Buffer | null {
  const k = keyring.signingKeys()[0];
  return k ? hkdfSha256(k.secretKey, Buffer.from('atefs/index-seal'), `v1\0${chainId}`, 32) : null;
}

/** Reads `file` in chunks into `sink`. */
function readFileInto(file: string, sink: (chunk: Buffer) => void): void {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.allocUnsafe(4 << 20);
    for (let n; (n = readSync(fd, b, 0, b.length, null)) > 0;) sink(b.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** v1 seal (32 bytes): HMAC-SHA-256 of the file. Only checked (an index sealed before v2). */
function hmacOfFile(file: string, key: Buffer): Buffer {
  const h = createHmac('sha256', key);
  readFileInto(file, (c) => h.update(c));
  return h.digest();
}

/**
 * v2 seal: version byte, 12-byte nonce, 16-byte Poly1305 tag. v3 appends the watermark the index
 * was closed at (seq and payload bytes, u64 each), so the opener can verify the log up to it while
 * the tag is checked on a worker. The hint is not under the tag and needs not be: an index whose
 * watermark differs from it is verified the slow way, and a hint that lies only costs that.
 */
const V2 = 2;
const V3 = 3;
const NONCE = 12;
const TAG = 16;
const V2_LEN = 1 + NONCE + TAG;
const V3_LEN = V2_LEN + 16;

/** The v2 key: its own subkey (the v1 key stays an HMAC key only). */
function polyKey(key: Buffer): Buffer {
  return hkdfSha256(key, Buffer.from('atefs/index-seal'), 'v2 chacha20-poly1305', 32);
}

/** Poly1305 tag of the file under (key, nonce): ChaCha20-Poly1305 with the file as associated data. */
function polyOfFile(file: string, key: Buffer, nonce: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  readFileInto(file, (chunk) => c.setAAD(chunk, { plaintextLength: 0 }));
  c.final();
  return c.getAuthTag();
}

const isPolySeal = (seal: Buffer) => (seal.length === V2_LEN && seal[0] === V2) || (seal.length === V3_LEN && seal[0] === V3);

/** The tag a sealed file must have and the tag it has (computed here, or on `pool` when given). */
function sealTags(file: string, key: Buffer, seal: Buffer, pool: CryptoPool | null): { want: Buffer; got: Buffer | Promise<Buffer> } | null {
  if (isPolySeal(seal)) {
    const nonce = seal.subarray(1, 1 + NONCE);
    const want = seal.subarray(1 + NONCE, 1 + NONCE + TAG);
    return { want, got: pool ? pool.polyTagOfFile(file, polyKey(key), nonce) : polyOfFile(file, polyKey(key), nonce) };
  }
  if (seal.length === 32) return { want: seal, got: hmacOfFile(file, key) };
  return null;
}

const tagsEqual = (want: Buffer, got: Buffer) => want.length === got.length && timingSafeEqual(want, got);

/** The watermark a v3 seal names (see V3 above), or null. */
export interface SealHint { seq: number; bytes: number }
function hintOf(seal: Buffer): SealHint | null {
  if (seal.length !== V3_LEN || seal[0] !== V3) return null;
  const seq = Number(seal.readBigUInt64BE(V2_LEN));
  const bytes = Number(seal.readBigUInt64BE(V2_LEN + 8));
  return Number.isSafeInteger(seq) && Number.isSafeInteger(bytes) ? { seq, bytes } : null;
}

/**
 * Checks the seal of the index in `dir` and removes it (the view is about to write; `keep`: a
 * read-only view, which re-seals on close): null when it holds (or there is no index yet), else
 * why not. The caller then deletes the index (or, read-only, uses a private one).
 */
export function takeIndexSeal(dir: string, key: Buffer, keep = false): string | null {
  const taken = takeSeal(dir, keep);
  if (typeof taken === 'string' || taken === null) return taken;
  const tags = sealTags(taken.data, key, taken.seal, null);
  return tags && tagsEqual(tags.want, tags.got as Buffer) ? null : MISMATCH;
}

const MISMATCH = 'index seal does not match (changed behind the view)';

/** Reads (and unless `keep` removes) the seal: null (no index yet), why not, or the seal. */
function takeSeal(dir: string, keep: boolean): { data: string; seal: Buffer } | string | null {
  const data = join(dir, DATA);
  const seal = join(dir, INDEX_SEAL);
  if (!existsSync(data)) {
    if (!keep) rmSync(seal, { force: true });
    return null;
  }
  if (!existsSync(seal)) return 'index not sealed (not closed cleanly, or changed)';
  const bytes = readFileSync(seal);
  if (!keep) rmSync(seal, { force: true });
  return { data, seal: bytes };
}

/**
 * takeIndexSeal with the tag computed on a worker of `pool`: `result` settles as takeIndexSeal's
 * answer; meanwhile the caller may read the log (not the index: an index whose seal is not yet
 * known good is never opened, a corrupt LMDB file can crash the process). `hint`: the watermark
 * the index was sealed at (v3 seals), for verifying the log up to it meanwhile.
 */
export function startIndexSealCheck(dir: string, key: Buffer, pool: CryptoPool, keep = false): { result: Promise<string | null>; hint: SealHint | null } {
  const taken = takeSeal(dir, keep);
  if (typeof taken === 'string' || taken === null) return { result: Promise.resolve(taken), hint: null };
  const tags = sealTags(taken.data, key, taken.seal, pool);
  if (!tags) return { result: Promise.resolve(MISMATCH), hint: null };
  const result = Promise.resolve(tags.got).then((got) => (tagsEqual(tags.want, got) ? null : MISMATCH));
  return { result, hint: hintOf(taken.seal) };
}

/** Seals the index in `dir` once its environment is closed; `at`: its watermark (the v3 hint). */
export function sealIndex(dir: string, key: Buffer, at?: SealHint): void {
  const data = join(dir, DATA);
  if (!existsSync(data)) return;
  // A fresh nonce per seal: Poly1305's key is then used once (the nonce is no secret).
  const nonce = randomBytes(NONCE);
  const tag = polyOfFile(data, polyKey(key), nonce);
  const parts = [Buffer.from([at ? V3 : V2]), nonce, tag];
  if (at) {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(BigInt(Math.max(0, at.seq)), 0);
    h.writeBigUInt64BE(BigInt(Math.max(0, at.bytes)), 8);
    parts.push(h);
  }
  writeFileSync(join(dir, INDEX_SEAL), Buffer.concat(parts), { mode: 0o600 });
}
