// Chains on a real redo log on disk: reload gives the same state; every kind of bad commit is
// rejected with its reason both on load (stopping with seq/position) and on receipt; verifyChain
// lists all problems; the pinned genesis is enforced; no plaintext reaches the log files.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CryptoPool } from '../../src/crypto/index.js';
import { openLog, type RedoLog } from '../../src/log/index.js';
import {
  ChainLoadError,
  type Commit,
  CommitRejected,
  DataKeyCache,
  GenesisMismatch,
  MemoryAuthorityState,
  type RejectReason,
  decodeCommit,
  encodeCommitRecord,
  loadChain,
  loadChainState,
  newDaoKey,
  openEventPayload,
  publicKeyId,
  verifyChain,
} from '../../src/chain/index.js';
import { Session } from '../../src/session/index.js';
import { identity, makeWorld, meta as metaOf, rawCommit, type World } from '../unit/chain-fixtures.js';

let tmp: string;
let pool: CryptoPool;
let n = 0;

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atefs-chain-load-'));
  pool = new CryptoPool({ size: 2 });
});
afterAll(async () => {
  await pool.close();
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function newLog(w: World): Promise<{ log: RedoLog; dir: string }> {
  const dir = path.join(tmp, `chain-${n++}`);
  const log = await openLog({ dir, chainId: 'test/chain', genesisHash: w.genesis.hash });
  return { log, dir };
}

async function writeLog(w: World, records: Buffer[]): Promise<string> {
  const { log, dir } = await newLog(w);
  for (const r of records) await log.append(r, 'local');
  await log.close();
  return dir;
}

async function reopen(w: World, dir: string): Promise<RedoLog> {
  return openLog({ dir, chainId: 'test/chain', genesisHash: w.genesis.hash, readOnly: true });
}

function reencode(c: Commit, patch: { events?: Commit['events']; signatures?: Commit['signatures'] }): Buffer {
  return encodeCommitRecord(c.hash, c.headerBytes, patch.events ?? c.events, patch.signatures ?? c.signatures);
}

/** A world with a small tree and a list of bad records of every kind, built against it. */
async function scenario() {
  const w = await makeWorld();
  const good: Commit[] = [w.genesis];
  good.push(
    await w.commit((b) => {
      const d = b.put({ type: 'dir', payload: Buffer.from('dir') });
      b.put({ parent: { key: d, collection: 0 }, payload: Buffer.from('a') });
      b.put({ parent: { key: d, collection: 0 }, payload: Buffer.from('b') });
    }),
  );
  // A valid commit the bad ones are derived from (not applied yet).
  const b = w.builder();
  b.put({ payload: Buffer.from('first payload') });
  b.put({ payload: Buffer.from('second payload') });
  const base = await b.build();

  const forgedSig = reencode(base, {
    signatures: base.signatures.map((s) => {
      const sig = Buffer.from(s.signature);
      sig[sig.length - 10]! ^= 0x01;
      return { publicKey: s.publicKey, signature: sig };
    }),
  });
  const [e0, e1] = base.events as [Commit['events'][0], Commit['events'][0]];
  const swapped = reencode(base, { events: [{ ...e0, payload: e1.payload }, { ...e1, payload: e0.payload }] });
  const meta = Buffer.from(e0.metaBytes);
  meta[meta.indexOf(Buffer.from(e0.meta.key, 'hex')) + 3]! ^= 0x10;
  const flipped = reencode(base, { events: [{ ...e0, metaBytes: meta }, e1] });
  const futureBuilder = new (w.builder().constructor as any)({
    state: w.state,
    keyring: w.session,
    keys: w.keys,
    now: () => w.clock.t + 24 * 3600 * 1000,
  });
  futureBuilder.put({ payload: Buffer.from('from tomorrow') });
  const future: Commit = await futureBuilder.build();
  // Signed by the owner, valid in every other way, but a minute earlier than the commit before it.
  const backwards = rawCommit(w.genesis.hash, [{ meta: metaOf({ key: newDaoKey() }) }], [w.owner], good[1]!.header.timestamp - 60_000);
  return { w, good, base, bad: { signature: forgedSig, hash: swapped, flipped, future: future.bytes, backwards: backwards.bytes } };
}

describe('chain on a real log', () => {
  test('reload gives exactly the same state', async () => {
    const w = await makeWorld();
    const alice = identity(1);
    const commits: Commit[] = [w.genesis];
    let dir = '';
    let file = '';
    commits.push(await w.commit((b) => void b.put({ publish: [alice.kem.publicKey] })));
    commits.push(
      await w.commit((b) => {
        dir = b.put({ type: 'dir', write: { mode: 'any', keys: [publicKeyId(w.owner.signing.publicKey), publicKeyId(alice.signing.publicKey)] } });
        file = b.put({ parent: { key: dir, collection: 2 }, payload: Buffer.from('content') });
      }),
    );
    commits.push(
      await w.commit((b) =>
        void b.put({
          key: dir,
          read: { mode: 'readers', readers: [...w.session.chainReaders(), { kind: 'kem', id: publicKeyId(alice.kem.publicKey) }] },
        }),
      ),
    );
    commits.push(await w.commit((b) => void b.put({ key: file, payload: Buffer.from('v2') }), Session.of(alice)));
    commits.push(await w.commit((b) => b.delete(file)));
    const logDir = await writeLog(w, commits.map((c) => c.bytes));

    const log = await reopen(w, logDir);
    const progress: number[] = [];
    const { state, commits: count, events } = await loadChainState(log, {
      pinnedGenesis: w.genesis.hash.toString('hex'),
      pool,
      now: w.clock.now,
      batchCommits: 2,
      onProgress: (p) => progress.push(p.records),
    });
    await log.close();
    expect(count).toBe(commits.length);
    expect(events).toBe(commits.reduce((a, c) => a + c.events.length, 0));
    expect(progress.at(-1)).toBe(commits.length);
    const s = state as MemoryAuthorityState;
    expect(s.getGenesis()!.hash.equals(w.genesis.hash)).toBe(true);
    expect(s.nodes).toEqual(w.state.nodes);
    expect(s.dataKeys).toEqual(w.state.dataKeys);
    expect(s.publicKeys).toEqual(w.state.publicKeys);
    expect(s.commits).toEqual(w.state.commits);
    expect(s.getNode(file)!.deleted).toBe(true);
  });

  test('resume after a watermark: a state holding the first records loads only the tail', async () => {
    const w = await makeWorld();
    const commits: Commit[] = [w.genesis];
    for (let i = 0; i < 5; i++) commits.push(await w.commit((b) => void b.put({ payload: Buffer.from(`n${i}`) })));
    const dir = await writeLog(w, commits.map((c) => c.bytes));
    const log = await reopen(w, dir);
    const state = new MemoryAuthorityState();
    const seqs: number[] = [];
    for await (const c of loadChain(log, { pinnedGenesis: w.genesis.hash, state, now: w.clock.now })) {
      seqs.push(c.seq);
      if (c.seq === 3) break;
    }
    const tail: number[] = [];
    for await (const c of loadChain(log, { pinnedGenesis: w.genesis.hash, state, now: w.clock.now, from: { seq: 4 } })) tail.push(c.seq);
    // Without the watermark the already-applied records are replays.
    const again = await loadChainState(log, { pinnedGenesis: w.genesis.hash, state, now: w.clock.now, from: { seq: 2 } }).catch((e) => e);
    await log.close();
    expect(seqs).toEqual([1, 2, 3]);
    expect(tail).toEqual([4, 5, 6]);
    expect(state.nodes).toEqual(w.state.nodes);
    expect(again).toBeInstanceOf(ChainLoadError);
    expect((again as ChainLoadError).reason).toBe('replay');
    // A state of another chain is refused before reading anything.
    const other = await makeWorld();
    const log2 = await reopen(w, dir);
    await expect(loadChainState(log2, { pinnedGenesis: other.genesis.hash, state, now: w.clock.now, from: { seq: 6 } })).rejects.toBeInstanceOf(GenesisMismatch);
    await log2.close();
  });

  const cases: Array<[string, 'signature' | 'hash' | 'flipped' | 'future' | 'backwards' | 'replay', RejectReason]> = [
    ['a forged signature', 'signature', 'signature'],
    ['a commit timestamped before its predecessor', 'backwards', 'backwards'],
    ['a swapped payload', 'hash', 'hash'],
    ['a flipped metadata bit', 'flipped', 'hash'],
    ['a commit from the far future', 'future', 'future'],
    ['a commit replayed later', 'replay', 'replay'],
  ];

  for (const [name, kind, reason] of cases) {
    test(`${name} is rejected (${reason}) on load and on receipt`, async () => {
      const { w, good, base, bad } = await scenario();
      const badBytes = kind === 'replay' ? good[1]!.bytes : bad[kind];
      const records = [...good.map((c) => c.bytes), badBytes, base.bytes];
      const dir = await writeLog(w, records);

      // On load: stops at the bad record (seq 3 = third record), naming it.
      const log = await reopen(w, dir);
      const seen: number[] = [];
      let err: unknown;
      try {
        for await (const c of loadChain(log, { pinnedGenesis: w.genesis.hash, pool, now: w.clock.now })) seen.push(c.seq);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ChainLoadError);
      const le = err as ChainLoadError;
      expect(le.reason).toBe(reason);
      expect(le.seq).toBe(3);
      expect(le.pos).toMatchObject({ segment: expect.any(Number), offset: expect.any(Number) });
      expect(le.message).toContain('seq 3');
      expect(seen).toEqual([1, 2]);
      // verify lists it and carries on (the good commit after it is accepted).
      const report = await verifyChain(log, { pinnedGenesis: w.genesis.hash, pool, now: w.clock.now });
      await log.close();
      expect(report.problems.map((p) => [p.seq, p.reason])).toEqual([[3, reason]]);
      expect(report.accepted).toBe(3);

      // On receipt: the same bytes against the current state.
      let rej: unknown;
      try {
        await w.validator.accept(badBytes);
      } catch (e) {
        rej = e;
      }
      expect(rej).toBeInstanceOf(CommitRejected);
      expect((rej as CommitRejected).reason).toBe(reason);
      // The state did not move; the untampered commit is still accepted afterwards.
      await w.validator.accept(base.bytes);
    });
  }

  test('verifyChain lists every problem without stopping', async () => {
    const { w, good, base, bad } = await scenario();
    const dir = await writeLog(w, [
      ...good.map((c) => c.bytes),
      bad.signature,
      bad.hash,
      base.bytes,
      bad.future,
      good[1]!.bytes,
      Buffer.from([1, 2, 3, 4]),
    ]);
    const log = await reopen(w, dir);
    const report = await verifyChain(log, { pinnedGenesis: w.genesis.hash, pool, now: w.clock.now });
    await log.close();
    expect(report.problems.map((p) => [p.seq, p.reason])).toEqual([
      [3, 'signature'],
      [4, 'hash'],
      [6, 'future'],
      [7, 'replay'],
      [8, 'malformed'],
    ]);
    expect(report.records).toBe(8);
    expect(report.accepted).toBe(3);
    expect(report.genesisHash).toBe(w.genesis.hash.toString('hex'));
  });

  test('a log whose genesis is not the pinned one does not load', async () => {
    const w = await makeWorld();
    const other = await makeWorld();
    const dir = await writeLog(w, [w.genesis.bytes]);
    const log = await reopen(w, dir);
    await expect(loadChainState(log, { pinnedGenesis: other.genesis.hash, now: w.clock.now })).rejects.toBeInstanceOf(GenesisMismatch);
    // And a log that starts with an ordinary commit has no root of trust.
    await log.close();
    const c = await w.commit((b) => void b.put({}));
    const dir2 = await writeLog(w, [c.bytes]);
    const log2 = await reopen(w, dir2);
    const err = await loadChainState(log2, { pinnedGenesis: w.genesis.hash, now: w.clock.now }).catch((e) => e);
    await log2.close();
    expect(err).toBeInstanceOf(ChainLoadError);
    expect((err as ChainLoadError).reason).toBe('genesis');
  });

  test('no plaintext of names or payloads anywhere in the log files', async () => {
    const w = await makeWorld();
    const marker = 'MARKER-7f3a-plaintext-must-not-appear';
    const commits = [w.genesis];
    commits.push(
      await w.commit((b) => {
        const d = b.put({ type: 'dir', payload: Buffer.from(`{"name":"${marker}"}`) });
        b.put({ parent: { key: d, collection: 0 }, type: 'dentry', payload: Buffer.from(marker) });
        b.put({ parent: { key: d, collection: 0 }, type: 'block', payload: Buffer.from(marker.repeat(1000)) });
      }),
    );
    const dir = await writeLog(w, commits.map((c) => c.bytes));
    const needles = [Buffer.from(marker), Buffer.from(marker, 'utf16le'), Buffer.from(marker.slice(0, 12))];
    let bytes = 0;
    for (const f of await fsp.readdir(dir)) {
      const data = await fsp.readFile(path.join(dir, f));
      bytes += data.length;
      for (const needle of needles) expect(data.includes(needle), `${f} contains plaintext`).toBe(false);
    }
    expect(bytes).toBeGreaterThan(marker.length * 1000);
    // ...and it does read back.
    const log = await reopen(w, dir);
    const loaded: Commit[] = [];
    const state = new MemoryAuthorityState();
    for await (const c of loadChain(log, { pinnedGenesis: w.genesis.hash, state, now: w.clock.now })) loaded.push(c.commit);
    await log.close();
    const keys = new DataKeyCache(w.session);
    expect(openEventPayload(state, keys, loaded[1]!.events[1]!)!.toString()).toBe(marker);
    expect(decodeCommit(loaded[1]!.bytes).hash.equals(commits[1]!.hash)).toBe(true);
  });
});
