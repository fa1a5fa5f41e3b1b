// npm run bench:chain — commit building (encrypt, encode, hash, sign through the pool) for commits of
// 1, 10 and 100 events, the share of signing in commit time, and validation throughput on load of a
// 1,000,000-event chain written in commits of 100 events to a real log on the real disk. References
// measured in the same run: raw pool signatures/s and raw pool verifications/s (the crypto floor).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CryptoPool, randomBytes } from '../../src/crypto/index.js';
import { openLog } from '../../src/log/index.js';
import {
  CommitBuilder,
  DataKeyCache,
  MemoryAuthorityState,
  checkAgainstState,
  createGenesis,
  loadChainState,
  signatureMessage,
  signersOf,
  type Commit,
  type DaoKey,
} from '../../src/chain/index.js';
import { Session, createIdentity } from '../../src/session/index.js';

const TOTAL_EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const PER_COMMIT = 100;
const COMMIT_MS = Number(process.env.BENCH_MS ?? 2500);
const LOAD_REPS = Number(process.env.BENCH_REPS ?? 3);
const IN_FLIGHT = 4;
// Generation keeps every pool worker busy while the main thread prepares the next commits.
const GEN_IN_FLIGHT = 8;
// BENCH_CHAIN_DIR=dir keeps the generated chain there and reuses it on the next run (generation is
// most of the bench's time: one ML-DSA signature per commit). Loading never needs the signer.
const CHAIN_CACHE = process.env.BENCH_CHAIN_DIR;
const PAYLOAD = 32;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const pad = (s: string, n: number) => s.padEnd(n);
const padL = (s: string, n: number) => s.padStart(n);

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'atefs-bench-chain-'));
const pool = new CryptoPool();
const owner = createIdentity('bench');
const session = Session.of(owner);

async function newChain() {
  const keys = new DataKeyCache(session);
  const genesis = await createGenesis({ name: 'bench/chain', keyring: session, chainReaders: session.chainReaders(), keys, pool });
  const state = new MemoryAuthorityState();
  state.applyEffects(checkAgainstState(state, genesis, signersOf(genesis)));
  return { keys, genesis, state };
}

function apply(state: MemoryAuthorityState, c: Commit): void {
  state.applyEffects(checkAgainstState(state, c, signersOf(c)));
}

// ------------------------------------------------------------------ references
async function rawPoolSignsPerSec(): Promise<number> {
  const msg = signatureMessage(randomBytes(32));
  let n = 0;
  let stop = false;
  const t0 = performance.now();
  const w = async () => {
    while (!stop) {
      await pool.sign(owner.signing.secretKey, msg);
      n++;
    }
  };
  const timer = setTimeout(() => (stop = true), COMMIT_MS);
  await Promise.all(Array.from({ length: IN_FLIGHT }, w));
  clearTimeout(timer);
  return (n / (performance.now() - t0)) * 1000;
}

async function rawPoolVerifies(count: number): Promise<{ perSec: number; cpuUs: number }> {
  const msg = signatureMessage(randomBytes(32));
  const sig = await pool.sign(owner.signing.secretKey, msg);
  const items = Array.from({ length: count }, () => ({ publicKey: owner.signing.publicKey, message: msg, signature: sig }));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < count; i += 256) await pool.verifyMany(items.slice(i, i + 256));
  const cpu = process.cpuUsage(c0);
  return { perSec: (count / (performance.now() - t0)) * 1000, cpuUs: (cpu.user + cpu.system) / count };
}

// ------------------------------------------------------------------ commit throughput
interface CommitFigures {
  size: number;
  commitsPerSec: number;
  eventsPerSec: number;
  signShare: number;
  prepUsPerEvent: number;
}

async function commitThroughput(size: number): Promise<CommitFigures> {
  const { keys, state } = await newChain();
  const payload = randomBytes(PAYLOAD);
  const dir = (() => {
    const b = new CommitBuilder({ state, keyring: session, keys });
    return b;
  })();
  const root = dir.put({ type: 'dir' });
  apply(state, await dir.build());

  // Sequential: how much of one commit's time is signing.
  let prepMs = 0;
  let signMs = 0;
  let seqCommits = 0;
  const seqUntil = performance.now() + COMMIT_MS / 2;
  while (performance.now() < seqUntil || seqCommits < 5) {
    const t0 = performance.now();
    const b = new CommitBuilder({ state, keyring: session, keys, pool });
    for (let i = 0; i < size; i++) b.put({ parent: { key: root, collection: 0 }, payload });
    const t1 = performance.now();
    const c = await b.build();
    const t2 = performance.now();
    apply(state, c);
    prepMs += t1 - t0 + (performance.now() - t2);
    signMs += t2 - t1;
    seqCommits++;
  }

  // Pipelined: IN_FLIGHT commits being signed while the next ones are prepared.
  let commits = 0;
  let stop = false;
  const t0 = performance.now();
  const worker = async () => {
    while (!stop) {
      const b = new CommitBuilder({ state, keyring: session, keys, pool });
      for (let i = 0; i < size; i++) b.put({ parent: { key: root, collection: 0 }, payload });
      apply(state, await b.build());
      commits++;
    }
  };
  const timer = setTimeout(() => (stop = true), COMMIT_MS);
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  clearTimeout(timer);
  const ms = performance.now() - t0;
  return {
    size,
    commitsPerSec: (commits / ms) * 1000,
    eventsPerSec: ((commits * size) / ms) * 1000,
    signShare: signMs / (signMs + prepMs),
    prepUsPerEvent: (prepMs * 1000) / (seqCommits * size),
  };
}

