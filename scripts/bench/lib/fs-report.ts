/**
 * Formats the filesystem benchmark's results: the figures table (medians), the ratio table with
 * the goals of the atefs and kernel-transport issues, and FUSE requests per opcode per workload.
 */
import type { Target, Transport } from './fs-targets.js';
import { lowerIsBetter, type Workload, type Unit } from './fs-workloads.js';
import type { SpacePoint } from './fs-durability.js';
import type { TraceResult } from './fuse-trace.js';
import { COMMIT_PREFIX, type Counters } from './stats-file.js';

export interface Sample {
  value: number;
  seconds: number;
  trace?: TraceResult;
  counters?: Counters;
  /** atefs: commit.* counters of the workload (stats-file.ts commitCounters), trailing commit included. */
  commit?: Counters;
  cpu?: number;
  /** The rewrite workload: store size and live data sampled while it ran. */
  series?: SpacePoint[];
}

export interface Cell {
  samples: Sample[];
  errors: string[];
  skipped?: string;
  /** Figures at the moment a workload was killed for taking too long: bounds, not measurements. */
  bounds?: number[];
  /** The space samples of a killed rewrite, up to the kill. */
  partialSeries?: SpacePoint[][];
}
export type Results = Map<string, Map<string, Cell>>; // target -> workload -> cell

export function cell(results: Results, target: string, wl: string): Cell {
  let t = results.get(target);
  if (!t) results.set(target, (t = new Map()));
  let c = t.get(wl);
  if (!c) t.set(wl, (c = { samples: [], errors: [] }));
  return c;
}

export function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

export const fmt = (v: number | undefined, unit: Unit): string => {
  if (v === undefined) return '-';
  if (unit === 'MB/s' || unit === 'tx/s') return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  if (unit === 'x') return v.toFixed(2);
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
};

const pad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const padR = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const kfmt = (n: number): string => (n >= 100000 ? `${Math.round(n / 1000)}k` : n >= 10000 ? `${(n / 1000).toFixed(1)}k` : String(n));

/**
 * The median of a cell (`failed`: its correctness check failed — the figure is shown, marked "!",
 * but no ratio or goal is ever derived from it).
 */
export function cellValue(results: Results, t: Target, w: Workload): { v?: number; text: string; bound?: boolean; failed?: boolean } {
  if (t.unavailable) return { text: 'n/a' };
  const c = results.get(t.name)?.get(w.id);
  if (!c) return { text: 'n/a' };
  const v = median(c.samples.map((s) => s.value));
  if (v === undefined && c.bounds?.length) {
    // Killed: slower than this, at least (seconds: more than; MB/s: less than).
    const lower = lowerIsBetter(w.unit);
    const b = lower ? Math.max(...c.bounds) : Math.min(...c.bounds);
    return { v: b, bound: true, text: `${lower ? '>' : '<'}${fmt(b, w.unit)}` };
  }
  if (v === undefined) return { text: c.errors.length ? 'FAIL' : c.skipped ? 'skip' : 'n/a' };
  const xs = c.samples.map((s) => s.value);
  // The spread of several runs, never only the best one: median [min-max].
  const spread = xs.length > 1 ? ` [${fmt(Math.min(...xs), w.unit)}-${fmt(Math.max(...xs), w.unit)}]` : '';
  return { v, text: fmt(v, w.unit) + spread + (c.errors.length ? '!' : ''), ...(c.errors.length ? { failed: true } : {}) };
}

export function figuresTable(targets: Target[], workloads: Workload[], results: Results, runs: number): string[] {
  const cols = targets.filter((t) => !(t.unavailable && t.transport === 'kernel'));
  const w0 = 24;
  const texts = workloads.map((w) => cols.map((t) => cellValue(results, t, w).text));
  const cw = Math.max(10, ...cols.map((t) => t.name.length + 2), ...texts.flat().map((x) => x.length + 2));
  const title = runs > 1 ? `median [min-max] of ${runs}` : 'figures (1 run)';
  const lines = [`${padR(title, w0)}${cols.map((t) => pad(t.name, cw)).join('')}`];
  workloads.forEach((w, i) => {
    lines.push(`${padR(`${w.label} ${w.unit}`, w0)}${texts[i]!.map((x) => pad(x, cw)).join('')}`);
  });
  return lines;
}

/**
 * The gocryptfs target atefs is compared with: the one whose cipherdir is the same kind of store
 * as atefs's log (disk vs disk, tmpfs vs tmpfs); atefs --temp (memory) is compared with gocryptfs
 * on tmpfs. Falls back to any gocryptfs target (one without a declared store).
 */
export function gocryptfsFor(targets: Target[], a: Target): Target | undefined {
  const gcs = targets.filter((t) => t.kind === 'gocryptfs');
  const want = a.backing === 'disk' ? 'disk' : 'tmpfs';
  return gcs.find((g) => g.backing === want) ?? gcs.find((g) => g.backing === undefined);
}

