// npm run bench:net — atedb over loopback, with the references measured in the same run:
//   - appends of 1-event and 100-event commits from 1, 8 and 64 concurrent connections to a real
//     `atedb solo` process (pre-signed commits, each connection waits for its confirmation before
//     sending the next): commits/s, events/s, p50/p99 latency to confirmation;
//   - the hybrid verify rate of the pool (one signature per commit: the server's ceiling), and
//     64-connection throughput as a ratio of it (goal >= 0.8);
//   - one client's commit through the replication client in sync mode (build, sign, send, server
//     validation, fdatasync, confirmation) against a local durable commit of the view (goal p50
//     <= 1.5x).
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Commit, CommitBuilder, DataKeyCache, MemoryAuthorityState, checkAgainstState, createGenesis, signatureMessage, signersOf } from '../../src/chain/index.js';
import { CryptoPool, randomBytes } from '../../src/crypto/index.js';
import { openLog } from '../../src/log/index.js';
import { RemoteChain } from '../../src/net/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { View } from '../../src/view/index.js';
import { Client, startAtedb } from './lib/atedb.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const out = path.join(repo, '.bench-out', 'net');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const PER_CLIENT_SMALL = Number(process.env.BENCH_PER_CLIENT ?? 12);

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
const line = (label: string, ours: string, ref = '', ratio = '') => console.log(`${label.padEnd(44)} ${ours.padStart(26)} ${ref.padStart(22)} ${ratio.padStart(8)}`);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

const owner = createIdentity('bench');
const session = Session.of(owner);
const keys = new DataKeyCache(session);
const pool = new CryptoPool({ size: 2 });

function startServer(): Promise<{ proc: ChildProcess; port: number }> {
  return startAtedb(repo, path.join(out, 'server'), ['--max-connections', '200', '--max-open-chains', '2000']);
}

/** Commits of `events` fresh DAOs each, all valid against the genesis state (no conflicts). */
async function presign(state: MemoryAuthorityState, n: number, events: number): Promise<Commit[]> {
  const out: Promise<Commit>[] = [];
  for (let i = 0; i < n; i++) {
    const b = new CommitBuilder({ state, keyring: session, keys, pool });
    for (let e = 0; e < events; e++) b.put({ payload: randomBytes(64) });
    out.push(b.build());
  }
  return Promise.all(out);
}

