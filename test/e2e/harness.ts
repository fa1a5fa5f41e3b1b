/**
 * E2E harness: real `atefs mount` daemons (node dist/cli/atefs.js) on temp directories.
 *
 * Every mount is undone by path (fusermount -u, then -uz when busy, then aborting the FUSE
 * connection through fusectl as the last resort) and its daemon killed by PID, whatever the test
 * did. The test process is not the daemon, so synchronous fs calls on the mount are safe here;
 * tests still prefer child tools (tar, cp, git...) for realism.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, statSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect } from 'vitest';
import { findMount, unmountByPath } from '../../fs/daemon/mounttab.js';
import { NONROOT_TRANSPORT, nonrootLaunch } from './nonroot.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli', 'atefs.js');

/** The uid/gid used for "another user" checks (exists on Debian images as the first user). */
export const OTHER_UID = 1000;
export const OTHER_GID = 1000;

export const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/**
 * Polls `fn` every `stepMs` until it yields something (not undefined, not false) and returns it;
 * after `ms` throws, naming `what` and the last error `fn` threw.
 */
export async function pollUntil<T>(what: string, fn: () => Promise<T | undefined | false>, ms: number, stepMs: number): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(stepMs);
  }
}

/**
 * Transports the suites run against: $ATEFS_TRANSPORTS (comma-separated, default fuse-native),
 * plus, when we are root, 'kernel' (mounted with mount(2)) and 'kernel-nonroot' (the kernel
 * transport with the daemon run as an unprivileged user, mounting through fusermount; nonroot.ts).
 */
export function availableTransports(): string[] {
  const env = process.env.ATEFS_TRANSPORTS;
  const list = (env ?? 'fuse-native').split(',').map((s) => s.trim()).filter(Boolean);
  if (env === undefined && process.getuid?.() === 0 && existsSync(join(ROOT, 'fs', 'kernel', 'index.ts'))) list.push('kernel', NONROOT_TRANSPORT);
  return [...new Set(list)];
}

/** What a transport can express; checks outside it are skipped with the reason named here. */
export interface TransportCaps {
  /** Timestamps keep nanoseconds (fuse-native: milliseconds). */
  nsTimestamps: boolean;
  /**
   * utimensat sets atime and mtime separately, with UTIME_OMIT. Not on fuse-native: its C binding
   * passes atime in both slots and libfuse 2 drops one-sided changes (see fs/fuse-native/stat.ts).
   */
  separateTimes: boolean;
  /** New files are owned by the caller (fuse-native does not expose the caller's uid/gid). */
  callerOwnership: boolean;
  /**
   * Hard links are one kernel inode. fuse-native (libfuse 2 high-level) gives each name its own,
   * so another name's cached attributes (nlink, size) are stale until attr_timeout (1 s) expires;
   * libfuse 2 can neither invalidate them nor time them out per inode (fs/fuse-native/index.ts).
   */
  sharedLinkInode: boolean;
  /** fallocate reaches the filesystem (fuse-native binds no fallocate handler: EOPNOTSUPP). */
  fallocate: boolean;
  /**
   * Files keep setuid/setgid on a mount with --allow-other. fuse-native strips them there: it
   * cannot tell another user from the mounting user (fs/fuse-native/adapter.ts).
   */
  setIdWithAllowOther: boolean;
}

export function transportCaps(t: string): TransportCaps {
  const fn = t === 'fuse-native';
  return { nsTimestamps: !fn, separateTimes: !fn, callerOwnership: !fn, sharedLinkInode: !fn, fallocate: !fn, setIdWithAllowOther: !fn };
}

/** Waits out the fuse-native attribute cache where hard-linked names are separate kernel inodes. */
export async function settleLinks(t: string): Promise<void> {
  if (!transportCaps(t).sharedLinkInode) await sleep(1100);
}

// ---------------------------------------------------------------------------------------------
// Building dist/ when it is missing or older than the sources.

