// Codec: every metadata kind round-trips; hashes are over the stored bytes; structure and size
// limits reject with 'malformed'; the format version byte is checked.
import { Packr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import {
  COMMIT_FORMAT,
  CommitRejected,
  type EventMeta,
  assembleCommit,
  decodeCommit,
  decodeEventAt,
  decodeMeta,
  encodeCommitParts,
  encodeCommitRecord,
  encodeMeta,
  eventHash,
  hashCommitParts,
  makeEvent,
  newDaoKey,
} from '../../src/chain/index.js';
import { domainHash, randomBytes } from '../../src/crypto/index.js';
import { meta } from './chain-fixtures.js';
import { eventSpans } from '../../src/view/record-spans.js';

const id32 = (c: string) => c.repeat(64);
const id16 = (c: string) => c.repeat(32);

const full: EventMeta = meta({
  key: newDaoKey(),
  version: 7,
  tombstone: false,
  parent: { key: newDaoKey(), collection: 4_000_000_000 },
  read: { mode: 'readers', readers: [{ kind: 'sym', id: id32('a') }, { kind: 'kem', id: id32('b') }] },
  write: { mode: 'all', keys: [id32('c'), id32('d')] },
  nodeKey: id16('e'),
  grants: [{ id: id16('e'), wraps: [{ reader: { kind: 'kem', id: id32('b') }, sealed: Buffer.from('wrapped') }] }],
  payloadKey: id16('f'),
  publish: [Buffer.from([0x20, 1, 2, 3])],
  type: 'inode',
  replyTo: newDaoKey(),
});

function reject(fn: () => unknown): CommitRejected {
  try {
    fn();
  } catch (e) {
    if (e instanceof CommitRejected) return e;
    throw e;
  }
  throw new Error('expected CommitRejected');
}

function commitOf(events: EventMeta[]) {
  const evs = events.map((m) => makeEvent(m, m.payloadKey ? Buffer.from('ciphertext') : null));
  const header = { chain: Buffer.alloc(32, 9), timestamp: 1_800_000_000_000, genesis: null };
  const { headerBytes, hash } = hashCommitParts(header, evs);
  return assembleCommit(header, headerBytes, hash, evs, [{ publicKey: Buffer.from([0x10, 1]), signature: Buffer.from([0x12, 1]) }]);
}

describe('codec', () => {
  test('every metadata kind round-trips; minimal metadata is small', () => {
    expect(decodeMeta(encodeMeta(full))).toEqual(full);
    for (const m of [
      meta({ key: newDaoKey(), tombstone: true, write: { mode: 'nobody' } }),
      meta({ key: newDaoKey(), read: { mode: 'chain' }, nodeKey: id16('1'), write: { mode: 'any', keys: [id32('2')] } }),
    ]) {
      expect(decodeMeta(encodeMeta(m))).toEqual(m);
    }
    expect(encodeMeta(meta({ key: newDaoKey() })).length).toBeLessThan(30);
  });

  test('a commit decodes to the same hash, events and bytes', () => {
    const c = commitOf([full, meta({ key: newDaoKey() })]);
    expect(c.bytes[0]).toBe(COMMIT_FORMAT);
    const d = decodeCommit(c.bytes);
    expect(d.hash.equals(c.hash)).toBe(true);
    expect(d.events.map((e) => e.meta)).toEqual([full, meta({ key: d.events[1]!.meta.key })]);
    expect(d.events[0]!.payload!.toString()).toBe('ciphertext');
    expect(d.events[1]!.payload).toBeNull();
    expect(d.bytes).toBe(c.bytes);
    const one = decodeEventAt(c.bytes, 0);
    expect(one.meta).toEqual(full);
    expect(one.metaBytes.equals(c.events[0]!.metaBytes)).toBe(true);
    expect(decodeEventAt(c.bytes, 1).payload).toBeNull();
    expect(() => decodeEventAt(c.bytes, 2)).toThrow(CommitRejected);
  });

  test('the hand-written record encoder produces exactly msgpackr\'s bytes', () => {
    const packr = new Packr({ useRecords: false });
    // Sizes across every bin / array header width: fix, 8-bit, 16-bit and 32-bit lengths.
    for (const sizes of [[0], [1, 255], [256, 65535], [65536, 70000], Array.from({ length: 17 }, (_, i) => i * 40)]) {
      const events = sizes.map((n, i) => makeEvent(meta({ key: newDaoKey(), version: i + 1 }), i % 3 === 2 ? null : randomBytes(n)));
      const { headerBytes, hash } = hashCommitParts({ chain: Buffer.alloc(32, 1), timestamp: 5, genesis: null }, events);
      const sigs = Array.from({ length: sizes.length % 3 }, () => ({ publicKey: randomBytes(1954), signature: randomBytes(3375) }));
      const ours = encodeCommitRecord(hash, headerBytes, events, sigs);
      const body = packr.pack([hash, headerBytes, events.map((e) => [e.metaBytes, e.payload]), sigs.map((s) => [s.publicKey, s.signature])]);
      expect(ours.equals(Buffer.concat([Buffer.from([COMMIT_FORMAT]), body]))).toBe(true);
      expect(decodeCommit(ours).hash.equals(hash)).toBe(true);
      // The pieces join to the same bytes, reference the payloads themselves, and know the spans.
      const { parts, size, spans } = encodeCommitParts(hash, headerBytes, events, sigs);
      expect(size).toBe(ours.length);
      expect(Buffer.concat(parts).equals(ours)).toBe(true);
      for (const e of events) if (e.payload !== null && e.payload.length > 0) expect(parts).toContain(e.payload);
      expect(spans).toEqual(eventSpans(ours));
      const c = assembleCommit({ chain: Buffer.alloc(32, 1), timestamp: 5, genesis: null }, headerBytes, hash, events, sigs);
      expect(c.bytes.equals(ours)).toBe(true);
      expect(c.size).toBe(ours.length);
    }
  });

  test('hashes cover the stored metadata bytes, not a re-serialization', () => {
    // Same metadata, fields in another order: decodes equal, hashes differently, and still verifies
    // against its own stored bytes.
    const m = meta({ key: newDaoKey(), type: 't' });
    const packr = new Packr({ useRecords: false });
    const reordered: Buffer = packr.pack({ y: 't', v: 1, k: Buffer.from(m.key, 'hex') });
    expect(reordered.equals(encodeMeta(m))).toBe(false);
    expect(decodeMeta(reordered)).toEqual(m);
    const ev = { meta: m, metaBytes: reordered, payload: null, hash: eventHash(reordered, null) };
    const header = { chain: Buffer.alloc(32, 1), timestamp: 5, genesis: null };
    const { headerBytes, hash } = hashCommitParts(header, [ev]);
    const c = assembleCommit(header, headerBytes, hash, [ev], []);
    const d = decodeCommit(c.bytes);
    expect(d.events[0]!.metaBytes.equals(reordered)).toBe(true);
    expect(d.hash.equals(hash)).toBe(true);
    expect(ev.hash.equals(makeEvent(m, null).hash)).toBe(false);
    // null payload and empty payload hash differently.
    expect(eventHash(reordered, null).equals(eventHash(reordered, Buffer.alloc(0)))).toBe(false);
  });

  test('the fast event hash is exactly domainHash over (metadata, payload)', () => {
    for (const [m, p] of [
      [10, null],
      [10, 0],
      [100, 32],
      [3000, 2000],
      [50, 200_000],
    ] as const) {
      const mb = randomBytes(m);
      const pl = p === null ? null : randomBytes(p);
      const want = pl === null ? domainHash('atefs/chain/event/v1', mb) : domainHash('atefs/chain/event/v1', mb, pl);
      expect(eventHash(mb, pl).equals(want)).toBe(true);
    }
  });

  test('structure problems are malformed', () => {
    const c = commitOf([meta({ key: newDaoKey() })]);
    expect(reject(() => decodeCommit(c.bytes.subarray(0, c.bytes.length - 3))).reason).toBe('malformed');
    const v2 = Buffer.from(c.bytes);
    v2[0] = 2;
    expect(reject(() => decodeCommit(v2)).message).toMatch(/unknown commit format/);
    expect(reject(() => decodeCommit(Buffer.from([1]))).reason).toBe('malformed');
    const unknownField = new Packr({ useRecords: false }).pack({ k: Buffer.alloc(16), v: 1, zz: 1 });
    expect(reject(() => decodeMeta(unknownField)).message).toMatch(/unknown field/);
    expect(reject(() => decodeMeta(new Packr({ useRecords: false }).pack({ k: Buffer.alloc(15), v: 1 }))).reason).toBe('malformed');
    expect(reject(() => decodeMeta(new Packr({ useRecords: false }).pack({ k: Buffer.alloc(16), v: -1 }))).reason).toBe('malformed');
    // A bad event reports its index.
    const bad = encodeCommitRecord(c.hash, c.headerBytes, [c.events[0]!, { ...c.events[0]!, metaBytes: Buffer.from([0xc1]) }], []);
    const r = reject(() => decodeCommit(bad));
    expect(r.reason).toBe('malformed');
    expect(r.eventIndex).toBe(1);
  });

  test('size limits', () => {
    const c = commitOf(Array.from({ length: 5 }, () => meta({ key: newDaoKey(), payloadKey: id16('9') })));
    expect(reject(() => decodeCommit(c.bytes, { ...limits(), maxEvents: 4 })).message).toMatch(/over the limit/);
    expect(reject(() => decodeCommit(c.bytes, { ...limits(), maxPayloadBytes: 5 })).message).toMatch(/payload/);
    expect(reject(() => decodeCommit(c.bytes, { ...limits(), maxCommitBytes: 100 })).message).toMatch(/record of/);
    expect(reject(() => decodeCommit(c.bytes, { ...limits(), maxMetaBytes: 10 })).reason).toBe('malformed');
    expect(decodeCommit(c.bytes).events).toHaveLength(5);
  });
});

function limits() {
  return {
    maxCommitBytes: 1 << 26,
    maxEvents: 8192,
    maxMetaBytes: 1 << 18,
    maxPayloadBytes: 1 << 20,
    maxSignatures: 16,
    maxGrantsPerEvent: 256,
    maxWrapsPerGrant: 256,
    maxAclKeys: 256,
    maxTypeLength: 64,
  };
}
