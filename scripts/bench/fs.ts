/**
 * npm run bench:fs — the canonical encrypted-filesystem benchmark.
 *
 * Same workloads (sequential write+fsync and cold read-back, untar of a fixed ~8,000-file tree,
 * md5sum of every file, ls -lR, rm -rf) on tmpfs (reference), gocryptfs, the trivial in-memory
 * "floor" filesystems of each FUSE transport and atefs; prints medians, atefs/floor and
 * atefs/gocryptfs ratios against the issues' goals, and FUSE requests per opcode per workload.
 * Then the durability workloads (lib/fs-durability.ts) on the targets whose data is on the real
 * disk: fsync latency, SQLite transactions, a page-rewrite workload and its store size over time.
 *
 * Env: BENCH_RUNS (1), BENCH_QUICK=1 or --quick (1,500 files, 64 MiB), BENCH_TARGETS=a,b (filter by
 * name), BENCH_WORKLOADS=write,read,untar,md5sum,ls,rm,fsync,sqlite-wal,sqlite-journal,rewrite,
 * BENCH_SEQ_MIB, BENCH_FILES, BENCH_TRACE=0, BENCH_TIMEOUT_S (per workload, 120; quick 60),
 * FLOOR_CACHE_TIMEOUT (60), FLOOR_KERNEL_CACHE=0; durability: BENCH_FSYNC_N (200; quick 50),
 * BENCH_SQLITE_TX (200; quick 50), BENCH_REWRITE_MIB (64; quick 32), BENCH_REWRITE_X (5; quick 6),
 * BENCH_SAMPLE_MS (the rewrite's space samples, 500), BENCH_SETTLE_S (sampled after the writes, 10),
 * BENCH_REWRITE_TIMEOUT_S (300; quick 150).
 * Root is needed for drop_caches and the request tracepoints; without it those parts say n/a.
 */
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync, cpSync, copyFileSync, symlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, release, loadavg } from 'node:os';
import { spawnSync } from 'node:child_process';
import { run, sh, cpuSeconds, installSignalCleanup, runCleanups, CommandTimedOut, DaemonNotReady, type RunResult } from './lib/proc.js';
import { fuseConnection, abortFuse } from './lib/mounts.js';
import { FuseTrace, type TraceResult } from './lib/fuse-trace.js';
import { prepareTree, type Tree } from './lib/tree.js';
import { allTargets, type Target, type Mounted, type FloorOptions } from './lib/fs-targets.js';
import { WORKLOADS, type Workload, type WorkloadCtx } from './lib/fs-workloads.js';
import { cell, figuresTable, ratioTable, requestsSection, errorsSection, commitSection, type Results, type Sample } from './lib/fs-report.js';
import { commitCounters, diffCounters, settledCounters } from './lib/stats-file.js';
import { DURABILITY_WORKLOADS, DURABILITY_IDS, durabilityCtx, durabilityMethod } from './lib/fs-durability.js';
import { durabilityGoals, spaceSection } from './lib/fs-durability-report.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const argv = process.argv.slice(2);
const env = process.env;
const QUICK = argv.includes('--quick') || env.BENCH_QUICK === '1';
const RUNS = Math.max(1, Number(env.BENCH_RUNS ?? 1));
const SEQ_MIB = Number(env.BENCH_SEQ_MIB ?? (QUICK ? 64 : 250));
const FILES = Number(env.BENCH_FILES ?? (QUICK ? 1500 : 8000));
const SEED = 20261122;
const TIMEOUT_MS = Number(env.BENCH_TIMEOUT_S ?? (QUICK ? 60 : 120)) * 1000;
const TRACE = env.BENCH_TRACE !== '0';
const onlyTargets = env.BENCH_TARGETS ? new Set(env.BENCH_TARGETS.split(',')) : undefined;
const onlyWorkloads = env.BENCH_WORKLOADS ? new Set(env.BENCH_WORKLOADS.split(',')) : undefined;

/** What atefs derives for a temp/local chain (cli/mount-store.ts LOCAL_CACHE_SECONDS, local). */
const FLOOR: FloorOptions = {
  cacheTimeout: Number(env.FLOOR_CACHE_TIMEOUT ?? 60),
  kernelCache: env.FLOOR_KERNEL_CACHE !== '0',
};

