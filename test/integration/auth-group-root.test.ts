// The group root's two rights (issue 16): in a group chain the group root's write ACL admits only
// the owner and delegate keys (changing the group root itself) while its children ACL admits
// contributors too (creating entries under it). Checked by every validator a forged commit can
// meet: the in-process ChainValidator, the chain loader on a real log (what a view replays and
// `atefs verify` runs), and a real `atedb solo` on 127.0.0.1. A record written before children
// ACLs existed (one write ACL) decodes and behaves as it did, and a manager's mount splits such a
// group root. A group-writable file's admin ACL: contributors write its content, only its owner
// and the managers change its ACLs.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLog } from '../../src/log/index.js';
import { metaDecoders } from '../../src/chain/codec.js';
import { decodeDaoEntry, encodeDaoEntry } from '../../src/view/index-store.js';
import { openChain } from '../../src/api/index.js';
import { GROUP_ROOT_KEY } from '../../fs/chain-store/keys.js';
import { UNDER_GROUP_ROOT, groupRootOf, holdsManagerKey, renewGroupRoot } from '../../fs/remote/group-root.js';
import {
  ChainLoadError, ChainValidator, type Commit, CommitBuilder, CommitRejected, DataKeyCache, MemoryAuthorityState, type WriteAcl,
  createGenesis, decodeCommit, encodeMeta, loadChainState, newDaoKey, publicKeyId, verifyChain,
} from '../../src/chain/index.js';
import { type Identity, Session, createIdentity } from '../../src/session/index.js';
import type { Message } from '../../src/net/index.js';
import { meta, rawCommit } from '../unit/chain-fixtures.js';
import { RawClient, type Solo, startSolo, tempDir } from './atedb/harness.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atefs-group-root-'));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const idOf = (i: Identity) => publicKeyId(i.signing.publicKey);
const any = (...who: Identity[]): WriteAcl => ({ mode: 'any', keys: who.map(idOf) });

/**
 * A group chain as the auth policy roots it: the genesis names the owner's and the delegate's
 * signing keys as root keys; every member reads the root data key. Commits are validated by an
 * in-process ChainValidator as they are made, and kept in order for a log and a server.
 */
async function groupChain(name: string) {
  const owner = createIdentity('owner');
  const delegate = createIdentity('delegate');
  const contributor = createIdentity('contributor');
  const members = [owner, delegate, contributor];
  let t = Date.now() - 60_000;
  const now = () => ++t;
  const caches = new Map(members.map((m) => [m, new DataKeyCache(Session.of(m))]));
  const genesis = await createGenesis({
    name,
    keyring: Session.of(owner, delegate, contributor),
    rootKeys: [owner.signing.publicKey, delegate.signing.publicKey],
    chainReaders: members.flatMap((m) => Session.of(m).chainReaders()),
    keys: caches.get(owner)!,
    now,
  });
  const state = new MemoryAuthorityState();
  const validator = new ChainValidator(state, { now: () => Date.now() });
  await validator.accept(genesis.bytes);
  const log: Commit[] = [genesis];
  const builder = (by: Identity) => new CommitBuilder({ state, keyring: Session.of(by), keys: caches.get(by)!, now });
  /** Builds with `by`'s keys, validates (signatures verified from the bytes) and applies. */
  const commit = async (by: Identity, fill: (b: CommitBuilder) => void): Promise<Commit> => {
    const b = builder(by);
    fill(b);
    const c = await b.build();
    await validator.accept(c.bytes);
    log.push(c);
    return c;
  };
  return { owner, delegate, contributor, state, validator, log, builder, commit, now };
}

/** The rejection of `p` (a CommitRejected), failing the test when it resolves. */
async function rejection(p: Promise<unknown>): Promise<CommitRejected> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(CommitRejected);
  return e as CommitRejected;
}