function newestMtime(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return 0;
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (/\.tsx?$/.test(ent.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function distStale(): boolean {
  if (!existsSync(CLI)) return true;
  const built = statSync(CLI).mtimeMs;
  return ['cli', 'fs', 'src', 'server'].some((d) => newestMtime(join(ROOT, d)) > built);
}

let built: Promise<void> | null = null;
export function ensureBuilt(): Promise<void> {
  built ??= (async () => {
    // scripts/test built dist/ before the suite: a rebuild while another file's daemon imports
    // dist/ (a source edited meanwhile) made that daemon load a half-written module.
    if (process.env.ATEFS_TEST_DIST_BUILT === '1' || !distStale()) return;
    // Several test files may start at once: one builds, the others wait for its lock to go.
    const lock = join(ROOT, 'dist', '.e2e-build-lock');
    mkdirSync(join(ROOT, 'dist'), { recursive: true });
    let owner = false;
    try { mkdirSync(lock); owner = true; } catch { /* someone else is building */ }
    if (owner) {
      try {
        await run('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, timeout: 300_000 });
        if (!existsSync(CLI)) throw new Error('tsc did not produce dist/cli/atefs.js');
      } finally {
        rmdirSync(lock);
      }
    } else {
      const deadline = Date.now() + 300_000;
      while (existsSync(lock) && Date.now() < deadline) await sleep(200);
    }
  })();
  return built;
}

// ---------------------------------------------------------------------------------------------
// Running commands.

export interface RunResult { code: number; stdout: string; stderr: string }

export function run(cmd: string, args: string[], o: { cwd?: string; timeout?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((ok) => {
    const child = execFile(cmd, args, {
      cwd: o.cwd, timeout: o.timeout ?? 300_000, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8',
      env: o.env ?? process.env,
    }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string }) | null;
      ok({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: String(stdout), stderr: String(stderr || (e && typeof e.code !== 'number' ? e.message : '')) });
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
  });
}

/** bash -c `script`, optionally as another user (setpriv: no PAM, no login shell). */
export function sh(script: string, o: { cwd?: string; uid?: number; gid?: number; timeout?: number } = {}): Promise<RunResult> {
  if (o.uid === undefined) return run('bash', ['-c', script], o);
  return run('setpriv', ['--reuid', String(o.uid), '--regid', String(o.gid ?? o.uid), '--clear-groups', 'bash', '-c', script], o);
}

/** Like sh, but fails the test with the command's stderr when it exits non-zero. */
/**
 * Runs `atefs <args>` as the user a suite's transport mounts as (root, or the non-root user of
 * 'kernel-nonroot': its `atefs unmount` finds the daemon in that user's own registry).
 * `mountpoint`: a mountpoint handed to that user first (null: a command that mounts nothing).
 */
export function runCliAs(transport: string, args: string[], mountpoint: string | null = null): Promise<RunResult> {
  const l = transport === NONROOT_TRANSPORT
    ? nonrootLaunch([CLI, ...args], mountpoint)
    : { cmd: process.execPath, args: [CLI, ...args], env: { ...process.env, CI: 'true' } };
  return run(l.cmd, l.args, { env: l.env });
}

export interface RefusalOptions {
  /** Run as this transport's user (runCliAs); default: as this process. */
  transport?: string;
  /** The mount's directory: handed to that user first (runCliAs), and checked to stay unmounted. */
  mountpoint?: string;
  /** The exit code expected (default: any but 0). */
  code?: number;
  /** The entry point (default: the atefs CLI). */
  cli?: string;
}

/**
 * Runs a command the user got wrong and expects the refusal the README promises: a non-zero exit
 * (or `code`), one line on stderr that matches `message` (a string: equals it), and, for a mount,
 * nothing mounted on its directory. Returns the run for further checks.
 */
export async function expectRefusal(args: string[], message: RegExp | string, o: RefusalOptions = {}): Promise<RunResult> {
  await ensureBuilt();
  const cli = o.cli ?? CLI;
  const r = o.transport !== undefined
    ? await runCliAs(o.transport, args, o.mountpoint ?? null)
    : await run(process.execPath, [cli, ...args], { timeout: 120_000 });
  const what = `${basename(cli, '.js')} ${args.join(' ')}`;
  if (o.code !== undefined) expect(r.code, what).toBe(o.code);
  else expect(r.code, what).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines, `${what}: one line on stderr`).toHaveLength(1);
  if (typeof message === 'string') expect(lines[0], what).toBe(message);
  else expect(lines[0], what).toMatch(message);
  if (o.mountpoint) expect(await findMount(o.mountpoint), `${what}: nothing mounted`).toBeUndefined();
  return r;
}

export async function shOk(script: string, o: { cwd?: string; uid?: number; gid?: number; timeout?: number } = {}): Promise<string> {
  const r = await sh(script, o);
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${script}\n${r.stderr}${r.stdout.slice(-2000)}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------
// Mounting.

export interface MountForTestOptions {
  transport?: string;
  readOnly?: boolean;
  allowOther?: boolean;
  /** Defaults to true (--temp); false mounts a persistent local chain (needs extraArgs --log-path). */
  temp?: boolean;
  extraArgs?: string[];
  /** Mount on this directory instead of a fresh one (stale-mount and remount tests). */
  dir?: string;
  /**
   * The test provokes daemon errors or a failing exit itself: no health checks. Otherwise every
   * test fails when the daemon logged an error (a background commit that failed, say), and
   * unmount() fails when it exits non-zero or its stats file counts failed commits — the core
   * keeps serving from memory after a failed commit, so nothing else would show it.
   */
  expectErrors?: boolean;
  /** Extra environment of the daemon (e.g. ATEFS_PROGRESS_AFTER_MS). */
  env?: NodeJS.ProcessEnv;
}

export interface TestMount {
  dir: string;
  pid: number;
  transport: string;
  /** Daemon output so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves with the daemon's exit code (or signal name) once it has exited. */
  exited: Promise<number | string>;
  /**
   * Clean unmount (SIGTERM: commit, unmount), then by path and by PID whatever happened; then
   * rejects if the daemon was unhealthy (see expectErrors): non-zero exit, an error on stderr,
   * failed commits in its stats file.
   */
  unmount(): Promise<void>;
  /** Signals the daemon; the test then expects it to die (its exit code is not checked). */
  kill(signal?: NodeJS.Signals): void;
  /** The stats file the daemon writes at unmount (--stats-file), parsed; null before. */
  stats(): Promise<DaemonStats | null>;
  /**
   * Rejects when the daemon logged an error so far, or (while it runs) when an fsync of the
   * mount's root — which commits everything dirty, durably — fails: a failed background commit
   * then surfaces here instead of staying in memory. Run after every test (see below).
   */
  checkHealthy(): Promise<void>;
}

export interface DaemonStats {
  final: boolean;
  commit: { batches: number; failures: number; unsettled: number; [k: string]: number };
  counters: Record<string, number>;
}

/** Lines of daemon stderr that report an error (the daemon prefixes them all with "error:"). */
export function daemonErrors(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^error: |commit failed/i.test(l));
}

const live = new Set<TestMount>();

export async function mountForTest(o: MountForTestOptions = {}): Promise<TestMount> {
  await ensureBuilt();
  const transport = o.transport ?? 'fuse-native';
  const dir = o.dir ?? await mkdtemp(join(tmpdir(), 'atefs-e2e-'));
  const ownDir = o.dir === undefined;
  // The daemon's commit counters are read from its stats file: the test's own, or one of ours.
  const given = o.extraArgs?.indexOf('--stats-file') ?? -1;
  const statsDir = given >= 0 ? null : await mkdtemp(join(tmpdir(), 'atefs-e2e-stats-'));
  const statsFile = given >= 0 ? o.extraArgs![given + 1]! : join(statsDir!, 'stats.json');
  const nonroot = transport === NONROOT_TRANSPORT;
  // nonrootLaunch hands the stats file's directory (and --log-path, the mountpoint) to the user.
  const args = [CLI, 'mount', dir, '--transport', nonroot ? 'kernel' : transport, ...(statsDir ? ['--stats-file', statsFile] : [])];
  if (o.temp !== false) args.push('--temp');
  if (o.readOnly) args.push('--read-only');
  // The test process (root) reaches a non-root user's mount only through allow_other.
  if (o.allowOther || nonroot) args.push('--allow-other');
  if (o.extraArgs) args.push(...o.extraArgs);
  const launch = nonroot ? nonrootLaunch(args, dir) : { cmd: process.execPath, args, env: { ...process.env, CI: 'true' } };
  if (o.env) launch.env = { ...launch.env, ...o.env };
  const child: ChildProcess = spawn(launch.cmd, launch.args, { stdio: ['ignore', 'pipe', 'pipe'], env: launch.env });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const exited = new Promise<number | string>((ok) => child.on('exit', (code, sig) => ok(code ?? sig ?? 'unknown')));
  let alive = true;
  let exitCode: number | string | null = null;
  void exited.then((c) => { alive = false; exitCode = c; });
  let killedByTest = false;
  let termTimedOut = false;
  const checked = !o.expectErrors;
  let stderrChecked = 0; // each test answers for the errors logged during it

  const stats = async (): Promise<DaemonStats | null> => {
    try { return JSON.parse(await readFile(statsFile, 'utf8')) as DaemonStats; } catch { return null; }
  };
  const m: TestMount = {
    dir, pid: child.pid!, transport, exited, stats,
    output: () => ({ stdout, stderr }),
    kill: (signal = 'SIGKILL') => { if (alive) { killedByTest = true; child.kill(signal); } },
    checkHealthy: async () => {
      if (!checked) return;
      const problems: string[] = [];
      if (alive && !killedByTest) {
        const r = await run('sync', [dir], { timeout: 120_000 });
        if (r.code !== 0) problems.push(`fsync of the mount root failed (a commit failed?): ${r.stderr.trim()}`);
      }
      const fresh = stderr.slice(stderrChecked);
      stderrChecked = stderr.length;
      problems.push(...daemonErrors(fresh).map((l) => `daemon stderr: ${l}`));
      if (problems.length > 0) throw new Error(`atefs daemon ${child.pid} on ${dir} is unhealthy:\n${problems.join('\n')}`);
    },
    unmount: async () => {
      if (!live.has(m) && !alive) return;
      live.delete(m);
      if (alive) {
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(30_000)]);
      }
      await unmountByPath(dir);
      if (alive) {
        termTimedOut = !killedByTest;
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(5_000)]);
      }
      if (ownDir && !(await findMount(dir))) await rmdir(dir).catch(() => rm(dir, { recursive: true, force: true }).catch(() => {}));
      const st = await stats();
      if (statsDir) await rm(statsDir, { recursive: true, force: true }).catch(() => {});
      if (!checked) return;
      const problems: string[] = [];
      if (termTimedOut) problems.push('did not exit within 30 s of SIGTERM (killed)');
      else if (!killedByTest && exitCode !== 0) problems.push(`exited with ${String(exitCode)}`);
      problems.push(...daemonErrors(stderr).map((l) => `stderr: ${l}`));
      if (!killedByTest && !termTimedOut) {
        if (!st?.final) problems.push('wrote no final stats file');
        else if (st.commit.failures > 0) problems.push(`${st.commit.failures} failed commit(s) in its stats`);
      }
      if (problems.length > 0) throw new Error(`atefs daemon ${child.pid} on ${dir} was unhealthy:\n${problems.join('\n')}\n--- stderr ---\n${stderr.slice(-4000)}`);
    },
  };
  live.add(m);

  const ready = await new Promise<boolean>((ok) => {
    const timer = setTimeout(() => ok(false), 60_000);
    // Plain mode prints `mounted: <dir>`; --json prints {"event":"mounted",...}.
    const isReady = () => stdout.includes(`mounted: ${dir}\n`) || /^\{"event":"mounted".*\n/m.test(stdout);
    const check = () => { if (isReady()) { clearTimeout(timer); ok(true); } };
    child.stdout!.on('data', check);
    void exited.then(() => { clearTimeout(timer); ok(isReady()); });
    check();
  });
  if (!ready) {
    await m.unmount().catch(() => {});
    throw new Error(`atefs mount ${dir} (${transport}) did not become ready:\n${stderr}${stdout}`);
  }
  return m;
}

/** Unmounts everything this process mounted and is still live (afterAll safety net). */
export async function unmountAll(): Promise<void> {
  // Newest first: a remount on an older mount's directory goes before that mount's cleanup.
  const errors: string[] = [];
  for (const m of [...live].reverse()) await m.unmount().catch((e: Error) => { errors.push(e.message); });
  if (errors.length > 0) throw new Error(errors.join('\n'));
}

// Every test of a file that uses the harness fails when one of its live daemons is unhealthy.
afterEach(async () => {
  for (const m of [...live]) await m.checkHealthy();
});


/** Tools the suites call out to; a missing one skips the checks that need it. */
export function haveTool(name: string): boolean {
  return ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, name)));
}
