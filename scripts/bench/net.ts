// npm run bench:net — atedb over loopback, with the references measured in the same run:
//   - appends of 1-event and 100-event commits from 1, 8 and 64 concurrent connections to a real
//     `atedb solo` process (pre-signed commits, each connection waits for its confirmation before
//     sending the next): commits/s, events/s, p50/p99 latency to confirmation;
//   - the hybrid verify rate of the pool (one signature per commit: the server's ceiling), and
//     64-connection throughput as a ratio of it (goal >= 0.8), the ceiling measured again right
//     before and after each 64-connection window (load from other jobs weighs on both alike);
//     the commits are built and signed before the timed window (the clients share the 2 cores
//     with the server, which still verifies every one), and the CPU each side spent per commit
//     in the window is printed (/proc: the server process, this process, the rest of the machine);
//   - one client's commit through the replication client in sync mode (build, sign, send, server
//     validation, fdatasync, confirmation) against a local durable commit of the view (goal p50
//     <= 1.5x), the two taken in turn.
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
const PER_CLIENT_LARGE = Number(process.env.BENCH_PER_CLIENT_LARGE ?? 6);
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8,64').split(',').map(Number);
// BENCH_PARTS: which parts to run, comma-separated (default all): appends, sync, rss.
const PARTS = new Set((process.env.BENCH_PARTS ?? 'appends,sync,rss').split(','));

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

