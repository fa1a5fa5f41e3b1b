// openChain('tcp://...'): the library over a real atedb solo. Two processes' worth of clients (two
// sessions of one user, separate state directories) see each other's transactions in the same
// order; a reopen resumes from the local replica.
import { describe, expect, it } from 'vitest';
import { Session, createIdentity, openChain } from '../../src/api/index.js';
import { sleep, startSolo, tempDir } from './atedb/harness.js';

describe('openChain over tcp://', () => {
  it('stores, reads back, relays to a second replica in server order, reopens from its replica', async () => {
    const solo = await startSolo();
    const me = createIdentity('me');
    const config = await tempDir('atedb-lib-config-');
    const url = `tcp://127.0.0.1:${solo.port}/team/library`;
    const dirA = await tempDir('atedb-lib-a-');
    const dirB = await tempDir('atedb-lib-b-');
    const a = await openChain(url, { session: Session.of(me), dir: dirA, configDir: config });
    const b = await openChain(url, { session: Session.of(me), dir: dirB, configDir: config });
    expect(b.genesisHash).toBe(a.genesisHash);
    const tx = a.begin();
    const k = tx.store({ title: 'hello' }, { type: 'note' });
    const { seq } = await tx.commit({ scope: 'remote' });
    expect(seq).toBe(2);
    expect(a.load<{ title: string }>(k).value.title).toBe('hello');
    for (let i = 0; i < 1000 && !b.tryLoad(k); i++) await sleep(20);
    expect(b.load<{ title: string }>(k).value.title).toBe('hello');
    // Concurrent writers on both replicas: one order everywhere.
    await Promise.all([
      ...Array.from({ length: 5 }, (_, i) => a.transact((t) => t.store({ n: `a${i}` }))),
      ...Array.from({ length: 5 }, (_, i) => b.transact((t) => t.store({ n: `b${i}` }))),
    ]);
    const order = (c: typeof a) => [...Array(c.view.log.nextSeq - 1).keys()].map((i) => c.view.recordBytes(i + 1).toString('hex'));
    for (let i = 0; i < 1000 && (a.view.log.nextSeq !== 13 || b.view.log.nextSeq !== 13); i++) await sleep(20);
    expect(order(a)).toEqual(order(b));
    expect(order(a)).toHaveLength(12);
    // An optimistic conflict across replicas: both update k from version 1; one wins, the other
    // transaction re-runs on the new state.
    await Promise.all([
      a.transact((t) => { const v = t.load<{ title: string }>(k); t.store({ title: `${v.value.title} A` }, { key: k }); }),
      b.transact((t) => { const v = t.load<{ title: string }>(k); t.store({ title: `${v.value.title} B` }, { key: k }); }),
    ]);
    for (let i = 0; i < 1000 && a.load(k).version !== 3; i++) await sleep(20);
    expect(a.load(k).version).toBe(3);
    expect(['hello A B', 'hello B A']).toContain(a.load<{ title: string }>(k).value.title);
    await b.close();
    // Reopen: resumes from the local replica, sees everything.
    const b2 = await openChain(url, { session: Session.of(me), dir: dirB, configDir: config });
    for (let i = 0; i < 1000 && b2.view.log.nextSeq !== a.view.log.nextSeq; i++) await sleep(20);
    expect(b2.load<{ title: string }>(k).value).toEqual(a.load<{ title: string }>(k).value);
    await a.close();
    await b2.close();
    await solo.kill('SIGTERM');
  });
});
