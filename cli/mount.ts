import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { findMount } from '../fs/daemon/mounttab.js';
import { prepareMountpoint, removeCreatedMountpoint } from '../fs/daemon/mountpoint.js';
import { forgetMount, processAlive, readMountRecord, recordMount } from '../fs/daemon/registry.js';
import { resolveChainDir } from '../fs/chain-store/index.js';
import type { ViewProgress } from '../src/view/index.js';
import { type ControlServer, controlSocketPath, serveControl } from '../fs/daemon/control-socket.js';
import { MountError, mountFilesystem, type MountHandle } from '../fs/mount.js';
import { UserError } from './errors.js';
import type { MountArgs } from './mount-args.js';
import { PASSCODE_ARGV_WARNING, openCore, openStore, type OpenedStore, type StoreFactory } from './mount-store.js';
import type { MountPanelStatus } from './tui/mount-panel.js';
import { CommitHealthLog, commitHealthLine, commitHealthReport } from './commit-health.js';
import { ProgressLines, ProgressTracker } from './progress.js';

/**
 * `atefs mount`: the mount daemon. It serves FUSE from this process's main thread (fuse-native
 * cannot run in a worker thread), so it never calls a synchronous fs function on anything that
 * could be inside the mount. Output:
 *   plain (stdout not a TTY, or CI=true): exactly one `mounted: <abs dir>` line on stdout once the
 *     mount answers; everything else on stderr;
 *   --json: JSON lines on stdout ({"event":"mounted",...}, {"event":"unmounted",...});
 *   TTY: an Ink progress bar while the chain opens (a phase longer than ATEFS_PROGRESS_AFTER_MS),
 *     then an Ink status panel. Off a TTY the progress goes to stderr as plain lines.
 * The control socket answers from the start (state 'loading' with the progress, while the chain
 * opens), so `atefs status DIR` shows a long index rebuild.
 * SIGINT/SIGTERM/SIGHUP, an external unmount and fatal errors all end in the same shutdown:
 * unmount, commit (core.destroy), close the store, write the stats file, exit.
 */

const POLL_MOUNT_MS = 1000;
const BACKGROUND_READY_MS = 120_000;

const CHILD_ENV = 'ATEFS_DAEMON_CHILD';
const READY_FD_ENV = 'ATEFS_READY_FD';

function stateDir(): string {
  return join(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'atefs');
}

/** The readiness channel of a --background parent (fd 3 of this child), if any. */
function tellParent(line: string): void {
  const fd = Number(process.env[READY_FD_ENV]);
  if (!Number.isInteger(fd) || fd < 3) return;
  try { writeSync(fd, `${line}\n`); closeSync(fd); } catch { /* parent gone */ }
  delete process.env[READY_FD_ENV];
}

export async function runMount(args: MountArgs, deps: { openStore?: StoreFactory } = {}): Promise<void> {
  try {
    await serve(args, deps);
  } catch (err) {
    const msg = err instanceof UserError || err instanceof MountError ? err.message : `error: ${(err as Error)?.message ?? String(err)}`;
    tellParent(`error: ${msg}`);
    if (err instanceof MountError) throw new UserError(err.message);
    throw err;
  }
}

function validate(a: MountArgs): void {
  if (a.temp && a.logPath) throw new UserError('--temp keeps nothing on disk; it cannot be combined with --log-path');
  if (a.transport !== 'fuse-native' && a.transport !== 'kernel') throw new UserError(`unknown transport '${a.transport}' (kernel or fuse-native)`);
}

