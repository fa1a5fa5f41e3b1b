// Server-side compaction (atedb solo --compact-mode; SIGUSR2 compacts the open chains now) against
// real processes: the hosted log shrinks and still rebuilds the same authority state, clients past
// the cut go on as before, across restarts and a SIGKILL mid-compaction; a client whose history is
// below the cut is refused with a clear message (this protocol version sends no cut certificate);
// a cut not signed by the server's key keeps the chain closed; a subscriber being streamed history
// is never cut short.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type CommitBuilder, MemoryAuthorityState, decodeCommit, loadChainState, verifyChain } from '../../src/chain/index.js';
import { openLog } from '../../src/log/index.js';
import { RemoteChain, ZERO_CHAIN_HASH, nextChainHash, verifyHead } from '../../src/net/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { type Solo, RawClient, lyingProxy, sleep, startSolo, tempDir } from './atedb/harness.js';
import type { Message } from '../../src/net/index.js';
import { cutMessage } from '../../src/log/index.js';
import { generateSigningKeyPair, signMessage } from '../../src/crypto/index.js';

const open: RemoteChain[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close().catch(() => undefined);
});

const alice = createIdentity('alice');
const bob = createIdentity('bob');
// 'timer' with the default hour: only SIGUSR2 compacts during a test.
const COMPACT = ['--compact-mode', 'timer'];

async function client(solo: { port: number }, name: string, o: { dir?: string; create?: boolean; kh?: string; genesis?: Buffer; openTimeoutMs?: number; pingIntervalMs?: number } = {}): Promise<RemoteChain> {
  const c = await RemoteChain.open({
    url: `tcp://127.0.0.1:${solo.port}/${name}`, session: Session.of(alice, bob), dir: o.dir ?? await tempDir('atedb-replica-'),
    mode: 'async', create: o.create ? { openRoot: true } : false, knownHosts: o.kh ?? join(await tempDir('kh-'), 'known_hosts'),
    ...(o.genesis ? { genesisHash: o.genesis } : {}), backoff: { minMs: 50, maxMs: 400 }, confirmTimeoutMs: 5000,
    ...(o.openTimeoutMs ? { openTimeoutMs: o.openTimeoutMs } : {}), ...(o.pingIntervalMs ? { pingIntervalMs: o.pingIntervalMs } : {}),
  });
  open.push(c);
  return c;
}

async function until(pred: () => boolean, ms = 30_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const logDir = (solo: Solo, name: string) => join(solo.dataDir, 'chains', name.replaceAll('/', '+'), 'log');

async function openLogAt(dir: string, name: string) {
  const log = await openLog({ dir, chainId: name, readOnly: true });
  const r = { ...log.chain, nextSeq: log.nextSeq };
  await log.close();
  return r;
}

async function logBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await fsp.readdir(dir)) if (f.endsWith('.seg')) n += (await fsp.stat(join(dir, f))).size;
  return n;
}

/** Compacts the server's open chains now and waits for the line the run logs. */
async function compact(solo: Solo, name: string): Promise<string> {
  const before = solo.stderr().length;
  process.kill(solo.pid, 'SIGUSR2');
  const re = new RegExp(`(compacted|compaction of) '${name.replace('/', '\\/')}'[^\\n]*`);
  await until(() => re.test(solo.stderr().slice(before)), 30_000, 'the compaction line');
  return solo.stderr().slice(before).match(re)![0];
}

/** key -> version of every live DAO: what two states must agree on (a compacted one may have
 *  forgotten a DAO deleted long ago, not its deletion). */
function nodesOf(s: MemoryAuthorityState): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of s.nodes) if (!n.deleted) out[k] = n.version;
  return out;
}

