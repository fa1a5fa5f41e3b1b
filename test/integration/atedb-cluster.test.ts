// atedb on a cluster: real `atedb node --store nats://...` processes on a real 3-node nats-server
// JetStream cluster (test/integration/nats/cluster.ts), real replication clients. Checks that the
// per-chain compare-and-set decides between nodes, that no confirmed commit is lost when the stream
// leader is SIGKILLed, that clients fail over between atedb nodes, and that chains survive a restart
// of the whole cluster.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CommitBuilder } from '../../src/chain/index.js';
import { RemoteChain } from '../../src/net/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { spawnSync } from 'node:child_process';
import { ATEDB, RawClient, type Solo, TestChain, sleep, startSolo, tempDir } from './atedb/harness.js';
import { NATS_SERVER, NatsCluster } from './nats/cluster.js';

const alice = createIdentity('alice');
const bob = createIdentity('bob');
const KEY = '5a'.repeat(16);
const put = (v: string) => (b: CommitBuilder) => { b.put({ payload: Buffer.from(v) }); };

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let cluster: NatsCluster;
let keyFile: string;
const open: RemoteChain[] = [];
const nodes: Solo[] = [];

/** An atedb node on the cluster's JetStream; every node shares the first one's server key. */
async function startNode(): Promise<Solo> {
  const dataDir = await tempDir('atedb-node-');
  if (keyFile) await fsp.copyFile(keyFile, join(dataDir, 'server.key'));
  const n = await startSolo({ dataDir, args: ['--store', cluster.url] });
  if (!keyFile) keyFile = join(dataDir, 'server.key');
  nodes.push(n);
  return n;
}

async function client(url: string, o: { create?: boolean; genesis?: Buffer; confirmTimeoutMs?: number; openTimeoutMs?: number } = {}): Promise<RemoteChain> {
  const c = await RemoteChain.open({
    url, session: Session.of(alice, bob), dir: await tempDir('atedb-replica-'),
    create: o.create ? { openRoot: true, readers: Session.of(bob).chainReaders() } : false,
    ...(o.genesis ? { genesisHash: o.genesis } : {}), knownHosts: join(await tempDir('kh-'), 'known_hosts'),
    backoff: { minMs: 50, maxMs: 300 }, confirmTimeoutMs: o.confirmTimeoutMs ?? 20_000, pingIntervalMs: 1000,
    ...(o.openTimeoutMs ? { openTimeoutMs: o.openTimeoutMs } : {}),
  });
  open.push(c);
  return c;
}

const hashes = (c: RemoteChain) => [...c.commits()].map((x) => x.commit.hash.toString('hex'));

