/**
 * The filesystems the benchmark compares. A target knows how to mount itself and how to undo it;
 * everything else (workloads, request counting, reporting) is target-agnostic. To add a column,
 * add a Target here (the kernel-transport columns are already wired and switch on by themselves
 * once their entry points exist).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { run, sh, spawnDaemon, waitExit, isAlive, onCleanup, type Daemon } from './proc.js';
import { unmountFuse, isMounted } from './mounts.js';
import { requestCounters, requestStats, spaceOf, type Counters, type Space } from './stats-file.js';
import { nonrootUnavailable, prepareNonroot, giveToUser, asUser } from './nonroot.js';

export type Transport = 'fuse-native' | 'kernel';
export type Kind = 'reference' | 'gocryptfs' | 'floor' | 'atefs';

export interface Mounted {
  /** Where the workloads run. */
  dir: string;
  /** PID of the process serving the mount (changes on remount), for CPU accounting. */
  pid?: number;
  /** Daemon-side per-op counters (the --stats-file / SIGUSR2 protocol). */
  counters?(): Promise<Counters | undefined>;
  /** Paths to `sync -f` before caches are dropped (the mount and its backing store). */
  syncPaths: string[];
  /** Where the data lands on the backing store (gocryptfs's cipherdir, atefs's log): its du is the space used. */
  storeDir?: string;
  /** atefs: live data and log size as the daemon counts them (its stats file's `space`). */
  space?(): Promise<Space | undefined>;
  /** Unmount and mount again with the same contents, so the daemon starts cold (persistent targets). */
  remount?(): Promise<void>;
  unmount(): Promise<void>;
}

/** Where a target keeps its data: the ratios pair atefs and gocryptfs on the same kind of store. */
export type Backing = 'memory' | 'tmpfs' | 'disk';

export interface Target {
  name: string;
  kind: Kind;
  transport?: Transport;
  backing?: Backing;
  /** One line describing what exactly runs. */
  note: string;
  /** Set when the target cannot run here; printed as n/a with this reason. */
  unavailable?: string;
  mount(): Promise<Mounted>;
}

export interface TargetEnv {
  root: string;          // repository root (dist/ lives here)
  work: string;          // per-run scratch directory on tmpfs
  diskWork: string;      // per-run scratch directory on the real disk
  /** Options both floors and atefs use, so the floor measures the same transport configuration. */
}

let seq = 0;
const fresh = (base: string, name: string): string => {
  const d = join(base, `${name}-${++seq}`);
  mkdirSync(d, { recursive: true });
  return d;
};

/** Stops a FUSE daemon: SIGTERM (it unmounts itself), then fusermount -u / -uz, then SIGKILL. */
async function stopDaemon(d: Daemon, dir: string, graceMs: number): Promise<void> {
  if (isAlive(d.pid)) {
    try { process.kill(d.pid, 'SIGTERM'); } catch { /* gone */ }
    await waitExit(d.pid, graceMs);
  }
  await unmountFuse(dir);
  if (isAlive(d.pid)) {
    try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ }
    await waitExit(d.pid, 5000);
  }
}

// ---------------------------------------------------------------- tmpfs

export function tmpfsTarget(env: TargetEnv): Target {
  return {
    name: 'tmpfs', kind: 'reference', note: 'a directory on /dev/shm (kernel, no FUSE)',
    async mount() {
      const dir = fresh(env.work, 'tmpfs');
      return { dir, syncPaths: [dir], async unmount() { rmSync(dir, { recursive: true, force: true }); } };
    },
  };
}

// ---------------------------------------------------------------- gocryptfs