const report: string[] = [];
const out = (line = ''): void => { report.push(line); process.stdout.write(line + '\n'); };
const progress = (line: string): void => { process.stderr.write(`bench:fs ${line}\n`); };

async function dropCaches(m: Mounted): Promise<string | undefined> {
  for (const p of m.syncPaths) await run(`sync -f ${sh(p)}`, { timeoutMs: 120000, check: false }).catch(() => undefined);
  const r = await run('echo 3 > /proc/sys/vm/drop_caches', { timeoutMs: 60000, check: false }).catch(() => undefined);
  return r?.code === 0 ? undefined : 'drop_caches failed (not root?): figures may come from the page cache';
}

async function prepareSeqFile(cache: string, bytes: number): Promise<string> {
  const f = join(cache, `seq-${bytes}.bin`);
  if (existsSync(f) && statSync(f).size === bytes) return f;
  // Random, incompressible, generated once and kept on tmpfs so the source costs nothing to read.
  const chunk = 1 << 20;
  const parts: Buffer[] = [];
  for (let off = 0; off < bytes; off += chunk) parts.push(randomBytes(Math.min(chunk, bytes - off)));
  writeFileSync(`${f}.tmp`, Buffer.concat(parts));
  await run(`mv ${sh(`${f}.tmp`)} ${sh(f)}`);
  return f;
}

interface Live { t: Target; m: Mounted; ok: Set<string>; stopped?: string }

async function mountTarget(t: Target): Promise<Live | undefined> {
  try {
    return { t, m: await t.mount(), ok: new Set() };
  } catch (e) {
    const short = e instanceof DaemonNotReady ? e.short : (e as Error).message.split('\n')[0]!;
    progress(`${t.name}: mount failed: ${(e as Error).message}`);
    t.unavailable = `mount failed (${short.slice(0, 200)})`;
    return undefined;
  }
}

/**
 * Waits (up to 30 s) until the daemon stops using CPU, so background work it left (commits after
 * an untar...) does not run during the next target's measurement.
 */
async function quiesce(m: Mounted): Promise<void> {
  if (m.pid === undefined) return;
  let last = cpuSeconds(m.pid);
  for (let i = 0; i < 120 && last !== undefined; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = cpuSeconds(m.pid);
    if (now === undefined || now - last < 0.02) return;
    last = now;
  }
}

/**
 * An atefs workload taking more than TIMEOUT_FACTOR times the slowest comparison point (gocryptfs,
 * the floors) measured so far is killed: beyond that the exact figure says nothing more than
 * "misses every goal", and it keeps the whole bench within minutes. Never more than
 * BENCH_TIMEOUT_S, which is also the limit for the references themselves.
 */
const TIMEOUT_FACTOR = 10;
function timeoutFor(t: Target, w: Workload, ctx: WorkloadCtx, results: Results, targets: Target[]): number {
  const own = w.timeoutMs?.(ctx);
  if (own !== undefined) return own;
  if (t.kind !== 'atefs') return TIMEOUT_MS;
  let slowest = 0;
  for (const o of targets) {
    if (o.kind !== 'gocryptfs' && o.kind !== 'floor') continue;
    for (const s of results.get(o.name)?.get(w.id)?.samples ?? []) slowest = Math.max(slowest, s.seconds);
  }
  return slowest > 0 ? Math.min(TIMEOUT_MS, Math.max(30000, slowest * TIMEOUT_FACTOR * 1000)) : TIMEOUT_MS;
}

