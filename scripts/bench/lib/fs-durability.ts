/**
 * bench:fs's durability workloads (issue 17), run on the targets whose data lands on the real disk
 * (gocryptfs-disk, atefs-*-disk), where an fsync costs what it costs a database:
 *
 * - fsync: N times a 4 KiB write of new data + fsync, each timed (durability-probe.ts): p50, p99.
 * - sqlite-wal / sqlite-journal: Debian's sqlite3 CLI runs N one-INSERT transactions on a fresh
 *   database in WAL or rollback-journal (DELETE) mode, synchronous=FULL, timed until it exits.
 * - rewrite: a file of F MiB rewritten page by page at random (4 KiB pages, an fsync every MiB)
 *   for X times its size, while the store's size (du of gocryptfs's cipherdir or atefs's log) and
 *   the live data (atefs's own count, from its stats file; gocryptfs: the file's size) are sampled:
 *   the log must stay within 2x live + 128 MiB (issue 17's bounded space).
 *
 * Each is checked: the bytes read back after dropping caches hash to what was written; the
 * database passes integrity_check with every row there.
 */
import { join } from 'node:path';
import { rmSync, readFileSync, writeFileSync } from 'node:fs';
import { run, sh, sleep, type RunResult } from './proc.js';
import type { Mounted } from './fs-targets.js';
import type { Workload, WorkloadCtx } from './fs-workloads.js';

export const MiB = 1048576;
/** Issue 17: the log of a chain under rewrites stays within 2x live data plus this. */
export const LOG_SLACK_BYTES = 128 * MiB;
export const logBound = (liveBytes: number): number => 2 * liveBytes + LOG_SLACK_BYTES;

export interface DurabilityCtx {
  /** dist/scripts/bench/durability-probe.js, run with this node. */
  probe: string;
  fsyncN: number;
  sqliteTx: number;
  rewriteFileBytes: number;
  rewriteBytes: number;
  pageBytes: number;
  syncBytes: number;
  /** How often the rewrite's space is sampled. */
  sampleMs: number;
  /** The rewrite's own time limit: its point is the space, not the speed (BENCH_REWRITE_TIMEOUT_S). */
  rewriteTimeoutMs: number;
  /**
   * How long the space is still sampled after the writes ended (BENCH_SETTLE_S): the pause is when
   * the policy's compaction runs, and it must keep the bound too.
   */
  settleMs: number;
}

export function durabilityCtx(quick: boolean, env: NodeJS.ProcessEnv, probe: string): DurabilityCtx {
  const fileMiB = Number(env.BENCH_REWRITE_MIB ?? (quick ? 32 : 64));
  // Written in all: the fill plus X times the file. Both defaults write more than the bound
  // (2 x 64 + 128 = 256 MiB for 384 written; quick 192 for 224): a log that never reclaims
  // anything exceeds it (rewriteDiscriminates).
  const times = Number(env.BENCH_REWRITE_X ?? (quick ? 6 : 5));
  return {
    probe,
    fsyncN: Number(env.BENCH_FSYNC_N ?? (quick ? 50 : 200)),
    sqliteTx: Number(env.BENCH_SQLITE_TX ?? (quick ? 50 : 200)),
    rewriteFileBytes: fileMiB * MiB,
    rewriteBytes: Math.round(times * fileMiB * MiB),
    pageBytes: 4096,
    syncBytes: MiB,
    // A compaction's copy sits beside the old log for 1-2 s: samples 2 s apart missed it in one run of two.
    sampleMs: Number(env.BENCH_SAMPLE_MS ?? 500),
    rewriteTimeoutMs: Number(env.BENCH_REWRITE_TIMEOUT_S ?? (quick ? 150 : 300)) * 1000,
    settleMs: Number(env.BENCH_SETTLE_S ?? 10) * 1000,
  };
}

/** Whether a store that kept every byte written would exceed the bound (else the goal proves nothing). */
export const rewriteDiscriminates = (d: DurabilityCtx): boolean => d.rewriteFileBytes + d.rewriteBytes > logBound(d.rewriteFileBytes);

/** Nearest-rank percentile (p in 0..100) of unsorted values; undefined for none. */
export function percentile(xs: number[], p: number): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length, Math.max(1, rank)) - 1];
}

