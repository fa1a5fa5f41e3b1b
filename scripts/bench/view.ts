// npm run bench:view — the materialized view and DIO, on the real disk (.bench-out/view), with
// references measured in the same run that do the same work raw (a cache hit against a Map hit, a
// slice read against a slice read, index+hash+decrypt against the raw three), or are labelled
// for the part of the work they are ("pread only", ratio in parentheses).
//   1. DIO store (one DAO per commit, and 1,000 per commit) and load (hot: cached record;
//      cold: record cache dropped, random keys) in ops/s.
//   2. A chain of BENCH_EVENTS (default 1,000,000) events in commits of 1,000 over 100,000 DAOs
//      (every DAO overwritten 10 times): open with the index and a tail of 1,000 new events vs a
//      full rebuild (every commit re-validated), and the ratio (goal <= 5%).
//   3. Compaction of that chain: throughput, and the longest writer stall while a writer commits
//      continuously during it (goal < 100 ms).
// BENCH_ONLY=compaction skips 1. and the repeated opens of 2. (generate, rebuild, compact);
// BENCH_ONLY=open skips 1. and stops after the opens of 2.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CommitBuilder,
  DataKeyCache,
  MemoryAuthorityState,
  type StateOverlay,
  checkAgainstState,
  createGenesis,
  newDaoKey,
  signersOf,
} from '../../src/chain/index.js';
import { CryptoPool, aesGcmOpen, aesGcmSeal, randomBytes } from '../../src/crypto/index.js';
import { type RedoLog, openLog } from '../../src/log/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { View } from '../../src/view/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const out = path.join(repo, '.bench-out', 'view');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const PER_COMMIT = 1000;
const DAOS = Math.min(100_000, EVENTS / 10);
const TAIL = 1000;
const PAYLOAD = 64;
// BENCH_ONLY=compaction: skip the DIO figures and the repeated opens (generate, rebuild, compact).
const ONLY = process.env.BENCH_ONLY ?? '';
// BENCH_ONLY=open: stop after the opens of 2.; BENCH_OPEN_REPEATS: see there.
const REPEATS = Number(process.env.BENCH_OPEN_REPEATS ?? 1);

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
const line = (label: string, ours: string, ref = '', ratio = '') =>
  console.log(`${label.padEnd(46)} ${ours.padStart(16)} ${ref.padStart(20)} ${ratio.padStart(10)}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function rate(fn: () => void, ms = 700): number {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 256; i++) fn();
    n += 256;
    t = performance.now();
  }
  return n / ((t - t0) / 1000);
}

const session = Session.of(createIdentity('bench'));
const pool = new CryptoPool({ size: 2 });
const keys = new DataKeyCache(session);

async function openChain(dir: string, genesis: Awaited<ReturnType<typeof createGenesis>>, extra: Partial<Parameters<typeof View.open>[0]> = {}) {
  const log = await openLog({ dir: path.join(dir, 'log'), chainId: 'bench/view', genesisHash: genesis.hash });
  const view = await View.open({
    log,
    keyring: session,
    pinnedGenesis: genesis.hash,
    genesis,
    indexPath: path.join(dir, 'index'),
    pool,
    keys,
    compaction: { mode: 'never' },
    ...extra,
  });
  return { log, view };
}

async function closeChain(c: { log: RedoLog; view: View }) {
  await c.view.close();
  await c.log.close();
}

async function main() {
  const genesis = await createGenesis({ name: 'bench/view', keyring: session, chainReaders: session.chainReaders(), keys, pool });
  const load = () => os.loadavg()[0]!.toFixed(1);
  console.log(
    `bench:view — node ${process.version}, ${EVENTS.toLocaleString('en-US')}-event chain, commits of ${PER_COMMIT}, ${PAYLOAD}-byte payloads, ${os.availableParallelism()} cores, load average ${load()}`,
  );
  line('', 'ours', 'reference', 'ratio');

  // ------------------------------------------------------------ 1. DIO store / load
  if (ONLY === '') {
    const dir = path.join(out, 'dio');
    const c = await openChain(dir, genesis);
    const v = c.view;
    let n = 0;
    let t0 = performance.now();
    while (performance.now() - t0 < 1500) {
      const d = v.begin();
      d.store(randomBytes(PAYLOAD));
      await d.commit('local');
      n++;
    }
    const single = n / ((performance.now() - t0) / 1000);
    const all: string[] = [];
    t0 = performance.now();
    let ev = 0;
    for (let i = 0; i < 20; i++) {
      const d = v.begin();
      for (let j = 0; j < 1000; j++) all.push(d.store(randomBytes(PAYLOAD)));
      await d.commit('local');
      ev += 1000;
    }
    const batched = ev / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    n = 0;
    while (performance.now() - t0 < 1500) {
      const d = v.begin();
      d.store(randomBytes(PAYLOAD));
      await d.commit('durable');
      n++;
    }
    const durable = n / ((performance.now() - t0) / 1000);
    // Reference for a commit: one hybrid signature on the pool.
    const sk = session.signingKeys()[0]!.secretKey;
    t0 = performance.now();
    let s = 0;
    while (performance.now() - t0 < 1000) {
      await pool.sign(sk, randomBytes(32));
      s++;
    }
    const signRate = s / ((performance.now() - t0) / 1000);
    line('DIO store, 1 DAO per commit (local)', `${fmt(single)} /s`, `sign ${fmt(signRate)} /s`, (single / signRate).toFixed(2));
    line('DIO store, 1 DAO per commit (durable)', `${fmt(durable)} /s`);
    line('DIO store, 1,000 DAOs per commit', `${fmt(batched)} /s`);

    const hotKey = all[0]!;
    const hot = rate(() => v.get(hotKey));
    const dio = v.begin();
    const hotDio = rate(() => dio.load(hotKey));
    dio.cancel();
    let i = 0;
    // Warm: the commit record is cached, the decrypted value is not (index + hash + decrypt).
    const warm = rate(() => {
      v.dropCaches(false);
      v.get(all[(i++ * 7919) % 1000]!);
      v.get(all[(i++ * 7919) % 1000]!);
    }) * 2;
    // Cold: nothing cached in the process; every load reads its whole commit record (1,000 events).
    const cold = rate(() => {
      v.dropCaches();
      v.get(all[(i++ * 7919) % all.length]!);
    }, 1000);
    // References doing the same work raw, or labelled for the part of the work they are:
    //   hot  (a cache hit)          vs a Map.get of the same decrypted value (a cache hit);
    //   warm (index+hash+decrypt)   vs lmdb get + sha256 of the event's bytes + aes-gcm open, raw;
    //   cold (index+record+decrypt) vs log pread of the same record alone (only part of the work);
    //   cold slice                  vs log readSlice of the same event bytes (a slice read).
    const kb = Buffer.from(hotKey, 'hex');
    const hotValue = v.get(hotKey);
    const map = new Map([[hotKey, hotValue]]);
    const mapHit = rate(() => map.get(hotKey));
    const e = v.entry(hotKey)!;
    const r = v.store.getRecord(e.seq)!;
    const pread = rate(() => c.log.read({ segment: r.segment, offset: r.offset }), 1000);
    const end = e.payloadStart >= 0 ? e.payloadStart + e.payloadLen : e.metaStart + e.metaLen;
    const eventBytes = c.log.readSlice({ segment: r.segment, offset: r.offset }, e.metaStart, end - e.metaStart);
    const key = randomBytes(32);
    const sealed = aesGcmSeal(key, randomBytes(PAYLOAD), Buffer.alloc(16));
    const rawWarm = rate(() => {
      v.store.dao.getBinaryFast(kb);
      createHash('sha256').update(eventBytes).digest();
      aesGcmOpen(key, sealed, Buffer.alloc(16));
    });
    line('view.get, hot (decrypted value cached)', `${fmt(hot)} /s`, `Map.get hit ${fmt(mapHit)} /s`, (hot / mapHit).toFixed(2));
    line('dio.load, hot', `${fmt(hotDio)} /s`, `Map.get hit ${fmt(mapHit)} /s`, (hotDio / mapHit).toFixed(2));
    line('view.get, warm (record cached: index+hash+AES)', `${fmt(warm)} /s`, `raw get+sha256+aes ${fmt(rawWarm)} /s`, (warm / rawWarm).toFixed(2));
    line('view.get, cold (nothing cached, random keys)', `${fmt(cold)} /s`, `pread only ${fmt(pread)} /s`, `(${(cold / pread).toFixed(2)})`);
    await closeChain(c);
    // Cold again, reading only the event's bytes out of the record (log.readSlice).
    const c2 = await openChain(dir, genesis, { sliceThreshold: 0 });
    const slice = rate(() => c2.log.readSlice({ segment: r.segment, offset: r.offset }, e.metaStart, end - e.metaStart), 1000);
    const cold2 = rate(() => {
      c2.view.dropCaches();
      c2.view.get(all[(i++ * 7919) % all.length]!);
    }, 1000);
    line('view.get, cold, event slice read', `${fmt(cold2)} /s`, `log readSlice ${fmt(slice)} /s`, (cold2 / slice).toFixed(2));
    console.log('  (ratio) in parentheses: the reference does only part of the work (labelled "only")');
    await closeChain(c2);
  }

  // ------------------------------------------------------------ 2. big chain: open with index vs rebuild
  const dir = path.join(out, 'big');
  // The chain is generated straight into the log (builder + in-memory authority state): the
  // view's index is then built by the measured full rebuild.
  const daoKeys = Array.from({ length: DAOS }, () => newDaoKey());
  const payload = randomBytes(PAYLOAD);
  let t0 = performance.now();
  const commits = EVENTS / PER_COMMIT;
  {
    const log = await openLog({ dir: path.join(dir, 'log'), chainId: 'bench/view', genesisHash: genesis.hash });
    await log.append(genesis.bytes, 'durable');
    const mem = new MemoryAuthorityState();
    mem.applyEffects(checkAgainstState(mem, genesis, signersOf(genesis)));
    // Pipelined: commit i+1 is built while commit i is being signed on the pool. Commits in flight
    // touch disjoint DAOs (consecutive windows of 1,000 out of DAOS), so building one on the state
    // before the others' effects are applied gives the same chain as building them one by one.
    const DEPTH = Math.min(4, DAOS / PER_COMMIT);
    const inflight: Array<{ b: CommitBuilder; done: Promise<Awaited<ReturnType<CommitBuilder['build']>>> }> = [];
    const retire = async () => {
      const { b, done } = inflight.shift()!;
      const commit = await done;
      mem.applyEffects((b.view as StateOverlay).effects(commit));
      await log.append(commit.bytes, 'none');
    };
    for (let i = 0; i < commits; i++) {
      const b = new CommitBuilder({ state: mem, keyring: session, keys, pool });
      const base = (i * PER_COMMIT) % DAOS;
      for (let j = 0; j < PER_COMMIT; j++) b.put({ key: daoKeys[(base + j) % DAOS]!, payload });
      inflight.push({ b, done: b.build() });
      if (inflight.length >= DEPTH) await retire();
      if (i % 100 === 99) process.stderr.write(`  generating: ${(i + 1) * PER_COMMIT} events\r`);
    }
    while (inflight.length > 0) await retire();
    await log.close();
  }
  const genMs = performance.now() - t0;
  process.stderr.write('\n');
  line('generate (build + sign + append)', `${fmt(EVENTS / (genMs / 1000))} ev/s`, '', '');
  // Full rebuild: no index yet.
  t0 = performance.now();
  let c = await openChain(dir, genesis);
  const rebuild = performance.now() - t0;
  if (c.view.openReport.mode !== 'fresh') throw new Error('expected a rebuild');
  if (ONLY !== 'compaction') {
    // A tail of 1,000 new events appended to the log behind the index's back.
    {
      const b = new CommitBuilder({ state: c.view.state, keyring: session, keys, pool });
      for (let j = 0; j < TAIL; j++) b.put({ payload });
      const tail = await b.build();
      await c.log.append(tail.bytes, 'durable');
    }
    const logBytes = c.log.sizeBytes();
    await closeChain(c);
    // BENCH_OPEN_REPEATS=N: the tail open N times, each on a fresh copy of the closed chain (the
    // open applies the tail to the index), for a median on a noisy machine.
    const tailOpens: number[] = [];
    if (REPEATS > 1) {
      const tpl = `${dir}.tpl`;
      fs.rmSync(tpl, { recursive: true, force: true });
      fs.cpSync(dir, tpl, { recursive: true });
      for (let i = 0; i < REPEATS; i++) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.cpSync(tpl, dir, { recursive: true });
        t0 = performance.now();
        c = await openChain(dir, genesis);
        tailOpens.push(performance.now() - t0);
        if (c.view.openReport.mode !== 'tail' || c.view.openReport.tailEvents !== TAIL) throw new Error(`expected a tail open, got ${JSON.stringify(c.view.openReport)}`);
        await closeChain(c);
      }
      fs.rmSync(dir, { recursive: true, force: true });
      fs.cpSync(tpl, dir, { recursive: true });
      fs.rmSync(tpl, { recursive: true, force: true });
      console.log(`open with index + tail, ${REPEATS} fresh copies (ms): ${tailOpens.map((x) => x.toFixed(1)).join(' ')}`);
    }

    const opens: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      // The first open applies the tail; the next ones only verify the index against the log.
      t0 = performance.now();
      c = await openChain(dir, genesis);
      opens.push(performance.now() - t0);
      if (rep === 0 && (c.view.openReport.mode !== 'tail' || c.view.openReport.tailEvents !== TAIL)) {
        throw new Error(`expected a tail open of ${TAIL} events, got ${JSON.stringify(c.view.openReport)}`);
      }
      await closeChain(c);
    }
    const openTail = tailOpens.length ? median(tailOpens) : opens[0]!;
    const openNoTail = median(opens.slice(1));
    t0 = performance.now();
    c = await openChain(dir, genesis, { verify: 'watermark' });
    const openWm = performance.now() - t0;
    await closeChain(c);
    c = await openChain(dir, genesis);
    const evTotal = EVENTS;
    line(`log size`, `${fmt(logBytes / 1e6)} MB`);
    line(`full rebuild (validate ${fmt(evTotal)} events)`, `${fmt(rebuild)} ms`, `${fmt(evTotal / (rebuild / 1000))} ev/s`, '');
    line(`open with index + ${TAIL}-event tail (verify full)`, `${fmt(openTail)} ms`, `rebuild ${fmt(rebuild)} ms`, `${((openTail / rebuild) * 100).toFixed(2)}%`);
    line('open with index, no tail (verify full)', `${fmt(openNoTail)} ms`, `rebuild ${fmt(rebuild)} ms`, `${((openNoTail / rebuild) * 100).toFixed(2)}%`);
    line("open with index, no tail (verify 'watermark')", `${fmt(openWm)} ms`, `rebuild ${fmt(rebuild)} ms`, `${((openWm / rebuild) * 100).toFixed(2)}%`);
    if (ONLY === 'open') {
      await closeChain(c);
      await pool.close();
      return;
    }
  } else {
    line(`full rebuild (validate ${fmt(EVENTS)} events)`, `${fmt(rebuild)} ms`, `${fmt(EVENTS / (rebuild / 1000))} ev/s`, '');
  }

  // ------------------------------------------------------------ 3. compaction with a live writer
  const v = c.view;
  // Baseline commit latency of the writer (10 DAOs per commit).
  const writerKeys = Array.from({ length: 10 }, () => newDaoKey());
  const writeOnce = async () => {
    const d = v.begin();
    for (const k of writerKeys) d.store(payload, { key: k });
    const s = performance.now();
    await d.commit('local');
    return performance.now() - s;
  };
  const base: number[] = [];
  for (let i = 0; i < 30; i++) base.push(await writeOnce());
  // Event-loop lag probe: the longest time the main thread was not available.
  let lagMax = 0;
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    lagMax = Math.max(lagMax, now - last - 5);
    last = now;
  }, 5);
  let writing = true;
  const during: number[] = [];
  const writer = (async () => {
    while (writing) during.push(await writeOnce());
  })();
  const before = v.log.sizeBytes();
  t0 = performance.now();
  const rep = await v.compact('bench');
  const compMs = performance.now() - t0;
  writing = false;
  await writer;
  clearInterval(probe);
  line('compaction: log before -> after', `${fmt(before / 1e6)} -> ${fmt(rep.bytesAfter / 1e6)} MB`, `${rep.recordsBefore} -> ${rep.recordsKept} commits`, '');
  line('compaction throughput', `${fmt(before / 1e6 / (compMs / 1000))} MB/s`, `${fmt(compMs)} ms`, '');
  line('writer commit latency, median before / during', `${fmt(median(base))} / ${fmt(median(during))} ms`, `${during.length} commits during`, '');
  line('longest writer stall during compaction', `${fmt(Math.max(...during))} ms`, `median ${fmt(median(base))} ms`, '');
  line('longest event-loop stall during compaction', `${fmt(lagMax)} ms`, `lock wait ${fmt(rep.maxWriterStallMs)} ms`, '');
  await closeChain(c);
  t0 = performance.now();
  c = await openChain(dir, genesis);
  line('open after compaction (index)', `${fmt(performance.now() - t0)} ms`);
  console.log(`load average at the end: ${load()} (timings scale with it on this shared 2-core machine)`);
  await closeChain(c);
  await pool.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
