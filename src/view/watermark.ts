// The watermark binds a persisted index to the exact log it was built from.
//
// It holds the last applied record (seq + position) and a running hash over every applied record:
//   H_0 = 32 zero bytes
//   H_n = domainHash('atefs/view/watermark/v2', H_{n-1}, seq_n (u64be), D_n)
//   D_n = domainHash('atefs/view/record/v1', commitHash_n, (publicKey, signature)*)
// The commit hash already covers every byte of the header, metadata and payloads (it is what the
// signatures sign), so applying a commit costs no second pass over its payloads (v1 re-hashed the
// whole record: as much SHA-256 again as the commit's own hashing, per commit of file blocks).
// On reopen the view decodes the log up to the watermark, recomputes every commit hash from the
// stored bytes (decodeCommit; no signature checks: a small fraction of a rebuild) and compares. A record changed, removed,
// inserted or reordered anywhere behind the watermark changes H, so a tampered or rolled-back log
// behind an intact index is detected, and the index is rebuilt (re-validating everything) instead
// of being trusted. An index ahead of the log (log tail lost in a crash) fails the same check.
import type { Commit } from '../chain/index.js';
import { domainHash } from '../crypto/index.js';
import { seqKey, type Watermark } from './index-store.js';

export const WATERMARK_DOMAIN = 'atefs/view/watermark/v2';
const RECORD_DOMAIN = 'atefs/view/record/v1';
export const ZERO_HASH: Buffer = Buffer.alloc(32);

/** What the watermark chains for one record: its commit hash and its signatures. */
export function recordDigest(c: Pick<Commit, 'hash' | 'signatures'>): Buffer {
  const parts: Uint8Array[] = [c.hash];
  for (const s of c.signatures) parts.push(s.publicKey, s.signature);
  return domainHash(RECORD_DOMAIN, ...parts);
}

export function nextChainHash(prev: Uint8Array, seq: number, digest: Uint8Array): Buffer {
  return domainHash(WATERMARK_DOMAIN, prev, seqKey(seq), digest);
}

export function emptyWatermark(): Watermark {
  return { seq: -1, segment: 0, offset: 0, chainHash: ZERO_HASH, prevHash: ZERO_HASH, records: 0, bytes: 0 };
}

/** The watermark after applying `commit` (decoded from a record of `recordBytes` bytes) at `pos`. */
export function advanceWatermark(
  w: Watermark,
  seq: number,
  pos: { segment: number; offset: number },
  commit: Commit,
): Watermark {
  return {
    seq,
    segment: pos.segment,
    offset: pos.offset,
    chainHash: nextChainHash(w.chainHash, seq, recordDigest(commit)),
    prevHash: w.chainHash,
    records: w.records + 1,
    bytes: w.bytes + (commit.size ?? commit.bytes.length),
  };
}

export function sameWatermark(a: Watermark, b: Watermark): boolean {
  return (
    a.seq === b.seq &&
    a.segment === b.segment &&
    a.offset === b.offset &&
    a.records === b.records &&
    a.bytes === b.bytes &&
    Buffer.from(a.chainHash).equals(Buffer.from(b.chainHash))
  );
}