interface Goal { min: number; text: string }
const FLOOR_GOAL: Goal = { min: 1 / 1.3, text: '>=0.77 (1.3x)' };

/** Goals from the issues: atefs vs its transport's floor, and vs gocryptfs per transport. */
function gocryptfsGoal(transport: Transport | undefined, w: Workload): Goal | undefined {
  // Issue 17, whatever the transport: fsync p50 <= 2x gocryptfs, SQLite <= 1.5x its time.
  if (w.id === 'fsync') return { min: 0.5, text: '>=0.5 (2x)' };
  if (w.id === 'sqlite-wal' || w.id === 'sqlite-journal') return { min: 1 / 1.5, text: '>=0.67 (1.5x)' };
  if (w.id === 'fsync-p99' || w.id === 'rewrite') return undefined;
  if (transport === 'kernel') return w.id === 'md5sum' ? undefined : { min: 1, text: '>=1.0' };
  if (w.id === 'write') return { min: 0.8, text: '>=0.8' };
  if (w.id === 'read') return { min: 1, text: '>=1.0' };
  return undefined;
}

/** Speed ratio: > 1 means atefs is faster, whatever the unit. */
function speedRatio(unit: Unit, a: number, b: number): number {
  return lowerIsBetter(unit) ? b / a : a / b;
}

export function ratioTable(targets: Target[], workloads: Workload[], results: Results): string[] {
  const atefs = targets.filter((t) => t.kind === 'atefs' && !t.unavailable);
  if (!atefs.length) return ['ratios: no atefs target ran'];
  const lines = [
    'speed ratios (>1 = atefs faster; goal after the figure; "ok"/"MISS"; none where a correctness check failed)',
    '  gocryptfs column: the gocryptfs whose cipherdir is on the same kind of store as atefs\'s log (--temp: tmpfs)',
  ];
  for (const a of atefs) {
    const floor = targets.find((t) => t.kind === 'floor' && t.transport === a.transport);
    const gc = gocryptfsFor(targets, a);
    if (workloads.every((w) => cellValue(results, a, w).v === undefined)) {
      lines.push(`  ${padR(a.name, 22)}no figures (see problems below)`);
      continue;
    }
    lines.push(`  ${padR(a.name, 22)}${padR(`vs ${floor?.name ?? 'floor'}`, 30)}vs ${gc?.name ?? 'gocryptfs'}`);
    for (const w of workloads) {
      // A size ratio has an absolute goal (durabilityGoals), and a workload not run here no ratio.
      if (w.noRatio || (w.applies && !w.applies(a))) continue;
      const { v: av, bound, failed } = cellValue(results, a, w);
      const part = (other: Target | undefined, goal: Goal | undefined): string => {
        const o = other ? cellValue(results, other, w) : undefined;
        // A figure whose check failed measured something else than the workload: no ratio, no "ok".
        if (failed || o?.failed) return 'n/a (check failed)';
        if (av === undefined || o?.v === undefined || o.bound) return 'n/a';
        const r = speedRatio(w.unit, av, o.v);
        // A killed atefs run gives an upper bound on its speed ratio.
        const rt = `${bound ? '<' : ''}${r.toFixed(2)}`;
        if (!goal) return rt;
        return `${rt} ${goal.text} ${r >= goal.min ? (bound ? '?' : 'ok') : 'MISS'}`;
      };
      // The floors keep data in memory: the durability workloads do not run on them.
      const vsFloor = w.applies && (!floor || !w.applies(floor)) ? '-' : part(floor, FLOOR_GOAL);
      lines.push(`    ${padR(w.label, 20)}${padR(vsFloor, 30)}${part(gc, gocryptfsGoal(a.transport, w))}`);
    }
  }
  return lines;
}