/** One workload on one mounted target: prepare, drop caches, count, time, check. */
async function step(l: Live, w: Workload, all: Workload[], ctx: WorkloadCtx, results: Results, targets: Target[], trace: FuseTrace | undefined, runNo: number, notes: Set<string>): Promise<void> {
  const { t, m, ok } = l;
  if (w.applies && !w.applies(t)) return;
  const c = cell(results, t.name, w.id);
  // The rows this run also fills (fsync p99...): they share its errors and skips.
  const derived = all.filter((x) => x.of === w.id).map((x) => cell(results, t.name, x.id));
  const fail = (msg: string): void => { for (const x of [c, ...derived]) x.errors.push(msg); };
  if (l.stopped) { for (const x of [c, ...derived]) x.skipped = l.stopped; fail(l.stopped); return; }
  const missing = w.needs.filter((n) => !ok.has(n) && all.some((x) => x.id === n));
  if (missing.length) { for (const x of [c, ...derived]) x.skipped = `needs ${missing.join(',')}`; return; }
  try {
    await w.before?.(m, ctx);
    const dc = await dropCaches(m);
    if (dc) notes.add(dc);
    const conn = fuseConnection(m.dir);
    const c0 = await m.counters?.();
    const cpu0 = m.pid !== undefined ? cpuSeconds(m.pid) : undefined;
    if (trace && conn !== undefined) trace.start(conn);
    let tr: TraceResult | undefined;
    let r: RunResult;
    const timeoutMs = timeoutFor(t, w, ctx, results, targets);
    const monitor = w.monitor?.(m, ctx);
    let series: Sample['series'];
    try {
      r = await run(w.script(m, ctx), { timeoutMs, onTimeout: () => { if (conn !== undefined) abortFuse(conn); } });
    } catch (e) {
      if (e instanceof CommandTimedOut && w.figure) (c.bounds ??= []).push(w.figure(timeoutMs / 1000, ctx));
      // What was sampled until then still says how the store grew.
      if (monitor) { series = await monitor.stop(); if (series.length) (c.partialSeries ??= []).push(series); }
      throw e;
    } finally {
      if (trace && conn !== undefined) tr = trace.stop();
      series ??= await monitor?.stop();
    }
    const cpu1 = m.pid !== undefined ? cpuSeconds(m.pid) : undefined;
    const c1 = await m.counters?.();
    const values = w.measure ? w.measure(r, ctx, series) : { [w.id]: w.figure!(r.seconds, ctx) };
    const sample: Sample = { value: values[w.id]!, seconds: r.seconds, trace: tr, counters: diffCounters(c0, c1),
      cpu: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined, series };
    c.samples.push(sample);
    for (const x of all.filter((y) => y.of === w.id)) {
      if (values[x.id] !== undefined) cell(results, t.name, x.id).samples.push({ value: values[x.id]!, seconds: r.seconds });
    }
    const bad = await w.check?.(m, ctx, r);
    if (bad) fail(bad); else ok.add(w.id);
    // atefs: the commits this workload caused, the one after its last changes included.
    if (c0 && m.counters) sample.commit = commitCounters(diffCounters(c0, await settledCounters(m.counters)));
    await w.after?.(m, ctx);
    await quiesce(m);
    progress(`run ${runNo} ${t.name} ${w.label}: ${sample.value.toFixed(2)} ${w.unit}${tr ? ` (${tr.total} req)` : ''}${bad ? ` CHECK FAILED: ${bad}` : ''}`);
  } catch (e) {
    const msg = e instanceof CommandTimedOut ? `killed after ${(e.ms / 1000).toFixed(0)} s (see method)` : (e as Error).message.split('\n').slice(0, 4).join(' | ');
    fail(msg);
    progress(`run ${runNo} ${t.name} ${w.label}: ERROR ${msg}`);
    if (e instanceof CommandTimedOut) {
      // A daemon that could not finish may keep grinding and skew everyone else's figures: replace
      // it with a fresh mount (empty), so the workloads that do not need this one still run.
      await m.unmount().catch((err: Error) => progress(`${t.name}: unmount: ${err.message}`));
      try { l.m = await t.mount(); } catch (err) { l.stopped = `no remount after ${w.label} was killed: ${(err as Error).message.split('\n')[0]}`; }
    }
  }
}

/**
 * One run: every target mounted side by side, then each workload on every target in turn, so
 * the figures compared in a ratio are taken minutes apart at most, not a whole target sequence
 * apart (the machine is shared and its load drifts). Idle daemons cost nothing meanwhile.
 */