async function run(port: number, kh: string, chain: string, clients: number, commits: Commit[]) {
  const conns = await Promise.all(Array.from({ length: clients }, () => Client.connect(port, kh)));
  const per = Math.floor(commits.length / clients);
  const lat: number[] = [];
  let rejected = 0;
  const t0 = performance.now();
  await Promise.all(conns.map(async (c, k) => {
    for (let i = 0; i < per; i++) {
      const t = performance.now();
      const r = await c.append(chain, commits[k * per + i]!.bytes);
      if (r.t !== 'ok') rejected++;
      lat.push(performance.now() - t);
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  for (const c of conns) c.s.conn.close();
  if (rejected) throw new Error(`${rejected} commits rejected`);
  return { rate: (per * clients) / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
}

async function main() {
  console.log(`bench:net — node ${process.version}, ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)}; atedb solo in its own process on 127.0.0.1`);
  line('', 'ours', 'reference', 'ratio');
  // Reference 1: the pool's hybrid verify rate (what the server does once per commit).
  const msg = signatureMessage(randomBytes(32));
  const sig = await pool.sign(session.signingKeys()[0]!.secretKey, msg);
  const items = Array.from({ length: 512 }, () => ({ publicKey: owner.signing.publicKey, message: msg, signature: sig }));
  await pool.verifyMany(items.slice(0, 32));
  let t0 = performance.now();
  await pool.verifyMany(items);
  const verifyRate = items.length / ((performance.now() - t0) / 1000);
  // Reference 2: a local durable commit of the view (build, sign, validate, fdatasync), p50.
  const g = await createGenesis({ name: 'bench/local', keyring: session, chainReaders: session.chainReaders(), keys, pool });
  const log = await openLog({ dir: path.join(out, 'local', 'log'), chainId: 'bench/local', genesisHash: g.hash });
  const view = await View.open({ log, keyring: session, pinnedGenesis: g.hash, genesis: g, indexPath: path.join(out, 'local', 'index'), pool, keys, compaction: { mode: 'never' } });
  const local: number[] = [];
  for (let i = 0; i < 60; i++) {
    const t = performance.now();
    const d = view.begin();
    d.store(randomBytes(64));
    await d.commit('durable');
    local.push(performance.now() - t);
  }
  await view.close();
  await log.close();
  const localP50 = pct(local, 0.5);

  const server = await startServer();
  const kh = path.join(out, 'known_hosts');
  try {
    // Chain setup through the replication client (it creates the chain).
    const rc = await RemoteChain.open({ url: `tcp://127.0.0.1:${server.port}/bench/net`, session, dir: path.join(out, 'client'), mode: 'sync', create: true, knownHosts: kh, pool });
    const one: number[] = [];
    for (let i = 0; i < 60; i++) {
      const t = performance.now();
      await rc.commit((b) => { b.put({ payload: randomBytes(64) }); });
      one.push(performance.now() - t);
    }
    const state = new MemoryAuthorityState();
    for (const { commit } of rc.commits()) state.applyEffects(checkAgainstState(state, commit, signersOf(commit)));
    await rc.close();
    line('1 client, sync commit p50 (replication client)', `${fmt(pct(one, 0.5))} ms`, `local durable ${fmt(localP50)} ms`, (pct(one, 0.5) / localP50).toFixed(2));
    for (const events of [1, 100]) {
      for (const clients of [1, 8, 64]) {
        const n = events === 1 ? Math.max(clients * PER_CLIENT_SMALL, 120) : Math.max(clients * 2, 40);
        const commits = await presign(state, n - (n % clients), events);
        const r = await run(server.port, kh, 'bench/net', clients, commits);
        const ratio = r.rate / verifyRate;
        line(`${events}-event commits, ${clients} client${clients > 1 ? 's' : ''}`,
          `${fmt(r.rate)} c/s ${fmt(r.rate * events)} ev/s`, `p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms`, clients === 64 ? ratio.toFixed(2) : '');
      }
    }
    line('pool hybrid verify rate (server ceiling)', `${fmt(verifyRate)} /s`);

    // Initial sync of a chain of SYNC_EVENTS events (commits of 100) to a fresh client, against
    // loading (fully validating) the same log locally; then resume after 1,000 new events.
    const SYNC_EVENTS = Number(process.env.BENCH_SYNC_EVENTS ?? 100_000);
    const syncState = new MemoryAuthorityState();
    const g2 = await createGenesis({ name: 'bench/sync', keyring: session, chainReaders: session.chainReaders(), keys, pool });
    syncState.applyEffects(checkAgainstState(syncState, g2, signersOf(g2)));
    const feeder = await Client.connect(server.port, kh);
    await feeder.append('bench/sync', g2.bytes);
    for (let done = 0; done < SYNC_EVENTS; done += 100 * 64) {
      const cs = await presign(syncState, Math.min(64, Math.ceil((SYNC_EVENTS - done) / 100)), 100);
      await Promise.all(cs.map((c) => feeder.append('bench/sync', c.bytes)));
    }
    t0 = performance.now();
    const fresh = await RemoteChain.open({ url: `tcp://127.0.0.1:${server.port}/bench/sync`, session, dir: path.join(out, 'sync-client'), knownHosts: kh, pool });
    const syncMs = performance.now() - t0;
    const syncedEvents = [...fresh.commits()].reduce((n, c) => n + c.commit.events.length, 0);
    await fresh.close();
    const { loadChainState } = await import('../../src/chain/index.js');
    const rlog = await openLog({ dir: path.join(out, 'sync-client', 'replica'), chainId: 'bench/sync' });
    t0 = performance.now();
    await loadChainState(rlog, { pinnedGenesis: null, pool });
    const localMs = performance.now() - t0;
    await rlog.close();
    const syncRate = syncedEvents / (syncMs / 1000);
    const localRate = syncedEvents / (localMs / 1000);
    line(`initial sync, ${fmt(syncedEvents)} events (download + validation)`, `${fmt(syncRate)} ev/s`, `local load ${fmt(localRate)} ev/s`, (syncRate / localRate).toFixed(2));
    const tail = await presign(syncState, 10, 100);
    await Promise.all(tail.map((c) => feeder.append('bench/sync', c.bytes)));
    t0 = performance.now();
    const resumed = await RemoteChain.open({ url: `tcp://127.0.0.1:${server.port}/bench/sync`, session, dir: path.join(out, 'sync-client'), knownHosts: kh, pool });
    await new Promise<void>((resolve) => { const check = () => (resumed.status === 'online' ? resolve() : setTimeout(check, 2)); check(); });
    const resumeMs = performance.now() - t0;
    const from = resumed.loadReport?.fromSnapshot ?? 0;
    await resumed.close();
    line('resume after 1,000 new events (open to online)', `${fmt(resumeMs)} ms`, `initial sync ${fmt(syncMs)} ms`, (resumeMs / syncMs).toFixed(3));
    console.log(`  (resume: state restored from the snapshot at seq ${from}${from ? '' : `: ${resumed.loadReport?.snapshotWhy}`}; ${resumed.loadReport?.signaturesTrusted ?? 0} records' signatures trusted)`);
    feeder.s.conn.close();

    // Server RSS with 1,000 chains open by 100 connections (each subscribed to its 10).
    const CHAINS = Number(process.env.BENCH_CHAINS ?? 1000);
    const conns = await Promise.all(Array.from({ length: 100 }, () => Client.connect(server.port, kh)));
    const geneses = await Promise.all(Array.from({ length: CHAINS }, (_, i) => createGenesis({ name: `rss/c${i}`, keyring: session, chainReaders: session.chainReaders(), keys, pool })));
    await Promise.all(geneses.map((gx, i) => conns[i % 100]!.append(`rss/c${i}`, gx.bytes)));
    for (let i = 0; i < CHAINS; i++) conns[i % 100]!.s.conn.send({ t: 'sub', id: 1_000_000 + i, chain: `rss/c${i}`, genesis: geneses[i]!.hash, from: 1 });
    await new Promise((r) => setTimeout(r, 2000));
    const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'))![1]) / 1024;
    line(`server RSS, ${fmt(CHAINS)} chains open by 100 connections`, `${fmt(rss)} MiB`, 'goal 512 MiB', (rss / 512).toFixed(2));
    for (const c of conns) c.s.conn.close();
    console.log('ratios: sync p50 / local durable p50 (goal <= 1.5); 64-client commits/s / verify rate (goal >= 0.8; the server and this client share the machine)');
  } finally {
    server.proc.kill('SIGTERM');
    await pool.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