/** `rounds` rewrites of `daos` DAOs (~2 KiB each), and one DAO deleted. */
async function rewrites(a: RemoteChain, daos: number, rounds: number): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < daos; i++) {
    const { commit } = await a.commit((b: CommitBuilder) => { b.put({ payload: Buffer.alloc(2048, i) }); }, { wait: 'confirmed' });
    keys.push(commit.events[0]!.meta.key);
  }
  for (let r = 1; r <= rounds; r++) {
    for (let i = 0; i < daos; i++) await a.commit((b) => { b.put({ key: keys[i]!, payload: Buffer.alloc(2048, (r * 31 + i) & 0xff) }); }, { wait: 'confirmed' });
  }
  await a.commit((b) => { b.delete(keys[daos - 1]!); }, { wait: 'confirmed' });
  return keys;
}

describe('atedb server-side compaction', () => {
  it('shrinks the log, keeps the same state; a fresh client syncs the compacted history, clients past the cut resume, across restarts; an old client is told why', async () => {
    const solo = await startSolo({ args: COMPACT });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/compact';
    const a = await client(solo, name, { create: true, kh });
    await rewrites(a, 4, 12);
    const bDir = await tempDir('atedb-replica-b-');
    const b = await client(solo, name, { dir: bDir, kh, genesis: a.genesisHash! });
    await until(() => b.lastSeq === a.lastSeq, 10_000, 'b in sync');
    await b.close();
    const before = await logBytes(logDir(solo, name));
    const line = await compact(solo, name);
    expect(line).toMatch(/^compacted/);
    const after = await logBytes(logDir(solo, name));
    expect(after).toBeLessThan(before * 0.5);
    const cut = Number(line.match(/at seq (\d+)/)![1]);
    expect(cut).toBe(a.lastSeq);

    // A client that was past the cut resumes (nothing downloaded again) and follows new commits.
    const b2 = await client(solo, name, { dir: bDir, kh, genesis: a.genesisHash! });
    expect(b2.loadReport!.records).toBe(cut);
    await a.commit((x) => { x.put({ payload: Buffer.from('after the cut') }); }, { wait: 'confirmed' });
    await until(() => b2.lastSeq === a.lastSeq, 10_000, 'b2 follows');
    expect(nodesOf(b2.confirmed)).toEqual(nodesOf(a.confirmed));
    await until(() => b2.head?.seq === a.lastSeq, 10_000, 'b2 signed head');

    // A fresh client syncs the compacted history (cut certificate checked under the pinned key,
    // kept records in gap mode) to the same state, and its replica reopens with the server's cut.
    const fDir = await tempDir('atedb-replica-fresh-');
    const fresh = await client(solo, name, { dir: fDir, kh, genesis: a.genesisHash! });
    expect(fresh.lastSeq).toBe(a.lastSeq);
    expect(nodesOf(fresh.confirmed)).toEqual(nodesOf(a.confirmed));
    expect([...fresh.commits()].length).toBeLessThan(cut / 2);
    await until(() => fresh.head?.seq === a.lastSeq, 10_000, 'fresh signed head');
    expect(fresh.head!.chainHash.equals(a.head!.chainHash)).toBe(true);
    await fresh.close();
    expect((await openLogAt(join(fDir, 'replica'), name)).cut?.seq).toBe(cut);
    const fresh2 = await client(solo, name, { dir: fDir, kh, genesis: a.genesisHash! });
    // Reopened in gap mode, every signature verified (a compacted replica is not trusted on a head).
    expect(fresh2.loadReport).toMatchObject({ records: a.lastSeq, signaturesTrusted: 0 });
    await a.commit((x) => { x.put({ payload: Buffer.from('after the fresh sync') }); }, { wait: 'confirmed' });
    await until(() => fresh2.lastSeq === a.lastSeq && b2.lastSeq === a.lastSeq, 10_000, 'fresh2 and b2 follow');
    expect(nodesOf(fresh2.confirmed)).toEqual(nodesOf(a.confirmed));
    await until(() => fresh2.head?.seq === a.lastSeq, 10_000, 'fresh2 signed head');
    expect(fresh2.head!.chainHash.equals(a.head!.chainHash)).toBe(true);
    await fresh2.close();

    // A client of the protocol before cuts (no 'cuts' in its subscription) is told why it cannot
    // follow, and sent nothing.
    const old = await RawClient.connect(solo.port, kh);
    await expect(old.subscribe(name, a.genesisHash!, 1)).rejects.toThrow(/^compacted: .*compacted on this server \(cut at seq \d+\)/);
    expect(old.inbox.filter((m) => m.t === 'hist')).toEqual([]);
    old.close();

    // Restarts, graceful and SIGKILL: the compacted chain reopens (its cut is the server's) and
    // serves on the same port (the clients reconnect there).
    await b2.close();
    let server = solo;
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      await server.kill(sig);
      server = await startSolo({ dataDir: solo.dataDir, port: solo.port, args: COMPACT });
      await a.commit((x) => { x.put({ payload: Buffer.from(`after ${sig}`) }); }, { wait: 'confirmed' });
      const b3 = await client(server, name, { dir: bDir, kh, genesis: a.genesisHash! });
      await until(() => b3.lastSeq === a.lastSeq, 10_000, 'b3 follows');
      expect(nodesOf(b3.confirmed)).toEqual(nodesOf(a.confirmed));
      await b3.close();
      // Seq 2 (the first version of the first DAO, rewritten since) was compacted away: sent
      // again, it is a replay naming its seq, not a new commit.
      const raw = await RawClient.connect(server.port, kh);
      expect(await raw.append(name, [...a.commits(2)][0]!.commit.bytes)).toMatchObject({ t: 'rej', reason: 'replay', seq: 2 });
      raw.close();
    }
    const headSeq = a.lastSeq;
    await a.close();
    await server.kill('SIGTERM');

    // The hosted log itself: gaps only below its cut, every kept commit validates in gap mode, and
    // the state it rebuilds is the client's.
    const log = await openLog({ dir: logDir(solo, name), chainId: name, readOnly: true });
    try {
      expect(log.chain.cut?.seq).toBe(cut);
      expect([...log.records({ seq: 2 })][0]!.seq).toBeGreaterThan(2);
      expect(log.chain.problem).toBeNull();
      const report = await verifyChain(log, { pinnedGenesis: null });
      expect(report.problems).toEqual([]);
      expect(report.compacted).toBe(true);
      expect(report.records).toBeLessThan(headSeq / 2);
      const { state } = await loadChainState(log, { pinnedGenesis: null, compacted: true, futureToleranceMs: Number.POSITIVE_INFINITY, backwardsToleranceMs: Number.POSITIVE_INFINITY });
      expect(nodesOf(state as MemoryAuthorityState)).toEqual(nodesOf(a.confirmed));
    } finally {
      await log.close();
    }
  });

  it('a SIGKILL at any moment of a compaction leaves a chain that reopens with every confirmed commit', async () => {
    const dataDir = await tempDir('atedb-kill-');
    let solo = await startSolo({ dataDir, args: COMPACT });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/kill';
    const aDir = await tempDir('atedb-replica-a-');
    let a = await client(solo, name, { create: true, kh, dir: aDir });
    const keys = await rewrites(a, 3, 10);
    const genesis = a.genesisHash!;
    for (const delay of [0, 5, 15, 40, 120]) {
      // Something to drop every time: two more versions of the same DAO.
      for (let k = 0; k < 2; k++) await a.commit((x) => { x.put({ key: keys[0]!, payload: Buffer.alloc(4096, delay + k) }); }, { wait: 'confirmed' });
      await until(() => a.head?.seq === a.lastSeq, 10_000, 'the signed head');
      // The chain must be open on the server for SIGUSR2 to compact it (it is: a is subscribed).
      process.kill(solo.pid, 'SIGUSR2');
      await sleep(delay);
      await solo.kill('SIGKILL');
      solo = await startSolo({ dataDir, port: solo.port, args: COMPACT });
      // A fresh subscriber from past any cut: the chain opens and serves its head.
      const raw = await RawClient.connect(solo.port, kh);
      const sub = await raw.subscribe(name, genesis, a.lastSeq);
      expect(sub.eoh.head.seq).toBe(a.lastSeq);
      expect(verifyHead(raw.s.serverKey, genesis, sub.eoh.head)).toBe(true);
      expect(sub.eoh.head.chainHash.equals(a.head!.chainHash)).toBe(true);
      raw.close();
      await a.close();
      a = await client(solo, name, { dir: aDir, kh, genesis });
    }
    await a.close();
    await solo.kill('SIGTERM');
    // At least one of the runs got past its switch before the kill (the others left the old log).
    const log = await openLog({ dir: logDir(solo, name), chainId: name, readOnly: true });
    expect(log.chain.cut).not.toBeNull();
    await log.close();
  });

  it('appends go on during a compaction: all are kept, the chain reopens after a SIGKILL, a fresh client syncs the same state', async () => {
    const solo = await startSolo({ args: COMPACT });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/busy';
    const a = await client(solo, name, { create: true, kh });
    const keys = await rewrites(a, 4, 15);
    // A writer that does not stop while the server compacts.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await a.commit((x) => { x.put({ key: keys[written % 3]!, payload: Buffer.alloc(3000, written & 0xff) }); }, { wait: 'confirmed' });
        written++;
      }
    })();
    await until(() => written >= 3, 10_000, 'the writer going');
    // Until a run had appends land between its decision and the log's cut (records it must keep
    // without having decided on them, and whose chain hash it must still have stored).
    let line = '';
    for (let i = 0; i < 8 && !/[1-9]\d* appended during the run/.test(line); i++) line = await compact(solo, name);
    expect(line).toMatch(/[1-9]\d* appended during the run/);
    const during = written;
    await until(() => written >= during + 5, 10_000, 'writes after the compaction');
    writing = false;
    await writer;
    expect(line).toMatch(/^compacted/);
    const cut = Number(line.match(/at seq (\d+)/)![1]);
    expect(cut).toBeLessThan(a.lastSeq);
    await until(() => a.head?.seq === a.lastSeq, 10_000, 'the signed head');
    await solo.kill('SIGKILL');
    const again = await startSolo({ dataDir: solo.dataDir, port: solo.port, args: COMPACT });
    const fresh = await client(again, name, { kh, genesis: a.genesisHash! });
    expect(fresh.lastSeq).toBe(a.lastSeq);
    expect(nodesOf(fresh.confirmed)).toEqual(nodesOf(a.confirmed));
    await until(() => fresh.head?.seq === a.lastSeq, 10_000, 'fresh signed head');
    expect(fresh.head!.chainHash.equals(a.head!.chainHash)).toBe(true);
    await fresh.close();
    await a.close();
    open.splice(0);
    await again.kill('SIGTERM');
  });

  it('a staged commit confirmed, its answer lost, then compacted away is confirmed when re-sent (a replay), not taken for a fork', async () => {
    const solo = await startSolo({ args: COMPACT });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/lost-ok';
    const a = await client(solo, name, { create: true, kh });
    const keys = await rewrites(a, 2, 4);
    // Through a proxy that loses every 'ok': the commit is stored, the client never hears so.
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), (m) => (m.t === 'ok' ? [] : [m]));
    const cDir = await tempDir('atedb-replica-lost-');
    const c = await client(proxy, name, { dir: cDir, kh, genesis: a.genesisHash! });
    const { commit } = await c.commit((x) => { x.put({ key: keys[0]!, payload: Buffer.from('confirmed, never answered') }); }, { wait: 'staged' });
    await until(() => a.lastSeq === c.lastSeq + 1, 10_000, 'the commit on the server');
    await c.close();
    await proxy.close();
    // Rewritten since: the lost-answer commit is compacted away.
    for (let r = 0; r < 3; r++) await a.commit((x) => { x.put({ key: keys[0]!, payload: Buffer.from(`later ${r}`) }); }, { wait: 'confirmed' });
    expect(await compact(solo, name)).toMatch(/^compacted/);
    const c2 = await client(solo, name, { dir: cDir, kh, genesis: a.genesisHash! });
    expect(c2.pendingCount).toBe(1);
    await until(() => c2.pendingCount === 0 && c2.lastSeq === a.lastSeq, 10_000, 'the staged commit settled');
    expect(c2.refusal).toBeNull();
    expect(c2.confirmed.hasCommit(commit.hash)).toBe(true);
    expect(nodesOf(c2.confirmed)).toEqual(nodesOf(a.confirmed));
    await c2.close();
    await a.close();
    open.splice(0);
    await solo.kill('SIGTERM');
  });

  it('a client refuses a cut not signed by its pinned server key, or whose kept list does not hash to it; nothing is applied', async () => {
    const solo = await startSolo({ args: COMPACT });
    const name = 'team/lie';
    const a = await client(solo, name, { create: true });
    await rewrites(a, 3, 8);
    const genesis = a.genesisHash!;
    expect(await compact(solo, name)).toMatch(/^compacted/);
    const other = generateSigningKeyPair();
    const lies: Array<[string, (m: Extract<Message, { t: 'cut' }>) => Message, RegExp]> = [
      ['another signer', (m) => ({ ...m, signer: other.publicKey, sig: signMessage(other.secretKey, cutMessage(name, m.genesis, m)) }), /compaction certificate .* signed by SHA256:\S+, not by its pinned key/],
      ['a kept record left out', (m) => ({ ...m, seqs: m.seqs.filter((_, i) => i !== 2), hashes: Buffer.concat([m.hashes.subarray(0, 64), m.hashes.subarray(96)]), total: m.total - 1 }), /do not hash to the certificate's kept/],
    ];
    for (const [what, lie, re] of lies) {
      const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), (m) => [m.t === 'cut' ? lie(m) : m]);
      const dir = await tempDir('atedb-replica-lie-');
      await expect(client(proxy, name, { dir, genesis }), what).rejects.toThrow(re);
      const replica = await openLog({ dir: join(dir, 'replica'), chainId: name, readOnly: true });
      expect(replica.nextSeq, what).toBe(1);
      await replica.close();
      await proxy.close();
    }
    await a.close();
    open.splice(0);
    await solo.kill('SIGTERM');
  });

  it('a kept list longer than one \'cut\' message arrives in parts', async () => {
    const solo = await startSolo({ args: COMPACT });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/long';
    const a = await client(solo, name, { create: true, kh });
    // 600 commits of one new DAO each (all kept: two 'cut' parts and more), then rewrites to drop.
    for (let i = 0; i < 600; i++) await a.commit((b) => { b.put({ payload: Buffer.from(`dao ${i}`) }); }, { wait: 'staged' });
    await until(() => a.pendingCount === 0, 60_000, 'the 600 commits confirmed');
    const { commit } = await a.commit((b) => { b.put({ payload: Buffer.from('v1') }); }, { wait: 'confirmed' });
    for (let r = 0; r < 20; r++) await a.commit((b) => { b.put({ key: commit.events[0]!.meta.key, payload: Buffer.alloc(2000, r) }); }, { wait: 'confirmed' });
    expect(await compact(solo, name)).toMatch(/^compacted/);
    let parts = 0;
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), (m) => {
      if (m.t === 'cut') parts++;
      return [m];
    });
    const c = await client(proxy, name, { genesis: a.genesisHash! });
    expect(parts).toBe(3);
    expect(c.lastSeq).toBe(a.lastSeq);
    expect(nodesOf(c.confirmed)).toEqual(nodesOf(a.confirmed));
    await c.close();
    await proxy.close();
    await a.close();
    open.splice(0);
    await solo.kill('SIGTERM');
  });

  it('a fresh client cut off while it receives the kept records resumes among them; a client offline across the cut drops what the server dropped and resumes', async () => {
    // Deletions are compacted at once: the offline client must not keep a DAO whose deletion it never saw.
    const solo = await startSolo({ args: [...COMPACT, '--tombstone-retention', '0'] });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/resume';
    const a = await client(solo, name, { create: true, kh });
    const keys: string[] = [];
    // ~4.5 MiB kept over several history batches, as much again dropped.
    for (let i = 0; i < 12; i++) keys.push((await a.commit((b) => { b.put({ payload: Buffer.alloc(400_000, i) }); }, { wait: 'confirmed' })).commit.events[0]!.meta.key);
    const behindDir = await tempDir('atedb-replica-behind-');
    let behind: RemoteChain | null = null;
    for (let i = 0; i < 12; i++) await a.commit((b) => { b.put({ key: keys[i]!, payload: Buffer.alloc(400_000, 100 + i) }); }, { wait: 'confirmed' });
    const gone = (await a.commit((b) => { b.put({ payload: Buffer.from('short-lived') }); }, { wait: 'confirmed' })).commit.events[0]!.meta.key;
    // A client that saw everything up to here (the DAO alive), then went offline.
    behind = await client(solo, name, { dir: behindDir, kh, genesis: a.genesisHash! });
    await until(() => behind!.lastSeq === a.lastSeq, 10_000, 'behind in sync');
    expect(behind.confirmed.getNode(gone)?.deleted).toBe(false);
    const behindAt = a.lastSeq;
    await behind.close();
    await a.commit((b) => { b.delete(gone); }, { wait: 'confirmed' });
    expect(await compact(solo, name)).toMatch(/^compacted/);
    const cutAt = a.lastSeq;

    // The first connection stops after one history batch (its keepalive gives up on it); the
    // second is served in full.
    let cuts = 0;
    let hists = 0;
    let dropping = false;
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), (m) => {
      if (m.t === 'cut') {
        cuts++;
        dropping = false;
      }
      if (cuts === 1 && m.t === 'hist' && ++hists > 1) dropping = true;
      return dropping ? [] : [m];
    });
    const dir = await tempDir('atedb-replica-resume-');
    const c = await client(proxy, name, { dir, genesis: a.genesisHash!, pingIntervalMs: 200 });
    expect(cuts).toBeGreaterThanOrEqual(2); // more when the short keepalive gives up on a busy second connection too
    expect(c.lastSeq).toBe(a.lastSeq);
    expect(nodesOf(c.confirmed)).toEqual(nodesOf(a.confirmed));
    await c.close();
    await proxy.close();

    // A client stopped among the kept records (its open gives up: the proxy goes silent after one
    // batch) reopens its replica — the server's cut, part of the kept records — and completes.
    let silent = false;
    let batches = 0;
    const mute = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), (m) => {
      if (m.t === 'hist' && ++batches > 1) silent = true;
      return silent ? [] : [m];
    });
    const sDir = await tempDir('atedb-replica-stopped-');
    await expect(client(mute, name, { dir: sDir, genesis: a.genesisHash!, pingIntervalMs: 200, openTimeoutMs: 3000 })).rejects.toThrow(/no history/);
    await mute.close();
    const partial = await openLogAt(join(sDir, 'replica'), name);
    expect(partial.cut?.seq).toBe(cutAt);
    expect(partial.nextSeq).toBeGreaterThan(1);
    expect(partial.nextSeq).toBeLessThan(a.lastSeq);
    const s2 = await client(solo, name, { dir: sDir, kh, genesis: a.genesisHash! });
    await until(() => s2.lastSeq === a.lastSeq && s2.status === 'online', 10_000, 's2 complete');
    expect(nodesOf(s2.confirmed)).toEqual(nodesOf(a.confirmed));
    await a.commit((x) => { x.put({ payload: Buffer.from('after the resumed sync') }); }, { wait: 'confirmed' });
    await until(() => s2.lastSeq === a.lastSeq, 10_000, 's2 follows');
    await until(() => s2.head?.seq === a.lastSeq, 10_000, 's2 signed head');
    expect(s2.head!.chainHash.equals(a.head!.chainHash)).toBe(true);
    await s2.close();

    // The client that was offline across the cut holds records the server dropped: they go, its
    // state is rebuilt from what is kept (the deleted DAO is gone), and it follows again.
    const warnings: string[] = [];
    const b = await client(solo, name, { dir: behindDir, kh, genesis: a.genesisHash! });
    b.on('warning', (w) => warnings.push(w));
    expect(b.lastSeq).toBe(behindAt);
    await until(() => b.lastSeq === a.lastSeq && b.status === 'online', 10_000, 'b resumes');
    expect(b.refusal).toBeNull();
    expect(b.confirmed.getNode(gone)?.deleted ?? true).toBe(true);
    expect(nodesOf(b.confirmed)).toEqual(nodesOf(a.confirmed));
    await b.close();
    const rebased = await openLogAt(join(behindDir, 'replica'), name);
    expect(rebased.cut?.seq).toBe(cutAt);
    const b2 = await client(solo, name, { dir: behindDir, kh, genesis: a.genesisHash! });
    await a.commit((x) => { x.put({ payload: Buffer.from('after the rebase') }); }, { wait: 'confirmed' });
    await until(() => b2.lastSeq === a.lastSeq, 10_000, 'b2 follows');
    expect(nodesOf(b2.confirmed)).toEqual(nodesOf(a.confirmed));
    await b2.close();
    await a.close();
    open.splice(0);
    await solo.kill('SIGTERM');
  });

  it('a cut signed by another key than the server\'s keeps the chain closed', async () => {
    const solo = await startSolo({ args: COMPACT });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/forged';
    const a = await client(solo, name, { create: true, kh });
    await rewrites(a, 2, 10);
    const genesis = a.genesisHash!;
    expect(await compact(solo, name)).toMatch(/^compacted/);
    await a.close();
    open.splice(0);
    await solo.kill('SIGTERM');
    // Another server identity on the same data: the cut's signer is neither a root of the chain nor it.
    await fsp.rm(join(solo.dataDir, 'server.key'));
    const other = await startSolo({ dataDir: solo.dataDir, args: COMPACT });
    const raw = await RawClient.connect(other.port, join(await tempDir('kh-'), 'known_hosts'));
    await expect(raw.subscribe(name, genesis, 1)).rejects.toThrow(/compaction certificate .* not a root key/);
    raw.close();
    await other.kill('SIGTERM');
  });

  it('a subscriber being streamed history when a compaction is asked for gets all of it; the compaction runs after', async () => {
    const solo = await startSolo({ args: COMPACT });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const name = 'team/slow';
    const a = await client(solo, name, { create: true, kh });
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) keys.push((await a.commit((b) => { b.put({ payload: Buffer.alloc(1000, i) }); }, { wait: 'confirmed' })).commit.events[0]!.meta.key);
    // ~12 MiB of rewrites: more history than the server queues for one subscriber at once.
    for (let r = 0; r < 12; r++) for (let i = 0; i < 3; i++) await a.commit((b) => { b.put({ key: keys[i]!, payload: Buffer.alloc(340_000, r) }); }, { wait: 'confirmed' });
    const n = a.lastSeq;
    const raw = await RawClient.connect(solo.port, kh);
    raw.s.conn.socket.pause();
    const sub = raw.subscribe(name, a.genesisHash!, 1);
    await sleep(300);
    const before = solo.stderr().length;
    process.kill(solo.pid, 'SIGUSR2');
    await sleep(1000);
    expect(solo.stderr().slice(before)).not.toMatch(/compacted 'team\/slow'/);
    raw.s.conn.socket.resume();
    const { commits, eoh } = await sub;
    expect(commits.length).toBe(n);
    let h: Buffer = ZERO_CHAIN_HASH;
    for (const c of commits) h = nextChainHash(h, decodeCommit(c).hash);
    expect(eoh.head.seq).toBe(n);
    expect(h.equals(eoh.head.chainHash)).toBe(true);
    raw.close();
    await until(() => /compacted 'team\/slow'/.test(solo.stderr().slice(before)), 20_000, 'the compaction after the history');
    await a.close();
    open.splice(0);
    await solo.kill('SIGTERM');
  });

  it('--compact-mode is refused with the JetStream store, and an unknown mode is refused', async () => {
    await expect(startSolo({ args: ['--compact-mode', 'factor', '--store', 'nats://127.0.0.1:1'] })).rejects.toThrow(/only the file store compacts/);
    await expect(startSolo({ args: ['--compact-mode', 'sometimes'] })).rejects.toThrow(/unknown compaction mode 'sometimes'/);
  });
});
