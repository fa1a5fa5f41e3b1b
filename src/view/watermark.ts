// The watermark binds a persisted index to the exact log it was built from.
//
// It holds the last applied record (seq + position) and a running hash over every applied record:
//   H_0 = 32 zero bytes
//   H_n = domainHash('atefs/view/watermark/v1', H_{n-1}, seq_n (u64be), payload_n)
// On reopen the view re-hashes the log up to the watermark (sequential reads + SHA-256, no decoding,
// no signature checks: a small fraction of a rebuild) and compares. A record changed, removed,
// inserted or reordered anywhere behind the watermark changes H, so a tampered or rolled-back log
// behind an intact index is detected, and the index is rebuilt (re-validating everything) instead
// of being trusted. An index ahead of the log (log tail lost in a crash) fails the same check.
import { domainHash } from '../crypto/index.js';
import { seqKey, type Watermark } from './index-store.js';

export const WATERMARK_DOMAIN = 'atefs/view/watermark/v1';
export const ZERO_HASH: Buffer = Buffer.alloc(32);

export function nextChainHash(prev: Uint8Array, seq: number, payload: Uint8Array): Buffer {
  return domainHash(WATERMARK_DOMAIN, prev, seqKey(seq), payload);
}

export function emptyWatermark(): Watermark {
  return { seq: -1, segment: 0, offset: 0, chainHash: ZERO_HASH, prevHash: ZERO_HASH, records: 0, bytes: 0 };
}

export function advanceWatermark(
  w: Watermark,
  seq: number,
  pos: { segment: number; offset: number },
  payload: Uint8Array,
): Watermark {
  return {
    seq,
    segment: pos.segment,
    offset: pos.offset,
    chainHash: nextChainHash(w.chainHash, seq, payload),
    prevHash: w.chainHash,
    records: w.records + 1,
    bytes: w.bytes + payload.length,
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
