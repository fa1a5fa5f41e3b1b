// The server's head signer: after commits, at most one signature per interval, a trailing one for
// the newest seq; a subscriber asking for the head gets it at once. Real hybrid signatures.
import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, randomBytes } from '../../src/crypto/index.js';
import { type SignedHead, verifyHead } from '../../src/net/index.js';
import { HeadSigner } from '../../server/store/head-signer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signer(minIntervalMs: number) {
  const key = generateSigningKeyPair();
  const genesis = randomBytes(32);
  const hashes = [randomBytes(32)];
  let seq = 0;
  const signed: SignedHead[] = [];
  const s = new HeadSigner({
    signingKey: key.secretKey, pool: null, genesisHash: () => genesis,
    confirmedSeq: () => seq, chainHashAt: (n) => hashes[n]!, onSigned: (h) => signed.push(h), minIntervalMs,
  });
  const commit = () => {
    hashes.push(randomBytes(32));
    seq++;
    s.committed();
  };
  return { s, commit, signed, key, genesis, seq: () => seq };
}

describe('HeadSigner', () => {
  it('commits back to back: one signature per interval, the last one at the newest seq', async () => {
    const t = signer(150);
    const t0 = Date.now();
    while (Date.now() - t0 < 600) {
      t.commit();
      await sleep(3);
    }
    const last = t.seq();
    await sleep(400);
    // ~150 commits in 600 ms: a signature each would be ~150; the interval allows about 5.
    expect(last).toBeGreaterThan(50);
    expect(t.signed.length).toBeGreaterThanOrEqual(2);
    expect(t.signed.length).toBeLessThanOrEqual(7);
    const newest = t.signed.at(-1)!;
    expect(newest.seq).toBe(last);
    expect(verifyHead(t.key.publicKey, t.genesis, newest)).toBe(true);
    for (let i = 1; i < t.signed.length; i++) expect(t.signed[i]!.seq).toBeGreaterThan(t.signed[i - 1]!.seq);
  });

  it('head() is not throttled: it signs the newest seq right away', async () => {
    const t = signer(60_000);
    t.commit();
    await sleep(100);
    expect(t.signed.map((h) => h.seq)).toEqual([1]);
    t.commit();
    t.commit();
    const t0 = Date.now();
    const h = await t.s.head();
    expect(h.seq).toBe(3);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('settled() cancels a pending throttled signature', async () => {
    const t = signer(300);
    t.commit();
    t.commit();
    await t.s.settled();
    const n = t.signed.length;
    await sleep(500);
    expect(t.signed.length).toBe(n);
  });
});
