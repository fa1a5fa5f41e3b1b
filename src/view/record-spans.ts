// Where each event's bytes are inside a commit record, found by walking the msgpack structure
// (array and bin headers only: O(events), no copying, no hashing). The view stores these spans in
// its index so that a load touches one event's bytes, not the whole commit (a commit of the fs can
// hold hundreds of 64 KiB blocks). Layout (src/chain/codec.ts):
//   u8 format || [ hash(bin), headerBytes(bin), [ [metaBytes(bin), payload(bin|nil)], ... ], sigs ]

export interface EventSpan {
  metaStart: number;
  metaLen: number;
  /** -1 when the event has no payload. */
  payloadStart: number;
  payloadLen: number;
}

class SpanError extends Error {
  override name = 'SpanError';
}

function arrayLen(b: Buffer, o: number): [len: number, next: number] {
  const t = b[o];
  if (t === undefined) throw new SpanError('record truncated');
  if (t >= 0x90 && t <= 0x9f) return [t - 0x90, o + 1];
  if (t === 0xdc) return [b.readUInt16BE(o + 1), o + 3];
  if (t === 0xdd) return [b.readUInt32BE(o + 1), o + 5];
  throw new SpanError(`expected an array at ${o}`);
}

/** [start, len, next] of a bin (or a str, which msgpack may use for nothing here but is harmless). */
function binSpan(b: Buffer, o: number): [start: number, len: number, next: number] {
  const t = b[o];
  if (t === 0xc4) return [o + 2, b[o + 1]!, o + 2 + b[o + 1]!];
  if (t === 0xc5) {
    const n = b.readUInt16BE(o + 1);
    return [o + 3, n, o + 3 + n];
  }
  if (t === 0xc6) {
    const n = b.readUInt32BE(o + 1);
    return [o + 5, n, o + 5 + n];
  }
  throw new SpanError(`expected bytes at ${o}`);
}

export function eventSpans(record: Buffer): EventSpan[] {
  let o = 1; // format byte
  const [top, a] = arrayLen(record, o);
  if (top !== 4) throw new SpanError('commit: expected 4 fields');
  o = a;
  o = binSpan(record, o)[2]; // hash
  o = binSpan(record, o)[2]; // header
  const [n, e] = arrayLen(record, o);
  o = e;
  const out: EventSpan[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const [two, p] = arrayLen(record, o);
    if (two !== 2) throw new SpanError('event: expected [meta, payload]');
    const [ms, ml, q] = binSpan(record, p);
    if (record[q] === 0xc0) {
      out[i] = { metaStart: ms, metaLen: ml, payloadStart: -1, payloadLen: 0 };
      o = q + 1;
    } else {
      const [ps, pl, r] = binSpan(record, q);
      out[i] = { metaStart: ms, metaLen: ml, payloadStart: ps, payloadLen: pl };
      o = r;
    }
  }
  if (o > record.length) throw new SpanError('record truncated');
  return out;
}
