// The index's list of commits awaiting a sign-off (lmdb-state.ts): one LMDB entry per commit, and
// an index written before that (the whole list under meta 'unsigned', rewritten by every commit)
// is read and converted at its next change, nothing dropped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexStore } from '../../src/view/index-store.js';
import { LmdbAuthorityState } from '../../src/view/lmdb-state.js';
import { emptyWatermark } from '../../src/view/watermark.js';
import { makeChain } from './view-fixtures.js';

describe('view: the unsigned set', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atefs-unsigned-'));
  const store = new IndexStore({ path: dir });
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const key = randomBytes(1952);
  const entry = (seq: number) => ({ hash: randomBytes(32), seq, keys: [key] });
  const seqs = (s: LmdbAuthorityState) => s.unsigned().map((u) => u.seq);

  it('a legacy list is read, and written out as entries at the next change', () => {
    const old = [entry(3), entry(7)];
    store.transaction(() => store.putMeta('unsigned', old.map((u) => [u.hash, u.seq, u.keys])));
    const s = new LmdbAuthorityState(store, emptyWatermark());
    expect(seqs(s)).toEqual([3, 7]);
    expect(s.unsigned()[1]!.hash.equals(old[1]!.hash)).toBe(true);
    expect(s.unsigned()[0]!.keys[0]!.equals(key)).toBe(true);

    s.addUnsigned([entry(5)]);
    expect(seqs(s)).toEqual([3, 5, 7]);
    expect(store.getMeta('unsigned')).toBeUndefined();
    expect([...store.unsignedEntries()].map((u) => u.seq)).toEqual([3, 5, 7]);
    expect(seqs(new LmdbAuthorityState(store, emptyWatermark()))).toEqual([3, 5, 7]);
  });

  it('entries come back in seq order whatever the digits (zero-padded keys)', () => {
    const s = new LmdbAuthorityState(store, emptyWatermark());
    s.addUnsigned([entry(100), entry(20), entry(1_000_000_007)]);
    expect(seqs(new LmdbAuthorityState(store, emptyWatermark()))).toEqual([3, 5, 7, 20, 100, 1_000_000_007]);
  });

  it('deferred commits join it and sign-offs take them out, in memory as in the index', async () => {
    const c = await makeChain();
    try {
      const view = await c.open({ deferSignatures: true });
      const persisted = () => [...view.state.store.unsignedEntries()].map((u) => u.seq);
      const commit = async () => {
        const d = view.begin();
        d.store(randomBytes(100));
        await d.commit('durable');
      };
      for (let i = 0; i < 3; i++) await commit();
      expect(seqs(view.state)).toHaveLength(3);
      expect(persisted()).toEqual(seqs(view.state));
      // A sign-off covers the three; commits made meanwhile stay listed, in order.
      const signing = view.signOff();
      await commit();
      await signing;
      await commit();
      expect(persisted()).toEqual(seqs(view.state));
      expect(seqs(view.state).length).toBeGreaterThanOrEqual(1);
      expect([...seqs(view.state)].sort((a, b) => a - b)).toEqual(seqs(view.state));
      await view.signOff();
      expect(seqs(view.state)).toEqual([]);
      expect(persisted()).toEqual([]);
      // Reopened, the index says the same.
      const again = await c.open({ deferSignatures: true });
      expect(seqs(again.state)).toEqual([]);
    } finally {
      await c.cleanup();
    }
  });
});

