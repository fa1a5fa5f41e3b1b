// Issue 13, "timestamps never go backwards", on a real view over a real log: a forged commit
// timestamped before its predecessor is refused when the view loads it (tail and full rebuild) and
// by verifyChain (what `atefs verify` runs); a writer whose clock steps back, and a commit overtaken
// by a newer one while it was being signed, still leave a chain that validates.
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { decodeCommit, newDaoKey, verifyChain } from '../../src/chain/index.js';
import { CryptoPool } from '../../src/crypto/index.js';
import { openLog } from '../../src/log/index.js';
import { CommitRejected } from '../../src/view/index.js';
import { meta, rawCommit } from './chain-fixtures.js';
import { type Chain, identity, makeChain, rebuildFromLog } from './view-fixtures.js';

const chains: Chain[] = [];
const pools: CryptoPool[] = [];
afterEach(async () => {
  for (const c of chains.splice(0)) await c.cleanup();
  for (const p of pools.splice(0)) await p.close();
});

async function chain(): Promise<Chain> {
  const c = await makeChain();
  chains.push(c);
  return c;
}

/** Timestamps of the log's records in log order. */
async function logTimes(c: Chain): Promise<number[]> {
  const log = await openLog({ dir: c.logDir, chainId: 'test/view', genesisHash: c.genesis.hash, readOnly: true });
  const out = [...log.records()].map((r) => decodeCommit(r.payload).header.timestamp);
  await log.close();
  return out;
}

async function verifyProblems(c: Chain): Promise<Array<[number, string]>> {
  const log = await openLog({ dir: c.logDir, chainId: 'test/view', genesisHash: c.genesis.hash, readOnly: true });
  const r = await verifyChain(log, { pinnedGenesis: c.genesis.hash, now: c.clock.now });
  await log.close();
  return r.problems.map((p) => [p.seq, p.reason]);
}

const nonDecreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x >= xs[i - 1]!);

describe('timestamps never go backwards', () => {
  test('a forged commit earlier than its predecessor is refused on load (tail and rebuild) and by verifyChain', async () => {
    const c = await chain();
    const v = await c.open();
    const d = v.begin();
    d.store(Buffer.from('before the forgery'));
    await d.commit('durable');
    await c.close();
    const t = c.clock.t;
    // Signed by the chain's owner and valid in every other way: only its time is wrong.
    const forged = rawCommit(c.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [identity(0)], t - 60_000);
    const log = await openLog({ dir: c.logDir, chainId: 'test/view', genesisHash: c.genesis.hash });
    const { seq } = await log.append(forged.bytes, 'durable');
    await log.close();

    const expected = new RegExp(`^chain load stopped at record seq ${seq} \\(segment \\d+, offset \\d+\\): commit [0-9a-f]{16} rejected \\(backwards\\): timestamp .* is 60000 ms earlier than the previous commit's`);
    const tail = await c.open().catch((e: unknown) => e);
    expect(tail).toBeInstanceOf(CommitRejected);
    expect((tail as Error).message).toMatch(expected);
    const rebuild = await rebuildFromLog(c).catch((e: unknown) => e);
    expect(rebuild).toBeInstanceOf(CommitRejected);
    expect((rebuild as Error).message).toMatch(expected);
    await c.close();
    expect(await verifyProblems(c)).toEqual([[seq, 'backwards']]);
  });

  test('a writer whose clock steps back (within the future tolerance) still writes a chain that validates', async () => {
    const c = await chain();
    let v = await c.open();
    const put = async (text: string) => {
      const d = v.begin();
      const k = d.store(Buffer.from(text));
      await d.commit('durable');
      return k;
    };
    const a = await put('before the step');
    const t = c.clock.t;
    c.clock.t -= 120_000; // two minutes back (NTP, a VM restored): inside the chain's 5-minute future tolerance
    const b = await put('after the step');
    c.clock.tick(5);
    const b2 = await put('a little later, still before');
    // An hour back is beyond what the chain's own future check accepts from this clock (its newest
    // commit is "an hour ahead"): the commit is refused as such, nothing is written.
    c.clock.t = t - 3_600_000;
    const err = await put('an hour back').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommitRejected);
    expect((err as Error).message).toMatch(/rejected \(future\): timestamp \d+ is 3600000 ms ahead/);
    c.clock.t = t - 120_000 + 5;
    await c.close();
    const times = await logTimes(c);
    expect(nonDecreasing(times)).toBe(true);
    expect(times.length).toBe(4);
    expect(times.slice(-3)).toEqual([t, t, t]);
    // Reloaded from scratch (every commit re-validated) and checked as `atefs verify` does.
    rmSync(c.indexDir, { recursive: true, force: true });
    v = await c.open();
    expect(v.openReport.mode).toBe('fresh');
    expect(v.get(a)!.data!.toString()).toBe('before the step');
    expect(v.get(b)!.data!.toString()).toBe('after the step');
    expect(v.get(b2)!.data!.toString()).toBe('a little later, still before');
    await c.close();
    expect(await verifyProblems(c)).toEqual([]);
  });

  test('a commit overtaken by a newer one while it was signed is built again, after the newer one', async () => {
    // The real pool; only the first signature is held back, so the commit begun first (and
    // timestamped first) reaches the view after the one begun second.
    let signs = 0;
    class FirstSignLate extends CryptoPool {
      override async sign(secretKey: Uint8Array, message: Uint8Array): Promise<Buffer> {
        if (signs++ === 0) await new Promise((r) => setTimeout(r, 300));
        return super.sign(secretKey, message);
      }
    }
    const pool = new FirstSignLate({ size: 2 });
    pools.push(pool);
    const c = await chain();
    let t = c.clock.t;
    const v = await c.open({ pool, now: () => (t += 1000) });
    const first = v.begin();
    const k1 = first.store(Buffer.from('begun first'));
    const second = v.begin();
    const k2 = second.store(Buffer.from('begun second'));
    const [r1, r2] = await Promise.all([first.commit('durable'), second.commit('durable')]);
    expect(r2.seq).toBeLessThan(r1.seq);
    expect(signs).toBe(3); // first, second, first again
    expect(v.get(k1)!.data!.toString()).toBe('begun first');
    expect(v.get(k2)!.data!.toString()).toBe('begun second');
    await c.close();
    expect(nonDecreasing(await logTimes(c))).toBe(true);
    c.clock.t = t;
    expect(await verifyProblems(c)).toEqual([]);
  });
});
