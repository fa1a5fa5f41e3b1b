// Property test: a random history of stores, overwrites, moves, deletes and ACL changes across many
// DAOs gives the same view, key by key and byte by byte, (a) live, (b) reopened with the LMDB index,
// (c) reopened after deleting the index, (d) after compaction and a reopen (with and without the
// index, tombstones retained or expired).
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadAcl, WriteAcl } from '../../src/chain/index.js';
import type { View } from '../../src/view/index.js';
import { type Chain, makeChain, snapshot } from '../unit/view-fixtures.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function live(snap: Map<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of snap) if (!JSON.parse(v).d) out.set(k, v);
  return out;
}

async function randomHistory(c: Chain, view: View, seed: number, commits: number): Promise<void> {
  const r = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
  const me = c.session.signingKeys()[0]!.id;
  const reads: ReadAcl[] = [{ mode: 'chain' }, { mode: 'readers', readers: c.session.chainReaders() }, { mode: 'inherit' }];
  const writes: WriteAcl[] = [{ mode: 'any', keys: [me] }, { mode: 'inherit' }, { mode: 'all', keys: [me] }];
  for (let i = 0; i < commits; i++) {
    c.clock.tick(1000);
    const dio = view.begin();
    const n = 1 + Math.floor(r() * 8);
    for (let j = 0; j < n; j++) {
      const keys = view.store.dao.getKeysCount() ? [...view.store.dao.getKeys({})].map((k) => (k as Buffer).toString('hex')) : [];
      const liveKeys = keys.filter((k) => dio.exists(k));
      const op = r();
      const data = Buffer.from(`v${i}.${j}:${'x'.repeat(Math.floor(r() * 300))}`);
      try {
        if (op < 0.35 || liveKeys.length < 3) {
          const parent = liveKeys.length && r() < 0.7 ? { key: pick(liveKeys), collection: Math.floor(r() * 2) } : null;
          dio.store(data, { parent, type: r() < 0.5 ? 'file' : null });
        } else if (op < 0.65) {
          dio.store(data, { key: pick(liveKeys) });
        } else if (op < 0.75) {
          const k = pick(liveKeys);
          const p = pick(liveKeys);
          if (p !== k) dio.attach(k, p, 1);
        } else if (op < 0.87) {
          const k = pick(liveKeys);
          if (dio.children(k, 0).length === 0 && dio.children(k, 1).length === 0) dio.delete(k);
        } else {
          dio.setAcl(pick(liveKeys), { read: pick(reads), write: pick(writes) });
        }
      } catch (e) {
        if ((e as Error).name !== 'NotFound') throw e;
      }
    }
    try {
      await dio.commit();
    } catch (e) {
      // Random moves can make cycles or orphans: the chain refuses them and nothing is applied.
      if ((e as Error).name !== 'NoWriteAuthority' && (e as Error).name !== 'NotFound') throw e;
    }
  }
}

describe('view: property (live = reopen = rebuild = compacted)', () => {
  let c: Chain;
  beforeAll(async () => {
    c = await makeChain();
  });
  afterAll(async () => {
    await c.cleanup();
  });

  it('random stores/deletes/ACL changes: identical view in every way of getting it', async () => {
    let view = await c.open();
    await randomHistory(c, view, 12345, 60);
    const a = snapshot(view);
    expect(a.size).toBeGreaterThan(20);
    expect([...a.values()].some((v) => JSON.parse(v).d)).toBe(true);

    view = await c.open();
    expect(view.openReport.mode).toBe('tail');
    expect(snapshot(view)).toEqual(a);

    await c.close();
    rmSync(c.indexDir, { recursive: true, force: true });
    view = await c.open();
    expect(view.openReport.mode).toBe('fresh');
    expect(snapshot(view)).toEqual(a);

    // (d) compaction with tombstones retained: everything identical.
    const sizeBefore = view.log.sizeBytes();
    const rep = await view.compact();
    expect(rep.bytesAfter).toBeLessThan(sizeBefore);
    expect(snapshot(view)).toEqual(a);
    view = await c.open();
    expect(view.openReport.mode).toBe('tail');
    expect(snapshot(view)).toEqual(a);
    await c.close();
    rmSync(c.indexDir, { recursive: true, force: true });
    view = await c.open();
    expect(snapshot(view)).toEqual(a);

    // More history on top of the compacted log, then compaction with expired tombstones.
    await randomHistory(c, view, 777, 30);
    const b = snapshot(view);
    view = await c.open({ compaction: { mode: 'never', tombstoneRetentionMs: 0 } });
    await view.compact();
    expect(live(snapshot(view))).toEqual(live(b));
    await c.close();
    rmSync(c.indexDir, { recursive: true, force: true });
    view = await c.open();
    const d = snapshot(view);
    expect(live(d)).toEqual(live(b));
    for (const [k, v] of d) if (JSON.parse(v).d) expect(JSON.parse(b.get(k)!).d).toBe(true);
  }, 120_000);
});
