/**
 * Mount-table helpers that never touch the mountpoint itself: stat() on a hung FUSE mount blocks,
 * so everything here reads /proc/self/mountinfo instead.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { run, sh, sleep } from './proc.js';

interface MountInfo { dir: string; fstype: string; major: number; minor: number; source: string }

function mountTable(): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre!.split(' ');
    const [maj, min] = f[2]!.split(':').map(Number);
    const g = (post ?? '').split(' ');
    out.push({ dir: unescape(f[4]!), fstype: g[0] ?? '', major: maj!, minor: min!, source: g[1] ?? '' });
  }
  return out;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function mountOf(dir: string): MountInfo | undefined {
  const abs = resolve(dir);
  return mountTable().reverse().find((m) => m.dir === abs);
}

export const isMounted = (dir: string): boolean => mountOf(dir) !== undefined;

/**
 * The FUSE connection number (kernel dev_t of an anonymous device, i.e. its minor) of a mount,
 * as used by /sys/fs/fuse/connections/<n> and the fuse_request_* tracepoints.
 */
export function fuseConnection(dir: string): number | undefined {
  const m = mountOf(dir);
  if (!m || !m.fstype.startsWith('fuse')) return undefined;
  return (m.major << 20) | m.minor;
}

/** Aborts a FUSE connection: every pending and future request fails, so a hung client can exit. */
export function abortFuse(conn: number): void {
  const ctl = '/sys/fs/fuse/connections';
  try {
    // fusectl is not a FUSE mount, so a synchronous mount here cannot deadlock on the hung one.
    if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(' - fusectl ')) spawnSync('mount', ['-t', 'fusectl', 'none', ctl]);
    if (existsSync(`${ctl}/${conn}/abort`)) writeFileSync(`${ctl}/${conn}/abort`, '1');
  } catch { /* best effort: not root, or already gone */ }
}

/** fusermount -u, retried while busy, then a lazy -uz. Returns how it ended. */
export async function unmountFuse(dir: string, tries = 10): Promise<'not-mounted' | 'unmounted' | 'lazy'> {
  if (!isMounted(dir)) return 'not-mounted';
  for (let i = 0; i < tries; i++) {
    await run(`fusermount -u ${sh(dir)}`, { check: false, timeoutMs: 15000 }).catch(() => undefined);
    if (!isMounted(dir)) return 'unmounted';
    await sleep(200);
  }
  const conn = fuseConnection(dir);
  await run(`fusermount -uz ${sh(dir)}`, { check: false, timeoutMs: 15000 }).catch(() => undefined);
  if (conn !== undefined) abortFuse(conn);
  return 'lazy';
}