async function runOnce(targets: Target[], workloads: Workload[], ctx: WorkloadCtx, results: Results, trace: FuseTrace | undefined, runNo: number, notes: Set<string>): Promise<void> {
  const live: Live[] = [];
  try {
    for (const t of targets) {
      if (t.unavailable) continue;
      const l = await mountTarget(t);
      if (l) live.push(l);
    }
    // Alternate the target order between runs so no target always goes first after a drop_caches.
    const order = runNo % 2 === 1 ? live : [...live].reverse();
    for (const w of workloads) {
      if (w.of) continue; // filled by the run of its workload
      for (const l of order) await step(l, w, workloads, ctx, results, targets, trace, runNo, notes);
    }
  } finally {
    await Promise.all(live.filter((l) => !l.stopped).map((l) => l.m.unmount().catch((e: Error) => progress(`${l.t.name}: unmount: ${e.message}`))));
  }
}

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim();
  return `${r.stdout?.trim() || '?'}${dirty ? '+dirty' : ''}`;
}

interface RunState {
  started: Date;
  load0: number;
  commit: string;
  tree?: Tree;
  ctx?: WorkloadCtx;
  targets: Target[];
  workloads: Workload[];
  results: Results;
  notes: Set<string>;
  traceNote: string;
  partial: boolean;
}

function printReport(st: RunState): void {
  const tree = st.tree;
  out(`atefs bench:fs  ${st.started.toISOString().slice(0, 16).replace('T', ' ')} UTC  commit ${st.commit}  linux ${release()}  node ${process.version}  ${cpus().length} CPUs${QUICK ? '  QUICK' : ''}${st.partial ? '  INTERRUPTED (partial results)' : ''}`);
  out(`load average (1 min) at start ${st.load0.toFixed(1)}, at end ${loadavg()[0]!.toFixed(1)}: the machine is shared, compare ratios within one run`);
  if (tree) out(`runs: ${RUNS} (${RUNS > 1 ? 'median [min-max]' : 'one run: no spread, not for the README'})  seq file: ${SEQ_MIB} MiB random  tree: ${tree.files} files, ${tree.dirs} dirs, ${tree.symlinks} symlinks, ${tree.hardlinks} hard links, ${(tree.bytes / 1e6).toFixed(1)} MB (tar sha256 ${tree.tarSha256.slice(0, 12)})`);
  out('targets:');
  for (const t of st.targets) out(`  ${t.name.padEnd(15)}${t.unavailable ? `n/a: ${t.unavailable}` : t.note}`);
  out();
  for (const l of figuresTable(st.targets, st.workloads, st.results, RUNS)) out(l);
  out();
  for (const l of ratioTable(st.targets, st.workloads, st.results)) out(l);
  out();
  const goals = durabilityGoals(st.targets, st.workloads, st.results);
  if (goals.length) { for (const l of goals) out(l); out(); }
  const space = spaceSection(st.targets, st.results);
  if (space.length) { for (const l of space) out(l); out(); }
  const ran = st.workloads.filter((w) => !w.of);
  const cs = commitSection(st.targets, ran, st.results);
  if (cs.length) { for (const l of cs) out(l); out(); }
  for (const l of requestsSection(st.targets, ran, st.results, st.traceNote)) out(l);
  const errs = errorsSection(st.targets, st.workloads, st.results);
  if (errs.length) { out(); for (const l of errs) out(l); }
  out();
  out('method: per run, every target is mounted fresh, then each workload runs on every target in turn (order reversed');
  out('  on even runs), in this order, timed from spawn to exit of one command:');
  out(`  write: dd bs=1M conv=fsync from the random file on tmpfs (MB/s = 10^6 bytes/s, fsync included);`);
  out('  read: dd bs=1M to /dev/null, checked with cmp; no target is remounted (the in-memory ones cannot be): cold');
  out('        alike = the kernel caches dropped for all; daemons keep their own in-process caches (atefs: block cache);');
  out('  untar: tar -xf (as root: owners, modes, times restored), timed until durable: fsync of the mount root (atefs');
  out('        commits; FUSE does not forward syncfs), then sync -f on the mount and its backing store;');
  out('  md5sum: find|xargs md5sum, checked against the source tree; ls -lR; rm -rf, timed until durable likewise,');
  out('        checked gone.');
  out('  a figure whose check failed is marked "!" and gets no ratio and no "ok".');
  out('  before every workload: sync -f on the mount and its backing store, then echo 3 > drop_caches (page cache,');
  out('  dentries and inodes of every mount: each FUSE read and lookup reaches the daemon). Daemons that keep data in');
  out('  RAM by design (tmpfs, the floors, atefs --temp) are not made colder than that.');
  out(`  an atefs workload is killed after ${TIMEOUT_FACTOR}x the slowest gocryptfs/floor time of this run (min 30 s), any workload after`);
  out(`  ${TIMEOUT_MS / 1000} s (BENCH_TIMEOUT_S); a target whose workload was killed is replaced by a fresh mount (the workloads`);
  out('  that needed the killed one are skipped);');
  out('  atefs and the floors run from a snapshot of dist/ taken at start (a concurrent build cannot change them).');
  if (st.ctx?.durability && st.workloads.some((w) => DURABILITY_IDS.has(w.id))) for (const l of durabilityMethod(st.ctx.durability)) out(l);
  for (const n of st.notes) out(`note: ${n}`);
}

