// npm run bench:cluster — atedb with the file store against atedb on a 3-node JetStream cluster
// (stream replicas 3), in one run on this machine:
//   - 100-event commits (pre-signed, all valid against one state) appended to one chain from
//     CLIENTS connections, each waiting for its confirmation before sending the next: commits/s and
//     p50/p99 latency to confirmation; rows: one atedb node with the file store, one atedb node on
//     JetStream R3, three atedb nodes on JetStream R3 (clients spread over them); the ratio of each
//     JetStream row to the file store (goal >= 0.5);
//   - failover: the stream leader SIGKILLed during appends; the time until the next confirmation.
// Every process (nats-server x3, atedb) is started here and stopped by PID.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { type Commit, CommitBuilder, DataKeyCache, MemoryAuthorityState, checkAgainstState, createGenesis, signersOf } from '../../src/chain/index.js';
import { CryptoPool, randomBytes } from '../../src/crypto/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { Client, startAtedb as startSolo } from './lib/atedb.js';
import { NatsCluster } from './lib/nats-cluster.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const out = path.join(repo, '.bench-out', 'cluster');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const COMMITS = Number(process.env.BENCH_COMMITS ?? 320);
const EVENTS = 100;

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
const line = (label: string, a: string, b = '', c = '') => console.log(`${label.padEnd(46)} ${a.padStart(28)} ${b.padStart(26)} ${c.padStart(8)}`);
const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const owner = createIdentity('bench');
const session = Session.of(owner);
const keys = new DataKeyCache(session);
const pool = new CryptoPool({ size: 2 });
const procs = new Set<ChildProcess>();

async function startAtedb(dataDir: string, args: string[]): Promise<{ proc: ChildProcess; port: number }> {
  const started = await startSolo(repo, dataDir, args);
  procs.add(started.proc);
  return started;
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  process.kill(proc.pid!, 'SIGTERM');
  await done;
  procs.delete(proc);
}

/** Commits of EVENTS fresh DAOs each, all valid against `state` (no conflicts between them). */
async function presign(state: MemoryAuthorityState, n: number): Promise<Commit[]> {
  const outc: Commit[] = [];
  for (let i = 0; i < n; i += 32) {
    outc.push(...await Promise.all(Array.from({ length: Math.min(32, n - i) }, () => {
      const b = new CommitBuilder({ state, keyring: session, keys, pool });
      for (let e = 0; e < EVENTS; e++) b.put({ payload: randomBytes(64) });
      return b.build();
    })));
  }
  return outc;
}

interface Run { rate: number; p50: number; p99: number; confirmedAt: number[] }

/** CLIENTS connections (spread over `ports`), each appending its share one at a time. */
async function run(ports: number[], kh: string, chain: string, commits: Commit[], during?: (progress: () => number) => Promise<void>): Promise<Run> {
  const conns = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => Client.connect(ports[i % ports.length]!, kh)));
  const per = Math.floor(commits.length / CLIENTS);
  const lat: number[] = [];
  const confirmedAt: number[] = [];
  const rejected: string[] = [];
  const t0 = performance.now();
  const work = Promise.all(conns.map(async (c, k) => {
    for (let i = 0; i < per; i++) {
      const t = performance.now();
      for (let attempt = 0; ; attempt++) {
        const r = await c.append(chain, commits[k * per + i]!.bytes);
        if (r.t === 'ok') break;
        // 'unavailable' while JetStream elects a leader: the client sends it again (as RemoteChain does).
        if (r.t === 'rej' && r.reason === 'unavailable' && attempt < 50) { await sleep(100); continue; }
        if (r.t === 'rej' && r.reason === 'replay') break;
        rejected.push(r.t === 'rej' ? `${r.reason}: ${r.detail}` : r.t);
        break;
      }
      lat.push(performance.now() - t);
      confirmedAt.push(performance.now());
    }
  }));
  if (during) await during(() => confirmedAt.length);
  await work;
  const secs = (performance.now() - t0) / 1000;
  for (const c of conns) c.s.conn.close();
  if (rejected.length) throw new Error(`${rejected.length} commits rejected, first: ${rejected[0]}`);
  return { rate: (per * CLIENTS) / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99), confirmedAt };
}

/** A fresh chain on `port`: its genesis appended, and the state commits are built against. */
async function newChain(port: number, kh: string, name: string): Promise<MemoryAuthorityState> {
  const g = await createGenesis({ name, keyring: session, chainReaders: session.chainReaders(), keys, pool });
  const c = await Client.connect(port, kh);
  const r = await c.append(name, g.bytes);
  c.s.conn.close();
  if (r.t !== 'ok') throw new Error(`creating ${name}: ${JSON.stringify(r)}`);
  const state = new MemoryAuthorityState();
  state.applyEffects(checkAgainstState(state, g, signersOf(g)));
  return state;
}

