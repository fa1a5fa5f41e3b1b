// What a server's compaction keeps (server/compaction.ts), on random histories: nodes created,
// rewritten, moved between folders, deleted, folders whose write ACL admits a second writer who
// writes under them, several events per commit. The compacted log must load in gap mode (as a
// client of the compacted chain checks it) to the same live nodes, and a planted stale version
// must not come back.
import { describe, expect, it } from 'vitest';
import { type CommitBuilder, type DaoKey, MemoryAuthorityState, type NodeRecord, loadChainState, publicKeyId } from '../../src/chain/index.js';
import { openLog } from '../../src/log/index.js';
import { Session } from '../../src/session/index.js';
import { DataKeyCache } from '../../src/chain/index.js';
import { planCompaction } from '../../server/compaction.js';
import { identity, makeWorld } from './chain-fixtures.js';

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function live(s: MemoryAuthorityState): Map<DaoKey, NodeRecord> {
  return new Map([...s.nodes].filter(([, n]) => !n.deleted));
}

async function randomHistory(seed: number, commits: number) {
  const w = await makeWorld();
  const writer = identity(1);
  // Signs as the writer; reads with the owner's chain key (the chain's only reader here).
  const writerSession = Session.of(writer, w.owner);
  const writerKeys = new DataKeyCache(writerSession);
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const log = await openLog({ memory: true, chainId: 'test/chain', genesisHash: w.genesis.hash });
  await log.append(w.genesis.bytes);
  // Folders at the root, never moved or deleted; half of them writable by the second writer too.
  const folders: DaoKey[] = [];
  const shared = new Set<DaoKey>();
  const c0 = await w.commit((b) => {
    for (let i = 0; i < 4; i++) {
      const writable = i % 2 === 0;
      const k = b.put({ payload: Buffer.from(`folder ${i}`), ...(writable ? { write: { mode: 'any', keys: [publicKeyId(w.owner.signing.publicKey), publicKeyId(writer.signing.publicKey)] } } : {}) });
      folders.push(k);
      if (writable) shared.add(k);
    }
  });
  await log.append(c0.bytes);
  const parentOf = new Map<DaoKey, DaoKey>();
  const leaves = () => [...parentOf.keys()].filter((k) => !w.state.getNode(k)!.deleted);
  for (let i = 0; i < commits; i++) {
    const op = r();
    const existing = leaves();
    const asWriter = r() < 0.3;
    const fill = (b: CommitBuilder) => {
      const n = 1 + Math.floor(r() * 3);
      const touched = new Set<DaoKey>();
      for (let e = 0; e < n; e++) {
        const candidates = existing.filter((k) => !touched.has(k) && (!asWriter || shared.has(parentOf.get(k)!)));
        if (op < 0.3 || candidates.length === 0) {
          const parent = asWriter ? pick([...shared]) : pick(folders);
          const k = b.put({ parent: { key: parent, collection: 0 }, payload: Buffer.from(`new ${i}.${e}`) });
          parentOf.set(k, parent);
          touched.add(k);
        } else if (op < 0.7) {
          const k = pick(candidates);
          b.put({ key: k, payload: Buffer.from(`v ${i}.${e} ${r()}`) });
          touched.add(k);
        } else if (op < 0.85 && !asWriter) {
          const k = pick(candidates);
          const to = pick(folders);
          b.put({ key: k, parent: { key: to, collection: 0 } });
          parentOf.set(k, to);
          touched.add(k);
        } else {
          const k = pick(candidates);
          b.delete(k);
          touched.add(k);
        }
      }
    };
    const c = asWriter ? await w.commit(fill, writerSession, writerKeys) : await w.commit(fill);
    await log.append(c.bytes);
  }
  return { w, log };
}

describe('server compaction: the keep set', () => {
  for (const [seed, retentionMs] of [[1, 0], [2, 0], [3, Number.POSITIVE_INFINITY], [4, 0], [5, 50]] as const) {
    it(`seed ${seed}, tombstones kept ${retentionMs} ms: the compacted log loads in gap mode to the same live nodes`, async () => {
      const { w, log } = await randomHistory(seed, 250);
      const cut = log.nextSeq - 1;
      const plan = await planCompaction(log, cut, { retentionMs, now: w.clock.t + 1 });
      expect(plan.keep.has(1)).toBe(true);
      expect(plan.dropBytes).toBeGreaterThan(0);
      expect(plan.dropped.length).toBe(plan.records - plan.keep.size);
      await log.compact((rec) => rec.seq > cut || plan.keep.has(rec.seq));
      expect([...log.records()].length).toBe(plan.keep.size);
      const { state } = await loadChainState(log, {
        pinnedGenesis: w.genesis.hash, compacted: true, now: () => w.clock.t + 1, backwardsToleranceMs: Number.POSITIVE_INFINITY,
      });
      expect(live(state as MemoryAuthorityState)).toEqual(live(w.state));
      // Every deletion still in the window is still there.
      for (const [k, n] of w.state.nodes) {
        if (n.deleted && w.clock.t + 1 - n.updatedAt < retentionMs) expect((state as MemoryAuthorityState).getNode(k)?.deleted, k).toBe(true);
      }
      await log.close();
    });
  }
});
