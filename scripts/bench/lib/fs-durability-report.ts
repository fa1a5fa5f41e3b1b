/**
 * The durability part of bench:fs's report: issue 17's goal lines (atefs vs the gocryptfs on the
 * same kind of store, MET / NOT MET) and the rewrite workload's store size / live data over time.
 */
import type { Target } from './fs-targets.js';
import type { Workload } from './fs-workloads.js';
import { cellValue, gocryptfsFor, median, type Results } from './fs-report.js';
import { logBound, spaceVerdict, MiB, LOG_SLACK_BYTES, type SpacePoint } from './fs-durability.js';

const padR = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const pad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const mib = (b: number): string => (b / MiB).toFixed(0);

/**
 * Every space point of a target's rewrite runs (all runs: the goal holds only if it held
 * throughout), killed runs' points up to the kill included; `complete`: no run was killed.
 */
export function spacePoints(results: Results, target: string): SpacePoint[][] {
  const c = results.get(target)?.get('rewrite');
  return [...(c?.samples ?? []).map((s) => s.series ?? []), ...(c?.partialSeries ?? [])].filter((s) => s.length);
}

/** "1.23x" or "n/a (why)" for atefs/gocryptfs of a lower-is-better cost; `ratio` undefined when not derivable. */
export function costRatio(results: Results, a: Target, g: Target | undefined, w: Workload): { ratio?: number; why?: string } {
  if (!g) return { why: 'no gocryptfs on the same store' };
  const av = cellValue(results, a, w);
  const gv = cellValue(results, g, w);
  if (av.failed || gv.failed) return { why: 'check failed' };
  if (av.v === undefined) return { why: `atefs ${av.text}` };
  if (gv.v === undefined || gv.bound) return { why: `${g.name} ${gv.text}` };
  // Cost: time per operation. 'tx/s' and 'MB/s' are speeds: their inverse ratio.
  const ratio = w.unit === 'ms' || w.unit === 's' ? av.v / gv.v : gv.v / av.v;
  // A killed atefs run: its cost is at least this.
  return av.bound ? { ratio, why: 'at least (killed)' } : { ratio };
}

interface CostGoal { id: string; text: string; max: number }
const COST_GOALS: CostGoal[] = [
  { id: 'fsync', text: 'fsync p50 <= 2x gocryptfs', max: 2 },
  { id: 'sqlite-wal', text: 'SQLite WAL time <= 1.5x gocryptfs', max: 1.5 },
  { id: 'sqlite-journal', text: 'SQLite journal time <= 1.5x gocryptfs', max: 1.5 },
];

