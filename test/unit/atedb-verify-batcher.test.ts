// The server's batcher of signature checks: commits of one turn go to the pool together but are
// answered group by group (the first before the last group is verified), each with its own verdict.
// Real hybrid signatures on a real worker pool.
import { afterAll, describe, expect, it } from 'vitest';
import { type Commit, CommitBuilder, CommitRejected, DataKeyCache, MemoryAuthorityState, checkAgainstState, createGenesis, decodeCommit, signersOf } from '../../src/chain/index.js';
import { CryptoPool, randomBytes } from '../../src/crypto/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { VERIFY_GROUP, VerifyBatcher } from '../../server/verify-batcher.js';

const pool = new CryptoPool({ size: 2 });
afterAll(() => pool.close());

async function commits(n: number): Promise<Commit[]> {
  const session = Session.of(createIdentity('batcher'));
  const keys = new DataKeyCache(session);
  const g = await createGenesis({ name: 'test/batcher', keyring: session, chainReaders: session.chainReaders(), keys, pool });
  const state = new MemoryAuthorityState();
  state.applyEffects(checkAgainstState(state, g, signersOf(g)));
  return Promise.all(Array.from({ length: n }, () => {
    const b = new CommitBuilder({ state, keyring: session, keys, pool });
    b.put({ payload: randomBytes(64) });
    return b.build();
  }));
}

/** The same commit with one byte of its signature flipped (its hash unchanged). */
function badSignature(c: Commit): Commit {
  const bytes = Buffer.from(c.bytes);
  const sig = c.signatures[0]!.signature;
  const at = bytes.indexOf(sig) + sig.length - 1;
  bytes[at]! ^= 1;
  return decodeCommit(bytes);
}

describe('VerifyBatcher', () => {
  it('answers a batch group by group, each commit with its own verdict', async () => {
    const cs = await commits(16 * VERIFY_GROUP);
    const bad = 2 * VERIFY_GROUP + 1;
    cs[bad] = badSignature(cs[bad]!);
    const batcher = new VerifyBatcher(pool);
    // A counter bumped once per turn of the event loop: answers in one message share a value.
    let turn = 0;
    let ticking = true;
    const tick = () => { turn++; if (ticking) setImmediate(tick); };
    tick();
    const answered: Array<{ i: number; turn: number }> = [];
    const results = await Promise.all(cs.map((c, i) => batcher.verify(c).then((r) => { answered.push({ i, turn }); return r; })));
    ticking = false;
    results.forEach((r, i) => {
      if (i === bad) expect(r).toBeInstanceOf(CommitRejected);
      else expect([...(r as ReadonlySet<string>)]).toEqual([...signersOf(cs[i]!)]);
    });
    // One verifyMany for the whole batch answered it in at most two turns (one message per
    // worker); by group, in about one turn per group (fewer when the main thread was held up and
    // several answers waited for the same turn), the first group first.
    expect(new Set(answered.map((a) => a.turn)).size).toBeGreaterThanOrEqual(3);
    expect(answered[0]!.i).toBeLessThan(VERIFY_GROUP);
  });
});