/** The last line of a probe's stdout, parsed. */
export function probeResult<T>(r: RunResult): T {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try { return JSON.parse(line) as T; } catch { throw new Error(`the probe printed no result: ${r.stdout.slice(-200)}${r.stderr.slice(-200)}`); }
}

// ---------------------------------------------------------------- space over time

export interface SpacePoint {
  /** Seconds since the workload started. */
  t: number;
  /** Bytes the client had written (fill + rewrites). */
  written: number;
  /** du of the store directory (allocated bytes). */
  storeBytes: number;
  /** Live data: atefs's own count (stats `space.liveBytes`), else the file's logical size. */
  liveBytes: number;
  /** Where liveBytes came from. */
  liveFrom: 'daemon' | 'file';
  /** Epoch ms of the sample (lines it up with the probe's per-second slowest calls). */
  at?: number;
  /** du of the store's subdirectories (atefs: log/ and index/), by name. */
  parts?: Record<string, number>;
  /** The daemon's own count of its log (stats `space.logBytes`: the live segments, not a copy being written). */
  daemonLogBytes?: number;
  /** atefs: what `df` on the mount shows as used (its statfs), bytes. */
  dfUsedBytes?: number;
  /** The longest write or fsync of the rewrites that ended since the previous sample (set by the rewrite's measure). */
  stallMs?: number;
}

export interface SpaceMonitor { stop(): Promise<SpacePoint[]> }

/** The allocated size of a directory tree (du -sB1); files vanishing meanwhile (compaction) are fine. */
export async function duBytes(dir: string): Promise<number | undefined> {
  const r = await run(`du -sB1 ${sh(dir)} 2>/dev/null`, { check: false, timeoutMs: 30000 }).catch(() => undefined);
  const n = Number(r?.stdout.trim().split(/\s+/)[0]);
  return Number.isFinite(n) && r?.stdout.trim() ? n : undefined;
}

/** du -B1 of each subdirectory of `dir` (one level), by name; undefined when there are none. */
export async function duParts(dir: string): Promise<Record<string, number> | undefined> {
  const r = await run(`du -B1 --max-depth=1 ${sh(dir)} 2>/dev/null`, { check: false, timeoutMs: 30000 }).catch(() => undefined);
  const out: Record<string, number> = {};
  for (const line of r?.stdout.trim().split('\n') ?? []) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m || m[2] === dir) continue;
    out[m[2]!.slice(dir.length).replace(/^\/+/, '')] = Number(m[1]);
  }
  return Object.keys(out).length ? out : undefined;
}

/** What `df` shows as used on the file system of `dir` (df -B1 --output=used), bytes. */
export async function dfUsedBytes(dir: string): Promise<number | undefined> {
  const r = await run(`df -B1 --output=used ${sh(dir)}`, { check: false, timeoutMs: 30000 }).catch(() => undefined);
  const n = Number(r?.stdout.trim().split('\n')[1]?.trim());
  return r?.code === 0 && Number.isFinite(n) ? n : undefined;
}

/**
 * Samples the store every d.sampleMs while the rewrite runs, and once more when stopped: du of the
 * store (and of its subdirectories), the live data and, on atefs (which counts it: m.space), the
 * daemon's own log size and what df on the mount shows.
 */
export function startSpaceMonitor(m: Mounted, d: DurabilityCtx, progressFile: string): SpaceMonitor {
  const t0 = Date.now();
  const points: SpacePoint[] = [];
  let stopping = false;
  const sample = async (): Promise<void> => {
    if (!m.storeDir) return;
    const at = Date.now();
    let written = 0;
    try { written = Number(readFileSync(progressFile, 'utf8')) || 0; } catch { /* not started yet */ }
    const [storeBytes, parts, space, df] = await Promise.all([
      duBytes(m.storeDir), duParts(m.storeDir), m.space?.(), m.space ? dfUsedBytes(m.dir) : undefined,
    ]);
    if (storeBytes === undefined) return;
    const daemonLive = space?.liveBytes;
    points.push({
      t: (at - t0) / 1000, at, written, storeBytes,
      liveBytes: daemonLive ?? Math.min(written, d.rewriteFileBytes), liveFrom: daemonLive !== undefined ? 'daemon' : 'file',
      ...(parts ? { parts } : {}),
      ...(space?.logBytes !== undefined ? { daemonLogBytes: space.logBytes } : {}),
      ...(df !== undefined ? { dfUsedBytes: df } : {}),
    });
  };
  const loop = (async () => {
    while (!stopping) {
      await sleep(d.sampleMs);
      if (!stopping) await sample();
    }
  })();
  return {
    async stop() {
      // Still sampling while the store settles after the writes (a compaction on the pause).
      if (d.settleMs > 0) await sleep(d.settleMs);
      stopping = true;
      await loop;
      await sample();
      return points;
    },
  };
}