/** Issue 17's goal lines for every atefs target that ran a durability workload. */
export function durabilityGoals(targets: Target[], workloads: Workload[], results: Results): string[] {
  const atefs = targets.filter((t) => t.kind === 'atefs' && !t.unavailable && workloads.some((w) => results.get(t.name)?.has(w.id)));
  if (!atefs.length) return [];
  const lines = ['goals of issue 17 (atefs vs the gocryptfs on the same kind of store, this run; no verdict where a check failed):'];
  for (const goal of COST_GOALS) {
    const w = workloads.find((x) => x.id === goal.id);
    if (!w) continue;
    for (const a of atefs) {
      const g = gocryptfsFor(targets, a);
      const { ratio, why } = costRatio(results, a, g, w);
      const av = cellValue(results, a, w).text;
      const gv = g ? cellValue(results, g, w).text : 'n/a';
      const verdict = ratio === undefined ? `n/a (${why})` : `${ratio.toFixed(2)}x${why ? ` ${why}` : ''}  ${ratio <= goal.max ? 'MET' : 'NOT MET'}`;
      lines.push(`  ${padR(goal.text, 38)}${padR(a.name, 15)}${padR(`${av} ${w.unit} vs ${g?.name ?? 'gocryptfs'} ${gv} ${w.unit}`, 50)}  ${verdict}`);
    }
  }
  if (workloads.some((w) => w.id === 'rewrite')) {
    for (const a of atefs) {
      const c = results.get(a.name)?.get('rewrite');
      const runs = spacePoints(results, a.name);
      const text = `log <= 2x live + ${LOG_SLACK_BYTES / MiB} MiB`;
      if (!runs.length) { lines.push(`  ${padR(text, 38)}${padR(a.name, 15)}n/a (${c?.errors[0]?.slice(0, 80) ?? 'no samples'})`); continue; }
      const v = spaceVerdict(runs.flat());
      const p = v.peak!;
      const killed = (c?.partialSeries?.length ?? 0) > 0;
      // A killed run that already went over the bound did not meet it; one that stayed within
      // until then proves nothing. A run whose read-back failed gets no verdict.
      const failed = !killed && (c?.errors.length ?? 0) > 0;
      const verdict = failed ? 'n/a (check failed)' : !v.within ? `NOT MET${killed ? ' (before it was killed)' : ''}` : killed ? 'n/a (killed before the end)' : 'MET';
      const over = runs.flat().filter((x) => x.storeBytes > logBound(x.liveBytes)).length;
      lines.push(`  ${padR(text, 38)}${padR(a.name, 15)}${padR(`worst: log ${mib(p.storeBytes)} MiB, live ${mib(p.liveBytes)} MiB (bound ${mib(logBound(p.liveBytes))}) at ${p.t.toFixed(0)} s; ${over} of ${runs.flat().length} samples over`, 50)}  ${verdict}`);
    }
    for (const a of atefs) lines.push(stallGoal(targets, results, a));
    for (const a of atefs) lines.push(dfGoal(results, a));
  }
  return lines;
}

/** Issue 17's stall goal: the rewrite's longest write or fsync under 100 ms (gocryptfs's beside it: the machine's share). */
function stallGoal(targets: Target[], results: Results, a: Target): string {
  const text = 'writer stall < 100 ms (longest call)';
  const c = results.get(a.name)?.get('rewrite-stall');
  const v = median(c?.samples.map((s) => s.value) ?? []);
  const g = gocryptfsFor(targets, a);
  const gv = g ? median(results.get(g.name)?.get('rewrite-stall')?.samples.map((s) => s.value) ?? []) : undefined;
  const ref = gv !== undefined ? ` (${g!.name} ${gv.toFixed(1)} ms)` : '';
  const p99 = median(results.get(a.name)?.get('rewrite-fsync-p99')?.samples.map((s) => s.value) ?? []);
  const p50 = median(results.get(a.name)?.get('rewrite-fsync-p50')?.samples.map((s) => s.value) ?? []);
  if (v === undefined) return `  ${padR(text, 38)}${padR(a.name, 15)}n/a (${results.get(a.name)?.get('rewrite')?.errors[0]?.slice(0, 80) ?? 'not measured'})`;
  const failed = (results.get(a.name)?.get('rewrite')?.errors.length ?? 0) > 0;
  const fig = `${v.toFixed(1)} ms${p50 !== undefined ? `, fsync p50 ${p50.toFixed(1)}` : ''}${p99 !== undefined ? `${p50 !== undefined ? '' : ','} fsync p99 ${p99.toFixed(1)} ms` : ''}${ref}`;
  return `  ${padR(text, 38)}${padR(a.name, 15)}${padR(fig, 50)}  ${failed ? 'n/a (check failed)' : v < 100 ? 'MET' : 'NOT MET'}`;
}

/**
 * df on the mount against the live data: at the end of the writes (everything committed) df's
 * used must be the daemon's live count (within 1 MiB); the largest difference over the samples
 * is shown too (df and the count are read a few ms apart while the writer changes them).
 */
