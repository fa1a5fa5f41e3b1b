/**
 * The daemon counters protocol shared by `atefs mount --stats-file F` and the bench floors:
 * on SIGUSR2 the daemon writes a JSON object of counters to F (and once more at unmount).
 * Any nesting is accepted; numeric leaves are flattened to dotted keys.
 */
import { readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { sleep } from './proc.js';

export type Counters = Map<string, number>;

/** Prefix of the daemon's commit counters (atefs: cli/mount.ts commitCounters) among the op counters. */
export const COMMIT_PREFIX = 'commit.';

export function flatten(obj: unknown, prefix = '', out: Counters = new Map()): Counters {
  if (typeof obj === 'number' && Number.isFinite(obj)) out.set(prefix, obj);
  else if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

/** Asks the daemon for its stats and waits until it has written a complete JSON file; its body. */
export async function requestStats(pid: number, file: string, timeoutMs = 5000): Promise<unknown> {
  rmSync(file, { force: true });
  try { process.kill(pid, 'SIGUSR2'); } catch { return undefined; }
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    await sleep(20);
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    try { return JSON.parse(text) as unknown; } catch { continue; /* partially written: retry */ }
  }
  return undefined;
}

/** Asks the daemon for its counters (requestStats), flattened. */
export async function requestCounters(pid: number, file: string, timeoutMs = 5000): Promise<Counters | undefined> {
  const body = await requestStats(pid, file, timeoutMs);
  if (body === undefined) return undefined;
  // atefs and the floors put the per-op counters under `counters`; atefs adds commit counters
  // and times under `commit` (they become commit.* keys); anything else is metadata.
  const c = (body as { counters?: unknown }).counters;
  const out = flatten(c && typeof c === 'object' ? c : body);
  const commit = (body as { commit?: unknown }).commit;
  if (commit && typeof commit === 'object') flatten(commit, COMMIT_PREFIX.slice(0, -1), out);
  return out;
}

/** atefs's `space` in its stats (cli/mount.ts storeSpace): live data (what df shows) and its log's own count. */
export interface Space { liveBytes?: number; logBytes?: number }

export function spaceOf(body: unknown): Space | undefined {
  const s = (body as { space?: unknown } | undefined)?.space;
  if (!s || typeof s !== 'object') return undefined;
  const { liveBytes, logBytes } = s as Record<string, unknown>;
  const out: Space = {};
  if (typeof liveBytes === 'number') out.liveBytes = liveBytes;
  if (typeof logBytes === 'number') out.logBytes = logBytes;
  return out;
}

export function diffCounters(before: Counters | undefined, after: Counters | undefined): Counters | undefined {
  if (!before || !after) return undefined;
  const d: Counters = new Map();
  for (const [k, v] of after) {
    const dv = v - (before.get(k) ?? 0);
    if (dv !== 0) d.set(k, dv);
  }
  return d;
}

/** Daemon side: writes counters atomically so a reader never sees half a file. */
export function writeCountersFile(file: string, data: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(data));
  renameSync(tmp, file);
}

/** Only the commit.* counters, without the prefix. */
export function commitCounters(c: Counters | undefined): Counters | undefined {
  if (!c) return undefined;
  const out: Counters = new Map();
  for (const [k, v] of c) if (k.startsWith(COMMIT_PREFIX)) out.set(k.slice(COMMIT_PREFIX.length), v);
  return out.size ? out : undefined;
}

/**
 * Counters once the daemon's last change has been committed (commit.unsettled 0; at most
 * `timeoutMs`), so a workload's commit figures include the commit its last second of changes
 * gets after it ended. Undefined for daemons without commit counters.
 */
export async function settledCounters(read: () => Promise<Counters | undefined>, timeoutMs = 10000): Promise<Counters | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const c = await read();
    if (!c || !c.has(`${COMMIT_PREFIX}unsettled`)) return undefined;
    if (c.get(`${COMMIT_PREFIX}unsettled`) === 0 || Date.now() > end) return c;
    await sleep(100);
  }
}