/** The points' largest store/live ratio, and whether every point kept within logBound. */
export function spaceVerdict(points: SpacePoint[]): { peak?: SpacePoint; end?: SpacePoint; within: boolean } {
  let peak: SpacePoint | undefined;
  for (const p of points) if (!peak || p.storeBytes - logBound(p.liveBytes) > peak.storeBytes - logBound(peak.liveBytes)) peak = p;
  return { peak, end: points[points.length - 1], within: points.every((p) => p.storeBytes <= logBound(p.liveBytes)) };
}

// ---------------------------------------------------------------- workloads

const dur = (c: WorkloadCtx): DurabilityCtx => {
  if (!c.durability) throw new Error('durability workloads need ctx.durability');
  return c.durability;
};
const onDisk = (t: { backing?: string }): boolean => t.backing === 'disk';
const probeCmd = (d: DurabilityCtx, args: (string | number)[]): string => [process.execPath, d.probe, ...args.map(String)].map(sh).join(' ');

/** sha256 of a file read back through the mount once the kernel's caches are dropped. */
async function coldSha256(m: Mounted, file: string): Promise<string> {
  await run(`sync -f ${m.syncPaths.map(sh).join(' ')}; echo 3 > /proc/sys/vm/drop_caches`, { check: false, timeoutMs: 120000 }).catch(() => undefined);
  const r = await run(`sha256sum ${sh(file)}`, { timeoutMs: 300000 });
  return r.stdout.trim().split(/\s+/)[0] ?? '';
}

const sqliteDb = (m: Mounted): string => join(m.dir, 'bench.db');

/** The timed SQL: N transactions of one INSERT each, every commit durable (synchronous=FULL). */
export function sqliteScript(tx: number): string {
  const lines = ['PRAGMA synchronous=FULL;'];
  for (let i = 0; i < tx; i++) lines.push(`BEGIN; INSERT INTO t(v) VALUES (randomblob(200)); COMMIT;`);
  return `${lines.join('\n')}\n`;
}

function sqliteWorkload(mode: 'wal' | 'delete'): Workload {
  const id = mode === 'wal' ? 'sqlite-wal' : 'sqlite-journal';
  const sqlFile = (c: WorkloadCtx): string => join(c.scratch, `${id}.sql`);
  return {
    id, label: mode === 'wal' ? 'SQLite WAL' : 'SQLite journal', unit: 'tx/s', needs: [], applies: onDisk,
    async before(m, c) {
      writeFileSync(sqlFile(c), sqliteScript(dur(c).sqliteTx));
      await run(`rm -f ${sh(sqliteDb(m))}* && sqlite3 ${sh(sqliteDb(m))} ${sh(`PRAGMA journal_mode=${mode.toUpperCase()}; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);`)} >/dev/null`, { timeoutMs: 60000 });
    },
    script: (m, c) => `sqlite3 ${sh(sqliteDb(m))} < ${sh(sqlFile(c))}`,
    figure: (seconds, c) => dur(c).sqliteTx / seconds,
    async check(m, c) {
      const r = await run(`sqlite3 ${sh(sqliteDb(m))} 'PRAGMA integrity_check; SELECT count(*) FROM t; PRAGMA journal_mode;'`, { check: false, timeoutMs: 60000 });
      const want = `ok\n${dur(c).sqliteTx}\n${mode}`;
      return r.code === 0 && r.stdout.trim() === want ? undefined : `sqlite3 check gave ${JSON.stringify((r.stdout + r.stderr).trim().slice(0, 200))}, want ${JSON.stringify(want)}`;
    },
    async after(m) { await run(`rm -f ${sh(sqliteDb(m))}*`, { timeoutMs: 60000 }); },
  };
}

