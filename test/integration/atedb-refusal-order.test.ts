// atedb's hosted chain: a commit refused against a commit that is sequenced but not yet durable is
// answered only after that commit was confirmed and relayed. A client then always hears of the
// commit it lost to before it hears that it lost; answered first, its resync (from a replica that
// did not hold the winner yet) resolved the conflict as if nobody else had written.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommitBuilder, DataKeyCache, MemoryAuthorityState, checkAgainstState, createGenesis, newDaoKey, signersOf } from '../../src/chain/index.js';
import { CryptoPool, generateSigningKeyPair } from '../../src/crypto/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { type AppendRejected, HostedChain } from '../../server/hosted-chain.js';
import { IoTrace } from '../log-io-trace.js';
import { OPEN_POLICY } from '../../server/chain-host.js';
import { JetStreamStore } from '../../server/store/jetstream-store.js';
import { NATS_SERVER, NatsCluster } from './nats/cluster.js';

const base = mkdtempSync(join(tmpdir(), 'atedb-refusal-order-'));
const pool = new CryptoPool({ size: 2 });
afterAll(async () => {
  await pool.close();
  rmSync(base, { recursive: true, force: true });
});
let uninstall: (() => void) | null = null;
afterEach(() => { uninstall?.(); uninstall = null; });

describe('hosted chain: refusal order', () => {
  it('a conflict with a commit still on its way to disk is answered after that commit is relayed', async () => {
    const session = Session.of(createIdentity('alice'));
    const keys = new DataKeyCache(session);
    const genesis = await createGenesis({ name: 'team/order', keyring: session, chainReaders: session.chainReaders(), keys, pool });
    const chain = await HostedChain.create({ dir: join(base, 'chain'), name: 'team/order', pool, signingKey: generateSigningKeyPair().secretKey }, genesis.bytes);
    // Two commits writing the first version of the same DAO, both built on the genesis state.
    const state = new MemoryAuthorityState();
    state.applyEffects(checkAgainstState(state, genesis, signersOf(genesis)));
    const key = newDaoKey();
    const build = async (v: string) => {
      const b = new CommitBuilder({ state, keyring: session, keys, pool });
      b.put({ key, payload: Buffer.from(v) });
      return b.build();
    };
    const [won, lost] = [await build('first'), await build('second')];
    const events: string[] = [];
    // Every fdatasync takes 300 ms: the winner is sequenced long before it is durable.
    const trace = new IoTrace();
    trace.syncDelayMs = 300;
    uninstall = trace.install();
    try {
      // The trace wraps logs opened from now on: reopen the chain's log through it.
      await chain.close();
      const traced = await HostedChain.open({ dir: join(base, 'chain'), name: 'team/order', pool, signingKey: generateSigningKeyPair().secretKey });
      traced.listeners.add({ onCommit: (_c, seq) => events.push(`relayed ${seq}`), onHead: () => undefined });
      const a = traced.append(won.bytes, null).then((seq) => events.push(`confirmed ${seq}`));
      const b = traced.append(lost.bytes, null).then(
        () => events.push('second accepted'),
        (e: unknown) => events.push(`refused ${(e as AppendRejected).reason}`),
      );
      await Promise.all([a, b]);
      expect(events).toEqual(['relayed 2', 'confirmed 2', 'refused conflict']);
      // Without a commit in flight a refusal has nothing to wait for (no wall-clock bound here:
      // the machine is shared; the order above is what matters).
      await expect(traced.append((await build('third')).bytes, null)).rejects.toMatchObject({ reason: 'conflict' });
      await traced.close();
    } finally {
      uninstall?.();
      uninstall = null;
    }
  });
});

describe.skipIf(!NATS_SERVER)('JetStream chain: refusal order', () => {
  it('a conflict with a commit of the batch being formed is answered after that batch is applied and relayed', async () => {
    const cluster = await NatsCluster.start({ size: 1 });
    let store: JetStreamStore | null = null;
    try {
      store = await JetStreamStore.connect({ servers: cluster.servers, pool, signingKey: generateSigningKeyPair().secretKey, policy: OPEN_POLICY });
      const session = Session.of(createIdentity('alice'));
      const keys = new DataKeyCache(session);
      const genesis = await createGenesis({ name: 'team/order', keyring: session, chainReaders: session.chainReaders(), keys, pool });
      const chain = await store.create('team/order', genesis.bytes, null);
      const state = new MemoryAuthorityState();
      state.applyEffects(checkAgainstState(state, genesis, signersOf(genesis)));
      const build = async (key: string, v: string) => {
        const b = new CommitBuilder({ state, keyring: session, keys, pool });
        b.put({ key, payload: Buffer.from(v) });
        return b.build();
      };
      const key = newDaoKey();
      // A first commit is published alone; the two conflicting ones queue behind it and form the
      // next batch together: the second does not fit the first of them.
      const [filler, won, lost] = [await build(newDaoKey(), 'filler'), await build(key, 'first'), await build(key, 'second')];
      const events: string[] = [];
      chain.listeners.add({ onCommit: (_c, seq) => events.push(`relayed ${seq}`), onHead: () => undefined });
      const f = chain.append(filler.bytes, null).then((seq) => events.push(`confirmed ${seq}`));
      const a = chain.append(won.bytes, null).then((seq) => events.push(`confirmed ${seq}`));
      const b = chain.append(lost.bytes, null).then(
        () => events.push('second accepted'),
        (e: unknown) => events.push(`refused ${(e as AppendRejected).reason}`),
      );
      await Promise.all([f, a, b]);
      expect(events.filter((e) => !e.startsWith('relayed 2') && !e.startsWith('confirmed 2'))).toEqual(['relayed 3', 'confirmed 3', 'refused conflict']);
    } finally {
      await store?.close();
      await cluster.destroy();
    }
  }, 60_000);
});
