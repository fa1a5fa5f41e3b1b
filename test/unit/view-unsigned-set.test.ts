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
});
