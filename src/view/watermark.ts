// The watermark binds a persisted index to the exact log it was built from.
//
// It holds the last applied record (seq + position) and a running hash over every applied record:
//   H_0 = 32 zero bytes
//   H_n = domainHash('atefs/view/watermark/v2', H_{n-1}, seq_n (u64be), D_n)
// where D_n, the record's digest, depends on its size:
//   - a record under DIGEST_BYTES_MAX: domainHash('atefs/view/record-bytes/v1', record bytes) — one
//     sequential SHA-256 pass, the cheapest check on reopen for records of many small events;
//   - a larger one (commits of file blocks): domainHash('atefs/view/record/v1', commitHash,
//     (publicKey, signature)*). The commit hash already covers every byte of header, metadata and
//     payloads, so applying such a commit costs no second SHA-256 pass over tens of MiB on the thread
//     that serves FUSE; on reopen the commit hash is recomputed from the stored bytes (decodeCommit),
//     which for a few large events costs about what hashing the bytes does.
// A record changed, removed, inserted or reordered anywhere behind the watermark changes H, so a
// tampered or rolled-back log behind an intact index is detected, and the index is rebuilt
// (re-validating everything) instead of being trusted. An index ahead of the log (log tail lost in
// a crash) fails the same check.
import { type Commit, decodeCommit } from '../chain/index.js';
import { domainHash } from '../crypto/index.js';
import { seqKey, type Watermark } from './index-store.js';

export const WATERMARK_DOMAIN = 'atefs/view/watermark/v2';
const RECORD_DOMAIN = 'atefs/view/record/v1';
const RECORD_BYTES_DOMAIN = 'atefs/view/record-bytes/v1';
/** Records from this size on are digested by their commit hash (see above). */
export const DIGEST_BYTES_MAX = 256 << 10;
export const ZERO_HASH: Buffer = Buffer.alloc(32);


function commitDigest(c: Pick<Commit, 'hash' | 'signatures'>): Buffer {
  const parts: Uint8Array[] = [c.hash];
  for (const s of c.signatures) parts.push(s.publicKey, s.signature);
  return domainHash(RECORD_DOMAIN, ...parts);
}

/** The digest the watermark chains for an applied commit (its record bytes, or pieces, are at hand). */
export function recordDigest(c: Commit): Buffer {
  const size = c.size ?? c.bytes.length;
  // A small built commit's bytes are joined once anyway: the view caches small records.
  return size >= DIGEST_BYTES_MAX ? commitDigest(c) : domainHash(RECORD_BYTES_DOMAIN, c.bytes);
}

/**
 * The digest of a record read back from the log: small records are hashed as bytes (no decoding);
 * large ones are decoded, which recomputes and checks their commit hash. Throws CommitRejected when
 * a large record's bytes no longer match its hash.
 */
export function storedRecordDigest(record: Uint8Array): Buffer {
  if (record.length < DIGEST_BYTES_MAX) return domainHash(RECORD_BYTES_DOMAIN, record);
  return commitDigest(decodeCommit(record));
}

export function nextChainHash(prev: Uint8Array, seq: number, digest: Uint8Array): Buffer {
  return domainHash(WATERMARK_DOMAIN, prev, seqKey(seq), digest);
}

export function emptyWatermark(): Watermark {
  return { seq: -1, segment: 0, offset: 0, chainHash: ZERO_HASH, prevHash: ZERO_HASH, records: 0, bytes: 0 };
}

/** The watermark after applying `commit` at `pos`. */
export function advanceWatermark(
  w: Watermark,
  seq: number,
  pos: { segment: number; offset: number },
  commit: Commit,
): Watermark {
  return advanceWatermarkBy(w, seq, pos, recordDigest(commit), commit.size ?? commit.bytes.length);
}

/** The watermark after a record of `size` bytes whose digest is known (recordDigest / storedRecordDigest). */
export function advanceWatermarkBy(
  w: Watermark,
  seq: number,
  pos: { segment: number; offset: number },
  digest: Uint8Array,
  size: number,
): Watermark {
  return {
    seq,
    segment: pos.segment,
    offset: pos.offset,
    chainHash: nextChainHash(w.chainHash, seq, digest),
    prevHash: w.chainHash,
    records: w.records + 1,
    bytes: w.bytes + size,
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
