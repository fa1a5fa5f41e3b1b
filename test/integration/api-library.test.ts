// The library API (src/api) on real chains: logs and LMDB indexes in temp directories, real
// signatures and encryption. Remote chains are covered by the atedb suites.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as api from '../../src/api/index.js';
import {
  type Chain, ChainRegistry, ChainUnavailable, Conflict, InvalidChainTarget, LeaseHeld, LeaseNotOwner, NotFound,
  ChainNotPinned, NoWriteAuthority, Session, SubscriptionOverflow, ValueDecodeError, createIdentity, isDaoRef, openChain,
} from '../../src/api/index.js';

interface Todo { title: string; done: boolean; tags: string[] }

describe('library API', () => {
  let work: string;
  let chain: Chain;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'ate-api-'));
    chain = await openChain('todo', { dir: join(work, 'todo') });
  });
  afterAll(async () => {
    await chain?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('typed DAOs: store, load, children in a named collection, delete; values survive a reopen', async () => {
    const tx = chain.begin();
    const list = tx.store({ name: 'groceries' }, { type: 'list' });
    const milk = tx.store<Todo>({ title: 'milk', done: false, tags: ['dairy'] }, { parent: list, collection: 'items', type: 'todo' });
    const eggs = tx.store<Todo>({ title: 'eggs', done: true, tags: [] }, { parent: list, collection: 'items', type: 'todo' });
    expect(tx.load<Todo>(milk).value.title).toBe('milk'); // own writes are visible before commit
    const { seq } = await tx.commit();
    expect(seq).toBeGreaterThan(0);

    const got = chain.load<Todo>(milk);
    expect(got.value).toEqual({ title: 'milk', done: false, tags: ['dairy'] });
    expect(got.type).toBe('todo');
    expect(got.parent).toEqual({ key: list, collection: api.collectionId('items') });
    const t2 = chain.begin();
    expect(t2.children<Todo>(list, 'items').map((d) => d.value.title).sort()).toEqual(['eggs', 'milk']);
    expect(t2.children(list, 'other')).toEqual([]);
    t2.delete(eggs);
    await t2.commit();
    expect(chain.tryLoad(eggs)).toBeUndefined();
    expect(() => chain.load(eggs)).toThrow(NotFound);

    await chain.close();
    chain = await openChain('todo', { dir: join(work, 'todo') });
    expect(chain.load<Todo>(milk).value.tags).toEqual(['dairy']);
    expect(chain.begin().childKeys(list, 'items')).toEqual([milk]);
  });

  it('transact re-runs a transaction that lost an optimistic race, and reports Conflict without retries', async () => {
    const counter = await chain.transact((tx) => tx.store({ n: 0 }));
    const bump = (tx: api.Transaction) => tx.store({ n: tx.load<{ n: number }>(counter).value.n + 1 }, { key: counter });
    // Ten concurrent increments: each loses at most to the others and is re-run on the new state.
    await Promise.all(Array.from({ length: 10 }, () => chain.transact(bump, { retries: 20 })));
    expect(chain.load<{ n: number }>(counter).value.n).toBe(10);

    const a = chain.begin();
    const b = chain.begin();
    bump(a);
    bump(b);
    await a.commit();
    await expect(b.commit()).rejects.toBeInstanceOf(Conflict);
    expect(chain.load<{ n: number }>(counter).value.n).toBe(11);
  });

  it('change subscriptions: every commit in order, filtered by type, ended by return()', async () => {
    const all = chain.changes();
    const todos = chain.changes({ type: 'todo' });
    const keys: string[] = [];
    for (let i = 0; i < 5; i++) keys.push(await chain.transact((tx) => tx.store({ i }, { type: i % 2 ? 'todo' : 'note' })));
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      const n = (await all.next()).value as api.ChangeNotice;
      expect(n.local).toBe(true);
      expect(n.changes.map((c) => c.key)).toEqual([keys[i]]);
      seen.push(n.seq);
    }
    expect([...seen].sort((x, y) => x - y)).toEqual(seen);
    const t1 = (await todos.next()).value as api.ChangeNotice;
    const t2 = (await todos.next()).value as api.ChangeNotice;
    expect([t1.changes[0]!.key, t2.changes[0]!.key]).toEqual([keys[1], keys[3]]);
    await all.return!();
    await todos.return!();
    expect(await all.next()).toEqual({ value: undefined, done: true });
  });

  it('a subscriber that stops reading is ended with SubscriptionOverflow, not unbounded memory', async () => {
    const sub = chain.changes({ buffer: 3 });
    for (let i = 0; i < 5; i++) await chain.transact((tx) => tx.store({ i }));
    for (let i = 0; i < 3; i++) expect((await sub.next()).done).toBe(false);
    await expect(sub.next()).rejects.toBeInstanceOf(SubscriptionOverflow);
    expect((await sub.next()).done).toBe(true);
  });

  it('leases: one owner at a time, only the owner releases', async () => {
    const other = await openChain('leases', { dir: join(work, 'leases'), leaseOwner: 'worker-a' });
    try {
      const key = other.namedKey('job-1');
      const l = await other.leases.acquire(key, 60_000);
      expect(l.owner).toBe('worker-a');
      expect(await other.leases.tryAcquire(key, 1000)).not.toBeNull(); // the same owner renews
      const b = new api.LocalLeases(other.view, 'worker-b');
      await expect(b.acquire(key, 1000)).rejects.toBeInstanceOf(LeaseHeld);
      expect(await b.tryAcquire(key, 1000)).toBeNull();
      await expect(b.release(key)).rejects.toBeInstanceOf(LeaseNotOwner);
      await other.leases.release(key);
      expect((await b.acquire(key, 1000)).owner).toBe('worker-b');
      await b.release(key);
      await expect(other.leases.release(key)).rejects.toBeInstanceOf(LeaseNotOwner);
      expect(await other.leases.get(key)).toBeNull();
    } finally {
      await other.close();
    }
  });

  it('WORM: a record written with write ACL nobody cannot be changed or deleted', async () => {
    const key = await chain.transact((tx) => tx.store({ v: 1 }, { write: { mode: 'nobody' } }));
    await expect(chain.transact((tx) => tx.store({ v: 2 }, { key }))).rejects.toBeInstanceOf(NoWriteAuthority);
    await expect(chain.transact((tx) => tx.delete(key))).rejects.toBeInstanceOf(NoWriteAuthority);
    expect(chain.load(key).value).toEqual({ v: 1 });
  });

  it('cross-chain references load through their own chain', async () => {
    const reg = new ChainRegistry((name) => openChain(name, { dir: join(work, 'refs', name) }));
    try {
      const crm = await reg.chain('crm');
      const shop = await reg.chain('shop');
      const cust = await crm.transact((tx) => tx.store({ name: 'Ada' }));
      const order = await shop.transact((tx) => tx.store({ customer: crm.ref(cust) }));
      const ref = shop.load<{ customer: api.DaoRef }>(order).value.customer;
      expect(isDaoRef(ref)).toBe(true);
      expect((await reg.load<{ name: string }>(ref)).value.name).toBe('Ada');
      await expect(reg.load({ chain: 'no such/../chain', key: cust })).rejects.toBeInstanceOf(api.UnknownChainRef);
    } finally {
      await reg.close();
    }
  });

  it('named keys are stable per chain and differ between chains', async () => {
    const t1 = await openChain('a', { temp: true });
    const t2 = await openChain('a', { temp: true });
    try {
      expect(t1.namedKey('root')).toBe(t1.namedKey('root'));
      expect(t1.namedKey('root')).not.toBe(t2.namedKey('root')); // two genesis records
    } finally {
      await t1.close();
      await t2.close();
    }
  });

  it('typed errors: bad targets, read-only without a chain, undecodable payloads', async () => {
    await expect(openChain('../etc')).rejects.toBeInstanceOf(InvalidChainTarget);
    await expect(openChain('a b')).rejects.toBeInstanceOf(InvalidChainTarget);
    await expect(openChain('nothing-here', { dir: join(work, 'none'), readOnly: true })).rejects.toBeInstanceOf(ChainUnavailable);
    // Raw bytes written below the API are not a msgpack value: a typed error, not garbage.
    const d = chain.view.begin('durable');
    const raw = d.store(Buffer.from([0x92, 0x01]));
    await d.commit();
    expect(() => chain.load(raw)).toThrow(ValueDecodeError);
  });

  it('a chain opened with another identity cannot write the owner\'s records (tree authority)', async () => {
    const dir = join(work, 'owned');
    const owner = await openChain('owned', { dir, session: Session.of(createIdentity('owner')), configDir: join(work, 'cfg-owner') });
    const key = await owner.transact((tx) => tx.store({ mine: true }));
    await owner.close();
    // Another user's config has no pin for it: refused, unless trusted on purpose.
    await expect(openChain('owned', { dir, session: Session.of(createIdentity('intruder')), configDir: join(work, 'cfg-intruder') })).rejects.toBeInstanceOf(ChainNotPinned);
    const intruder = await openChain('owned', { dir, session: Session.of(createIdentity('intruder')), configDir: join(work, 'cfg-intruder'), trustChain: true });
    try {
      await expect(intruder.transact((tx) => tx.store({ mine: false }, { key }))).rejects.toBeInstanceOf(NoWriteAuthority);
    } finally {
      await intruder.close();
    }
  });

  it('every error class the API names is exported from the entry', () => {
    for (const name of ['AteError', 'InvalidChainTarget', 'ChainUnavailable', 'ValueDecodeError', 'SubscriptionOverflow', 'UnknownChainRef',
      'TimeoutError', 'NotFound', 'Conflict', 'NoWriteAuthority', 'NoReadKey', 'CommitRejected', 'LeaseHeld', 'LeaseNotOwner', 'TokenExpired']) {
      const C = (api as Record<string, unknown>)[name];
      expect(typeof C, name).toBe('function');
      expect((C as { prototype: unknown }).prototype instanceof Error, name).toBe(true);
    }
  });
});