export function gocryptfsTarget(env: TargetEnv, backing: 'tmpfs' | 'disk'): Target {
  const v = spawnSync('gocryptfs', ['-version'], { encoding: 'utf8' });
  const version = v.status === 0 ? v.stdout.split(';')[0]!.trim() : undefined;
  const name = backing === 'tmpfs' ? 'gocryptfs-shm' : 'gocryptfs-disk';
  return {
    name, kind: 'gocryptfs', backing,
    note: `${version ?? 'gocryptfs'} (go-fuse, its own FUSE protocol implementation), cipherdir ${backing === 'tmpfs' ? 'on tmpfs (/dev/shm)' : 'on the real disk (/var/tmp)'}, default options`,
    unavailable: version ? undefined : 'gocryptfs is not installed (scripts/bench-fs installs it with apt-get as root)',
    async mount() {
      const base = fresh(env.work, name);
      const cipher = backing === 'tmpfs' ? join(base, 'cipher') : fresh(env.diskWork, `${name}-cipher`);
      const dir = join(base, 'mnt');
      const pw = join(base, 'password');
      mkdirSync(cipher, { recursive: true }); mkdirSync(dir);
      writeFileSync(pw, 'atefs-bench-password\n');
      // -scryptn 10: the KDF cost only affects init/mount time, which is not measured.
      await run(`gocryptfs -init -quiet -scryptn 10 -passfile ${sh(pw)} ${sh(cipher)}`, { timeoutMs: 60000 });
      let d: Daemon;
      const start = async (): Promise<void> => {
        d = await spawnDaemon('gocryptfs', ['-fg', '-nosyslog', '-passfile', pw, cipher, dir], /Filesystem mounted and ready/, { timeoutMs: 30000 });
      };
      await start();
      const off = onCleanup(() => stopDaemon(d, dir, 5000));
      const m: Mounted = {
        dir, pid: d!.pid, syncPaths: [dir, cipher], storeDir: cipher,
        async remount() { await stopDaemon(d, dir, 5000); await start(); m.pid = d.pid; },
        async unmount() { off(); await stopDaemon(d, dir, 5000); rmSync(base, { recursive: true, force: true }); rmSync(cipher, { recursive: true, force: true }); },
      };
      return m;
    },
  };
}

// ---------------------------------------------------------------- daemons speaking the `mounted: <dir>` + --stats-file protocol

interface DaemonSpec {
  /** argv after `node`, given the mountpoint and the stats file. */
  argv(dir: string, statsFile: string): string[];
  /** Extra env (atefs gets private XDG dirs so the bench never touches a real identity). */
  env?: NodeJS.ProcessEnv;
  persistent: boolean;
  /** Directories of the backing store to sync before dropping caches. */
  backing: string[];
  /** The backing directory the data lands in (Mounted.storeDir). */
  storeDir?: string;
  graceMs: number;
  /** Run the daemon as the non-root user (nonroot.ts): base and backing directories become theirs. */
  nonroot?: boolean;
}

async function mountDaemon(env: TargetEnv, name: string, spec: (base: string) => DaemonSpec): Promise<Mounted> {
  const base = fresh(env.work, name);
  const dir = join(base, 'mnt');
  const statsFile = join(base, 'stats.json');
  mkdirSync(dir);
  const s = spec(base);
  const user = s.nonroot ? prepareNonroot() : undefined;
  let d: Daemon;
  const start = async (): Promise<void> => {
    if (user) giveToUser(user, [base, ...s.backing]);
    const launch = user ? asUser(user, s.argv(dir, statsFile)) : { cmd: process.execPath, args: s.argv(dir, statsFile) };
    d = await spawnDaemon(launch.cmd, launch.args, new RegExp(`^mounted: `), { timeoutMs: 30000, env: { ...process.env, ...s.env } });
    if (!isMounted(dir)) throw new Error(`${name} said "mounted" but ${dir} is not in the mount table`);
  };
  const off = onCleanup(() => stopDaemon(d, dir, s.graceMs));
  try { await start(); } catch (e) { off(); await unmountFuse(dir); throw e; }
  const m: Mounted = {
    dir, pid: d!.pid, syncPaths: [dir, ...s.backing], storeDir: s.storeDir,
    counters: () => requestCounters(d.pid, statsFile),
    space: async () => spaceOf(await requestStats(d.pid, statsFile)),
    async unmount() {
      off();
      await stopDaemon(d, dir, s.graceMs);
      rmSync(base, { recursive: true, force: true });
      for (const b of s.backing) rmSync(b, { recursive: true, force: true });
    },
  };
  if (s.persistent) m.remount = async () => { await stopDaemon(d, dir, s.graceMs); await start(); m.pid = d.pid; };
  return m;
}