describe('the group root: changed by owners and delegates, created under by contributors', () => {
  it('the validator refuses a contributor changing the group root and accepts what he creates under it', async () => {
    const g = await groupChain('acme/validator');
    const { owner, delegate, contributor } = g;
    const root = newDaoKey();
    await g.commit(owner, (b) => void b.put({ key: root, type: 'group-root', payload: Buffer.from([1]), write: any(owner, delegate), children: any(contributor, delegate, owner) }));
    expect(g.state.getNode(root)).toMatchObject({ write: any(owner, delegate), children: any(contributor, delegate, owner) });
    // The view's persisted index keeps both (a remount enforces what the chain said), and an entry
    // written before the fields decodes without them.
    const entry = { seq: 2, index: 0, hash: Buffer.alloc(32), metaStart: 0, metaLen: 1, payloadStart: -1, payloadLen: 0, created: 2 };
    const withAcls = { ...g.state.getNode(root)!, admin: any(owner) };
    expect(decodeDaoEntry(encodeDaoEntry({ ...entry, node: withAcls })).node).toEqual(withAcls);
    const { children: _c, admin: _a, ...plain } = withAcls;
    const old = decodeDaoEntry(encodeDaoEntry({ ...entry, node: plain }));
    expect(old.node).toEqual(plain);
    expect('children' in old.node || 'admin' in old.node).toBe(false);

    // A contributor creates under it: a file, a directory inheriting the children ACL, a file in that.
    const file = newDaoKey();
    const dir = newDaoKey();
    const inner = newDaoKey();
    await g.commit(contributor, (b) => {
      b.put({ key: file, parent: { key: root, collection: 1 }, type: 'inode', payload: Buffer.from('bob\'s file'), write: any(contributor, delegate, owner) });
      b.put({ key: dir, parent: { key: root, collection: 1 }, type: 'inode', payload: Buffer.from('bob\'s dir') });
      b.put({ key: inner, parent: { key: dir, collection: 2 }, type: 'dentry', payload: Buffer.from('a name') });
    });
    // ...and changes the directory (inheriting: the group root's children ACL), but not the group root.
    await g.commit(contributor, (b) => void b.put({ key: dir, payload: Buffer.from('bob\'s dir, v2') }));
    expect(() => g.builder(contributor).put({ key: root, write: any(contributor), children: any(contributor) })).toThrow(/no key the write ACL \(any\) of/);

    // Forged by hand (past the builder), signed by the contributor: every change of the group root is refused.
    const v = g.state.getNode(root)!.version;
    const forgeries: Array<[string, Commit]> = [
      ['take-over', rawCommit(g.log[0]!.hash, [{ meta: meta({ key: root, version: v + 1, write: any(contributor), children: any(contributor) }) }], [contributor], g.now())],
      ['lock-out', rawCommit(g.log[0]!.hash, [{ meta: meta({ key: root, version: v + 1, write: any(owner, delegate), children: { mode: 'nobody' } }) }], [contributor], g.now())],
      ['same ACLs', rawCommit(g.log[0]!.hash, [{ meta: meta({ key: root, version: v + 1, type: 'group-root', write: any(owner, delegate), children: any(contributor, delegate, owner) }) }], [contributor], g.now())],
      ['tombstone', rawCommit(g.log[0]!.hash, [{ meta: meta({ key: root, version: v + 1, tombstone: true, type: 'group-root', write: any(owner, delegate), children: any(contributor, delegate, owner) }) }], [contributor], g.now())],
    ];
    for (const [what, c] of forgeries) {
      const e = await rejection(g.validator.accept(c.bytes));
      expect(e.reason, what).toBe('authority');
      expect(e.message, what).toContain(`no signature admitted by the write ACL (any) of ${root}, which says who may change it`);
    }
    // Attaching an existing node of the owner's under the group root is a change of that node: refused too.
    const ownersNode = newDaoKey();
    await g.commit(owner, (b) => void b.put({ key: ownersNode, payload: Buffer.from('root-level, the owner\'s'), write: any(owner) }));
    const attach = rawCommit(g.log[0]!.hash, [{ meta: meta({ key: ownersNode, version: 2, parent: { key: root, collection: 1 }, write: any(contributor) }) }], [contributor], g.now());
    expect((await rejection(g.validator.accept(attach.bytes))).message).toContain(`of ${ownersNode}, which says who may change it`);
    // A new node outside the group root needs a root key: the contributor is refused at root level.
    const rootLevel = rawCommit(g.log[0]!.hash, [{ meta: meta({ key: newDaoKey() }) }], [contributor], g.now());
    expect((await rejection(g.validator.accept(rootLevel.bytes))).message).toContain('the chain\'s root keys (any)');
    expect(g.state.getNode(root)!.version).toBe(v);

    // The delegate and the owner change it.
    await g.commit(delegate, (b) => void b.put({ key: root, children: any(delegate, owner) }));
    expect(g.state.getNode(root)!.children).toEqual(any(delegate, owner));
    // ...which the contributor now feels: nothing new under it, and no change of the inheriting directory.
    const late = rawCommit(g.log[0]!.hash, [{ meta: meta({ key: newDaoKey(), parent: { key: root, collection: 1 } }) }], [contributor], g.now());
    expect((await rejection(g.validator.accept(late.bytes))).message).toContain(`the children ACL (any) of ${root}, which says who may create entries under it`);
    const dirV = g.state.getNode(dir)!.version;
    const dirChange = rawCommit(g.log[0]!.hash, [{ meta: meta({ key: dir, version: dirV + 1, parent: { key: root, collection: 1 } }) }], [contributor], g.now());
    expect((await rejection(g.validator.accept(dirChange.bytes))).reason).toBe('authority');
    // His own file keeps its own ACL.
    await g.commit(contributor, (b) => void b.put({ key: file, payload: Buffer.from('bob\'s file, v2') }));
    await g.commit(owner, (b) => void b.put({ key: root, children: any(contributor, delegate, owner) }));
    await g.commit(contributor, (b) => void b.put({ parent: { key: root, collection: 1 }, payload: Buffer.from('again') }));
    // Dropping the children ACL (null) makes the node one ACL again: its write ACL.
    await g.commit(owner, (b) => void b.put({ key: root, children: null }));
    expect(g.state.getNode(root)!.children).toBeUndefined();
    const nowRefused = rawCommit(g.log[0]!.hash, [{ meta: meta({ key: newDaoKey(), parent: { key: root, collection: 1 } }) }], [contributor], g.now());
    expect((await rejection(g.validator.accept(nowRefused.bytes))).reason).toBe('authority');
  });

  it('a record without a children ACL (written before it existed) decodes and behaves as one write ACL', async () => {
    const g = await groupChain('acme/old');
    const { owner, delegate, contributor } = g;
    const old = newDaoKey();
    const c = await g.commit(owner, (b) => void b.put({ key: old, type: 'group-root', payload: Buffer.from([1]), write: any(contributor, delegate, owner) }));
    // Encoded exactly as before the field: no 'c' key; both decoders give no children ACL.
    const ev = decodeCommit(c.bytes).events[0]!;
    expect(Object.keys(unpack(ev.metaBytes) as object)).not.toContain('c');
    expect('children' in ev.meta).toBe(false);
    expect(encodeMeta(ev.meta).equals(ev.metaBytes)).toBe(true);
    expect(metaDecoders.general(ev.metaBytes)).toEqual(ev.meta);
    // One ACL for both: the contributor creates under it and may change it (what older chains allowed).
    await g.commit(contributor, (b) => void b.put({ parent: { key: old, collection: 1 }, payload: Buffer.from('child') }));
    await g.commit(contributor, (b) => void b.put({ key: old, payload: Buffer.from([1]) }));
    // An owner's mount splits it (fs/remote/group-root.ts renewGroupRoot); from then on it is refused.
    await g.commit(owner, (b) => void b.put({ key: old, write: any(delegate, owner), children: any(contributor, delegate, owner) }));
    const v = g.state.getNode(old)!.version;
    const forged = rawCommit(g.log[0]!.hash, [{ meta: meta({ key: old, version: v + 1, write: any(contributor) }) }], [contributor], g.now());
    expect((await rejection(g.validator.accept(forged.bytes))).reason).toBe('authority');
  });

  it('a group-writable file: contributors write its content, only its owner and the managers change its ACLs', async () => {
    const g = await groupChain('acme/files');
    const { owner, delegate, contributor } = g;
    const alice = createIdentity('alice, the file\'s owner'); // her personal key (the owner role key is `owner`)
    const root = newDaoKey();
    await g.commit(owner, (b) => void b.put({ key: root, type: 'group-root', payload: Buffer.from([1]), write: any(owner, delegate), children: any(contributor, delegate, owner) }));
    // A 0660 file as a group mount writes it: group-writable, admin = its owner's key and the managers'.
    const file = newDaoKey();
    const groupWritable = any(contributor, delegate, owner);
    await g.commit(owner, (b) => void b.put({ key: file, parent: { key: root, collection: 1 }, type: 'inode', payload: Buffer.from('0660 v1'), write: groupWritable, admin: any(alice, delegate, owner) }));
    expect(g.state.getNode(file)!.admin).toEqual(any(alice, delegate, owner));
    // The contributor writes its content (same ACLs, keys in another order included).
    await g.commit(contributor, (b) => void b.put({ key: file, payload: Buffer.from('0660 v2, by the contributor') }));
    // ...but changing who may write it or read it (a chmod 0600 for himself) is refused, by his
    // builder and, forged, by the validator; so is dropping or replacing the admin ACL.
    expect(() => g.builder(contributor).put({ key: file, write: any(contributor) })).toThrow(/admin ACL \(any\) of .*which says who may change its ACLs/);
    const v = g.state.getNode(file)!.version;
    const forged = [
      meta({ key: file, version: v + 1, parent: { key: root, collection: 1 }, type: 'inode', write: any(contributor), admin: any(alice, delegate, owner) }),
      meta({ key: file, version: v + 1, parent: { key: root, collection: 1 }, type: 'inode', write: groupWritable, admin: any(contributor) }),
      meta({ key: file, version: v + 1, parent: { key: root, collection: 1 }, type: 'inode', write: groupWritable }),
      meta({ key: file, version: v + 1, parent: { key: root, collection: 1 }, type: 'inode', write: groupWritable, admin: any(alice, delegate, owner), children: any(contributor) }),
    ];
    for (const m of forged) {
      const e = await rejection(g.validator.accept(rawCommit(g.log[0]!.hash, [{ meta: m }], [contributor], g.now()).bytes));
      expect(e.reason).toBe('authority');
      expect(e.message).toContain(`no signature admitted by the admin ACL (any) of ${file}, which says who may change its ACLs`);
    }
    // The same content change with the ACLs as they are, forged by hand, is fine (keys reordered).
    await g.validator.accept(rawCommit(g.log[0]!.hash, [{ meta: meta({ key: file, version: v + 1, parent: { key: root, collection: 1 }, type: 'inode', write: { mode: 'any', keys: [...groupWritable.mode === 'any' ? groupWritable.keys : []].reverse() }, admin: any(owner, delegate, alice) }) }], [contributor], g.now()).bytes);
    // The file's owner (her personal key, with a writer key for the write ACL) and a manager change it.
    await g.commit(owner, (b) => void b.put({ key: file, write: any(alice, owner) }));
    expect(g.state.getNode(file)!.write).toEqual(any(alice, owner));
    const withAlice = new CommitBuilder({ state: g.state, keyring: Session.of(alice), keys: new DataKeyCache(Session.of(alice)), now: g.now });
    withAlice.put({ key: file, write: groupWritable });
    await g.validator.accept((await withAlice.build()).bytes);
    await g.commit(delegate, (b) => void b.put({ key: file, write: any(delegate) }));
    expect(g.state.getNode(file)!.write).toEqual(any(delegate));
  });

  it('an owner\'s or delegate\'s mount splits a group root written with one ACL; a contributor\'s leaves it', async () => {
    const manager = createIdentity('owner');
    const chain = await openChain('acme/old-root', { temp: true, session: Session.of(manager) });
    try {
      const view = chain.view;
      const contributor = idOf(createIdentity('contributor'));
      const mine = idOf(manager);
      const dio = view.begin('durable');
      dio.store(Buffer.from([1]), { key: GROUP_ROOT_KEY, parent: null, type: 'group-root', write: { mode: 'any', keys: [contributor, mine] } });
      await dio.commit('durable');
      const keys = { writers: [contributor, mine], managers: [mine] };
      // A contributor's mount (its keyring holds no manager key) changes nothing.
      expect(await renewGroupRoot(view, keys, false)).toBe(false);
      expect(view.node(GROUP_ROOT_KEY)!.children).toBeUndefined();
      // The manager's mount splits it when it mounts.
      expect(holdsManagerKey(view, keys.managers)).toBe(true);
      expect(await groupRootOf(view, keys, { readOnly: false })).toEqual(UNDER_GROUP_ROOT);
      expect(view.node(GROUP_ROOT_KEY)).toMatchObject({ write: { mode: 'any', keys: [mine] }, children: { mode: 'any', keys: [contributor, mine] } });
      expect(await renewGroupRoot(view, keys, true)).toBe(false);
      // After a rotation (a new contributor key) the children ACL follows.
      const next = idOf(createIdentity('contributor, next generation'));
      expect(await renewGroupRoot(view, { writers: [next, mine], managers: [mine] }, true)).toBe(true);
      expect(view.node(GROUP_ROOT_KEY)).toMatchObject({ write: { mode: 'any', keys: [mine] }, children: { mode: 'any', keys: [next, mine] } });
    } finally {
      await chain.close();
    }
  });

  it('the loader (a view\'s replay, atefs verify) and a real atedb refuse the forged change with its reason', async () => {
    const g = await groupChain('acme/everywhere');
    const { owner, delegate, contributor } = g;
    const root = newDaoKey();
    await g.commit(owner, (b) => void b.put({ key: root, type: 'group-root', payload: Buffer.from([1]), write: any(owner, delegate), children: any(contributor, delegate, owner) }));
    await g.commit(contributor, (b) => void b.put({ parent: { key: root, collection: 1 }, payload: Buffer.from('bob\'s file') }));
    const forged = rawCommit(g.log[0]!.hash, [{ meta: meta({ key: root, version: 2, write: any(contributor), children: any(contributor) }) }], [contributor], g.now());
    const reason = `no signature admitted by the write ACL (any) of ${root}, which says who may change it`;

    // A log holding it (written past every check, as a hostile disk or a buggy writer could).
    const dir = path.join(tmp, 'log');
    const log = await openLog({ dir, chainId: 'acme/everywhere', genesisHash: g.log[0]!.hash });
    for (const c of [...g.log, forged]) await log.append(c.bytes, 'local');
    await log.close();
    const ro = () => openLog({ dir, chainId: 'acme/everywhere', genesisHash: g.log[0]!.hash, readOnly: true });
    const r1 = await ro();
    const loaded = await loadChainState(r1, { pinnedGenesis: g.log[0]!.hash.toString('hex') }).then(() => null, (e: unknown) => e);
    await r1.close();
    expect(loaded).toBeInstanceOf(ChainLoadError);
    expect((loaded as ChainLoadError).seq).toBe(g.log.length + 1);
    expect((loaded as Error).message).toContain(reason);
    const r2 = await ro();
    const report = await verifyChain(r2, { pinnedGenesis: g.log[0]!.hash.toString('hex') });
    await r2.close();
    expect(report.accepted).toBe(g.log.length);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatchObject({ seq: g.log.length + 1, reason: 'authority' });
    expect(report.problems[0]!.message).toContain(reason);

    // A real atedb: the good commits are confirmed, the forged one refused with the reason, and
    // the delegate's change of the group root is confirmed after it.
    let solo: Solo | null = null;
    try {
      solo = await startSolo();
      const kh = path.join(await tempDir('atefs-group-root-kh-'), 'known_hosts');
      const c = await RawClient.connect(solo.port, kh);
      try {
        for (const [i, commit] of g.log.entries()) expect(await c.append('acme/everywhere', commit.bytes)).toMatchObject({ t: 'ok', seq: i + 1 });
        const r = (await c.append('acme/everywhere', forged.bytes)) as Extract<Message, { t: 'rej' }>;
        expect(r).toMatchObject({ t: 'rej', reason: 'unauthorized' });
        expect(r.detail).toContain(reason);
        const byDelegate = await g.commit(delegate, (b) => void b.put({ key: root, children: any(contributor, delegate, owner, createIdentity('new contributor')) }));
        expect(await c.append('acme/everywhere', byDelegate.bytes)).toMatchObject({ t: 'ok', seq: g.log.length });
      } finally {
        c.close();
      }
    } finally {
      await solo?.kill();
    }
  }, 60_000);
});