async function streamInfo() {
  const nc = await connect({ servers: cluster.servers, timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    return await jsm.streams.info('ATEDB');
  } finally {
    await nc.close();
  }
}

describe.skipIf(!NATS_SERVER)('atedb on a JetStream cluster', () => {
  beforeAll(async () => {
    cluster = await NatsCluster.start();
  }, 60_000);
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close().catch(() => undefined);
  });
  afterAll(async () => {
    if (process.env.ATEDB_CLUSTER_DEBUG) for (const n of nodes) console.log(`atedb node ${n.port} stderr:\n${n.stderr()}`);
    for (const n of nodes.splice(0)) await n.kill('SIGKILL');
    await cluster?.destroy();
  });

  it('`atedb node` needs --store; a bad or unreachable --store is one line and exit 1', async () => {
    const run = (args: string[]) => spawnSync(process.execPath, [ATEDB, ...args, '--port', '0', '--data-dir', join(cluster.dir, 'cli')], { encoding: 'utf8', timeout: 30_000 });
    const none = run(['node']);
    expect(none.status).not.toBe(0);
    expect(none.stderr).toMatch(/store/);
    const bad = run(['solo', '--store', 'nats://h1,,h2']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^--store: .*host\[:port\]/);
    const down = run(['node', '--store', 'nats://127.0.0.1:1']);
    expect(down.status).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    expect(down.stderr).toMatch(/--store: cannot reach NATS at 127\.0\.0\.1:1/);
  }, 60_000);

  it('two nodes append to one chain at once: the compare-and-set decides, both see one order, a conflicting write loses', async () => {
    const [a, b] = [await startNode(), await startNode()];
    expect(a.stdout()).toMatch(/store: JetStream at /);
    const info = await streamInfo();
    expect(info.config.num_replicas).toBe(3);
    const ca = await client(`tcp://127.0.0.1:${a.port}/team/race`, { create: true });
    const cb = await client(`tcp://127.0.0.1:${b.port}/team/race`, { genesis: ca.genesisHash! });
    // 2 x 25 commits in flight at once through two different nodes.
    await Promise.all([
      ...Array.from({ length: 25 }, (_, i) => ca.commit(put(`a${i}`), { wait: 'confirmed' })),
      ...Array.from({ length: 25 }, (_, i) => cb.commit(put(`b${i}`), { wait: 'confirmed' })),
    ]);
    await until(() => ca.lastSeq === 51 && cb.lastSeq === 51, 20_000, 'both clients at seq 51');
    expect(hashes(ca)).toEqual(hashes(cb));
    // Commits of both nodes are interleaved in that order (both raced; neither took the chain whole).
    const late = await client(`tcp://127.0.0.1:${b.port}/team/race`, { genesis: ca.genesisHash! });
    expect(hashes(late)).toEqual(hashes(ca));

    // The same key written from the same version through two nodes: exactly one is confirmed.
    const tc = await TestChain.create('team/cas');
    const ra = await RawClient.connect(a.port, join(await tempDir('kh-'), 'k'));
    const rb = await RawClient.connect(b.port, join(await tempDir('kh-'), 'k'));
    try {
      expect((await ra.request({ t: 'append', id: 0, chain: 'team/cas', commit: tc.genesis.bytes })).t).toBe('ok');
      const first = await tc.build({ key: KEY });
      expect((await ra.request({ t: 'append', id: 0, chain: 'team/cas', commit: first.bytes })).t).toBe('ok');
      tc.apply(first.bytes);
      for (let round = 0; round < 5; round++) {
        const [x, y] = [await tc.build({ key: KEY }), await tc.build({ key: KEY })];
        const [rx, ry] = await Promise.all([
          ra.request({ t: 'append', id: 0, chain: 'team/cas', commit: x.bytes }),
          rb.request({ t: 'append', id: 0, chain: 'team/cas', commit: y.bytes }),
        ]);
        const oks = [rx, ry].filter((r) => r.t === 'ok');
        expect(oks.length, `round ${round}: ${JSON.stringify([rx, ry].map((r) => [r.t, (r as { reason?: string }).reason]))}`).toBe(1);
        const loser = [rx, ry].find((r) => r.t !== 'ok') as { t: string; reason: string };
        expect(loser.t).toBe('rej');
        expect(loser.reason).toBe('conflict');
        tc.apply((rx.t === 'ok' ? x : y).bytes);
      }
    } finally {
      ra.close();
      rb.close();
    }
  }, 120_000);

  it('SIGKILL of the stream leader during appends from several clients: nothing confirmed is lost, appends resume, replicas agree', async () => {
    const [a, b] = nodes.length >= 2 ? [nodes[0]!, nodes[1]!] : [await startNode(), await startNode()];
    const c0 = await client(`tcp://127.0.0.1:${a.port}/team/leader`, { create: true });
    const writers = [c0, await client(`tcp://127.0.0.1:${b.port}/team/leader`, { genesis: c0.genesisHash! }), await client(`tcp://127.0.0.1:${a.port}/team/leader`, { genesis: c0.genesisHash! })];
    const confirmed = new Map<string, number>();
    let killedAt = 0;
    let firstAfterKill = 0;
    let stop = false;
    const loops = writers.map(async (w, wi) => {
      for (let i = 0; i < 400 && !stop; i++) {
        const r = await w.commit(put(`w${wi}-${i}`), { wait: 'confirmed' });
        confirmed.set(r.commit.hash.toString('hex'), r.seq!);
        if (killedAt && !firstAfterKill) firstAfterKill = Date.now();
      }
    });
    await until(() => confirmed.size >= 30, 30_000, '30 confirmed commits');
    const leaderName = (await streamInfo()).cluster!.leader!;
    const leader = cluster.node(leaderName);
    const before = confirmed.size;
    await cluster.kill(leader, 'SIGKILL');
    killedAt = Date.now();
    await until(() => !!firstAfterKill && confirmed.size >= before + 30, 60_000, '30 more confirmed commits after the leader died');
    stop = true;
    await Promise.all(loops);
    const failoverMs = firstAfterKill - killedAt;
    console.log(`stream leader ${leaderName} SIGKILLed: first confirmation ${failoverMs} ms later; ${before} confirmed before, ${confirmed.size - before} after`);
    expect(failoverMs).toBeLessThan(10_000);
    await cluster.startNode(leader);

    // Every confirmed commit is in the chain, at the seq it was confirmed at, seen the same from both nodes.
    const reads = [await client(`tcp://127.0.0.1:${a.port}/team/leader`, { genesis: c0.genesisHash! }), await client(`tcp://127.0.0.1:${b.port}/team/leader`, { genesis: c0.genesisHash! })];
    const total = Math.max(...writers.map((w) => w.lastSeq));
    await until(() => reads.every((r) => r.lastSeq >= total), 30_000, 'fresh readers caught up');
    const order = hashes(reads[0]!);
    expect(hashes(reads[1]!)).toEqual(order);
    for (const w of writers) expect(hashes(w)).toEqual(order.slice(0, w.lastSeq));
    for (const [h, seq] of confirmed) expect(order[seq - 1], `confirmed commit ${h.slice(0, 12)} at seq ${seq}`).toBe(h);
    // The restarted replica catches up: all three replicas current, same last sequence.
    const t0 = Date.now();
    for (;;) {
      const info = await streamInfo();
      const reps = info.cluster?.replicas ?? [];
      if (reps.length === 2 && reps.every((r) => r.current && !r.lag)) break;
      if (Date.now() - t0 > 30_000) throw new Error(`replicas did not catch up: ${JSON.stringify(info.cluster)}`);
      await sleep(200);
    }
  }, 180_000);

  it('SIGKILL of an atedb node: its client fails over to another node and resumes from its seq', async () => {
    const a = await startNode();
    const b = nodes.find((n) => n !== a && n.proc.exitCode === null)!;
    const c = await client(`tcp://127.0.0.1:${a.port},127.0.0.1:${b.port}/team/failover`, { create: true });
    for (let i = 0; i < 10; i++) await c.commit(put(`before ${i}`), { wait: 'confirmed' });
    expect(c.port).toBe(a.port);
    await a.kill('SIGKILL');
    const t0 = Date.now();
    const r = await c.commit(put('after'), { wait: 'confirmed' });
    console.log(`atedb node SIGKILLed: the client confirmed through the next node ${Date.now() - t0} ms later`);
    expect(r.seq).toBe(12);
    expect(c.port).toBe(b.port);
    expect(c.status).toBe('online');
    for (let i = 0; i < 5; i++) await c.commit(put(`after ${i}`), { wait: 'confirmed' });
    const check = await client(`tcp://127.0.0.1:${b.port}/team/failover`, { genesis: c.genesisHash! });
    expect(check.lastSeq).toBe(17);
    expect(hashes(check)).toEqual(hashes(c));
  }, 120_000);

  it('leases are one table for the cluster: a key held through one node is refused through another, released on disconnect', async () => {
    const live = nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
    const [a, b] = [live[0]!, live[1]!];
    const ra = await RawClient.connect(a.port, join(await tempDir('kh-'), 'k'), alice);
    const rb = await RawClient.connect(b.port, join(await tempDir('kh-'), 'k'), bob);
    const lease = (c: RawClient, op: 'acquire' | 'renew' | 'release' | 'get', ttl = 60_000) => c.request({ t: 'lease', id: 0, op, chain: 'team/locks', key: 'k1', ttl });
    try {
      expect(await lease(ra, 'acquire')).toMatchObject({ ok: true, holder: ra.s.identity });
      expect(await lease(rb, 'acquire')).toMatchObject({ ok: false, holder: ra.s.identity });
      expect(await lease(rb, 'release')).toMatchObject({ ok: false });
      expect(await lease(rb, 'get')).toMatchObject({ ok: true, holder: ra.s.identity });
      expect(await lease(ra, 'renew')).toMatchObject({ ok: true });
      // Both nodes race for a free key: exactly one wins.
      const race = await Promise.all([ra, rb].map((c) => c.request({ t: 'lease', id: 0, op: 'acquire', chain: 'team/locks', key: 'race', ttl: 60_000 })));
      expect(race.filter((r) => (r as { ok?: boolean }).ok).length).toBe(1);
      ra.close();
      const t0 = Date.now();
      let got: unknown;
      while (!(got = await lease(rb, 'acquire') as { ok: boolean }) || !(got as { ok: boolean }).ok) {
        if (Date.now() - t0 > 10_000) throw new Error(`the lease was not released with its holder's connection: ${JSON.stringify(got)}`);
        await sleep(100);
      }
      expect(got).toMatchObject({ ok: true, holder: rb.s.identity });
      // A short lease expires by itself.
      expect(await lease(rb, 'release')).toMatchObject({ ok: true });
      const rc = await RawClient.connect(a.port, join(await tempDir('kh-'), 'k'), alice);
      try {
        expect(await rc.request({ t: 'lease', id: 0, op: 'acquire', chain: 'team/locks', key: 'short', ttl: 300 })).toMatchObject({ ok: true });
        expect(await rb.request({ t: 'lease', id: 0, op: 'acquire', chain: 'team/locks', key: 'short', ttl: 300 })).toMatchObject({ ok: false });
        await sleep(400);
        expect(await rb.request({ t: 'lease', id: 0, op: 'acquire', chain: 'team/locks', key: 'short', ttl: 300 })).toMatchObject({ ok: true });
      } finally {
        rc.close();
      }
    } finally {
      ra.close();
      rb.close();
    }
  }, 60_000);

  it('restart of the whole cluster: every chain is there, and appends continue', async () => {
    const live = nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
    const node = live[0]!;
    const names = ['team/r1', 'team/r2', 'team/r3'];
    const genesis = new Map<string, Buffer>();
    for (const [i, name] of names.entries()) {
      const c = await client(`tcp://127.0.0.1:${node.port}/${name}`, { create: true });
      for (let k = 0; k <= i; k++) await c.commit(put(`${name} ${k}`), { wait: 'confirmed' });
      genesis.set(name, c.genesisHash!);
    }
    const lengths = new Map([...['team/race', 'team/leader', 'team/failover'], ...names].map((n) => [n, 0]));
    for (const name of lengths.keys()) {
      const c = await client(`tcp://127.0.0.1:${node.port}/${name}`, {});
      lengths.set(name, c.lastSeq);
    }
    for (const c of open.splice(0)) await c.close();
    await cluster.stopAll();
    // Opened while JetStream is down: the node answers 'unavailable', and the client retries
    // (bounded by its open timeout) instead of calling the server a liar.
    const early = client(`tcp://127.0.0.1:${node.port}/team/r2`, { openTimeoutMs: 120_000 });
    await sleep(1500);
    await cluster.restartAll();
    expect((await early).lastSeq, 'opened during the outage').toBe(lengths.get('team/r2'));
    // The atedb nodes reconnect to NATS by themselves; a fresh atedb node finds everything too.
    const fresh = await startNode();
    for (const n of [node, fresh]) {
      for (const [name, len] of lengths) {
        const c = await client(`tcp://127.0.0.1:${n.port}/${name}`, { confirmTimeoutMs: 60_000 });
        expect(c.lastSeq, `${name} through port ${n.port}`).toBe(len);
      }
    }
    const c = await client(`tcp://127.0.0.1:${fresh.port}/team/r1`, { genesis: genesis.get('team/r1')! });
    const r = await c.commit(put('after the restart'), { wait: 'confirmed' });
    expect(r.seq).toBe(lengths.get('team/r1')! + 1);
  }, 180_000);
});
