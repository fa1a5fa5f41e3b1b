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
import { hkdfSha256 } from '../crypto/index.js';

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

/** v2 seal: version byte, 12-byte nonce, 16-byte Poly1305 tag. */
const V2 = 2;
const NONCE = 12;
const TAG = 16;
const V2_LEN = 1 + NONCE + TAG;

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

function sealMatches(file: string, key: Buffer, seal: Buffer): boolean {
  let want: Buffer;
  let got: Buffer;
  if (seal.length === V2_LEN && seal[0] === V2) {
    want = seal.subarray(1 + NONCE);
    got = polyOfFile(file, polyKey(key), seal.subarray(1, 1 + NONCE));
  } else if (seal.length === 32) {
    want = seal;
    got = hmacOfFile(file, key);
  } else return false;
  return want.length === got.length && timingSafeEqual(want, got);
}

/**
 * Checks the seal of the index in `dir` and removes it (the view is about to write; `keep`: a
 * read-only view, which re-seals on close): null when it holds (or there is no index yet), else
 * why not. The caller then deletes the index (or, read-only, uses a private one).
 */
export function takeIndexSeal(dir: string, key: Buffer, keep = false): string | null {
  const data = join(dir, DATA);
  const seal = join(dir, INDEX_SEAL);
  if (!existsSync(data)) {
    if (!keep) rmSync(seal, { force: true });
    return null;
  }
  if (!existsSync(seal)) return 'index not sealed (not closed cleanly, or changed)';
  const want = readFileSync(seal);
  if (!keep) rmSync(seal, { force: true });
  return sealMatches(data, key, want) ? null : 'index seal does not match (changed behind the view)';
}

/** Seals the index in `dir` once its environment is closed. */
export function sealIndex(dir: string, key: Buffer): void {
  const data = join(dir, DATA);
  if (!existsSync(data)) return;
  // A fresh nonce per seal: Poly1305's key is then used once (the nonce is no secret).
  const nonce = randomBytes(NONCE);
  const tag = polyOfFile(data, polyKey(key), nonce);
  writeFileSync(join(dir, INDEX_SEAL), Buffer.concat([Buffer.from([V2]), nonce, tag]), { mode: 0o600 });
}