// ------------------------------------------------------------------ the 1M-event chain
async function generateChain(dir: string): Promise<{ genesisHash: Buffer; commits: number; events: number; ms: number; bytes: number }> {
  const { keys, genesis, state } = await newChain();
  const log = await openLog({ dir, chainId: 'bench/chain', genesisHash: genesis.hash });
  await log.append(genesis.bytes, 'local');
  const t0 = performance.now();
  // A few directories; then 1,000 blocks of 100 files created once and rewritten afterwards
  // (keeps the authority state at ~100k nodes while the log holds 1M events).
  const b0 = new CommitBuilder({ state, keyring: session, keys, pool });
  const dirs: DaoKey[] = [];
  for (let i = 0; i < 10; i++) dirs.push(b0.put({ type: 'dir', read: i === 0 ? { mode: 'chain' } : undefined }));
  const c0 = await b0.build();
  apply(state, c0);
  await log.append(c0.bytes, 'none');
  const commitsWanted = Math.ceil((TOTAL_EVENTS - c0.events.length) / PER_COMMIT);
  const blocks = Math.min(1000, commitsWanted);
  const blockKeys: DaoKey[][] = Array.from({ length: blocks }, () => []);
  let events = c0.events.length;
  let written = 1;
  let next = 0;
  const payload = randomBytes(PAYLOAD);
  const inflight = new Set<Promise<void>>();
  let appendChain: Promise<unknown> = Promise.resolve();
  while (next < commitsWanted || inflight.size > 0) {
    while (next < commitsWanted && inflight.size < GEN_IN_FLIGHT) {
      const blk = next % blocks;
      const b = new CommitBuilder({ state, keyring: session, keys, pool });
      const keysOfBlock = blockKeys[blk]!;
      if (keysOfBlock.length === 0) {
        const parent = dirs[blk % dirs.length]!;
        for (let i = 0; i < PER_COMMIT; i++) keysOfBlock.push(b.put({ parent: { key: parent, collection: 0 }, type: 'f', payload }));
      } else {
        for (const k of keysOfBlock) b.put({ key: k, payload });
      }
      next++;
      const p: Promise<void> = b.build().then((c) => {
        apply(state, c);
        events += c.events.length;
        written++;
        appendChain = log.append(c.bytes, 'none');
        inflight.delete(p);
      });
      inflight.add(p);
    }
    await Promise.race(inflight);
  }
  await appendChain;
  await log.flush('durable');
  const bytes = log.sizeBytes();
  await log.close();
  return { genesisHash: genesis.hash, commits: written, events, ms: performance.now() - t0, bytes };
}