function dfGoal(results: Results, a: Target): string {
  const text = 'df used = live data';
  const pts = spacePoints(results, a.name).flat().filter((p) => p.dfUsedBytes !== undefined && p.liveFrom === 'daemon');
  if (!pts.length) return `  ${padR(text, 38)}${padR(a.name, 15)}n/a (no df samples)`;
  const end = pts[pts.length - 1]!;
  const worst = Math.max(...pts.map((p) => Math.abs(p.dfUsedBytes! - p.liveBytes)));
  const fig = `end: df ${mib(end.dfUsedBytes!)} MiB, live ${mib(end.liveBytes)} MiB; largest difference ${(worst / MiB).toFixed(1)} MiB`;
  return `  ${padR(text, 38)}${padR(a.name, 15)}${padR(fig, 50)}  ${Math.abs(end.dfUsedBytes! - end.liveBytes) <= MiB ? 'MET' : 'NOT MET'}`;
}

/** Up to `n` points spread over the run, with the worst one and the last one always among them. */
export function pickPoints(points: SpacePoint[], n: number): SpacePoint[] {
  if (points.length <= n) return points;
  const keep = new Set<number>([points.length - 1]);
  const worst = spaceVerdict(points).peak;
  if (worst) keep.add(points.indexOf(worst));
  for (let i = 0; keep.size < n && i < n; i++) keep.add(Math.round((i * (points.length - 1)) / (n - 1)));
  return [...keep].sort((a, b) => a - b).map((i) => points[i]!);
}

/**
 * The rewrite's store size / live data over time, first run, per target that ran it: every sample
 * (the bound must hold at each). atefs adds du of log/ and index/, the daemon's own log count and
 * df on the mount; every target, the longest write/fsync since the previous sample.
 */
export function spaceSection(targets: Target[], results: Results): string[] {
  const lines: string[] = [];
  for (const t of targets) {
    const first = spacePoints(results, t.name)[0];
    if (!first) continue;
    const killed = !results.get(t.name)?.get('rewrite')?.samples.length;
    const from = `${first.some((p) => p.liveFrom === 'daemon') ? 'live = daemon\'s count' : 'live = file size'}${killed ? '; KILLED: samples until then' : ''}`;
    lines.push(`  ${padR(t.name, 15)}${from}; ${first.length} samples`);
    const partNames = [...new Set(first.flatMap((p) => Object.keys(p.parts ?? {})))].filter((n) => n === 'log' || n === 'index');
    const hasLog = first.some((p) => p.daemonLogBytes !== undefined);
    const hasDf = first.some((p) => p.dfUsedBytes !== undefined);
    const heads = ['t s', 'written', 'store du', ...partNames.map((n) => `${n}/ du`), ...(hasLog ? ['log count'] : []), 'live',
      ...(hasDf ? ['df used'] : []), 'store/live', 'bound', 'stall ms'];
    lines.push(`  ${padR('(MiB)', 15)}${heads.map((h) => pad(h, 11)).join('')}`);
    for (const p of first) {
      const cols = [p.t.toFixed(1), mib(p.written), mib(p.storeBytes), ...partNames.map((n) => (p.parts?.[n] !== undefined ? mib(p.parts[n]!) : '-')),
        ...(hasLog ? [p.daemonLogBytes !== undefined ? mib(p.daemonLogBytes) : '-'] : []), mib(p.liveBytes),
        ...(hasDf ? [p.dfUsedBytes !== undefined ? mib(p.dfUsedBytes) : '-'] : []),
        p.liveBytes ? `${(p.storeBytes / p.liveBytes).toFixed(2)}x` : '-',
        `${mib(logBound(p.liveBytes))}${p.storeBytes > logBound(p.liveBytes) ? ' over' : ''}`,
        p.stallMs !== undefined ? p.stallMs.toFixed(0) : '-'];
      lines.push(`  ${padR('', 15)}${cols.map((c) => pad(c, 11)).join('')}`);
    }
  }
  return lines.length ? [
    'rewrite: store size (du) / live data over time (first run; every sample while it writes and while it settles after, last row = the end; MiB;',
    '  log count = the daemon\'s own count of its log; stall = longest write/fsync since the previous sample):', ...lines] : [];
}