function saveReport(st: RunState): void {
  if (!report.length) return;
  const dir = join(ROOT, '.bench-out');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `fs-${st.started.toISOString().replace(/[:.]/g, '-').slice(0, 19)}.txt`);
  writeFileSync(file, report.join('\n') + '\n');
  progress(`written to ${file}`);
}

/**
 * Copies dist/ (2 MB) next to a package.json and a node_modules link, so the daemons under test
 * run the code built at the start of this run even if someone rebuilds the shared tree meanwhile.
 */
function snapshotDist(work: string): string {
  const app = join(work, 'app');
  mkdirSync(app, { recursive: true });
  cpSync(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
  return app;
}

async function main(): Promise<void> {
  const st: RunState = {
    started: new Date(), load0: loadavg()[0]!, commit: gitCommit(), targets: [], workloads: [], results: new Map(), notes: new Set(),
    traceNote: 'request counting off (BENCH_TRACE=0)', partial: true,
  };
  const work = `/dev/shm/atefs-bench-${process.pid}`;
  const diskWork = `/var/tmp/atefs-bench-${process.pid}`;
  let trace: FuseTrace | undefined;
  const cleanupDirs = (): void => {
    trace?.close();
    rmSync(work, { recursive: true, force: true });
    rmSync(diskWork, { recursive: true, force: true });
  };
  installSignalCleanup(() => { cleanupDirs(); if (st.tree) { printReport(st); saveReport(st); } });
  const cache = '/dev/shm/atefs-bench-cache';
  mkdirSync(cache, { recursive: true });
  mkdirSync(work, { recursive: true });
  mkdirSync(diskWork, { recursive: true });
  try {
    progress(`preparing the tree (${FILES} files) and the ${SEQ_MIB} MiB source file in ${cache}`);
    const tree = await prepareTree(cache, { files: FILES, seed: SEED });
    const seqBytes = SEQ_MIB * 1048576;
    const seqFile = await prepareSeqFile(cache, seqBytes);
    const scratch = join(work, 'scratch');
    mkdirSync(scratch);
    const app = snapshotDist(work);
    const ctx: WorkloadCtx = { seqFile, seqBytes, tree, scratch, durability: durabilityCtx(QUICK, env, join(app, 'dist/scripts/bench/durability-probe.js')) };
    st.ctx = ctx;

    st.targets = allTargets({ root: app, work, diskWork }, FLOOR).filter((t) => !onlyTargets || onlyTargets.has(t.name));
    // A derived row (fsync p99...) comes with its workload.
    st.workloads = [...WORKLOADS, ...DURABILITY_WORKLOADS].filter((w) => !onlyWorkloads || onlyWorkloads.has(w.id) || (w.of !== undefined && onlyWorkloads.has(w.of)));
    if (TRACE) {
      const t = FuseTrace.open();
      if (typeof t === 'string') st.traceNote = `request counting n/a: ${t}`;
      else { trace = t; st.traceNote = 'kernel tracepoints fuse_request_send/_end on the mount\'s connection'; }
    }
    st.tree = tree;

    for (let r = 1; r <= RUNS; r++) {
      progress(`run ${r}/${RUNS}`);
      await runOnce(st.targets, st.workloads, ctx, st.results, trace, r, st.notes);
    }
    st.partial = false;
    printReport(st);
  } finally {
    await runCleanups();
    cleanupDirs();
    saveReport(st);
  }
}

main().catch(async (e: unknown) => {
  process.stderr.write(`bench:fs failed: ${(e as Error).stack ?? String(e)}\n`);
  await runCleanups();
  process.exit(1);
});