async function serve(a: MountArgs, deps: { openStore?: StoreFactory }): Promise<void> {
  validate(a);
  const abs = resolve(a.dir);
  if (a.background && !process.env[CHILD_ENV]) return background(abs, a);

  const plain = !process.stdout.isTTY || process.env.CI === 'true' || process.env.CI === '1';
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const emit = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);

  // Signals that arrive before the mount is up end the process once setup finishes or fails.
  let stopRequested: string | null = null;
  let shutdown: ((reason: string, code: number) => Promise<void>) | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (shutdown) void shutdown(sig, 0);
    else stopRequested = sig;
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);

  let created: string | null;
  try {
    const prepared = await prepareMountpoint(abs);
    created = prepared.created;
    if (prepared.cleaned) say(`cleaned up a stale mount on ${abs}`);
  } catch (e) {
    if (e instanceof MountError) throw new UserError(e.message);
    throw e;
  }

  // Loading progress: a bar (TTY) or plain lines while the chain opens; afterwards the tracker
  // keeps the view's compaction phases for the status panel and `atefs status`.
  const tracker = new ProgressTracker();
  const progressLines = plain || a.json ? new ProgressLines(tracker, say) : null;
  let loading = true;
  const onProgress = (p: ViewProgress) => {
    if (loading && progressLines) progressLines.report(p);
    else tracker.report(p);
  };
  const startedAt = Date.now();
  const chainLabel = a.temp ? 'temp' : a.remote ?? resolveChainDir(a.logPath);
  let status = (): MountPanelStatus => {
    const progress = tracker.current();
    return {
      mountpoint: abs, transport: a.transport, chain: chainLabel, mode: '-', readOnly: a.readOnly, startedAt, requests: 0,
      state: 'loading', pid: process.pid, ...(progress ? { progress } : {}),
    };
  };
  // `atefs status` asks through this socket; a mount works without it (say why, go on). Another
  // daemon still opening a chain for this directory keeps it (its socket would be taken over).
  const other = await readMountRecord(abs);
  if (other && other.pid !== process.pid && processAlive(other.pid)) {
    await removeCreatedMountpoint(abs, created);
    throw new UserError(`${abs} is being mounted by process ${other.pid}`);
  }
  let control: ControlServer | null = await serveControl(controlSocketPath(abs), () => status()).catch((e: Error) => {
    say(`warning: no control socket for atefs status: ${e.message}`);
    return null;
  });
  await recordMount({ pid: process.pid, mountpoint: abs, ...(control ? { control: control.path } : {}), transport: a.transport, startedAt: new Date(startedAt).toISOString() });
  let loadingBar: { stop(): void } | null = null;
  if (!plain && !a.json) {
    const { showProgress } = await import('./tui/progress.js');
    loadingBar = showProgress(() => tracker.current(), `atefs: opening ${chainLabel}`);
  }

  let opened: OpenedStore;
  let core;
  let handle: MountHandle;
  // Unexpected request failures: logged (at most one line a second) and shown as the last error.
  let lastError: string | undefined;
  let quietUntil = 0;
  let suppressed = 0;
  const onError = (op: string, err: unknown) => {
    lastError = `${op}: ${(err as Error)?.message ?? String(err)}`;
    const now = Date.now();
    if (now < quietUntil) { suppressed++; return; }
    quietUntil = now + 1000;
    say(`error: ${lastError}${suppressed ? ` (${suppressed} more suppressed)` : ''}`);
    if (process.env.ATEFS_DEBUG) say((err as Error)?.stack ?? '');
    suppressed = 0;
  };
  try {
    opened = await (deps.openStore ?? openStore)(a, { onProgress });
    try {
      core = await openCore(opened, a);
    } catch (e) {
      await opened.close().catch(() => {});
      throw e;
    }
    try {
      handle = await mountFilesystem(core, abs, {
        transport: a.transport,
        allowOther: a.allowOther,
        readOnly: a.readOnly,
        fsname: 'atefs',
        debug: a.debug,
        cacheTimeout: opened.store.cacheTimeout,
        kernelCache: opened.kernelCache ?? opened.local,
        // A replicated store's locks are seen by its other mounts: flock(2) too. A local chain's
        // only mount leaves record locks to the kernel (no round trip per lock: SQLite takes several
        // per transaction).
        flockLocks: (opened.store as { lockLease?: unknown }).lockLease !== undefined,
        posixLocks: (opened.store as { lockLease?: unknown }).lockLease !== undefined,
        onError,
      });
    } catch (e) {
      await core.destroy().catch(() => {});
      await opened.close().catch(() => {});
      if (e instanceof MountError) throw new UserError(e.message);
      throw e;
    }
  } catch (e) {
    // Refused (chain in use, wrong key, mount failed): the directory made for it goes too.
    loadingBar?.stop();
    await control?.close().catch(() => {});
    await forgetMount(abs, process.pid).catch(() => {});
    await removeCreatedMountpoint(abs, created);
    throw e;
  } finally {
    loading = false;
  }
  loadingBar?.stop();

  let state: MountPanelStatus['state'] = 'mounted';
  let statsSeq = 0;
  // Batches of the core (commits, failures, ms in the store) and the store's own split of that
  // time (DIO commits, events, build, commit and signing ms): bench:fs prints the signing share.
  const commitCounters = (): Record<string, number> => {
    const cs = core.commitStats;
    return {
      batches: cs.commits, failures: cs.failures, failing: cs.failing, batchMs: cs.commitMs, unsettled: core.commitUnsettled ? 1 : 0,
      ...(opened.timings?.() ?? {}),
    };
  };
  // What df shows as used (live data) beside what the log takes on disk until compaction. The
  // final stats file is written after the store closed: its figures are taken just before.
  const storeSpace = () => {
    const st = opened.store.stats();
    return { liveBytes: st.bytesUsed, ...(st.logBytes !== undefined ? { logBytes: st.logBytes } : {}) };
  };
  let closedSpace: ReturnType<typeof storeSpace> | undefined;
  const writeStats = async (final: boolean) => {
    if (!a.statsFile) return;
    const file = resolve(a.statsFile);
    const space = closedSpace ?? storeSpace();
    const body = JSON.stringify({
      transport: handle.transport, mountpoint: abs, pid: process.pid, seq: ++statsSeq, final,
      at: new Date().toISOString(), counters: handle.counters(), commit: commitCounters(), space,
      commitHealth: commitHealthReport(core),
    });
    // Asynchronous and atomic: the file may even live inside the mount, and readers never see half of it.
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${body}\n`);
    await rename(tmp, file);
  };
  status = (): MountPanelStatus => {
    const counters = handle.counters();
    // The kernel transport reports its total beside byte and gauge counters; fuse-native only opcodes.
    let requests = counters.requests ?? 0;
    if (counters.requests === undefined) for (const k in counters) requests += counters[k] ?? 0;
    const cs = core.commitStats;
    const ss = opened.status?.() ?? {};
    const health = commitHealthLine(commitHealthReport(core));
    const progress = tracker.current();
    return {
      mountpoint: abs, transport: handle.transport, chain: opened.chain, mode: opened.mode, readOnly: a.readOnly,
      startedAt, requests, commits: cs.commits, dirtyBytes: core.dirtyBytes, state, pid: process.pid,
      bytesRead: core.io.bytesRead, bytesWritten: core.io.bytesWritten,
      ...(ss.logBytes !== undefined ? { logBytes: ss.logBytes } : {}),
      ...(ss.seq !== undefined ? { seq: ss.seq } : {}),
      ...(ss.events !== undefined ? { events: ss.events } : {}),
      ...(ss.compaction !== undefined ? { compaction: ss.compaction } : {}),
      ...(ss.liveBytes !== undefined ? { liveBytes: ss.liveBytes } : {}),
      ...(ss.connection !== undefined ? { connection: ss.connection } : {}),
      ...(ss.server !== undefined ? { server: ss.server } : {}),
      ...(ss.lag !== undefined ? { lag: ss.lag } : {}),
      ...(ss.stagedUploads !== undefined ? { stagedUploads: ss.stagedUploads, stagedBytes: ss.stagedBytes ?? 0 } : {}),
      ...(ss.conflicts !== undefined ? { conflicts: ss.conflicts } : {}),
      ...(ss.lastConflict !== undefined ? { lastConflict: ss.lastConflict } : {}),
      ...((cs.lastError?.message ?? lastError) ? { lastError: cs.lastError?.message ?? lastError } : {}),
      ...(health ? { commitHealth: health } : {}),
      ...(progress ? { progress } : {}),
    };
  };

  let panel: { stop(): void } | null = null;
  let watch: NodeJS.Timeout | null = null;
  let finish!: () => void;
  const finished = new Promise<void>((ok) => { finish = ok; });
  let stopping: Promise<void> | null = null;
  let forced = false;

  shutdown = (reason: string, code: number): Promise<void> => {
    if (stopping) {
      if (reason === 'SIGINT' || reason === 'SIGTERM') {
        if (forced) process.exit(130);
        forced = true;
        say('still unmounting; send the signal again to exit without committing');
      }
      return stopping;
    }
    stopping = (async () => {
      state = 'unmounting';
      if (watch) clearInterval(watch);
      if (plain && !a.json) say(`unmounting ${abs} (${reason})`);
      let exit = code;
      let failure: string | undefined;
      try {
        await handle.unmount();
      } catch (e) {
        exit = 1;
        // A final commit that fails: its message says how much is not committed (and now lost).
        failure = (e as Error).name === 'CommitFailed' ? `the final ${(e as Error).message}; these changes are lost` : (e as Error).message;
        say(`error: ${failure}`);
      }
      try { closedSpace = storeSpace(); } catch { /* the store failed: the stats file goes without */ }
      try { await opened.close(); } catch (e) { exit = 1; failure ??= `closing the store: ${(e as Error).message}`; say(`error: closing the store: ${(e as Error).message}`); }
      try { await writeStats(true); } catch (e) { say(`error: writing ${a.statsFile}: ${(e as Error).message}`); }
      // `atefs unmount` waits for this process and reports a failed final commit from the record.
      if (failure) await recordMount({ ...record, exitError: failure }).catch(() => {});
      else await forgetMount(abs, process.pid).catch(() => {});
      panel?.stop();
      await control?.close().catch(() => {});
      if (a.json) emit({ event: 'unmounted', mountpoint: abs, reason });
      else say(`unmounted: ${abs}`);
      process.exitCode = exit;
      finish();
    })();
    return stopping;
  };

  const fatal = (err: unknown) => {
    lastError = (err as Error)?.message ?? String(err);
    say(`error: ${lastError}`);
    if (process.env.ATEFS_DEBUG) say((err as Error)?.stack ?? '');
    void shutdown?.('fatal error', 1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  // Output is best effort: a reader that went away (EPIPE) must not make every log line a new
  // fatal error — the daemon would spin and ignore SIGTERM with its mount still to clean up.
  for (const out of [process.stdout, process.stderr]) out.on('error', () => {});
  process.on('SIGUSR2', () => {
    writeStats(false).catch((e: Error) => say(`error: writing ${a.statsFile}: ${e.message}`));
  });

  const record = { pid: process.pid, mountpoint: abs, ...(control ? { control: control.path } : {}), transport: handle.transport, startedAt: new Date(startedAt).toISOString(), ...(a.statsFile ? { statsFile: resolve(a.statsFile) } : {}), ...(opened.chainDir ? { chain: opened.chainDir } : {}) };
  await recordMount(record);

  // An unmount from outside (fusermount -u, umount) does not reach the daemon: watch the table.
  // Background commits fail outside any request: say so (commit-health.ts), and refresh the stats
  // file at once so a reader sees the failure without asking.
  const health = new CommitHealthLog(core);
  watch = setInterval(() => {
    findMount(abs).then((m) => { if (!m) void shutdown?.('unmounted from outside', 0); }, () => {});
    const lines = health.poll();
    for (const line of lines) say(line);
    if (lines.length > 0) writeStats(false).catch((e: Error) => say(`error: writing ${a.statsFile}: ${e.message}`));
  }, POLL_MOUNT_MS);

  if (a.json) emit({ event: 'mounted', mountpoint: abs, pid: process.pid, transport: handle.transport, chain: opened.chain, mode: opened.mode });
  else if (plain) process.stdout.write(`mounted: ${abs}\n`);
  else {
    const { showMountPanel } = await import('./tui/mount-panel.js');
    panel = showMountPanel(status);
  }
  tellParent(`mounted: ${abs}`);

  if (stopRequested) void shutdown(stopRequested, 0);
  await finished;
  // The FUSE thread's handles may keep the loop alive: leave explicitly once everything is committed.
  process.exit(process.exitCode ?? 0);
}

/** argv without `--passcode X` / `--passcode=X` (the form yargs parsed it from). */
export function withoutPasscode(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--passcode') { i++; continue; }
    if (x.startsWith('--passcode=')) continue;
    out.push(x);
  }
  return out;
}

/**
 * --background: starts this same command detached (output to a log file under the XDG state
 * directory), waits for its readiness line on fd 3 and reports it, then exits.
 */
async function background(abs: string, a: MountArgs): Promise<void> {
  const dir = stateDir();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const logFile = join(dir, `mount-${createHash('sha256').update(abs).digest('hex').slice(0, 16)}.log`);
  const fd = openSync(logFile, 'a', 0o600);
  const script = process.argv[1];
  if (!script) throw new UserError('cannot find the atefs entry point to start the daemon');
  // The daemon outlives this command: a --passcode goes to it through its environment (readable
  // only by this user), not its argv (readable by everyone, for the daemon's whole life).
  const passcodeEnv: NodeJS.ProcessEnv = {};
  if (a.passcode !== undefined && a.tokenPath) {
    process.stderr.write(`${PASSCODE_ARGV_WARNING}\n`);
    passcodeEnv.ATEFS_PASSCODE = a.passcode;
  }
  const child = spawn(process.execPath, [...process.execArgv, script, ...(passcodeEnv.ATEFS_PASSCODE !== undefined ? withoutPasscode(process.argv.slice(2)) : process.argv.slice(2))], {
    detached: true,
    stdio: ['ignore', fd, fd, 'pipe'],
    env: { ...process.env, ...passcodeEnv, [CHILD_ENV]: '1', [READY_FD_ENV]: '3', CI: 'true' },
  });
  closeSync(fd);
  const ready = child.stdio[3] as Readable;
  const line = await new Promise<string>((ok) => {
    let buf = '';
    const timer = setTimeout(() => ok(`error: the mount daemon did not become ready within ${BACKGROUND_READY_MS / 1000}s; see ${logFile}`), BACKGROUND_READY_MS);
    ready.setEncoding('utf8');
    ready.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) { clearTimeout(timer); ok(buf.slice(0, nl)); }
    });
    child.on('exit', (code) => { clearTimeout(timer); ok(buf.includes('\n') ? buf.slice(0, buf.indexOf('\n')) : `error: the mount daemon exited (${code ?? 'signal'}) before mounting; see ${logFile}`); });
  });
  ready.destroy();
  child.unref();
  if (!line.startsWith('mounted: ')) throw new UserError(line.replace(/^error: (error: )?/, ''));
  if (a.json) process.stdout.write(`${JSON.stringify({ event: 'mounted', mountpoint: abs, pid: child.pid, background: true, log: logFile })}\n`);
  else process.stdout.write(`${line}\n`);
}
