// Confidentiality: per-node data keys, wraps for symmetric and KEM readers, NoReadKey (never
// garbage), reader changes by re-wrapping, payload AAD binding.
import { describe, expect, test } from 'vitest';
import { DecryptError } from '../../src/crypto/index.js';
import {
  DataKeyCache,
  NoReadKey,
  effectiveDataKey,
  openEventPayload,
  publicKeyId,
  readKeyId,
  type ReaderRef,
} from '../../src/chain/index.js';
import { Session, createGroupRole, readersOfPrincipal } from '../../src/session/index.js';
import { identity, makeWorld } from './chain-fixtures.js';

function readAs(w: Awaited<ReturnType<typeof makeWorld>>, s: Session, ev: { meta: any; payload: Buffer | null }): string {
  return openEventPayload(w.state, new DataKeyCache(s), ev)!.toString();
}

describe('confidentiality', () => {
  test('a reader without the key gets NoReadKey, never garbage', async () => {
    const w = await makeWorld();
    const c = await w.commit((b) => {
      b.put({ payload: Buffer.from('secret root-level') });
    });
    expect(openEventPayload(w.state, w.keys, c.events[0]!)!.toString()).toBe('secret root-level');
    // A fresh cache of the owner's session unwraps the genesis root key with the chain read key.
    expect(readAs(w, w.session, c.events[0]!)).toBe('secret root-level');
    const stranger = Session.of(identity(5));
    expect(() => readAs(w, stranger, c.events[0]!)).toThrow(NoReadKey);
    try {
      readAs(w, stranger, c.events[0]!);
    } catch (e) {
      expect((e as Error).name).toBe('NoReadKey');
    }
  });

  test('specific readers: symmetric and KEM wraps; subtree inherits the node key', async () => {
    const w = await makeWorld();
    const alice = identity(1);
    const team = createGroupRole('team', 'contributor');
    // The team's KEM public key is published in the chain, so anyone can wrap for it.
    const readers: ReaderRef[] = [
      { kind: 'sym', id: readKeyId(w.owner.readKey) },
      { kind: 'kem', id: publicKeyId(alice.kem.publicKey) },
      ...readersOfPrincipal(team, { sym: false, kem: true }),
    ];
    let dir = '';
    let file = '';
    const c = await w.commit((b) => {
      b.put({ payload: Buffer.from('pub'), publish: [alice.kem.publicKey, team.kem!.publicKey] });
    });
    expect(w.state.getPublicKey(publicKeyId(team.kem!.publicKey))).toBeDefined();
    const c2 = await w.commit((b) => {
      dir = b.put({ read: { mode: 'readers', readers }, payload: Buffer.from('dir payload') });
      file = b.put({ parent: { key: dir, collection: 0 }, payload: Buffer.from('file payload') });
    });
    expect(effectiveDataKey(w.state, file)).toBe(w.state.getNode(dir)!.nodeKey);
    expect(readAs(w, Session.of(alice), c2.events[1]!)).toBe('file payload');
    expect(readAs(w, new Session([team]), c2.events[0]!)).toBe('dir payload');
    expect(readAs(w, w.session, c2.events[1]!)).toBe('file payload');
    // alice can't read root-level data (chain readers = owner only).
    expect(() => readAs(w, Session.of(alice), c.events[0]!)).toThrow(NoReadKey);
  });

  test('changing readers: old data stays readable for added readers, new data is closed to removed ones', async () => {
    const w = await makeWorld();
    const [a, b, c] = [identity(1), identity(2), identity(3)];
    const sym = (i: typeof a): ReaderRef => ({ kind: 'kem', id: publicKeyId(i.kem.publicKey) });
    await w.commit((bb) => bb.put({ publish: [a.kem.publicKey, b.kem.publicKey, c.kem.publicKey] }));
    let node = '';
    let child = '';
    const first = await w.commit((bb) => {
      node = bb.put({ read: { mode: 'readers', readers: [sym(a), sym(b)] }, payload: Buffer.from('old node data') });
      child = bb.put({ parent: { key: node, collection: 0 }, payload: Buffer.from('old child data') });
    });
    const keyBefore = w.state.getNode(node)!.nodeKey;
    // Replace b by c. The owner can't unwrap the node key (not a reader; a fresh cache, since the
    // creator's own cache remembers the key it made) -> NoReadKey at build time.
    expect(() => w.builder(w.session, new DataKeyCache(w.session)).put({ key: node, read: { mode: 'readers', readers: [sym(a), sym(c)] } })).toThrow(NoReadKey);
    // a (a reader) re-wraps; the owner's root key signs (write ACL inherited from root).
    const both = new Session([w.owner, a]);
    const change = await w.commit((bb) => bb.put({ key: node, read: { mode: 'readers', readers: [sym(a), sym(c)] } }), both);
    // The old data was not re-encrypted: the change carries a new key and a re-wrap of the old one.
    expect(change.events[0]!.payload).toBeNull();
    const after = w.state.getNode(node)!;
    expect(after.nodeKey).not.toBe(keyBefore);
    expect(after.keys).toEqual([keyBefore, after.nodeKey]);
    const second = await w.commit((bb) => {
      bb.put({ key: child, payload: Buffer.from('new child data') });
    }, both);

    const as = (i: typeof a) => Session.of(i);
    // c (added) reads old and new data.
    expect(readAs(w, as(c), first.events[0]!)).toBe('old node data');
    expect(readAs(w, as(c), first.events[1]!)).toBe('old child data');
    expect(readAs(w, as(c), second.events[0]!)).toBe('new child data');
    // b (removed) still opens what it could read before, but nothing written after the removal.
    expect(readAs(w, as(b), first.events[1]!)).toBe('old child data');
    expect(() => readAs(w, as(b), second.events[0]!)).toThrow(NoReadKey);
    // a reads everything.
    expect(readAs(w, as(a), second.events[0]!)).toBe('new child data');

    // Adding a reader only re-wraps (same node key) and opens old data to it.
    const d = identity(4);
    await w.commit((bb) => bb.put({ publish: [d.kem.publicKey] }));
    await w.commit((bb) => bb.put({ key: node, read: { mode: 'readers', readers: [sym(a), sym(c), sym(d)] } }), both);
    expect(w.state.getNode(node)!.nodeKey).toBe(after.nodeKey);
    expect(readAs(w, as(d), second.events[0]!)).toBe('new child data');
    expect(readAs(w, as(d), first.events[0]!)).toBe('old node data');
  });

  test('a payload moved to another event does not open (AAD binds chain, DAO, version)', async () => {
    const w = await makeWorld();
    const c = await w.commit((b) => {
      b.put({ payload: Buffer.from('one') });
      b.put({ payload: Buffer.from('two') });
    });
    const [e0, e1] = c.events as [(typeof c.events)[0], (typeof c.events)[0]];
    expect(() => openEventPayload(w.state, w.keys, { meta: e0.meta, payload: e1.payload })).toThrow(DecryptError);
    expect(() => openEventPayload(w.state, w.keys, { meta: { ...e0.meta, version: 2 }, payload: e0.payload })).toThrow(DecryptError);
  });

  test("'chain' read mode wraps a fresh key for the chain readers", async () => {
    const w = await makeWorld();
    let n = '';
    const c = await w.commit((b) => {
      n = b.put({ read: { mode: 'chain' }, payload: Buffer.from('chain-wide') });
    });
    const node = w.state.getNode(n)!;
    expect(node.nodeKey).not.toBe(w.state.getGenesis()!.info.rootDataKey.id);
    expect(readAs(w, w.session, c.events[0]!)).toBe('chain-wide');
  });
});
