// The persisted index is a cache that must not lie: whoever can write the chain's storage could
// point a DAO back at an older version, hide an entry or flip bytes, and the view would serve that
// (reads check an entry against the log bytes it points to, not that it is the newest version).
// So the LMDB file is sealed when the view closes: an HMAC over its bytes, under a key derived from
// the user's signing key, kept beside it (index/AUTH). On open the seal is checked first and
// removed before anything is written; a missing or wrong seal means the index was changed behind
// the view's back, or the view did not close (a crash): it is deleted and rebuilt from the log,
// which is validated as it is replayed. An older but intact index with its seal is harmless: the
// watermark check then replays the log after it.
//
// Cost: one SHA-256 pass over the index file on open and on close (~2 ms per MiB here), no
// per-entry work on the read or write paths. Without a signing key (an observer's keyring) the
// index is not sealed and a view rebuilds it on every open.
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createHmac, timingSafeEqual } from 'node:crypto';
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

function macOfFile(file: string, key: Buffer): Buffer {
  const h = createHmac('sha256', key);
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.allocUnsafe(4 << 20);
    for (let n; (n = readSync(fd, b, 0, b.length, null)) > 0;) h.update(b.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest();
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
  const got = macOfFile(data, key);
  return want.length === got.length && timingSafeEqual(want, got) ? null : 'index seal does not match (changed behind the view)';
}

/** Seals the index in `dir` once its environment is closed. */
export function sealIndex(dir: string, key: Buffer): void {
  const data = join(dir, DATA);
  if (!existsSync(data)) return;
  writeFileSync(join(dir, INDEX_SEAL), macOfFile(data, key), { mode: 0o600 });
}
