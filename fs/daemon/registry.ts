import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Which process serves which mountpoint, so `atefs unmount` can ask the daemon to shut down
 * cleanly (commit, then unmount) instead of pulling the mount from under it. One small JSON file
 * per mountpoint in the user's runtime directory.
 */

export interface MountRecord {
  pid: number;
  mountpoint: string;
  transport: string;
  startedAt: string;
  statsFile?: string;
  /** The daemon's control socket (`atefs status`). */
  control?: string;
  /** The local chain directory served (absent for temp and remote mounts). */
  chain?: string;
  /** Set by a daemon whose shutdown failed (e.g. the final commit), for `atefs unmount` to report. */
  exitError?: string;
}

export function registryDir(): string {
  const runtime = process.env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, 'atefs', 'mounts') : join(tmpdir(), `atefs-${process.getuid?.() ?? 0}`, 'mounts');
}

const fileOf = (abs: string) => join(registryDir(), `${createHash('sha256').update(abs).digest('hex').slice(0, 24)}.json`);

export async function recordMount(rec: MountRecord): Promise<void> {
  await mkdir(registryDir(), { recursive: true, mode: 0o700 });
  const file = fileOf(rec.mountpoint);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(rec), { mode: 0o600 });
  await rename(tmp, file);
}

export async function readMountRecord(abs: string): Promise<MountRecord | undefined> {
  try {
    const rec = JSON.parse(await readFile(fileOf(abs), 'utf8')) as MountRecord;
    return rec.mountpoint === abs && Number.isInteger(rec.pid) ? rec : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The record of the mount at `abs` as a user names it: under its real path (a symlinked or dead
 * mount's path stays as given), else under the path given, when that differs.
 */
export async function readMountRecordOf(abs: string): Promise<MountRecord | undefined> {
  const real = await realpath(abs).catch(() => abs);
  return (await readMountRecord(real)) ?? (real !== abs ? await readMountRecord(abs) : undefined);
}

/** Removes the record, but only if it still names this process (a newer daemon may own it). */
export async function forgetMount(abs: string, pid: number): Promise<void> {
  const rec = await readMountRecord(abs);
  if (rec && rec.pid !== pid) return;
  await rm(fileOf(abs), { force: true });
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Every mount record of this user (live or left by a daemon that died). */
export async function listMountRecords(): Promise<MountRecord[]> {
  let names: string[];
  try {
    names = await readdir(registryDir());
  } catch {
    return [];
  }
  const out: MountRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    try {
      const rec = JSON.parse(await readFile(join(registryDir(), n), 'utf8')) as MountRecord;
      if (typeof rec.mountpoint === 'string' && Number.isInteger(rec.pid)) out.push(rec);
    } catch { /* being rewritten */ }
  }
  return out.sort((a, b) => a.mountpoint.localeCompare(b.mountpoint));
}