const fsyncFile = (m: Mounted): string => join(m.dir, 'fsync.bin');
const rewriteFile = (m: Mounted): string => join(m.dir, 'rewrite.bin');
const progressFile = (c: WorkloadCtx): string => join(c.scratch, 'rewrite.progress');

export const DURABILITY_WORKLOADS: Workload[] = [
  {
    id: 'fsync', label: 'fsync 4K p50', unit: 'ms', needs: [], applies: onDisk,
    script: (m, c) => probeCmd(dur(c), ['fsync', fsyncFile(m), dur(c).fsyncN]),
    measure(r) {
      const { latenciesMs } = probeResult<{ latenciesMs: number[] }>(r);
      return { fsync: percentile(latenciesMs, 50)!, 'fsync-p99': percentile(latenciesMs, 99)! };
    },
    async check(m, c, r) {
      const want = probeResult<{ sha256: string }>(r).sha256;
      const got = await coldSha256(m, fsyncFile(m));
      return got === want ? undefined : `fsync file read back differs (sha256 ${got.slice(0, 12)}, wrote ${want.slice(0, 12)}; ${dur(c).fsyncN} x 4 KiB)`;
    },
    async after(m) { await run(`rm -f ${sh(fsyncFile(m))}`, { timeoutMs: 60000 }); },
  },
  { id: 'fsync-p99', of: 'fsync', label: 'fsync 4K p99', unit: 'ms', needs: [], applies: onDisk, script: () => 'false' },
  sqliteWorkload('wal'),
  sqliteWorkload('delete'),
  {
    id: 'rewrite', label: 'rewrite 4K pages', unit: 'MB/s', needs: [], applies: onDisk,
    async before(_m, c) { rmSync(progressFile(c), { force: true }); },
    monitor: (m, c) => startSpaceMonitor(m, dur(c), progressFile(c)),
    timeoutMs: (c) => dur(c).rewriteTimeoutMs,
    script: (m, c) => {
      const d = dur(c);
      return probeCmd(d, ['rewrite', rewriteFile(m), d.rewriteFileBytes, d.rewriteBytes, d.pageBytes, d.syncBytes, progressFile(c)]);
    },
    measure(r, _c, series) {
      const p = probeResult<RewriteProbeResult>(r);
      const out: Record<string, number> = { rewrite: p.rewriteBytes / p.rewriteSeconds / 1e6 };
      const end = series?.[series.length - 1];
      if (end && end.liveBytes > 0) out['rewrite-space'] = end.storeBytes / end.liveBytes;
      if (p.longestWriteMs !== undefined && p.longestFsyncMs !== undefined) {
        out['rewrite-stall'] = Math.max(p.longestWriteMs, p.longestFsyncMs);
        const p99 = percentile(p.fsyncMs ?? [], 99);
        if (p99 !== undefined) out['rewrite-fsync-p99'] = p99;
        // The typical fsync (a commit of ~1 MiB of pages): what a stall is measured against.
        const p50 = percentile(p.fsyncMs ?? [], 50);
        if (p50 !== undefined) out['rewrite-fsync-p50'] = p50;
      }
      if (series && p.slowest && p.startedAt !== undefined) lineUpStalls(series, p.startedAt, p.slowest);
      return out;
    },
    async check(m, c, r) {
      const want = probeResult<{ sha256: string }>(r).sha256;
      const got = await coldSha256(m, rewriteFile(m));
      return got === want ? undefined : `rewritten file read back differs (sha256 ${got.slice(0, 12)}, wrote ${want.slice(0, 12)}; ${dur(c).rewriteFileBytes / MiB} MiB)`;
    },
    async after(m) { await run(`rm -f ${sh(rewriteFile(m))}`, { timeoutMs: 60000 }); },
  },
  { id: 'rewrite-space', of: 'rewrite', label: 'rewrite store/live end', unit: 'x', noRatio: true, needs: [], applies: onDisk, script: () => 'false' },
  { id: 'rewrite-stall', of: 'rewrite', label: 'rewrite longest call', unit: 'ms', noRatio: true, needs: [], applies: onDisk, script: () => 'false' },
  { id: 'rewrite-fsync-p50', of: 'rewrite', label: 'rewrite fsync p50', unit: 'ms', noRatio: true, needs: [], applies: onDisk, script: () => 'false' },
  { id: 'rewrite-fsync-p99', of: 'rewrite', label: 'rewrite fsync p99', unit: 'ms', noRatio: true, needs: [], applies: onDisk, script: () => 'false' },
];

