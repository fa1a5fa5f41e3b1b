import { readFileSync } from 'node:fs';

/**
 * The supplementary groups of the process behind a FUSE request. The request header carries the
 * caller's fsuid, fsgid and pid only; Linux's group rules (group permission bits, chgrp by the
 * owner, keeping S_ISGID on chmod) hold for every group the caller is in, so the rest are read
 * from /proc/<pid>/status ("Groups:"), as other FUSE servers do.
 *
 * Read only when a rule needs a group other than the primary one, and cached per pid for
 * TTL_MS: a build running thousands of requests per second costs a /proc read per process per
 * second. A pid reused by another process inside TTL_MS could see the old process's groups for
 * the rest of it; setgroups(2) in a running process shows after TTL_MS at most. A process that
 * has exited by the time we look has no groups (its request is checked with the primary gid),
 * and so has pid 0 (a caller in another pid namespace, or the kernel itself).
 */

const TTL_MS = 1000;
const MAX_ENTRIES = 4096;

interface Entry { at: number; groups: ReadonlySet<number> }
const NONE: ReadonlySet<number> = new Set();

export function parseStatusGroups(status: string): Set<number> {
  const m = /^Groups:[ \t]*([0-9 \t]*)$/m.exec(status);
  const out = new Set<number>();
  if (m === null) return out;
  for (const g of m[1]!.trim().split(/\s+/)) if (g !== '') out.add(Number(g));
  return out;
}

export class CallerGroups {
  private readonly cache = new Map<number, Entry>();
  /** /proc reads done (tests, counters). */
  reads = 0;

  constructor(private readonly procRoot = '/proc', private readonly now: () => number = Date.now) {}

  /** The supplementary groups of process `pid` (empty when unknown). */
  groups(pid: number): ReadonlySet<number> {
    if (!(pid > 0)) return NONE;
    const t = this.now();
    const hit = this.cache.get(pid);
    if (hit !== undefined && t - hit.at < TTL_MS) return hit.groups;
    let groups: ReadonlySet<number> = NONE;
    try {
      this.reads++;
      groups = parseStatusGroups(readFileSync(`${this.procRoot}/${pid}/status`, 'utf8'));
    } catch { /* exited already: no groups */ }
    if (this.cache.size >= MAX_ENTRIES) {
      // Drop the oldest half (insertion order): a burst of short-lived processes stays bounded.
      let n = this.cache.size >> 1;
      for (const k of this.cache.keys()) { if (n-- <= 0) break; this.cache.delete(k); }
    }
    this.cache.delete(pid);
    this.cache.set(pid, { at: t, groups });
    return groups;
  }

  has(pid: number, gid: number): boolean {
    return this.groups(pid).has(gid);
  }
}
