/**
 * npm run bench:remote — a remote mount (`atefs mount DIR tcp://127.0.0.1:PORT/bench/remote`,
 * through a loopback `atedb solo`) against a local mount (`--log-path`), in the same run, on the
 * same disk, with the same transport: bench:fs's canonical workloads (seq write+fsync, cold seq
 * read, untar, md5sum, ls -lR, rm -rf) and their ratios (goal <= 1.3x on every line: writes are
 * staged locally, uploads overlap). Then, for the untar: the time until the whole tree is visible
 * on a second mount of the chain (so confirmed by the server). Then the propagation latency of a
 * small file from one mount to the other, p50/p99 (goal p50 < 200 ms).
 *
 * Env: BENCH_FILES (3000; bench:fs uses 8000), BENCH_SEQ_MIB (64), BENCH_RUNS (1),
 * BENCH_PROP_N (50), BENCH_TRANSPORT (kernel), BENCH_DIR (/var/tmp: the disk, as the logs live),
 * BENCH_ONLY (comma-separated workload ids — write,read,untar,md5sum,ls,rm — to run only those;
 * the second mount and the propagation probe run only with untar or with every workload),
 * BENCH_NODE_ARGS (node flags for the mounts and atedb, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`),
 * BENCH_OUTPUT_DIR (each daemon's whole output is written there at the end, `<name>.log`: what
 * `--trace-gc` and the like print), BENCH_ORDER_SHIFT=1 (the remote mount goes first in odd runs
 * instead of even ones: run 1 remote first).
 * Between measurements (untimed) it waits for the remote mount's uploads to be confirmed and then
 * for every daemon to be quiet for 3 s (see quiet()); right before each measurement, `sync`.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, sh, sleep, spawnDaemon, waitExit, type Daemon } from './lib/proc.js';
import { prepareTree } from './lib/tree.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const env = process.env;
const FILES = Number(env.BENCH_FILES ?? 3000);
const SEQ_MIB = Number(env.BENCH_SEQ_MIB ?? 64);
const RUNS = Math.max(1, Number(env.BENCH_RUNS ?? 1));
const PROP_N = Number(env.BENCH_PROP_N ?? 50);
const TRANSPORT = env.BENCH_TRANSPORT ?? 'kernel';
const BASE = env.BENCH_DIR ?? '/var/tmp';
const ONLY = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((x) => x.trim()).filter(Boolean)) : null;
const NODE_ARGS = (env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const GOAL_RATIO = 1.3;
/** After the last confirmation: the staging log's idle compaction (1 s) and its run. */
const STAGING_COMPACT_WAIT_MS = 2500;
const GOAL_P50_MS = 200;

const out = (l = '') => process.stdout.write(`${l}\n`);
const progress = (l: string) => process.stderr.write(`bench:remote ${l}\n`);

interface Mount { name: string; dir: string; daemon: Daemon }

const work = mkdtempSync(join(BASE, 'atefs-bench-remote-'));
const cacheDir = '/dev/shm/atefs-bench-cache';
const childEnv = { ...env, CI: 'true', XDG_CONFIG_HOME: join(work, 'config'), XDG_DATA_HOME: join(work, 'data'), XDG_STATE_HOME: join(work, 'state') };
const mounts: Mount[] = [];
let atedb: Daemon | null = null;

