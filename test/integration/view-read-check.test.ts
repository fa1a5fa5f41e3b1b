// Reads check the log bytes against the index: small events by their hash, bulk payloads (over
// 4 KiB, file blocks) by their AEAD, which binds (chain, DAO key, version). Every kind of change to
// the stored bytes behind an index opened without a full re-hash ('watermark') must surface as
// IndexMismatch on read, never as wrong data.
import { afterEach, describe, expect, it } from 'vitest';
import { IndexMismatch } from '../../src/view/index.js';
import { type Chain, editRecord, makeChain } from '../unit/view-fixtures.js';

const chains: Chain[] = [];
afterEach(async () => {
  for (const c of chains.splice(0)) await c.cleanup();
});

/** A chain with two bulk DAOs (64 KiB) written in one commit, and a later commit. */
async function bulkChain(): Promise<{ c: Chain; keys: string[]; data: Buffer[] }> {
  const c = await makeChain();
  chains.push(c);
  const view = await c.open();
  const data = [Buffer.alloc(65536, 0x5a), Buffer.alloc(65536, 0xa5)];
  const d = view.begin();
  const keys = data.map((b) => d.store(b));
  await d.commit();
  // One more commit: the watermark record (which a 'watermark' open re-hashes) is not the edited one.
  const t = view.begin();
  t.store(Buffer.from('later'));
  await t.commit();
  expect(view.get(keys[0]!).data!.equals(data[0]!)).toBe(true);
  return { c, keys, data };
}

describe('view: a large record changed behind the index', () => {
  it('is detected on a full reopen (watermark digests large records by their commit hash)', async () => {
    const c = await makeChain();
    chains.push(c);
    const view = await c.open();
    const d = view.begin();
    const keys = Array.from({ length: 6 }, (_, i) => d.store(Buffer.alloc(65536, i + 1)));
    await d.commit();
    const t = view.begin();
    t.store(Buffer.from('later'));
    await t.commit();
    const e = view.entry(keys[2]!)!;
    const rec = view.store.getRecord(e.seq)!;
    expect(rec.bytes).toBeGreaterThan(256 << 10);
    await c.close();
    // Reopens untouched: the digests computed when applying match the ones recomputed from the log.
    expect((await c.open()).openReport.mode).toBe('tail');
    await c.close();
    editRecord(c, rec, (p) => { p[e.payloadStart + 100] ^= 0x01; });
    await expect(c.open({ rebuild: 'never' })).rejects.toThrow(IndexMismatch);
  });
});

describe('view: read-time checks of bulk payloads', () => {
  it('an intact bulk payload reads back after a watermark-only reopen', async () => {
    const { c, keys, data } = await bulkChain();
    await c.close();
    const v = await c.open({ verify: 'watermark' });
    for (let i = 0; i < keys.length; i++) expect(v.get(keys[i]!).data!.equals(data[i]!)).toBe(true);
  });

  it('a flipped ciphertext byte is IndexMismatch, not wrong data', async () => {
    const { c, keys } = await bulkChain();
    let v = await c.open();
    const e = v.entry(keys[0]!)!;
    const rec = v.store.getRecord(e.seq)!;
    await c.close();
    editRecord(c, rec, (p) => { p[e.payloadStart + 1000] ^= 0x01; });
    v = await c.open({ verify: 'watermark' });
    expect(() => v.get(keys[0]!)).toThrow(IndexMismatch);
  });

  it("a payload swapped with another DAO's payload of the same commit is IndexMismatch", async () => {
    const { c, keys } = await bulkChain();
    let v = await c.open();
    const a = v.entry(keys[0]!)!;
    const b = v.entry(keys[1]!)!;
    expect(a.payloadLen).toBe(b.payloadLen);
    const rec = v.store.getRecord(a.seq)!;
    await c.close();
    editRecord(c, rec, (p) => {
      const pa = Buffer.from(p.subarray(a.payloadStart, a.payloadStart + a.payloadLen));
      p.copy(p, a.payloadStart, b.payloadStart, b.payloadStart + b.payloadLen);
      pa.copy(p, b.payloadStart);
    });
    v = await c.open({ verify: 'watermark' });
    expect(() => v.get(keys[0]!)).toThrow(IndexMismatch);
    expect(() => v.get(keys[1]!)).toThrow(IndexMismatch);
  });

  it('metadata naming another version is IndexMismatch', async () => {
    const { c, keys } = await bulkChain();
    let v = await c.open();
    const e = v.entry(keys[0]!)!;
    const rec = v.store.getRecord(e.seq)!;
    await c.close();
    // The metadata map holds the version as `v` (0xa1 0x76) followed by a positive fixint (1).
    editRecord(c, rec, (p) => {
      const meta = p.subarray(e.metaStart, e.metaStart + e.metaLen);
      const at = meta.indexOf(Buffer.from([0xa1, 0x76, 0x01]));
      expect(at).toBeGreaterThanOrEqual(0);
      meta[at + 2] = 0x02;
    });
    v = await c.open({ verify: 'watermark' });
    expect(() => v.get(keys[0]!)).toThrow(IndexMismatch);
  });
});
