/**
 * The daemon counters protocol shared by `atefs mount --stats-file F` and the bench floors:
 * on SIGUSR2 the daemon writes a JSON object of counters to F (and once more at unmount).
 * Any nesting is accepted; numeric leaves are flattened to dotted keys.
 */
import { readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { sleep } from './proc.js';

export type Counters = Map<string, number>;

export function flatten(obj: unknown, prefix = '', out: Counters = new Map()): Counters {
  if (typeof obj === 'number' && Number.isFinite(obj)) out.set(prefix, obj);
  else if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

/** Asks the daemon for its counters and waits until it has written a complete JSON file. */
export async function requestCounters(pid: number, file: string, timeoutMs = 5000): Promise<Counters | undefined> {
  rmSync(file, { force: true });
  try { process.kill(pid, 'SIGUSR2'); } catch { return undefined; }
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    await sleep(20);
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch { continue; }
    let body: unknown;
    try { body = JSON.parse(text); } catch { continue; /* partially written: retry */ }
    // atefs and the floors put the per-op counters under `counters`; anything else is metadata.
    const c = (body as { counters?: unknown }).counters;
    return flatten(c && typeof c === 'object' ? c : body);
  }
  return undefined;
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