// ---------------------------------------------------------------- floors

/**
 * The store-dependent mount options atefs derives (cli/mount-store.ts: a temp or local chain gets
 * 60 s kernel caches and kernel_cache); the floor is mounted with the same, through the same
 * fuseNativeOptions(), so both see the same libfuse configuration.
 */
export interface FloorOptions { cacheTimeout: number; kernelCache: boolean }

export function floorFuseNativeTarget(env: TargetEnv, opts: FloorOptions): Target {
  const script = join(env.root, 'dist/scripts/bench/floor-fuse-native.js');
  return {
    name: 'floor-fn', kind: 'floor', transport: 'fuse-native',
    note: `trivial in-memory fs (path-keyed Map) through fuse-native, atefs's options and dispatch (cache ${opts.cacheTimeout} s${opts.kernelCache ? ', local' : ''})`,
    unavailable: existsSync(script) ? undefined : `${script} missing (npm run build)`,
    mount: () => mountDaemon(env, 'floor-fn', () => ({
      argv: (dir, stats) => [script, dir, '--stats-file', stats, '--cache-timeout', String(opts.cacheTimeout), ...(opts.kernelCache ? [] : ['--no-kernel-cache'])],
      persistent: false, backing: [], graceMs: 5000,
    })),
  };
}

/**
 * The kernel-transport floor: a trivial in-memory FsCore (lib/floor-core.ts) served by fs/kernel's
 * mountKernel with atefs's options (scripts/bench/floor-kernel.ts; same daemon contract as
 * floor-fuse-native: `<dir> --stats-file F`, `mounted: <dir>`, SIGUSR2, SIGTERM). Root only.
 */
export function floorKernelTarget(env: TargetEnv, opts: FloorOptions): Target {
  const script = join(env.root, 'dist/scripts/bench/floor-kernel.js');
  const unavailable = !existsSync(script) ? `${script} missing (npm run build)`
    : !existsSync(join(env.root, 'dist/fs/kernel/index.js')) ? 'fs/kernel (kernel transport) not built'
    : process.getuid?.() !== 0 ? 'the kernel transport mounts with mount(2): root only' : undefined;
  return {
    name: 'floor-k', kind: 'floor', transport: 'kernel', unavailable,
    note: `trivial in-memory FsCore through the /dev/fuse kernel transport, atefs's mount options (cache ${opts.cacheTimeout} s)`,
    mount: () => mountDaemon(env, 'floor-k', () => ({
      argv: (dir, stats) => [script, dir, '--stats-file', stats, '--cache-timeout', String(opts.cacheTimeout)],
      persistent: false, backing: [], graceMs: 10000,
    })),
  };
}

// ---------------------------------------------------------------- atefs

export interface AtefsCli { ok: boolean; help: string; reason?: string }

export function probeAtefsCli(root: string): AtefsCli {
  const cli = join(root, 'dist/cli/atefs.js');
  if (!existsSync(cli)) return { ok: false, help: '', reason: 'dist/cli/atefs.js missing (npm run build)' };
  const r = spawnSync(process.execPath, [cli, 'mount', '--help'], { encoding: 'utf8', timeout: 30000 });
  const help = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const missing = ['--temp', '--transport', '--stats-file'].filter((o) => !help.includes(o));
  if (r.status !== 0 || missing.length) {
    return { ok: false, help, reason: `atefs mount CLI not ready (exit ${r.status}${missing.length ? `, --help lacks ${missing.join(' ')}` : ''})` };
  }
  return { ok: true, help };
}

export type AtefsStore = 'temp' | 'log-tmpfs' | 'log-disk';

/**
 * An atefs mount. `nonroot`: the daemon runs as the user atefs-nonroot (nonroot.ts) and mounts the
 * kernel transport through the setuid fusermount, with --allow-other; its name gets a `u`
 * (atefs-ku-disk).
 */
