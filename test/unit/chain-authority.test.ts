// Tree authority: inheritance to depth, previous-ACL rule, root keys, cycles, missing parents,
// 'nobody'/'all' ACLs, versions. Real signatures; receipt path (ChainValidator.accept).
import { describe, expect, test } from 'vitest';
import {
  CommitRejected,
  MemoryAuthorityState,
  NotAuthorized,
  TreeError,
  effectiveWrite,
  newDaoKey,
  publicKeyId,
} from '../../src/chain/index.js';
import { Session } from '../../src/session/index.js';
import { identity, makeWorld, meta, rawCommit } from './chain-fixtures.js';

async function rejection(p: Promise<unknown>): Promise<CommitRejected> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CommitRejected) return e;
    throw e;
  }
  throw new Error('expected a CommitRejected');
}

const idOf = (i: number) => publicKeyId(identity(i).signing.publicKey);

describe('tree authority', () => {
  test('write ACL is inherited to depth 6 and overridden in the middle', async () => {
    const w = await makeWorld();
    const alice = identity(1);
    const bob = identity(2);
    // Root-level node owned by alice (owner = root key creates it).
    const chainKeys: string[] = [];
    await w.commit((b) => {
      let parent: string | null = null;
      for (let d = 0; d < 6; d++) {
        const key: string = b.put({
          parent: parent ? { key: parent, collection: 0 } : null,
          payload: Buffer.from(`level ${d}`),
        });
        chainKeys.push(key);
        parent = key;
      }
    });
    const deepest = chainKeys[5]!;
    // Creating children under a node checks the parent's ACL as it stands: set alice's ACL after.
    await w.commit((b) => b.put({ key: chainKeys[0]!, write: { mode: 'any', keys: [idOf(1)] } }));
    expect(effectiveWrite(w.state, deepest)).toEqual({ mode: 'any', keys: [idOf(1)] });

    // The owner (root key) is not admitted below the node alice owns.
    await expect(w.commit((b) => b.put({ key: deepest, payload: Buffer.from('x') }))).rejects.toBeInstanceOf(NotAuthorized);
    const forged = rawCommit(w.genesis.hash, [{ meta: meta({ key: deepest, version: 2, parent: { key: chainKeys[4]!, collection: 0 } }) }], [w.owner], w.clock.tick());
    expect((await rejection(w.validator.accept(forged.bytes))).reason).toBe('authority');

    // Alice may write at depth 6 (inherits from depth 0), and hands depth 3 to bob.
    const aliceSession = Session.of(alice);
    await w.commit((b) => b.put({ key: deepest, payload: Buffer.from('by alice') }), aliceSession);
    await w.commit((b) => b.put({ key: chainKeys[3]!, write: { mode: 'any', keys: [idOf(2)] } }), aliceSession);
    expect(effectiveWrite(w.state, deepest)).toEqual({ mode: 'any', keys: [idOf(2)] });
    expect(effectiveWrite(w.state, chainKeys[2]!)).toEqual({ mode: 'any', keys: [idOf(1)] });

    // Now bob can write depth 4-6 and alice cannot.
    await w.commit((b) => b.put({ key: deepest, payload: Buffer.from('by bob') }), Session.of(bob));
    const byAlice = rawCommit(
      w.genesis.hash,
      [{ meta: meta({ key: deepest, version: 4, parent: { key: chainKeys[4]!, collection: 0 } }) }],
      [alice],
      w.clock.tick(),
    );
    const r = await rejection(w.validator.accept(byAlice.bytes));
    expect(r.reason).toBe('authority');
    expect(r.eventIndex).toBe(0);
    // A new node at depth 7 is checked against its parent's effective ACL (bob's).
    await w.commit((b) => b.put({ parent: { key: deepest, collection: 1 }, payload: Buffer.from('leaf') }), Session.of(bob));
  });

  test('a write admitted only by the NEW ACL it sets is rejected', async () => {
    const w = await makeWorld();
    let node = '';
    await w.commit((b) => {
      node = b.put({ write: { mode: 'any', keys: [idOf(1)] } });
    });
    const mallory = identity(3);
    // Mallory sets the write ACL to herself and signs with her own key.
    const c = rawCommit(
      w.genesis.hash,
      [{ meta: meta({ key: node, version: 2, write: { mode: 'any', keys: [idOf(3)] } }) }],
      [mallory],
      w.clock.tick(),
    );
    const r = await rejection(w.validator.accept(c.bytes));
    expect(r.reason).toBe('authority');
    expect(w.state.getNode(node)!.write).toEqual({ mode: 'any', keys: [idOf(1)] });
    // The builder refuses to make it in the first place.
    expect(() => w.builder(Session.of(mallory)).put({ key: node, write: { mode: 'any', keys: [idOf(3)] } })).toThrow(NotAuthorized);
  });

  test('root-level writes need a root key (unless the genesis has the open policy)', async () => {
    const w = await makeWorld();
    const stranger = identity(4);
    expect(() => w.builder(Session.of(stranger)).put({ payload: Buffer.from('x') })).toThrow(NotAuthorized);
    const c = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [stranger], w.clock.tick());
    expect((await rejection(w.validator.accept(c.bytes))).reason).toBe('authority');

    const open = await makeWorld({ openRoot: true });
    const c2 = rawCommit(open.genesis.hash, [{ meta: meta({ key: newDaoKey() }) }], [stranger], open.clock.tick());
    await open.validator.accept(c2.bytes);
  });

  test('a missing parent and a move that would make a cycle are rejected', async () => {
    const w = await makeWorld();
    const ghost = newDaoKey();
    const c = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey(), parent: { key: ghost, collection: 0 } }) }], [w.owner], w.clock.tick());
    const r = await rejection(w.validator.accept(c.bytes));
    expect(r.reason).toBe('authority');
    expect(r.message).toMatch(/missing-parent/);

    let a = '';
    let b2 = '';
    let c3 = '';
    await w.commit((b) => {
      a = b.put({});
      b2 = b.put({ parent: { key: a, collection: 0 } });
      c3 = b.put({ parent: { key: b2, collection: 0 } });
    });
    // Move a under its grandchild c3.
    const move = rawCommit(w.genesis.hash, [{ meta: meta({ key: a, version: 2, parent: { key: c3, collection: 0 } }) }], [w.owner], w.clock.tick());
    const r2 = await rejection(w.validator.accept(move.bytes));
    expect(r2.reason).toBe('authority');
    expect(r2.message).toMatch(/cycle/);
    // Self-parent.
    const self = rawCommit(w.genesis.hash, [{ meta: meta({ key: a, version: 2, parent: { key: a, collection: 0 } }) }], [w.owner], w.clock.tick());
    expect((await rejection(w.validator.accept(self.bytes))).message).toMatch(/cycle/);
    // A moved node under a deleted parent is refused too.
    await w.commit((b) => b.delete(c3));
    expect(() => w.builder().put({ parent: { key: c3, collection: 0 } })).toThrow(NotAuthorized);
  });

  test('a cycle already in the state is detected, not looped on', async () => {
    const w = await makeWorld();
    const s = new MemoryAuthorityState();
    s.applyEffects({ commitHash: w.genesis.hash, timestamp: 0, genesis: w.state.getGenesis()!, nodes: [], dataKeys: [], publicKeys: [] });
    const keys = Array.from({ length: 100 }, () => newDaoKey());
    keys.forEach((k, i) => {
      s.nodes.set(k, {
        key: k,
        version: 1,
        deleted: false,
        parent: { key: keys[(i + 1) % keys.length]!, collection: 0 },
        read: { mode: 'inherit' },
        write: { mode: 'inherit' },
        nodeKey: null,
        keys: [],
        type: null,
        updatedAt: 0,
      });
    });
    let err: unknown;
    try {
      effectiveWrite(s, keys[0]!);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TreeError);
    expect((err as TreeError).problem).toBe('cycle');
  });

  test("'nobody' freezes a subtree; 'all' needs every listed signature", async () => {
    const w = await makeWorld();
    let frozen = '';
    let dual = '';
    await w.commit((b) => {
      frozen = b.put({ write: { mode: 'nobody' } });
      dual = b.put({ write: { mode: 'all', keys: [idOf(1), idOf(2)] } });
    });
    const c = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey(), parent: { key: frozen, collection: 0 } }) }], [w.owner], w.clock.tick());
    expect((await rejection(w.validator.accept(c.bytes))).reason).toBe('authority');

    const onlyOne = rawCommit(w.genesis.hash, [{ meta: meta({ key: newDaoKey(), parent: { key: dual, collection: 0 } }) }], [identity(1)], w.clock.tick());
    expect((await rejection(w.validator.accept(onlyOne.bytes))).reason).toBe('authority');
    // With both keys in the session the builder signs with both (one signature each per commit).
    const both = new Session([identity(1), identity(2)]);
    const commit = await w.commit((b) => {
      b.put({ parent: { key: dual, collection: 0 } });
      b.put({ parent: { key: dual, collection: 0 } });
    }, both);
    expect(commit.signatures).toHaveLength(2);
  });

  test('versions: a stale write is a conflict, a deleted DAO can be re-created', async () => {
    const w = await makeWorld();
    let k = '';
    await w.commit((b) => {
      k = b.put({ payload: Buffer.from('v1') });
    });
    const b1 = w.builder();
    const b2 = w.builder();
    b1.put({ key: k, payload: Buffer.from('v2 from 1') });
    b2.put({ key: k, payload: Buffer.from('v2 from 2') });
    const c1 = await b1.build();
    const c2 = await b2.build();
    await w.validator.accept(c1.bytes);
    const r = await rejection(w.validator.accept(c2.bytes));
    expect(r.reason).toBe('conflict');
    expect(w.state.getNode(k)!.version).toBe(2);

    await w.commit((b) => b.delete(k));
    expect(w.state.getNode(k)!.deleted).toBe(true);
    await w.commit((b) => b.put({ key: k, payload: Buffer.from('again') }));
    expect(w.state.getNode(k)).toMatchObject({ version: 4, deleted: false });
    // Two versions of one DAO in one commit are malformed.
    const dup = rawCommit(
      w.genesis.hash,
      [{ meta: meta({ key: k, version: 5 }) }, { meta: meta({ key: k, version: 6 }) }],
      [w.owner],
      w.clock.tick(),
    );
    expect((await rejection(w.validator.accept(dup.bytes))).reason).toBe('malformed');
  });

  test('a commit for another chain and a second genesis are rejected', async () => {
    const w = await makeWorld();
    const other = await makeWorld();
    const ob = other.builder();
    ob.put({});
    const c = await ob.build();
    expect((await rejection(w.validator.accept(c.bytes))).reason).toBe('genesis');
    expect((await rejection(w.validator.accept(other.genesis.bytes))).reason).toBe('genesis');
  });
});

describe('publicKeyId', () => {
  test('answers by the key bytes, also for a buffer changed after its id was asked', () => {
    const a = Buffer.from(identity(1).signing.publicKey);
    const b = identity(2).signing.publicKey;
    const idA = publicKeyId(a);
    expect(publicKeyId(Buffer.from(a))).toBe(idA);
    b.copy(a); // the same buffer now holds another key: its id is that key's
    expect(publicKeyId(a)).toBe(publicKeyId(Buffer.from(b)));
    expect(publicKeyId(a)).not.toBe(idA);
    // More keys than it remembers: each still gets its own id.
    const ids = Array.from({ length: 12 }, (_, i) => publicKeyId(identity(i + 1).signing.publicKey));
    expect(new Set(ids).size).toBe(12);
    expect(publicKeyId(identity(1).signing.publicKey)).toBe(idA);
  });
});
