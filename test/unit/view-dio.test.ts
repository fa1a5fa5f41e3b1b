import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from '../../src/session/index.js';
import {
  CommitRejected,
  Conflict,
  NoReadKey,
  NoWriteAuthority,
  NotFound,
  TransactionClosed,
  type ChangeEvent,
  type View,
} from '../../src/view/index.js';
import { type Chain, identity, makeChain, snapshot } from './view-fixtures.js';

describe('view: DIO transactions', () => {
  let c: Chain;
  let view: View;
  let dir: string;
  beforeAll(async () => {
    c = await makeChain();
    view = await c.open();
    const d = view.begin();
    dir = d.store(Buffer.from('root dir'), { type: 'dir' });
    await d.commit();
  });
  afterAll(async () => {
    await c.cleanup();
  });

  it('cancel discards everything; a closed transaction refuses use', async () => {
    const before = snapshot(view);
    const size = view.log.sizeBytes();
    const d = view.begin();
    const k = d.push(dir, 0, Buffer.from('never'));
    expect(d.exists(k)).toBe(true);
    d.cancel();
    expect(() => d.store(Buffer.from('x'))).toThrow(TransactionClosed);
    await expect(d.commit()).rejects.toThrow(TransactionClosed);
    expect(view.exists(k)).toBe(false);
    expect(snapshot(view)).toEqual(before);
    expect(view.log.sizeBytes()).toBe(size);
  });

  it('conflict: of two transactions that read and write the same DAO, the second fails without trace', async () => {
    const d0 = view.begin();
    const k = d0.push(dir, 0, Buffer.from('v1'));
    await d0.commit();
    const a = view.begin();
    const b = view.begin();
    expect(a.load(k).data!.toString()).toBe('v1');
    expect(b.load(k).data!.toString()).toBe('v1');
    a.store(Buffer.from('from a'), { key: k });
    b.store(Buffer.from('from b'), { key: k });
    const other = b.push(dir, 0, Buffer.from('b side effect'));
    await a.commit();
    const before = snapshot(view);
    await expect(b.commit()).rejects.toThrow(Conflict);
    expect(view.get(k).data!.toString()).toBe('from a');
    expect(view.exists(other)).toBe(false);
    expect(snapshot(view)).toEqual(before);
  });

  it('conflict detected by validation when both commit concurrently', async () => {
    const d0 = view.begin();
    const k = d0.push(dir, 0, Buffer.from('base'));
    await d0.commit();
    const a = view.begin();
    const b = view.begin();
    a.load(k);
    b.load(k);
    a.store(Buffer.from('A'), { key: k });
    b.store(Buffer.from('B'), { key: k });
    const res = await Promise.allSettled([a.commit(), b.commit()]);
    expect(res.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rej = res.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rej.reason).toBeInstanceOf(Conflict);
    expect(view.get(k).version).toBe(2);
  });

  it('concurrent transactions on different DAOs all apply, in distinct commits', async () => {
    const dios = Array.from({ length: 8 }, (_, i) => {
      const d = view.begin();
      d.push(dir, 2, Buffer.from(`c${i}`));
      return d;
    });
    const res = await Promise.all(dios.map((d) => d.commit()));
    expect(new Set(res.map((r) => r.seq)).size).toBe(8);
    const kids = view.children(dir, 2).map((k) => view.get(k).data!.toString()).sort();
    expect(kids).toEqual(Array.from({ length: 8 }, (_, i) => `c${i}`).sort());
  });

  it('a commit that fails validation half way leaves no trace (all or nothing)', async () => {
    const me = c.session.signingKeys()[0]!.id;
    const stranger = Session.of(identity(1)).signingKeys()[0]!.id;
    const d = view.begin();
    const locked = d.push(dir, 0, Buffer.from('locked'));
    await d.commit();
    // Give the node away: from now on only the stranger may write it.
    const g = view.begin();
    g.setAcl(locked, { write: { mode: 'any', keys: [stranger] } });
    await g.commit();
    expect(view.node(locked)!.write).toEqual({ mode: 'any', keys: [stranger] });
    const before = snapshot(view);
    const size = view.log.sizeBytes();
    const t = view.begin();
    const fresh = t.push(dir, 0, Buffer.from('would be new'));
    t.store(Buffer.from('overwrite'), { key: locked });
    await expect(t.commit()).rejects.toThrow(NoWriteAuthority);
    expect(view.exists(fresh)).toBe(false);
    expect(snapshot(view)).toEqual(before);
    expect(view.log.sizeBytes()).toBe(size);
    expect(me).not.toBe(stranger);
  });

  it('a forged commit submitted from outside is rejected and leaves no trace', async () => {
    const d = view.begin();
    d.push(dir, 0, Buffer.from('to be forged'));
    // Build a real commit through a transaction, then flip a signature byte before submitting it.
    const { CommitBuilder } = await import('../../src/chain/index.js');
    const b = new CommitBuilder({ state: view.state, keyring: c.session, keys: view.keys, now: view.now });
    b.put({ parent: { key: dir, collection: 0 }, payload: Buffer.from('forged') });
    const commit = await b.build();
    const bytes = Buffer.from(commit.bytes);
    const sig = commit.signatures[0]!.signature;
    const at = bytes.indexOf(sig) + 100;
    bytes[at] ^= 1;
    const before = snapshot(view);
    await expect(view.submit(bytes)).rejects.toThrow(CommitRejected);
    expect(snapshot(view)).toEqual(before);
    // The genuine one is accepted from outside, once; its replay is refused.
    await view.submit(commit.bytes);
    await expect(view.submit(commit.bytes)).rejects.toThrow(CommitRejected);
    d.cancel();
  });

  it('notifies subscribers after a commit is applied', async () => {
    const seen: ChangeEvent[] = [];
    const off = view.subscribe((e) => seen.push(e));
    const d = view.begin();
    const k = d.push(dir, 3, Buffer.from('n'));
    expect(seen).toHaveLength(0);
    const r = await d.commit();
    off();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.seq).toBe(r.seq);
    expect(seen[0]!.local).toBe(true);
    expect(seen[0]!.changes.map((x) => x.key)).toEqual([k]);
    expect(seen[0]!.changes[0]!.after).toEqual({ key: dir, collection: 3 });
    // Observed after apply: the subscriber could read the new value synchronously.
    expect(view.exists(k)).toBe(true);
  });

  it('collections: push, iterate, attach, detach', async () => {
    const d = view.begin();
    const list = d.store(Buffer.from('list'));
    const x = d.push(list, 7, Buffer.from('x'));
    const y = d.push(list, 7, Buffer.from('y'));
    expect([...d.iterate(list, 7)].map((r) => r.data!.toString()).sort()).toEqual(['x', 'y']);
    await d.commit();
    const e = view.begin();
    const other = e.store(Buffer.from('other'));
    e.attach(x, other, 1);
    e.detach(y);
    expect(e.children(list, 7)).toEqual([]);
    expect(e.children(other, 1)).toEqual([x]);
    await e.commit();
    expect(view.children(list, 7)).toEqual([]);
    expect(view.children(other, 1)).toEqual([x]);
    expect(view.get(x).data!.toString()).toBe('x');
    expect(view.get(y).parent).toBeNull();
    expect(view.get(x).version).toBe(2);
  });

  it('keyed names: deterministic per (parent, collection, name), no plaintext in index or log', async () => {
    const d = view.begin();
    const sub = d.push(dir, 0, Buffer.from('subdir'), { type: 'dir' });
    const marker = Buffer.from('PLAINTEXT-NAME-MARKER-7731');
    const k1 = d.nameKey(sub, 1, marker);
    expect(d.nameKey(sub, 1, marker)).toBe(k1);
    expect(d.nameKey(sub, 2, marker)).not.toBe(k1);
    expect(d.nameKey(dir, 1, marker)).not.toBe(k1);
    expect(d.nameKey(sub, 1, Buffer.from('other'))).not.toBe(k1);
    d.push(sub, 1, Buffer.from('entry'), { key: k1 });
    await d.commit('durable');
    expect(view.nameKey(sub, 1, marker)).toBe(k1);
    expect(view.get(k1).data!.toString()).toBe('entry');
    for (const base of [c.logDir, c.indexDir]) {
      for (const f of readdirSync(base)) {
        expect(readFileSync(join(base, f)).includes(marker)).toBe(false);
      }
    }
  });

  it('errors: NotFound for missing DAOs and parents; NoReadKey and NoWriteAuthority for a stranger', async () => {
    const d = view.begin();
    expect(() => d.load('00'.repeat(16))).toThrow(NotFound);
    expect(() => d.delete('00'.repeat(16))).toThrow(NotFound);
    d.push('11'.repeat(16), 0, Buffer.from('orphan'));
    await expect(d.commit()).rejects.toThrow(NotFound);
    const k = view.children(dir, 0)[0]!;
    const stranger = Session.of(identity(1));
    const v2 = await c.open({ keyring: stranger });
    expect(v2.exists(k)).toBe(true);
    expect(() => v2.get(k)).toThrow(NoReadKey);
    const t = v2.begin();
    t.store(Buffer.from('intruder'));
    await expect(t.commit()).rejects.toThrow(NoWriteAuthority);
    view = await c.open();
  });
});
