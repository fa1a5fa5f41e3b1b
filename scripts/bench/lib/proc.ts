/**
 * Process helpers for the filesystem benchmark: timed commands, daemons that announce readiness on
 * stdout, and a cleanup registry so every mount and process we start is undone even on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Single-quotes a string for bash. */
export const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class CommandFailed extends Error {
  constructor(readonly cmd: string, readonly code: number | null, readonly stderr: string) {
    super(`${cmd} exited ${code}: ${stderr.trim().slice(-600)}`);
    this.name = 'CommandFailed';
  }
}

export class CommandTimedOut extends Error {
  constructor(readonly cmd: string, readonly ms: number) {
    super(`${cmd} timed out after ${ms} ms`);
    this.name = 'CommandTimedOut';
  }
}

/** A daemon that exited or hung before it said it was ready; `output` is what it printed. */
export class DaemonNotReady extends Error {
  constructor(readonly cmd: string, readonly why: string, readonly output: string) {
    super(`${cmd}: ${why}${output.trim() ? `: ${output.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
    this.name = 'DaemonNotReady';
  }
  /** One line for tables: the daemon's last line of output, or why it failed. */
  get short(): string {
    const last = this.output.trim().split('\n').pop()?.trim();
    return last ? `${this.why}: ${last}` : this.why;
  }
}

export interface RunResult { code: number | null; stdout: string; stderr: string; seconds: number }

/**
 * Runs `bash -c script` and measures wall time from spawn to exit. The bash start-up (~2 ms) is
 * inside the measurement for every target alike. On timeout the process group is killed; if it has
 * not exited 10 s later, `onTimeout` runs (it may abort a hung FUSE connection so the child can die).
 */
export function run(script: string, opts: { cwd?: string; timeoutMs?: number; onTimeout?: () => Promise<void> | void; check?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('bash', ['-c', script], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { if (stdout.length < 1 << 20) stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 1 << 20) stderr += d; });
    let timedOut = false;
    let closed = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          // A process waiting on a FUSE request dies on SIGKILL; only if it does not (a hung
          // daemon) does onTimeout get to abort the connection.
          killGroup(child, 'SIGKILL');
          setTimeout(() => {
            if (closed) return;
            void (async () => { try { await opts.onTimeout?.(); } catch { /* best effort */ } killGroup(child, 'SIGKILL'); })();
          }, 10000).unref();
        }, opts.timeoutMs)
      : undefined;
    child.on('error', (e) => { if (timer) clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      closed = true;
      if (timer) clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (timedOut) return reject(new CommandTimedOut(script, opts.timeoutMs ?? 0));
      if (opts.check !== false && code !== 0) return reject(new CommandFailed(script, code, stderr));
      resolve({ code, stdout, stderr, seconds });
    });
  });
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try { process.kill(-child.pid, sig); } catch { try { child.kill(sig); } catch { /* gone */ } }
}

export function isAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** CPU seconds (user + system, all threads) consumed so far by a process, or undefined once gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch { return undefined; }
}

export interface Daemon {
  child: ChildProcess;
  pid: number;
  /** Everything the daemon printed so far (stdout + stderr), for error messages. */
  output(): string;
  exited: Promise<number | null>;
}

/**
 * Spawns a long-running daemon and resolves once a line of its output matches `ready`.
 * Rejects with the daemon's output if it exits first or does not become ready in time.
 */
export function spawnDaemon(cmd: string, args: string[], ready: RegExp, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Daemon> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let out = '';
    let settled = false;
    const exited = new Promise<number | null>((r) => child.on('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
    const d: Daemon = { child, pid: child.pid ?? -1, output: () => out, exited };
    const onData = (s: string): void => {
      if (out.length < 1 << 16) out += s;
      if (!settled && out.split('\n').some((l) => ready.test(l))) { settled = true; clearTimeout(timer); resolve(d); }
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    child.on('error', (e) => { if (!settled) { settled = true; clearTimeout(timer); reject(e); } });
    void exited.then((code) => {
      if (!settled) { settled = true; clearTimeout(timer); reject(new DaemonNotReady(`${cmd} ${args.join(' ')}`, `exited ${code} before it was ready`, out.slice(-1500))); }
    });
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      reject(new DaemonNotReady(`${cmd} ${args.join(' ')}`, `no "ready" line after ${(opts.timeoutMs ?? 30000) / 1000} s`, out.slice(-1500)));
    }, opts.timeoutMs ?? 30000);
  });
}

/** Waits for a process to exit, up to `ms`; true if it did. */
export async function waitExit(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

// --- cleanup registry: each entry runs once, also on SIGINT/SIGTERM of the bench itself.
const cleanups = new Map<number, () => Promise<void>>();
let nextId = 1;

export function onCleanup(fn: () => Promise<void>): () => void {
  const id = nextId++;
  cleanups.set(id, fn);
  return () => { cleanups.delete(id); };
}

/** Runs every registered cleanup concurrently (each undoes one independent mount or process). */
export async function runCleanups(): Promise<void> {
  const fns = [...cleanups.values()];
  cleanups.clear();
  await Promise.all(fns.map(async (fn) => {
    try { await fn(); } catch (e) { process.stderr.write(`cleanup failed: ${(e as Error).message}\n`); }
  }));
}

/** On SIGINT/SIGTERM/SIGHUP: undo every mount and process, then `last()` (e.g. print what we have). */
export function installSignalCleanup(last?: () => void): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, cleaning up mounts and processes...\n`);
      void runCleanups().finally(() => {
        try { last?.(); } catch (e) { process.stderr.write(`${(e as Error).message}\n`); }
        process.exit(130);
      });
    });
  }
}
