import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Chain, makeChain, snapshot, rebuildFromLog } from './view-fixtures.js';
import { IndexMismatch, NotFound, TransactionClosed } from '../../src/view/index.js';

describe('view: DIO basics', () => {
  let c: Chain;
  beforeAll(async () => {
    c = await makeChain();
  });
  afterAll(async () => {
    await c.cleanup();
  });

  it('stores, loads, lists children, deletes; reads see own writes', async () => {
    const view = await c.open();
    expect(view.openReport.mode).toBe('fresh');
    const dio = view.begin();
    const dir = dio.store(Buffer.from('dir'), { type: 'dir' });
    const a = dio.push(dir, 1, Buffer.from('A'), { type: 'file' });
    const b = dio.push(dir, 1, Buffer.from('B'));
    expect(dio.load(a).data!.toString()).toBe('A');
    expect(dio.children(dir, 1).sort()).toEqual([a, b].sort());
    expect(view.exists(a)).toBe(false);
    const r = await dio.commit();
    expect(r.seq).toBeGreaterThan(1);
    expect(view.get(a).data!.toString()).toBe('A');
    expect(view.children(dir, 1).sort()).toEqual([a, b].sort());
    expect(() => dio.load(a)).toThrow(TransactionClosed);

    const d2 = view.begin();
    d2.delete(b);
    d2.store(Buffer.from('A2'), { key: a });
    expect(d2.children(dir, 1)).toEqual([a]);
    expect(d2.load(a).data!.toString()).toBe('A2');
    expect(view.get(a).data!.toString()).toBe('A');
    await d2.commit('durable');
    expect(view.get(a).data!.toString()).toBe('A2');
    expect(view.get(a).version).toBe(2);
    expect(view.children(dir, 1)).toEqual([a]);
    expect(() => view.get(b)).toThrow(NotFound);
    const before = snapshot(view);

    // Reopen with the index: only the tail (nothing) is replayed.
    const v2 = await c.open();
    expect(v2.openReport.mode).toBe('tail');
    expect(v2.openReport.tailRecords).toBe(0);
    expect(snapshot(v2)).toEqual(before);
  });
});

describe('view: open policies', () => {
  let c: Chain;
  beforeAll(async () => {
    c = await makeChain();
  });
  afterAll(async () => {
    await c.cleanup();
  });

  it('refuses a log whose genesis is not the pinned one, with or without an index', async () => {
    const v = await c.open();
    const d = v.begin();
    d.store(Buffer.from('x'));
    await d.commit();
    const other = Buffer.alloc(32, 7);
    await expect(c.open({ pinnedGenesis: other })).rejects.toThrow(IndexMismatch);
    await expect(rebuildFromLog(c, { pinnedGenesis: other })).rejects.toThrow(IndexMismatch);
    const ok = await c.open();
    expect(ok.openReport.mode).toBe('fresh');
  });

  it('automatic compaction follows the policy (modified: after every growth)', async () => {
    const v = await c.open({ compaction: { mode: 'modified' } });
    const d = v.begin();
    const k = d.store(Buffer.alloc(2000, 1));
    await d.commit();
    for (let i = 0; i < 5; i++) {
      if (v.compacting) await v.compacting;
      const t = v.begin();
      t.store(Buffer.alloc(2000, i), { key: k });
      await t.commit();
    }
    if (v.compacting) await v.compacting;
    expect(v.stats().lastCompaction).not.toBeNull();
    // Each overwrite left a dead version of a few KB in a log of a few: enough to reclaim.
    expect(v.stats().lastCompaction!.skipped).toBeNull();
    expect(v.stats().lastCompactionError).toBeNull();
    expect(v.get(k).data!.equals(Buffer.alloc(2000, 4))).toBe(true);
    const before = snapshot(v);
    const again = await c.open();
    expect(snapshot(again)).toEqual(before);
  });
});

describe('view: live bytes (what df reports as used)', () => {
  let c: Chain;
  beforeAll(async () => {
    c = await makeChain();
  });
  afterAll(async () => {
    await c.cleanup();
  });

  it('follows stores, overwrites and deletes; survives reopen, compaction and an index rebuild', async () => {
    const v = await c.open();
    const base = v.stats().liveBytes;
    expect(base).toBe(v.store.sumLivePayload());
    const d = v.begin();
    const x = d.store(Buffer.alloc(100_000, 1));
    const y = d.store(Buffer.alloc(50_000, 2));
    await d.commit();
    const full = v.stats().liveBytes;
    expect(full - base).toBeGreaterThanOrEqual(150_000);
    expect(full - base).toBeLessThan(150_000 + 4096); // AEAD and framing overhead only
    const t = v.begin();
    t.store(Buffer.alloc(10_000, 3), { key: x });
    t.delete(y);
    await t.commit();
    const small = v.stats().liveBytes;
    expect(full - small).toBeGreaterThan(139_000);
    expect(small - base).toBeLessThan(10_000 + 4096);
    // The incremental figure is the sum over the index; the log still holds everything.
    expect(small).toBe(v.store.sumLivePayload());
    expect(v.stats().logBytes).toBeGreaterThan(160_000);

    const reopened = await c.open();
    expect(reopened.stats().liveBytes).toBe(small);
    const rep = await reopened.compact();
    expect(rep.bytesAfter).toBeLessThan(rep.bytesBefore);
    expect(reopened.stats().liveBytes).toBe(small);
    expect(reopened.store.sumLivePayload()).toBe(small);
    const rebuilt = await rebuildFromLog(c);
    expect(rebuilt.openReport.mode).not.toBe('tail');
    expect(rebuilt.stats().liveBytes).toBe(small);
    // A rebuild over an existing index (here: an outdated format) starts the count over.
    rebuilt.store.putMeta('format', 0);
    const inPlace = await c.open();
    expect(inPlace.openReport.mode).toBe('rebuild');
    expect(inPlace.stats().liveBytes).toBe(small);
  });
});