export function atefsTarget(env: TargetEnv, cli: AtefsCli, transport: Transport, store: AtefsStore, nonroot = false): Target {
  const t = transport === 'fuse-native' ? 'fn' : nonroot ? 'ku' : 'k';
  const name = store === 'temp' ? `atefs-${t}` : `atefs-${t}-${store === 'log-tmpfs' ? 'shm' : 'disk'}`;
  const script = join(env.root, 'dist/cli/atefs.js');
  let unavailable = cli.ok ? undefined : cli.reason;
  if (!unavailable && store !== 'temp' && !cli.help.includes('--log-path')) unavailable = 'atefs mount has no --log-path yet';
  if (!unavailable && transport === 'kernel') {
    if (!existsSync(join(env.root, 'dist/fs/kernel/index.js'))) unavailable = 'fs/kernel (kernel transport) not built yet';
    else if (!/kernel/.test(cli.help)) unavailable = 'atefs mount --help does not offer --transport kernel yet';
  }
  if (!unavailable && nonroot) unavailable = !cli.help.includes('--allow-other') ? 'atefs mount has no --allow-other' : nonrootUnavailable();
  const storeNote = store === 'temp' ? '--temp' : store === 'log-tmpfs' ? '--log-path on tmpfs' : '--log-path on the real disk';
  return {
    name, kind: 'atefs', transport, unavailable, backing: store === 'temp' ? 'memory' : store === 'log-tmpfs' ? 'tmpfs' : 'disk',
    note: `atefs mount ${storeNote} --transport ${transport}${nonroot ? ` --allow-other, as the user atefs-nonroot (setpriv; mounted through the setuid fusermount)` : ''}`,
    mount: () => mountDaemon(env, name, (base) => {
      const xdg = join(base, 'xdg');
      const logDir = store === 'log-disk' ? fresh(env.diskWork, `${name}-log`) : join(base, 'log');
      mkdirSync(logDir, { recursive: true });
      const storeArgs = store === 'temp' ? ['--temp'] : ['--log-path', resolve(logDir)];
      if (nonroot) mkdirSync(join(xdg, 'run'), { recursive: true, mode: 0o700 });
      return {
        argv: (dir, stats) => [script, 'mount', dir, ...storeArgs, '--transport', transport, ...(nonroot ? ['--allow-other'] : []), '--stats-file', stats],
        env: {
          XDG_DATA_HOME: join(xdg, 'data'), XDG_CONFIG_HOME: join(xdg, 'config'), XDG_STATE_HOME: join(xdg, 'state'), XDG_CACHE_HOME: join(xdg, 'cache'),
          ...(nonroot ? { HOME: xdg, USER: 'atefs-nonroot', LOGNAME: 'atefs-nonroot', XDG_RUNTIME_DIR: join(xdg, 'run') } : {}),
        },
        persistent: store !== 'temp',
        nonroot,
        backing: store === 'temp' ? [] : [logDir],
        storeDir: store === 'temp' ? undefined : logDir,
        graceMs: 30000, // unmount commits everything dirty; on the real disk that can take a while
      };
    }),
  };
}

export function allTargets(env: TargetEnv, floor: FloorOptions): Target[] {
  const cli = probeAtefsCli(env.root);
  return [
    tmpfsTarget(env),
    gocryptfsTarget(env, 'tmpfs'),
    gocryptfsTarget(env, 'disk'),
    floorFuseNativeTarget(env, floor),
    atefsTarget(env, cli, 'fuse-native', 'temp'),
    atefsTarget(env, cli, 'fuse-native', 'log-tmpfs'),
    atefsTarget(env, cli, 'fuse-native', 'log-disk'),
    floorKernelTarget(env, floor),
    atefsTarget(env, cli, 'kernel', 'temp'),
    atefsTarget(env, cli, 'kernel', 'log-tmpfs'),
    atefsTarget(env, cli, 'kernel', 'log-disk'),
    atefsTarget(env, cli, 'kernel', 'log-disk', true),
  ];
}