/** What the rewrite probe prints (durability-probe.ts); the timing fields are absent from older probes. */
export interface RewriteProbeResult {
  rewriteSeconds: number;
  rewriteBytes: number;
  sha256: string;
  longestWriteMs?: number;
  longestFsyncMs?: number;
  fsyncMs?: number[];
  startedAt?: number;
  slowest?: number[];
}

/**
 * Sets each space point's stallMs: the longest write or fsync that ended since the previous point
 * (from the probe's longest call per second since `startedAt`; to the second: a call ending in the
 * second of a sample may be counted in the next one's interval as well). Points before the
 * rewrites began (the fill) get none.
 */
export function lineUpStalls(points: SpacePoint[], startedAt: number, slowest: number[]): void {
  let prev = startedAt;
  for (const p of points) {
    if (p.at === undefined || p.at <= startedAt) continue;
    const from = Math.max(0, Math.floor((prev - startedAt) / 1000));
    const to = Math.min(slowest.length - 1, Math.floor((p.at - startedAt) / 1000));
    if (from > to) continue; // after the writes (the settle samples): no call to speak of
    let m = 0;
    for (let s = from; s <= to; s++) m = Math.max(m, slowest[s] ?? 0);
    p.stallMs = m;
    prev = p.at;
  }
}

export const DURABILITY_IDS = new Set(DURABILITY_WORKLOADS.map((w) => w.id));

export function durabilityMethod(d: DurabilityCtx): string[] {
  const written = d.rewriteFileBytes + d.rewriteBytes;
  return [
    'durability workloads (issue 17; only on targets whose data lands on the real disk):',
    `  fsync: ${d.fsyncN} x (pwrite of 4 KiB of new random data at the next offset + fsync), each timed in the client`,
    '        (scripts/bench/durability-probe.ts, synchronous I/O); p50 and p99 (nearest rank); checked: the file read back',
    '        after drop_caches hashes to what was written;',
    `  SQLite WAL / journal: sqlite3 CLI, a fresh database in WAL or rollback-journal (DELETE) mode, ${d.sqliteTx} transactions of`,
    '        one INSERT (200 random bytes) each, synchronous=FULL, timed until sqlite3 exits; checked: integrity_check ok,',
    '        every row there, the journal mode kept;',
    `  rewrite: a ${d.rewriteFileBytes / MiB} MiB file filled (untimed in MB/s), then ${d.rewriteBytes / MiB} MiB of random ${d.pageBytes / 1024} KiB pages rewritten`,
    `        (fsync every ${d.syncBytes / MiB} MiB): MB/s of the rewrites; every ${d.sampleMs / 1000} s and at the end: du -sB1 of the store`,
    '        (gocryptfs: cipherdir; atefs: the chain\'s log dir) and the live data (atefs: the daemon\'s space.liveBytes',
    '        from its stats file; gocryptfs: the file\'s size); store/live end = at the last sample (after the settle below);',
    `        checked: the file read back after drop_caches hashes to what was written; killed after ${d.rewriteTimeoutMs / 1000} s
        (BENCH_REWRITE_TIMEOUT_S; not 10x gocryptfs: its point is the space), the samples until then are kept. ${(written / MiB).toFixed(0)} MiB are written in all:`,
    `        a store keeping every byte would ${rewriteDiscriminates(d) ? 'exceed' : 'NOT exceed (the goal proves nothing with these settings)'} the bound 2 x ${d.rewriteFileBytes / MiB} + 128 = ${logBound(d.rewriteFileBytes) / MiB} MiB.`,
    '        writer stalls: every write() and fsync() of the rewrites timed in the probe (what the writer waited for, the',
    '        commit and whatever compaction or throttling held it); "longest call" = the longest of them, goal < 100 ms;',
    '        per sample, the longest call that ended since the previous sample. df: `df -B1 --output=used` on the mount',
    '        (atefs\'s statfs) at every sample, beside the daemon\'s live count and the file\'s size.',
    `        samples go on for ${d.settleMs / 1000} s after the writes (BENCH_SETTLE_S; the pause is when a policy compaction runs): they count`,
    '        for the bound too; store/live end and df are judged at the last of them.',
  ];
}
