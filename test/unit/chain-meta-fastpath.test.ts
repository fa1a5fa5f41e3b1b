// The metadata fast path must decode exactly what the general path (msgpackr + decodeMetaObject)
// decodes, and must hand anything it does not fully recognise to it: checked on every common shape,
// on hand-made encodings msgpackr accepts but the fast path must not take, and on thousands of
// random single-byte mutations (same value or the same rejection either way).
import * as nodeCrypto from 'node:crypto';
import { Packr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import { type EventMeta, CommitRejected, decodeMeta, encodeMeta, newDaoKey } from '../../src/chain/index.js';
import { metaDecoders } from '../../src/chain/codec.js';
import { meta } from './chain-fixtures.js';

const id16 = (c: string) => c.repeat(32);
const packr = new Packr({ useRecords: false });

type Outcome = { ok: EventMeta } | { rejected: string };
function outcome(fn: () => EventMeta): Outcome {
  try {
    return { ok: fn() };
  } catch (e) {
    if (e instanceof CommitRejected) return { rejected: e.reason };
    return { rejected: `other: ${(e as Error).name}` };
  }
}

const common: EventMeta[] = [
  meta({ key: newDaoKey() }),
  meta({ key: newDaoKey(), version: 200, parent: { key: newDaoKey(), collection: 0 }, payloadKey: id16('a'), type: 'f' }),
  meta({ key: newDaoKey(), version: 70_000, parent: { key: newDaoKey(), collection: 4_000_000_000 }, type: 'dir' }),
  meta({ key: newDaoKey(), version: 3, tombstone: true, parent: { key: newDaoKey(), collection: 300 } }),
  meta({ key: newDaoKey(), read: { mode: 'chain' }, nodeKey: id16('b'), write: { mode: 'nobody' }, replyTo: newDaoKey() }),
  meta({ key: newDaoKey(), version: 2 ** 32 - 1, type: 'x'.repeat(31) }),
];

describe('metadata fast path', () => {
  test('takes the common shapes and decodes them like the general path', () => {
    for (const m of common) {
      const bytes = encodeMeta(m);
      const fast = metaDecoders.fast(bytes);
      expect(fast).not.toBeNull();
      expect(fast).toEqual(metaDecoders.general(bytes));
      expect(decodeMeta(bytes)).toEqual(m);
    }
  });

  test('leaves other shapes and encodings to the general path', () => {
    const key = Buffer.from(newDaoKey(), 'hex');
    const others: Buffer[] = [
      encodeMeta(meta({ key: newDaoKey(), grants: [{ id: id16('e'), wraps: [] }] })),
      encodeMeta(meta({ key: newDaoKey(), publish: [Buffer.from([0x20, 1])] })),
      encodeMeta(meta({ key: newDaoKey(), type: 'ü' })),
      encodeMeta(meta({ key: newDaoKey(), type: 'y'.repeat(40) })),
      packr.pack({ k: key, v: 1.0000001 }),
      packr.pack({ k: key, v: -1 }),
      packr.pack({ k: key }),
      packr.pack({ v: 1 }),
      packr.pack({ k: key, v: 1, z: 1 }),
      packr.pack({ k: key.subarray(0, 15), v: 1 }),
      packr.pack({ k: key, v: 1, d: false }),
      packr.pack({ k: key, v: 1, r: 2 }),
      packr.pack({ k: key, v: 1, w: 1 }),
      packr.pack({ k: key, v: 1, p: [key, 1, 2] }),
      packr.pack({ k: key, v: 1, y: 'z'.repeat(65) }),
      Buffer.concat([packr.pack({ k: key, v: 1 }), Buffer.from([0])]),
      // duplicate field: map of 3 entries where 'v' appears twice
      Buffer.concat([Buffer.from([0x83]), packr.pack('k'), packr.pack(key), packr.pack('v'), packr.pack(1), packr.pack('v'), packr.pack(2)]),
    ];
    for (const bytes of others) {
      expect(metaDecoders.fast(bytes)).toBeNull();
      expect(outcome(() => decodeMeta(bytes))).toEqual(outcome(() => metaDecoders.general(bytes)));
    }
  });

  test('random single-byte mutations decode the same either way', () => {
    let fastTaken = 0;
    let total = 0;
    for (const m of common) {
      const bytes = encodeMeta(m);
      for (let i = 0; i < 600; i++) {
        const b = Buffer.from(bytes);
        const at = nodeCrypto.randomInt(b.length);
        b[at] = i % 3 === 0 ? b[at]! ^ (1 << nodeCrypto.randomInt(8)) : nodeCrypto.randomInt(256);
        const cut = i % 7 === 0 ? b.subarray(0, nodeCrypto.randomInt(b.length + 1)) : b;
        if (metaDecoders.fast(cut) !== null) fastTaken++;
        total++;
        expect(outcome(() => decodeMeta(cut))).toEqual(outcome(() => metaDecoders.general(cut)));
      }
    }
    expect(fastTaken).toBeGreaterThan(100);
    expect(fastTaken).toBeLessThan(total);
  });
});