async function main(): Promise<void> {
  console.log(`bench:cluster — ${new Date().toISOString()}, node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);
  console.log(`${CLIENTS} clients, ${COMMITS} commits of ${EVENTS} events per row, one chain, each client waits for its confirmation; all processes on 127.0.0.1`);
  line('', 'commits/s (events/s)', 'confirmation latency', 'ratio');
  const kh = path.join(out, 'known_hosts');

  // 1. One node, file store.
  const file = await startAtedb(path.join(out, 'file'), []);
  let fileRun: Run;
  try {
    const state = await newChain(file.port, kh, 'bench/file');
    fileRun = await run([file.port], kh, 'bench/file', await presign(state, COMMITS));
  } finally {
    await stop(file.proc);
  }
  line('1 atedb node, file store', `${fmt(fileRun.rate)} (${fmt(fileRun.rate * EVENTS)})`, `p50 ${fmt(fileRun.p50)} p99 ${fmt(fileRun.p99)} ms`, '1.00');

  // 2. JetStream R3 on a 3-node nats-server cluster.
  const cluster = await NatsCluster.start({ size: 3 });
  const nodes: Array<{ proc: ChildProcess; port: number }> = [];
  try {
    for (let i = 0; i < 3; i++) {
      const dir = path.join(out, `node${i}`);
      fs.mkdirSync(dir, { recursive: true });
      if (i > 0) fs.copyFileSync(path.join(out, 'node0', 'server.key'), path.join(dir, 'server.key'));
      nodes.push(await startAtedb(dir, ['--store', cluster.url]));
    }
    for (const [label, ports, chain] of [
      ['1 atedb node, JetStream R3 (3 nats-server)', [nodes[0]!.port], 'bench/js1'],
      ['3 atedb nodes, JetStream R3 (clients spread)', nodes.map((n) => n.port), 'bench/js3'],
    ] as const) {
      const state = await newChain(ports[0]!, kh, chain);
      const r = await run([...ports], kh, chain, await presign(state, COMMITS));
      line(label, `${fmt(r.rate)} (${fmt(r.rate * EVENTS)})`, `p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms`, (r.rate / fileRun.rate).toFixed(2));
    }

    // 3. Failover: SIGKILL the stream leader while 8 clients append through one atedb node.
    const state = await newChain(nodes[0]!.port, kh, 'bench/failover');
    let killedAt = 0;
    let leaderName = '';
    let electedAt: Promise<number> = Promise.resolve(Number.NaN);
    const r = await run([nodes[0]!.port], kh, 'bench/failover', await presign(state, COMMITS), async (progress) => {
      while (progress() < COMMITS / 4) await sleep(5);
      const nc = await connect({ servers: cluster.servers });
      const jsm = await jetstreamManager(nc);
      leaderName = (await jsm.streams.info('ATEDB')).cluster!.leader!;
      await nc.close();
      const survivors = cluster.nodes.filter((n) => n.name !== leaderName);
      await cluster.kill(cluster.node(leaderName), 'SIGKILL');
      killedAt = performance.now();
      if (process.env.ATEDB_DEBUG) process.stderr.write(`${new Date().toISOString()} bench: SIGKILLed ${leaderName}\n`);
      // The reference: when JetStream itself has a new stream leader (the survivor logs it).
      electedAt = cluster.whenLogged(survivors, /new stream leader for '[^']*ATEDB'/);
    });
    const elected = await electedAt;
    const after = r.confirmedAt.filter((t) => t > killedAt).sort((a, b) => a - b);
    const gap = after.length ? after[0]! - killedAt : Number.NaN;
    line(`failover: stream leader (${leaderName}) SIGKILLed`, `next confirmation ${fmt(gap)} ms`, `${after.length} confirmed after`, '');
    line('  JetStream alone: new stream leader logged', `${fmt(elected - killedAt)} ms`, `ours - election ${fmt(gap - (elected - killedAt))} ms`, '');
  } finally {
    for (const n of nodes) await stop(n.proc).catch(() => undefined);
    await cluster.destroy();
  }
}

main().then(async () => {
  await pool.close();
  fs.rmSync(out, { recursive: true, force: true });
}, async (e: Error) => {
  console.error(`bench:cluster failed: ${e.stack ?? e.message}`);
  for (const p of procs) try { process.kill(p.pid!, 'SIGKILL'); } catch { /* gone */ }
  await pool.close();
  process.exitCode = 1;
});