/** CPU seconds (user + system) a process (all threads), or one thread of it, has used so far. */
function cpuOf(pid: number, thread?: number): number {
  const f = fs.readFileSync(thread ? `/proc/${pid}/task/${thread}/stat` : `/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** CPU seconds of each thread of a process so far, by thread id. */
function threadsOf(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      m.set(Number(t), cpuOf(pid, Number(t)));
    } catch {
      // exited meanwhile
    }
  }
  return m;
}

/** The server's CPU ms per commit over a window: its main thread, its two busiest other threads
 *  (the verify workers, when they are busy) and the rest (libuv's pool: fdatasync, GC helpers). */
function threadSplit(pid: number, before: Map<number, number>, n: number): string {
  const after = threadsOf(pid);
  const d = [...after].map(([t, c]) => ({ t, ms: ((c - (before.get(t) ?? 0)) * 1000) / n }));
  const main = d.find((x) => x.t === pid)?.ms ?? 0;
  const others = d.filter((x) => x.t !== pid).sort((a, b) => b.ms - a.ms);
  const top = others.slice(0, 2).reduce((a, x) => a + x.ms, 0);
  const rest = others.slice(2).reduce((a, x) => a + x.ms, 0);
  return `main thread ${main.toFixed(2)}, 2 busiest threads ${top.toFixed(2)}, other threads ${rest.toFixed(2)}`;
}

/** CPU seconds of every process on the machine so far (busy jiffies of /proc/stat). */
function machineBusy(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / 100; // user nice system irq softirq steal
}

/** The pool's hybrid verify rate over `items` (one verifyMany), per second of wall time, and the
 *  CPU ms one verification took (this process's CPU: its workers, over the items). */
async function verifyRateOf(items: Parameters<CryptoPool['verifyMany']>[0]): Promise<{ rate: number; cpuMs: number }> {
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  await pool.verifyMany(items);
  const u = process.cpuUsage(u0);
  return { rate: items.length / ((performance.now() - t0) / 1000), cpuMs: (u.user + u.system) / 1000 / items.length };
}

async function run(port: number, serverPid: number, kh: string, chain: string, clients: number, commits: Commit[]) {
  const conns = await Promise.all(Array.from({ length: clients }, () => Client.connect(port, kh)));
  const per = Math.floor(commits.length / clients);
  const lat: number[] = [];
  let rejected = 0;
  const s0 = cpuOf(serverPid);
  const threads0 = threadsOf(serverPid);
  const c0 = process.cpuUsage();
  const m0 = machineBusy();
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
  const n = per * clients;
  const c = process.cpuUsage(c0);
  // CPU ms per commit: the server process (all its threads), this process (the clients), and the
  // rest of the machine (other jobs) over the timed window.
  const serverMs = ((cpuOf(serverPid) - s0) * 1000) / n;
  const serverSplit = threadSplit(serverPid, threads0, n);
  const clientMs = (c.user + c.system) / 1000 / n;
  const otherMs = Math.max(0, ((machineBusy() - m0) * 1000) / n - serverMs - clientMs);
  for (const c of conns) c.s.conn.close();
  if (rejected) throw new Error(`${rejected} commits rejected`);
  return { rate: n / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99), serverMs, serverSplit, clientMs, otherMs, secs };
}

async function main() {
  console.log(`bench:net — node ${process.version}, ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)}; atedb solo in its own process on 127.0.0.1`);
  console.log('appends: commits built and signed before each timed window (not by the clients inside it); the server verifies every one');
  line('', 'ours', 'reference', 'ratio');
  // Reference 1: the pool's hybrid verify rate (what the server does once per commit).
  const msg = signatureMessage(randomBytes(32));
  const sig = await pool.sign(session.signingKeys()[0]!.secretKey, msg);
  const items = Array.from({ length: 512 }, () => ({ publicKey: owner.signing.publicKey, message: msg, signature: sig }));
  await pool.verifyMany(items.slice(0, 32));
  const { rate: verifyRate } = await verifyRateOf(items);
  // Reference 2: a local durable commit of the view (build, sign, validate, fdatasync), p50.
  const g = await createGenesis({ name: 'bench/local', keyring: session, chainReaders: session.chainReaders(), keys, pool });
  const log = await openLog({ dir: path.join(out, 'local', 'log'), chainId: 'bench/local', genesisHash: g.hash });
  const view = await View.open({ log, keyring: session, pinnedGenesis: g.hash, genesis: g, indexPath: path.join(out, 'local', 'index'), pool, keys, compaction: { mode: 'never' } });
  const localCommit = async () => {
    const t = performance.now();
    const d = view.begin();
    d.store(randomBytes(64));
    await d.commit('durable');
    return performance.now() - t;
  };

  const server = await startServer();
  const kh = path.join(out, 'known_hosts');
  try {
    // Chain setup through the replication client (it creates the chain).
    const rc = await RemoteChain.open({ url: `tcp://127.0.0.1:${server.port}/bench/net`, session, dir: path.join(out, 'client'), mode: 'sync', create: true, knownHosts: kh, pool });
    const remoteCommit = async () => {
      const t = performance.now();
      await rc.commit((b) => { b.put({ payload: randomBytes(64) }); });
      return performance.now() - t;
    };
    // One sync commit and one local durable commit in turn (which goes first alternates), so
    // load from other jobs that drifts during the run weighs on both alike.
    const local: number[] = [];
    const one: number[] = [];
    for (let i = 0; i < 60; i++) {
      if (i % 2 === 0) {
        local.push(await localCommit());
        one.push(await remoteCommit());
      } else {
        one.push(await remoteCommit());
        local.push(await localCommit());
      }
    }
    await view.close();
    await log.close();
    const localP50 = pct(local, 0.5);
    const state = new MemoryAuthorityState();
    for (const { commit } of rc.commits()) state.applyEffects(checkAgainstState(state, commit, signersOf(commit)));
    await rc.close();
    if (PARTS.has('appends')) line('1 client, sync commit p50 (replication client)', `${fmt(pct(one, 0.5))} ms`, `local durable ${fmt(localP50)} ms`, (pct(one, 0.5) / localP50).toFixed(2));
    const ratios: string[] = [];
    for (const events of PARTS.has('appends') ? [1, 100] : []) {
      for (const clients of CLIENTS) {
        const n = events === 1 ? Math.max(clients * PER_CLIENT_SMALL, 120) : Math.max(clients * PER_CLIENT_LARGE, 40);
        const commits = await presign(state, n - (n % clients), events);
        // The ceiling is measured right before and right after the timed window (the same
        // verifyMany as the reference above), so load from other jobs weighs on both alike.
        // The CPU of one verification is taken from the same two measurements (warm: the first
        // reference includes the JIT's warm-up of the ML-DSA code, ~0.8 against ~0.55 ms).
        const before = clients === 64 ? await verifyRateOf(items.slice(0, 256)) : { rate: 0, cpuMs: 0 };
        const r = await run(server.port, server.proc.pid!, kh, 'bench/net', clients, commits);
        const after = clients === 64 ? await verifyRateOf(items.slice(0, 256)) : { rate: 0, cpuMs: 0 };
        const ceiling = clients === 64 ? (before.rate + after.rate) / 2 : verifyRate;
        const verifyCpuMs = (before.cpuMs + after.cpuMs) / 2;
        const ratio = r.rate / ceiling;
        line(`${events}-event commits, ${clients} client${clients > 1 ? 's' : ''}`,
          `${fmt(r.rate)} c/s ${fmt(r.rate * events)} ev/s`, `p50 ${fmt(r.p50)} p99 ${fmt(r.p99)} ms`, clients === 64 ? ratio.toFixed(2) : '');
        if (clients === 64) console.log(`  CPU ms per commit: server ${r.serverMs.toFixed(2)} (${r.serverSplit}), bench clients ${r.clientMs.toFixed(2)}, other jobs ${r.otherMs.toFixed(2)} (one verification ${verifyCpuMs.toFixed(2)}); ${r.secs.toFixed(2)} s window`);
        // What the server and its clients would reach with the two cores to themselves (no other
        // jobs): the CPU of one verification over the CPU they spent per commit. An estimate.
        if (clients === 64) ratios.push(`${events}-event: ${fmt(r.rate)} c/s / ${fmt(ceiling)} verifies/s (measured around the window) = ${ratio.toFixed(2)}; by CPU, one verification / (server + clients) per commit = ${(verifyCpuMs / (r.serverMs + r.clientMs)).toFixed(2)}`);
      }
    }
    line('pool hybrid verify rate (server ceiling)', `${fmt(verifyRate)} /s`);
    for (const r of ratios) console.log(`  64 clients, ${r}`);
    if (PARTS.has('sync')) await syncPart(server.port, server.proc.pid!, kh);
    if (PARTS.has('rss')) await rssPart(server);
    console.log('ratios: sync p50 / local durable p50 (goal <= 1.5); 64-client commits/s / verify rate (goal >= 0.8; the server and this client share the machine)');
  } finally {
    server.proc.kill('SIGTERM');
    await new Promise((r) => server.proc.once('exit', r));
    await pool.close();
  }
}