async function mount(name: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Mount> {
  const dir = join(work, `mnt-${name}`);
  mkdirSync(dir, { recursive: true });
  const daemon = await spawnDaemon(process.execPath, [...NODE_ARGS, join(ROOT, 'dist/cli/atefs.js'), 'mount', dir, '--transport', TRANSPORT, ...args], /^mounted: /, { env: { ...childEnv, ...extraEnv }, timeoutMs: 60000 });
  const m = { name, dir, daemon };
  mounts.push(m);
  return m;
}

async function unmount(m: Mount): Promise<void> {
  try { process.kill(m.daemon.pid, 'SIGTERM'); } catch { /* gone */ }
  if (!(await waitExit(m.daemon.pid, 60000))) {
    await run(`fusermount -u ${sh(m.dir)} || umount -l ${sh(m.dir)}`, { check: false });
    try { process.kill(m.daemon.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

async function cleanup(): Promise<void> {
  for (const m of mounts.reverse()) await unmount(m).catch(() => undefined);
  if (atedb) { try { process.kill(atedb.pid, 'SIGTERM'); } catch { /* gone */ } await waitExit(atedb.pid, 10000); }
  rmSync(work, { recursive: true, force: true });
}

async function dropCaches(m: Mount): Promise<void> {
  await run(`sync -f ${sh(m.dir)}; sync; echo 3 > /proc/sys/vm/drop_caches`, { check: false, timeoutMs: 120000 });
}

/**
 * Until the mount's staged commits are all confirmed and its staging log compacted (not timed):
 * the next measurement, often the other mount's, must not run while this one's uploads, the
 * server's work on them and the compaction that follows (a second after the last confirmation:
 * RemoteChain.compactStagingIfIdle reads back what it drops) still take the machine's two cores.
 * A local mount's writes end with the fsync; a remote one's go on.
 */
async function settled(m: Mount): Promise<void> {
  if (m.name === 'local') return;
  for (const end = performance.now() + 120000; performance.now() < end;) {
    const xdg = (['XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_STATE_HOME'] as const).map((k) => `${k}=${sh(childEnv[k]!)}`).join(' ');
    const r = await run(`${xdg} CI=true ${sh(process.execPath)} ${sh(join(ROOT, 'dist/cli/atefs.js'))} status ${sh(m.dir)} --json`, { check: false });
    let staged: number | undefined;
    try { staged = (JSON.parse(r.stdout) as { stagedUploads?: number }).stagedUploads; } catch { /* not answering yet */ }
    if (r.code === 0 && !staged) {
      await sleep(STAGING_COMPACT_WAIT_MS);
      return;
    }
    await sleep(100);
  }
  throw new Error(`${m.name}: staged commits not confirmed after 120 s`);
}

/** CPU time (ms, all threads) process `pid` has used: utime + stime of /proc/PID/stat, 100 Hz ticks. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * The CPU the daemons other than `m`'s use from now until the returned function is called, per
 * daemon: work left over from an earlier measurement (a mount's uploads, compaction, deferred
 * signatures) that landed in this one. Only the machine's other load is not shown.
 */
function othersCpu(m: Mount): () => string {
  const ds = [...mounts.map((o) => ({ name: o === m ? 'itself' : o.name, pid: o.daemon.pid })), ...(atedb ? [{ name: 'atedb', pid: atedb.pid }] : [])];
  const at = (pid: number) => { try { return cpuMs(pid); } catch { return 0; } };
  const t0 = ds.map((d) => at(d.pid));
  return () => ds.map((d, i) => `${d.name} ${at(d.pid) - t0[i]!} ms`).join(', ');
}

/** A second of daemon CPU under this many ms counts as quiet. */
const QUIET_CPU_MS = 30;
/** Consecutive quiet seconds wanted: longer than a local mount's 2 s wait before its idle compaction. */
const QUIET_SECONDS = 3;

/**
 * Until no daemon (the mounts, atedb) works in the background any more (not timed): what one
 * measurement leaves behind — a local mount's sign-off and the compaction it runs 2 s after its
 * last commit (~0.5 s of CPU after the 64 MiB write), a remote mount's leftovers — must not land
 * in the next measurement, usually the other mount's, on the machine's two cores. Gives up after
 * 60 s (a daemon busy for good) and says so.
 */
async function quiet(): Promise<void> {
  const pids = [...mounts.map((m) => m.daemon.pid), ...(atedb ? [atedb.pid] : [])];
  const total = () => pids.reduce((n, pid) => { try { return n + cpuMs(pid); } catch { return n; } }, 0);
  let calm = 0;
  let last = total();
  for (const end = performance.now() + 60000; performance.now() < end;) {
    await sleep(1000);
    const now = total();
    calm = now - last < QUIET_CPU_MS ? calm + 1 : 0;
    last = now;
    if (calm >= QUIET_SECONDS) return;
  }
  progress('the daemons did not go quiet within 60 s; measuring anyway');
}

const durable = (m: Mount) => `sync ${sh(m.dir)} && sync -f ${sh(m.dir)}`;

interface Workload { id: string; label: string; script: (m: Mount) => string; before?: (m: Mount) => Promise<void>; after?: (m: Mount) => Promise<void> }

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const median = (xs: number[]) => percentile(xs, 50);

async function main(): Promise<void> {
  process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)); });
  mkdirSync(cacheDir, { recursive: true });
  const tree = await prepareTree(cacheDir, { files: FILES, seed: 20261122 });
  const seqFile = join(cacheDir, `seq-${SEQ_MIB << 20}.bin`);
  if (!existsSync(seqFile)) writeFileSync(seqFile, randomBytes(SEQ_MIB << 20));

  atedb = await spawnDaemon(process.execPath, [...NODE_ARGS, join(ROOT, 'dist/cli/atedb.js'), 'solo', '--data-dir', join(work, 'db'), '--port', '0'], /^listening: /, { env: childEnv });
  const port = Number(/listening: [\d.]+:(\d+)/.exec(atedb.output())![1]);
  const url = `tcp://127.0.0.1:${port}/bench/remote`;
  progress(`atedb on port ${port}; tree ${tree.files} files, ${(tree.bytes / 1e6).toFixed(1)} MB; seq ${SEQ_MIB} MiB; transport ${TRANSPORT}`);
  const local = await mount('local', ['--log-path', join(work, 'local-chain')]);
  const remote = await mount('remote-a', [url, '--log-path', join(work, 'remote-a')], { ATEFS_MACHINE: 'bench-a' });
  const withPeer = !ONLY || ONLY.has('untar');
  const peer = withPeer ? await mount('remote-b', [url, '--log-path', join(work, 'remote-b')], { ATEFS_MACHINE: 'bench-b' }) : null;

  const allWorkloads: Workload[] = [
    // before: a no-op in the full run (read's after removes the file); with BENCH_ONLY=write
    // each run writes a new file as the full run does, not over the last run's.
    { id: 'write', label: 'seq write+fsync', before: async (m) => { await run(`rm -f ${sh(join(m.dir, 'seq.bin'))} && ${durable(m)}`, { timeoutMs: 120000 }); }, script: (m) => `dd if=${sh(seqFile)} of=${sh(join(m.dir, 'seq.bin'))} bs=1M conv=fsync status=none` },
    { id: 'read', label: 'seq read (cold)', before: dropCaches, script: (m) => `dd if=${sh(join(m.dir, 'seq.bin'))} of=/dev/null bs=1M status=none`,
      after: async (m) => { await run(`rm -f ${sh(join(m.dir, 'seq.bin'))} && ${durable(m)}`, { timeoutMs: 120000 }); } },
    { id: 'untar', label: 'untar', before: async (m) => { await run(`mkdir ${sh(join(m.dir, 'tree'))}`); }, script: (m) => `tar -xf ${sh(tree.tar)} -C ${sh(join(m.dir, 'tree'))} && ${durable(m)}` },
    { id: 'md5sum', label: 'md5sum all files', before: dropCaches, script: (m) => `cd ${sh(join(m.dir, 'tree'))} && find . -type f -print0 | xargs -0 md5sum > /dev/null` },
    { id: 'ls', label: 'ls -lR', before: dropCaches, script: (m) => `ls -lR ${sh(join(m.dir, 'tree'))} > /dev/null` },
    { id: 'rm', label: 'rm -rf', script: (m) => `rm -rf ${sh(join(m.dir, 'tree'))} && ${durable(m)}` },
  ];
  const workloads = ONLY ? allWorkloads.filter((w) => ONLY.has(w.id)) : allWorkloads;
  if (workloads.length === 0) throw new Error(`BENCH_ONLY=${env.BENCH_ONLY}: no such workload (${allWorkloads.map((w) => w.id).join(', ')})`);
  const times = new Map<string, number[]>();
  const visibleOnPeer: number[] = [];
  const fileCount = Number((await run(`tar -tf ${sh(tree.tar)} | grep -v '/$' | wc -l`)).stdout.trim());
  for (let r = 0; r < RUNS; r++) {
    // Alternate which goes first, so neither always runs on a warmer machine.
    const order = (r + Number(env.BENCH_ORDER_SHIFT ?? 0)) % 2 === 0 ? [local, remote] : [remote, local];
    for (const w of workloads) {
      for (const m of order) {
        await w.before?.(m);
        // The disk's dirty pages (what an earlier measurement's compaction or uploads wrote) are
        // written back now, not inside this measurement's fsyncs: bench:fs does the same.
        await run('sync', { timeoutMs: 120000 });
        const others = othersCpu(m);
        const t0 = performance.now();
        const res = await run(w.script(m), { timeoutMs: 600000, check: false });
        const s = (performance.now() - t0) / 1000;
        if (res.code !== 0) throw new Error(`${w.id} on ${m.name} failed: ${res.stderr.slice(0, 500)}`);
        const k = `${w.id}/${m.name}`;
        times.set(k, [...(times.get(k) ?? []), s]);
        progress(`run ${r + 1} ${w.id} ${m.name}: ${s.toFixed(2)} s (CPU of the daemons meanwhile: ${others()})`);
        if (w.id === 'untar' && m === remote && peer) {
          // Until the whole tree is on the other machine (so confirmed by the server).
          for (;;) {
            const n = Number((await run(`find ${sh(join(peer.dir, 'tree'))} -type f -o -type l 2>/dev/null | wc -l`, { check: false })).stdout.trim());
            if (n >= fileCount) break;
            if (performance.now() - t0 > 600000) throw new Error(`tree not complete on the second mount after 600 s (${n}/${fileCount})`);
            await sleep(100);
          }
          visibleOnPeer.push((performance.now() - t0) / 1000);
        }
        await w.after?.(m);
        await settled(m);
        await quiet();
      }
    }
  }

  // Propagation of a small file, A -> B: written and closed on A, polled on B.
  const lat: number[] = [];
  for (let i = 0; peer && !ONLY && i < PROP_N; i++) {
    const body = `propagation probe ${i} ${Date.now()}\n`;
    const t0 = performance.now();
    await writeFile(join(remote.dir, `probe-${i}.txt`), body);
    for (;;) {
      const got = await readFile(join(peer.dir, `probe-${i}.txt`), 'utf8').catch(() => null);
      if (got === body) break;
      if (performance.now() - t0 > 30000) throw new Error(`probe ${i} not on the second mount after 30 s`);
      await sleep(2);
    }
    lat.push(performance.now() - t0);
    await sleep(20);
  }

  out(`bench:remote — ${TRANSPORT} transport, loopback atedb solo, logs on ${BASE}; tree ${tree.files} files (${(tree.bytes / 1e6).toFixed(1)} MB), seq ${SEQ_MIB} MiB, ${RUNS} run(s), medians`);
  out('');
  out(`${'workload'.padEnd(20)}${'local'.padStart(10)}${'remote'.padStart(10)}${'ratio'.padStart(9)}  goal <= ${GOAL_RATIO}x`);
  const mbps = (s: number) => `${((SEQ_MIB * 1048576) / 1e6 / s).toFixed(0)} MB/s`;
  for (const w of workloads) {
    const l = median(times.get(`${w.id}/local`)!);
    const rm = median(times.get(`${w.id}/remote-a`)!);
    const ratio = rm / l;
    const show = (s: number) => (w.id === 'write' || w.id === 'read' ? mbps(s) : `${s.toFixed(2)} s`);
    out(`${w.label.padEnd(20)}${show(l).padStart(10)}${show(rm).padStart(10)}${`${ratio.toFixed(2)}x`.padStart(9)}  ${ratio <= GOAL_RATIO ? 'met' : 'NOT met'}`);
  }
  out('');
  if (visibleOnPeer.length > 0) out(`untar until the whole tree is on the second mount: ${median(visibleOnPeer).toFixed(2)} s (untar on the remote mount: ${median(times.get('untar/remote-a')!).toFixed(2)} s)`);
  if (lat.length > 0) out(`propagation of a small file A -> B (${PROP_N} files, written and closed on A, polled on B every 2 ms): p50 ${median(lat).toFixed(0)} ms, p99 ${percentile(lat, 99).toFixed(0)} ms, max ${Math.max(...lat).toFixed(0)} ms; goal p50 < ${GOAL_P50_MS} ms: ${median(lat) < GOAL_P50_MS ? 'met' : 'NOT met'}`);
}

/** The daemons' output, when BENCH_OUTPUT_DIR names where (see the header). */
function saveOutputs(): void {
  const dir = env.BENCH_OUTPUT_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  for (const m of mounts) writeFileSync(join(dir, `${m.name}.log`), m.daemon.output());
  if (atedb) writeFileSync(join(dir, 'atedb.log'), atedb.output());
}

main().then(async () => { saveOutputs(); await cleanup(); }, async (e: Error) => {
  process.stderr.write(`bench:remote failed: ${e.stack ?? e.message}\n`);
  for (const m of mounts) process.stderr.write(`--- ${m.name} ---\n${m.daemon.output().slice(-2000)}\n`);
  await cleanup();
  process.exit(1);
});
