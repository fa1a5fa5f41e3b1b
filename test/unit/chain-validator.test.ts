// ChainValidator on the receipt path: serialized accepts with signatures checked on the pool,
// validate() as a dry run, trusting own signatures, rejected commits leave the state untouched;
// timestamps never go backwards in log order, and the builder never makes a commit that would.
import { afterAll, describe, expect, test } from 'vitest';
import { CryptoPool } from '../../src/crypto/index.js';
import { ChainValidator, CommitBuilder, CommitRejected, MemoryAuthorityState, newDaoKey, verifySignatures } from '../../src/chain/index.js';
import { makeWorld, meta, rawCommit } from './chain-fixtures.js';

const pool = new CryptoPool({ size: 2 });
afterAll(() => pool.close());

describe('ChainValidator', () => {
  test('accepts in arrival order with signatures verified on the pool; a bad one in the middle changes nothing', async () => {
    const w = await makeWorld();
    const v = new ChainValidator(w.state, { pool, now: w.clock.now });
    const key = newDaoKey();
    const commits = [1, 2, 3, 4].map((ver) =>
      rawCommit(w.genesis.hash, [{ meta: meta({ key, version: ver }) }], [w.owner], w.clock.tick()),
    );
    const bad = rawCommit(w.genesis.hash, [{ meta: meta({ key, version: 9 }) }], [w.owner], w.clock.tick());
    const results = await Promise.allSettled([
      v.accept(commits[0]!.bytes),
      v.accept(commits[1]!.bytes),
      v.accept(bad.bytes),
      v.accept(commits[2]!.bytes),
      v.accept(commits[3]!.bytes),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(((results[2] as PromiseRejectedResult).reason as CommitRejected).reason).toBe('conflict');
    expect(w.state.getNode(key)!.version).toBe(4);
  });

  test('validate() is a dry run; trustSignatures skips re-verifying own commits', async () => {
    const w = await makeWorld();
    const b = w.builder();
    const k = b.put({ payload: Buffer.from('x') });
    const c = await b.build();
    const before = w.state.applied;
    const dry = await w.validator.validate(c.bytes);
    expect(dry.effects.nodes.map((n) => n.key)).toEqual([k]);
    expect(w.state.applied).toBe(before);
    expect(w.state.getNode(k)).toBeUndefined();
    await w.validator.accept(c, { trustSignatures: true });
    expect(w.state.getNode(k)!.version).toBe(1);
  });

  test('batched verification reports each commit separately', async () => {
    const w = await makeWorld();
    const good = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], w.clock.tick());
    const forged = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], w.clock.tick());
    const sig = Buffer.from(forged.signatures[0]!.signature);
    sig[5]! ^= 1;
    forged.signatures[0] = { publicKey: forged.signatures[0]!.publicKey, signature: sig };
    const unsigned = { ...good, signatures: [] };
    const res = await verifySignatures([good, forged, unsigned, good], pool);
    expect(res[0]).toBeInstanceOf(Set);
    expect((res[1] as CommitRejected).reason).toBe('signature');
    expect((res[2] as CommitRejected).reason).toBe('signature');
    expect(res[3]).toBeInstanceOf(Set);
  });

  test('nothing is accepted before a genesis', async () => {
    const w = await makeWorld();
    const v = new ChainValidator(new MemoryAuthorityState(), { now: w.clock.now });
    const c = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], w.clock.tick());
    await expect(v.accept(c.bytes)).rejects.toMatchObject({ reason: 'genesis' });
    await v.accept(w.genesis.bytes);
    await v.accept(c.bytes);
  });

  test('a commit earlier than its predecessor in log order is refused (backwards), naming both times', async () => {
    const w = await makeWorld();
    const first = await w.commit((b) => b.put({ payload: Buffer.from('first') }));
    const t1 = first.header.timestamp;
    const before = w.state.applied;
    const back = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], t1 - 1);
    const err = await w.validator.accept(back.bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommitRejected);
    expect((err as CommitRejected).reason).toBe('backwards');
    expect((err as CommitRejected).message).toContain(`timestamp ${new Date(t1 - 1).toISOString()} (${t1 - 1}) is 1 ms earlier than the previous commit's ${new Date(t1).toISOString()} (${t1})`);
    expect(w.state.applied).toBe(before);
    // The same time as the predecessor is not backwards; nor is a later one after it.
    await w.validator.accept(rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], t1).bytes);
    await w.validator.accept(rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], t1 + 5).bytes);
    // Earlier than the genesis itself counts too.
    const w2 = await makeWorld();
    const beforeGenesis = rawCommit(w2.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w2.owner], w2.genesis.header.timestamp - 60_000);
    await expect(w2.validator.accept(beforeGenesis.bytes)).rejects.toMatchObject({ reason: 'backwards' });
  });

  test('a chain made before the rule (its genesis without monotonicTime) keeps loading what it holds', async () => {
    const old = await makeWorld({ monotonicTime: false });
    expect(old.genesis.header.genesis!.policy.monotonicTime).toBeUndefined();
    const t1 = (await old.commit((b) => b.put({ payload: Buffer.from('first') }))).header.timestamp;
    await old.validator.accept(rawCommit(old.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [old.owner], t1 - 5_000).bytes);
    // New chains carry the rule in their signed genesis.
    expect((await makeWorld()).genesis.header.genesis!.policy.monotonicTime).toBe(true);
  });

  test('a tolerance (or none, Infinity: a server order) lets a commit go back by that much only', async () => {
    const w = await makeWorld();
    const t1 = (await w.commit((b) => b.put({ payload: Buffer.from('first') }))).header.timestamp;
    const tolerant = new ChainValidator(w.state, { now: w.clock.now, backwardsToleranceMs: 1000 });
    await expect(tolerant.validate(rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], t1 - 1500).bytes)).rejects.toMatchObject({ reason: 'backwards' });
    await tolerant.validate(rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], t1 - 1000).bytes);
    const serverOrder = new ChainValidator(w.state, { now: w.clock.now, backwardsToleranceMs: Number.POSITIVE_INFINITY });
    await serverOrder.accept(rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [w.owner], t1 - 3_600_000).bytes);
  });

  test('a writer whose clock steps back still builds commits the validator accepts (clamped, never backwards)', async () => {
    const w = await makeWorld();
    const t1 = (await w.commit((b) => b.put({ payload: Buffer.from('first') }))).header.timestamp;
    let clock = t1 - 3_600_000; // the clock stepped back by an hour
    const steppedBack = () => new CommitBuilder({ state: w.state, keyring: w.session, keys: w.keys, now: () => clock });
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const b = steppedBack();
      b.put({ payload: Buffer.from(`after the step ${i}`) });
      const c = await b.build();
      await w.validator.accept(c.bytes);
      times.push(c.header.timestamp);
      clock += 10;
    }
    expect(times).toEqual([t1, t1, t1]);
    // Once the clock is past the newest commit again, its own time is used.
    clock = t1 + 50;
    const b = steppedBack();
    b.put({ payload: Buffer.from('caught up') });
    const c = await b.build();
    await w.validator.accept(c.bytes);
    expect(c.header.timestamp).toBe(t1 + 50);
  });
});
