// ChainValidator on the receipt path: serialized accepts with signatures checked on the pool,
// validate() as a dry run, trusting own signatures, rejected commits leave the state untouched.
import { afterAll, describe, expect, test } from 'vitest';
import { CryptoPool } from '../../src/crypto/index.js';
import { ChainValidator, CommitRejected, MemoryAuthorityState, newDaoKey, verifySignatures } from '../../src/chain/index.js';
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
});
