/**
 * The canonical encrypted-filesystem workload set. Each workload is one shell command timed from
 * spawn to exit (untar and rm -rf end when the data is durable: see durable()),
 * run in order on a fresh mount (write -> read -> untar -> md5sum -> ls -lR -> rm),
 * each after the target's data is synced and the kernel's caches are dropped, and each checked
 * afterwards (bytes read back, checksums of every file, empty directory after rm).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, sh, type RunResult } from './proc.js';
import type { Mounted, Target } from './fs-targets.js';
import type { Tree } from './tree.js';
import type { DurabilityCtx, SpaceMonitor, SpacePoint } from './fs-durability.js';

export interface WorkloadCtx {
  seqFile: string;
  seqBytes: number;
  tree: Tree;
  /** tmpfs directory for command output that must not go through the target. */
  scratch: string;
  /** Settings of the durability workloads (fs-durability.ts). */
  durability?: DurabilityCtx;
}

/** 'MB/s' and 'tx/s': higher is better; 's', 'ms' and 'x' (a size ratio): lower is better. */
export type Unit = 'MB/s' | 'tx/s' | 's' | 'ms' | 'x';
export const lowerIsBetter = (u: Unit): boolean => u === 's' || u === 'ms' || u === 'x';

export interface Workload {
  id: string;
  label: string;
  unit: Unit;
  /**
   * A row whose figure comes from another workload's run (that workload's measure() names it):
   * never run by itself, shown and compared like any other.
   */
  of?: string;
  /** No speed ratio for this row (an absolute goal applies instead). */
  noRatio?: boolean;
  /** Only on these targets (others show n/a); all when absent. */
  applies?(t: Target): boolean;
  /** Samples the backing store while the command runs (the rewrite workload's space over time). */
  monitor?(m: Mounted, ctx: WorkloadCtx): SpaceMonitor;
  /**
   * Figures read from the command's output (and the monitor's points), by row id: this workload's
   * own and those of its `of` rows. Without it, figure(seconds).
   */
  measure?(r: RunResult, ctx: WorkloadCtx, series?: SpacePoint[]): Record<string, number>;
  /**
   * Its own time limit, instead of bench:fs's (10x the slowest gocryptfs, at most BENCH_TIMEOUT_S):
   * for a workload whose point is not its speed.
   */
  timeoutMs?(ctx: WorkloadCtx): number;
  /** Workload ids whose success this one needs (skipped otherwise). */
  needs: string[];
  /** Untimed preparation, before caches are dropped. */
  before?(m: Mounted, ctx: WorkloadCtx): Promise<void>;
  script(m: Mounted, ctx: WorkloadCtx): string;
  /** The figure from the command's wall time; for a killed command, the bound it gives (none: no bound). */
  figure?(seconds: number, ctx: WorkloadCtx): number;
  /** Untimed check; returns what is wrong, or undefined. */
  check?(m: Mounted, ctx: WorkloadCtx, r: RunResult): Promise<string | undefined>;
  /** Untimed clean-up after the check. */
  after?(m: Mounted, ctx: WorkloadCtx): Promise<void>;
}

const mbps = (seconds: number, ctx: WorkloadCtx): number => ctx.seqBytes / seconds / 1e6;

/**
 * Until the data is durable, for every target alike: an fsync of the mount's root directory (FUSE
 * does not forward syncfs, fsyncdir it does: atefs commits everything dirty and fdatasyncs its
 * log), then syncfs of the mount and its backing store (gocryptfs's cipherdir, atefs's log).
 */
export const durable = (m: Mounted): string => `sync ${sh(m.dir)} && sync -f ${[m.dir, ...m.syncPaths.filter((p) => p !== m.dir)].map(sh).join(' ')}`;
const secs = (seconds: number): number => seconds;

export const WORKLOADS: Workload[] = [
  {
    id: 'write', label: 'seq write+fsync', unit: 'MB/s', needs: [],
    script: (m, c) => `dd if=${sh(c.seqFile)} of=${sh(join(m.dir, 'seq.bin'))} bs=1M conv=fsync status=none`,
    figure: mbps,
  },
  {
    id: 'read', label: 'seq read (cold)', unit: 'MB/s', needs: ['write'],
    // Cold alike for every target: the kernel's caches are dropped before it (fs.ts), and no target
    // is remounted — the in-memory ones (tmpfs, floors, --temp) cannot be, and remounting only some
    // would make their reads colder than the others'. Daemons keep their own in-process caches.
    script: (m) => `dd if=${sh(join(m.dir, 'seq.bin'))} of=/dev/null bs=1M status=none`,
    figure: mbps,
    async check(m, c) {
      const r = await run(`cmp ${sh(c.seqFile)} ${sh(join(m.dir, 'seq.bin'))}`, { check: false, timeoutMs: 300000 });
      return r.code === 0 ? undefined : `read-back differs from what was written: ${(r.stdout + r.stderr).trim().slice(0, 200)}`;
    },
    async after(m) { await run(`rm -f ${sh(join(m.dir, 'seq.bin'))}`, { timeoutMs: 120000 }); },
  },
  {
    id: 'untar', label: 'untar', unit: 's', needs: [],
    async before(m) { await run(`mkdir ${sh(join(m.dir, 'tree'))}`, { timeoutMs: 60000 }); },
    // Timed until the data is durable: atefs's trailing commit counts as gocryptfs's writes do.
    script: (m, c) => `tar -xf ${sh(c.tree.tar)} -C ${sh(join(m.dir, 'tree'))} && ${durable(m)}`,
    figure: secs,
  },
  {
    id: 'md5sum', label: 'md5sum all files', unit: 's', needs: ['untar'],
    script: (m, c) => `cd ${sh(join(m.dir, 'tree'))} && find . -type f -print0 | xargs -0 md5sum > ${sh(join(c.scratch, 'md5.out'))}`,
    figure: secs,
    async check(_m, c) {
      const got = readFileSync(join(c.scratch, 'md5.out'), 'utf8').split('\n').filter(Boolean).sort(cmpC).join('\n');
      const want = c.tree.md5.split('\n').filter(Boolean).sort(cmpC).join('\n');
      if (got === want) return undefined;
      const g = new Set(got.split('\n'));
      const bad = want.split('\n').filter((l) => !g.has(l));
      return `${bad.length} files missing or with wrong content, e.g. ${bad.slice(0, 2).join('; ')}`;
    },
  },
  {
    id: 'ls', label: 'ls -lR', unit: 's', needs: ['untar'],
    script: (m) => `ls -lR ${sh(join(m.dir, 'tree'))} > /dev/null`,
    figure: secs,
  },
  {
    id: 'rm', label: 'rm -rf', unit: 's', needs: ['untar'],
    script: (m) => `rm -rf ${sh(join(m.dir, 'tree'))} && ${durable(m)}`,
    figure: secs,
    async check(m) {
      const r = await run(`ls -A ${sh(join(m.dir, 'tree'))}`, { timeoutMs: 60000, check: false });
      return r.code === 0 ? `still there after rm -rf: ${r.stdout.trim().slice(0, 200) || 'an empty tree/'}` : undefined;
    },
  },
];

// Byte order, like LC_ALL=C sort, so the comparison does not depend on the locale.
const cmpC = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