/** BENCH_PROFILE_DIR: a CPU profile of this process's main thread over one timed window. */
async function profileStart(): Promise<{ stop(name: string): Promise<void> }> {
  const dir = process.env.BENCH_PROFILE_DIR;
  if (!dir) return { stop: async () => undefined };
  const { Session: Inspector } = await import('node:inspector');
  const s = new Inspector();
  s.connect();
  const post = (m: string, p?: object) => new Promise<unknown>((res, rej) => s.post(m, p ?? {}, (e, r) => (e ? rej(e) : res(r))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  await post('Profiler.start');
  return {
    async stop(name: string) {
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
      s.disconnect();
    },
  };
}

async function syncPart(port: number, serverPid: number, kh: string) {
  // Initial sync of a chain of SYNC_EVENTS events (commits of 100) to a fresh client, against
  // loading (fully validating) the same log locally; then resume after 1,000 new events.
  const SYNC_EVENTS = Number(process.env.BENCH_SYNC_EVENTS ?? 100_000);
  const syncState = new MemoryAuthorityState();
  const g2 = await createGenesis({ name: 'bench/sync', keyring: session, chainReaders: session.chainReaders(), keys, pool });
  syncState.applyEffects(checkAgainstState(syncState, g2, signersOf(g2)));
  const feeder = await Client.connect(port, kh);
  await feeder.append('bench/sync', g2.bytes);
  for (let done = 0; done < SYNC_EVENTS; done += 100 * 64) {
    const cs = await presign(syncState, Math.min(64, Math.ceil((SYNC_EVENTS - done) / 100)), 100);
    await Promise.all(cs.map((c) => feeder.append('bench/sync', c.bytes)));
  }
  const prof = await profileStart();
  let cpu = { client: process.cpuUsage(), server: cpuOf(serverPid), machine: machineBusy() };
  let t0 = performance.now();
  const fresh = await RemoteChain.open({ url: `tcp://127.0.0.1:${port}/bench/sync`, session, dir: path.join(out, 'sync-client'), knownHosts: kh, pool });
  const syncMs = performance.now() - t0;
  const cpuSecs = () => {
    const c = process.cpuUsage(cpu.client);
    const client = (c.user + c.system) / 1e6;
    const server = cpuOf(serverPid) - cpu.server;
    return `this process ${client.toFixed(2)}, server ${server.toFixed(2)}, other jobs ${Math.max(0, machineBusy() - cpu.machine - client - server).toFixed(2)}`;
  };
  const syncCpu = cpuSecs();
  await prof.stop('sync');
  const syncedEvents = [...fresh.commits()].reduce((n, c) => n + c.commit.events.length, 0);
  await fresh.close();
  const { loadChainState } = await import('../../src/chain/index.js');
  const rlog = await openLog({ dir: path.join(out, 'sync-client', 'replica'), chainId: 'bench/sync' });
  const prof2 = await profileStart();
  cpu = { client: process.cpuUsage(), server: cpuOf(serverPid), machine: machineBusy() };
  t0 = performance.now();
  // The server's order: 64 commits appended at once are sequenced in arrival order, so a later
  // seq may carry an earlier timestamp (the replication client validates with the same option).
  await loadChainState(rlog, { pinnedGenesis: null, pool, backwardsToleranceMs: Number.POSITIVE_INFINITY });
  const localMs = performance.now() - t0;
  const localCpu = cpuSecs();
  await prof2.stop('local-load');
  await rlog.close();
  const syncRate = syncedEvents / (syncMs / 1000);
  const localRate = syncedEvents / (localMs / 1000);
  line(`initial sync, ${fmt(syncedEvents)} events (download + validation)`, `${fmt(syncRate)} ev/s`, `local load ${fmt(localRate)} ev/s`, (syncRate / localRate).toFixed(2));
  console.log(`  CPU s: sync ${syncCpu} in ${(syncMs / 1000).toFixed(2)} s; local load ${localCpu} in ${(localMs / 1000).toFixed(2)} s`);
  const tail = await presign(syncState, 10, 100);
  await Promise.all(tail.map((c) => feeder.append('bench/sync', c.bytes)));
  t0 = performance.now();
  const resumed = await RemoteChain.open({ url: `tcp://127.0.0.1:${port}/bench/sync`, session, dir: path.join(out, 'sync-client'), knownHosts: kh, pool });
  await new Promise<void>((resolve) => { const check = () => (resumed.status === 'online' ? resolve() : setTimeout(check, 2)); check(); });
  const resumeMs = performance.now() - t0;
  const from = resumed.loadReport?.fromSnapshot ?? 0;
  await resumed.close();
  line('resume after 1,000 new events (open to online)', `${fmt(resumeMs)} ms`, `initial sync ${fmt(syncMs)} ms`, (resumeMs / syncMs).toFixed(3));
  console.log(`  (resume: state restored from the snapshot at seq ${from}${from ? '' : `: ${resumed.loadReport?.snapshotWhy}`}; ${resumed.loadReport?.signaturesTrusted ?? 0} records' signatures trusted)`);
  feeder.s.conn.close();
}

async function rssPart(server: { proc: ChildProcess; port: number }) {
  const kh = path.join(out, 'known_hosts');
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
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
