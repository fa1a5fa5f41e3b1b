import { mkdir, readdir, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MountError } from '../mount.js';
import { findMount, isFuse, unmountByPath } from './mounttab.js';

/** How long a FUSE mountpoint may take to answer a stat before it counts as hung. */
const PROBE_MS = 3000;

export type ProbeResult = 'alive' | 'stale' | 'hung';

/**
 * Is the FUSE mount on `abs` served? A mount whose daemon died answers ENOTCONN at once; one whose
 * daemon is alive but stuck never answers (the stat stays blocked in a pool thread; we move on).
 */
export async function probeFuseMount(abs: string): Promise<ProbeResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ProbeResult>((ok) => { timer = setTimeout(() => ok('hung'), PROBE_MS); });
  const probe = stat(abs).then(
    () => 'alive' as const,
    (e: NodeJS.ErrnoException) => (e.code === 'ENOTCONN' || e.code === 'ECONNABORTED' ? 'stale' as const : 'alive' as const),
  );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface PreparedMountpoint {
  /** A stale mount was detached. */
  cleaned: boolean;
  /** The topmost directory created for the mount (null: `abs` existed): removeCreatedMountpoint undoes it. */
  created: string | null;
}

/**
 * Gets `abs` ready to be mounted on: created if missing, a stale FUSE mount left by a killed
 * daemon detached, and refused with a clear message when it is in use, not a directory or not
 * empty (libfuse 2 refuses non-empty mountpoints anyway, with a less helpful message).
 */
export async function prepareMountpoint(abs: string): Promise<PreparedMountpoint> {
  let cleaned = false;
  const m = await findMount(abs);
  if (m) {
    if (!isFuse(m)) throw new MountError(`${abs} is already a mountpoint (${m.fstype} ${m.source})`);
    const state = await probeFuseMount(abs);
    if (state === 'alive') throw new MountError(`${abs} is already mounted (${m.fstype} ${m.source}); unmount it first: atefs unmount ${abs}`);
    if (state === 'hung') throw new MountError(`${abs} is mounted by a filesystem that does not answer; run: atefs unmount ${abs}`);
    if (!(await unmountByPath(abs))) throw new MountError(`${abs} has a stale mount that could not be removed (try: fusermount -uz ${abs})`);
    cleaned = true;
  }
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new MountError(`cannot use ${abs} as a mountpoint: ${code ?? (e as Error).message}`);
    const created = await mkdir(abs, { recursive: true });
    return { cleaned, created: created ?? null };
  }
  if (!st.isDirectory()) throw new MountError(`${abs} is not a directory`);
  const names = await readdir(abs);
  if (names.length > 0) throw new MountError(`mountpoint ${abs} is not empty (${names.length} entr${names.length === 1 ? 'y' : 'ies'}); mount on an empty directory`);
  return { cleaned, created: null };
}

/**
 * A mount that did not happen (chain in use, bad key, mount refused) leaves no trace: the
 * directories prepareMountpoint created for it, from `abs` up to `created`, are removed — each
 * only while it is empty (rmdir refuses otherwise: something put there since is kept).
 */
export async function removeCreatedMountpoint(abs: string, created: string | null): Promise<void> {
  if (created === null || !(abs === created || abs.startsWith(`${created}/`))) return;
  for (let dir = abs; ; dir = dirname(dir)) {
    try { await rmdir(dir); } catch { return; }
    if (dir === created || dirname(dir) === dir) return;
  }
}