async function loadOnce(dir: string, genesisHash: Buffer): Promise<{ ms: number; events: number; rawReadMs: number; cpuMs: number }> {
  const log = await openLog({ dir, chainId: 'bench/chain', genesisHash, readOnly: true });
  // Reference: raw iteration of the log's records (read + frame checks), no decoding.
  const r0 = performance.now();
  let n = 0;
  for (const rec of log.records()) n += rec.payload.length > 0 ? 1 : 0;
  const rawReadMs = performance.now() - r0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const { events } = await loadChainState(log, { pinnedGenesis: genesisHash, pool, state: new MemoryAuthorityState() });
  const ms = performance.now() - t0;
  // CPU of every thread of the process (main + pool workers): the cost that doesn't depend on how
  // busy the shared machine is.
  const cpu = process.cpuUsage(c0);
  await log.close();
  return { ms, events, rawReadMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log(`bench:chain  node ${process.version}, ${os.availableParallelism()} cores, pool of ${pool.size} workers, payload ${PAYLOAD} B/event, log in ${out}`);
  await pool.sign(owner.signing.secretKey, signatureMessage(randomBytes(32))); // warm the workers

  const signRef = await rawPoolSignsPerSec();
  const rows: CommitFigures[] = [];
  for (const size of [1, 10, 100]) rows.push(await commitThroughput(size));

  console.log('\nCommit building (put + seal + encode + hash + hybrid signature via the pool; ' + `${IN_FLIGHT} commits in flight)`);
  console.log(`${pad('events/commit', 14)}${padL('commits/s', 11)}${padL('events/s', 11)}${padL('vs raw pool sign/s', 20)}${padL('signing share', 15)}${padL('prep µs/event', 15)}`);
  for (const r of rows) {
    console.log(
      `${pad(String(r.size), 14)}${padL(fmt(r.commitsPerSec), 11)}${padL(fmt(r.eventsPerSec), 11)}${padL(`${(r.commitsPerSec / signRef).toFixed(2)}x of ${fmt(signRef)}`, 20)}${padL(`${(r.signShare * 100).toFixed(1)} %`, 15)}${padL(r.prepUsPerEvent.toFixed(1), 15)}`,
    );
  }
  console.log('  signing share = time in build() (commit hash + signature) / whole commit time, one commit at a time');

  const dir = CHAIN_CACHE ? path.join(CHAIN_CACHE, `chain-${TOTAL_EVENTS}`) : path.join(out, 'chain-1m');
  const metaFile = `${dir}.json`;
  let gen: Awaited<ReturnType<typeof generateChain>>;
  let reused = false;
  if (CHAIN_CACHE && fs.existsSync(metaFile)) {
    const m = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as { genesisHash: string; commits: number; events: number; ms: number; bytes: number };
    gen = { ...m, genesisHash: Buffer.from(m.genesisHash, 'hex') };
    reused = true;
    console.log(`\nReusing the ${fmt(gen.events)}-event chain in ${dir} (BENCH_CHAIN_DIR)`);
  } else {
    if (CHAIN_CACHE) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(CHAIN_CACHE, { recursive: true });
    }
    console.log(`\nGenerating a ${fmt(TOTAL_EVENTS)}-event chain in commits of ${PER_COMMIT} events (${GEN_IN_FLIGHT} commits in flight)...`);
    gen = await generateChain(dir);
    if (CHAIN_CACHE) fs.writeFileSync(metaFile, JSON.stringify({ ...gen, genesisHash: gen.genesisHash.toString('hex') }));
  }
  console.log(
    `  ${fmt(gen.commits)} commits, ${fmt(gen.events)} events, ${(gen.bytes / 1e6).toFixed(1)} MB, written in ${(gen.ms / 1000).toFixed(1)} s${reused ? ' (when generated)' : ''} (${fmt((gen.events / gen.ms) * 1000)} events/s, ${fmt((gen.commits / gen.ms) * 1000)} commits/s)`,
  );

  const vref = await rawPoolVerifies(Math.min(4000, gen.commits));
  const verifyRef = vref.perSec;
  const loads: Array<{ ms: number; events: number; rawReadMs: number; cpuMs: number }> = [];
  for (let i = 0; i < LOAD_REPS; i++) loads.push(await loadOnce(dir, gen.genesisHash));
  const ms = median(loads.map((l) => l.ms));
  const evps = (gen.events / ms) * 1000;
  const rawRead = median(loads.map((l) => l.rawReadMs));
  const cpuMs = median(loads.map((l) => l.cpuMs));
  const cpuUsPerEvent = (cpuMs * 1000) / gen.events;
  const cores = os.availableParallelism();
  const sigFloor = verifyRef * PER_COMMIT;
  console.log(`\nValidation on load (decode, hashes, batched signature checks on the pool, authority, apply; median of ${LOAD_REPS})`);
  console.log(`${pad('measure', 44)}${padL('value', 16)}`);
  console.log(`${pad('load + validate, events/s', 44)}${padL(fmt(evps), 16)}`);
  console.log(`${pad('load + validate, commits/s', 44)}${padL(fmt((gen.commits / ms) * 1000), 16)}`);
  console.log(`${pad('load time for the chain, s', 44)}${padL((ms / 1000).toFixed(2), 16)}`);
  console.log(`${pad('ref: raw pool verifications/s (x100 = events/s)', 44)}${padL(`${fmt(verifyRef)} (${fmt(sigFloor)})`, 16)}`);
  console.log(`${pad('ref: raw log read of the chain, s', 44)}${padL((rawRead / 1000).toFixed(2), 16)}`);
  console.log(`${pad('ratio to the signature floor', 44)}${padL(`${(evps / sigFloor).toFixed(2)}x`, 16)}`);
  console.log(`${pad('CPU per event, all threads, µs', 44)}${padL(cpuUsPerEvent.toFixed(2), 16)}`);
  console.log(`${pad('  of which signature checks (raw ref), µs', 44)}${padL((vref.cpuUs / PER_COMMIT).toFixed(2), 16)}`);
  console.log(`${pad(`CPU-bound ceiling on ${cores} idle cores, events/s`, 44)}${padL(fmt((cores * 1e6) / cpuUsPerEvent), 16)}`);
  console.log(`${pad('machine load average (1 min) at the end', 44)}${padL(os.loadavg()[0]!.toFixed(1), 16)}`);
  console.log(`${pad('goal 50,000 events/s', 44)}${padL(evps >= 50_000 ? `met (${(evps / 50_000).toFixed(2)}x)` : 'NOT met', 16)}`);
  console.log(`\ntotal bench time ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(async () => {
    await pool.close();
    fs.rmSync(out, { recursive: true, force: true });
  });