export function requestsSection(targets: Target[], workloads: Workload[], results: Results, traceNote: string): string[] {
  const lines = [
    `FUSE requests per workload (${traceNote}; first run)`,
    '  req = requests the kernel sent; µs = mean time a request was in flight (queued + served + replied);',
    '  cpu = CPU seconds of the serving process (all threads), and per request; then requests per opcode;',
    '  "daemon:" = the daemon\'s own op counters (fuse-native: libfuse high-level calls, e.g. LOOKUP -> getattr)',
  ];
  const fuse = targets.filter((t) => t.kind !== 'reference' && !t.unavailable);
  for (const w of workloads) {
    lines.push(`${w.label}`);
    for (const t of fuse) {
      const s = results.get(t.name)?.get(w.id)?.samples[0];
      if (!s) continue;
      const parts: string[] = [];
      if (s.trace) {
        const ops = [...s.trace.ops.entries()].sort((a, b) => b[1].count - a[1].count);
        parts.push(`${pad(kfmt(s.trace.total), 7)} req ${pad(s.trace.meanUs.toFixed(0), 5)} µs`);
        parts.push(`cpu ${s.cpu !== undefined ? `${s.cpu.toFixed(2)} s ${pad((s.trace.total ? (s.cpu * 1e6) / s.trace.total : 0).toFixed(0), 3)} µs/req` : '-'}`);
        parts.push(ops.map(([k, v]) => `${k} ${kfmt(v.count)}`).join(' ') + (s.trace.lost ? ' (TRACE LOST EVENTS)' : ''));
      } else {
        parts.push(`cpu ${s.cpu !== undefined ? s.cpu.toFixed(2) : '-'} s`);
      }
      lines.push(`  ${padR(t.name, 15)}${parts.join('  ')}`);
      const opCounters = s.counters ? [...s.counters.entries()].filter(([k]) => !k.startsWith(COMMIT_PREFIX)) : [];
      if (opCounters.length) {
        const strip = commonPrefix(opCounters.map(([k]) => k));
        // Gauges and settings, not events: their difference means nothing here.
        const ops = opCounters.filter(([k]) => !GAUGES.has(k.slice(strip))).sort((a, b) => b[1] - a[1]);
        lines.push(`  ${padR('', 15)}daemon: ${ops.map(([k, v]) => `${k.slice(strip)} ${kfmt(v)}`).join(' ')}`);
      }
    }
  }
  return lines;
}

const GAUGES = new Set(['maxWrite', 'lookupsOutstanding', 'pending', 'pid', 'seq']);

function commonPrefix(keys: string[]): number {
  if (!keys.length) return 0;
  const first = keys[0]!;
  const dot = first.indexOf('.');
  if (dot < 0) return 0;
  const p = first.slice(0, dot + 1);
  return keys.every((k) => k.startsWith(p)) ? p.length : 0;
}

export function errorsSection(targets: Target[], workloads: Workload[], results: Results): string[] {
  const lines: string[] = [];
  for (const t of targets) {
    for (const w of workloads) {
      const c = results.get(t.name)?.get(w.id);
      for (const e of c?.errors ?? []) lines.push(`  ${t.name} ${w.label}: ${e}`);
    }
  }
  return lines.length ? ['problems ("!" in the table = a check failed, FAIL = no figure, >x / <x = killed at that point):', ...lines] : [];
}

/** Issue 6: signing under 10% of untar time. */
const SIGN_SHARE_GOAL = 0.10;

/**
 * Where atefs's commits spent their time per workload (medians over runs): batches of the core,
 * DIO commits and events, main-thread build time, commit time (seal, hash, sign, validate,
 * append, index) and signing time, with signing as a share of the workload's wall time.
 */
export function commitSection(targets: Target[], workloads: Workload[], results: Results): string[] {
  const atefs = targets.filter((t) => t.kind === 'atefs' && !t.unavailable);
  const lines: string[] = [];
  for (const t of atefs) {
    for (const w of workloads) {
      const c = results.get(t.name)?.get(w.id);
      const samples = (c?.samples ?? []).filter((s) => s.commit);
      if (!samples.length) continue;
      const checkFailed = (c?.errors.length ?? 0) > 0;
      const med = (k: string): number => median(samples.map((s) => s.commit!.get(k) ?? 0)) ?? 0;
      const share = median(samples.map((s) => (s.commit!.get('signMs') ?? 0) / 1000 / s.seconds)) ?? 0;
      const wall = median(samples.map((s) => s.seconds)) ?? 0;
      const verdict = checkFailed ? 'n/a, check failed' : share < SIGN_SHARE_GOAL ? 'ok' : 'MISS';
      const goal = w.id === 'untar' ? ` (goal <${(SIGN_SHARE_GOAL * 100).toFixed(0)}%: ${verdict})` : '';
      lines.push(`  ${padR(t.name, 15)}${padR(w.label, 18)}signing ${(share * 100).toFixed(1)}% of ${fmt(wall, 's')} s wall${goal}; `
        + `${med('signs')} signatures ${(med('signMs') / 1000).toFixed(2)} s, ${med('batches')} batches ${(med('batchMs') / 1000).toFixed(2)} s `
        + `(${med('commits')} DIO commits, ${kfmt(med('events'))} events: build ${(med('buildMs') / 1000).toFixed(2)} s, commit ${(med('commitMs') / 1000).toFixed(2)} s)`);
    }
  }
  if (!lines.length) return [];
  return [
    'atefs commits per workload (medians; the commit after the workload\'s last change included; wall-clock sums):',
    '  signing = pool.sign() call to result (a worker thread: it delays commits, it does not hold the serving thread);',
    '  batches = the core\'s commits (store.commit wall time); build = records into DIOs (serving thread);',
    '  commit = dio.commit() (seal, hash, sign, validate, log append, index update)',
    ...lines,
  ];
}
