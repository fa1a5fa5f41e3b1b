import { execFile } from 'node:child_process';
import { access, readFile, writeFile } from 'node:fs/promises';

/**
 * The mount table and the tools that undo mounts. Everything here is asynchronous and never
 * touches a mountpoint's contents: a daemon calling a synchronous fs function on its own mount
 * deadlocks, and a dead FUSE server makes even a stat hang or fail.
 */

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
  /** Device numbers; for FUSE the minor is the connection id under /sys/fs/fuse/connections. */
  major: number;
  minor: number;
  options: string;
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function readMounts(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 3) continue;
    const [maj, min] = (f[2] ?? '0:0').split(':');
    out.push({
      mountpoint: unescapeMountPath(f[4] ?? ''),
      options: f[5] ?? '',
      major: Number(maj),
      minor: Number(min),
      fstype: f[sep + 1] ?? '',
      source: unescapeMountPath(f[sep + 2] ?? ''),
    });
  }
  return out;
}

/** The topmost mount on exactly this absolute path, if any. */
export async function findMount(abs: string): Promise<MountEntry | undefined> {
  const all = await readMounts();
  let found: MountEntry | undefined;
  for (const m of all) if (m.mountpoint === abs) found = m;
  return found;
}

export const isFuse = (m: MountEntry): boolean => m.fstype === 'fuse' || m.fstype.startsWith('fuse.');

export function runTool(cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : 127) : 0;
      resolve({ code, stdout: String(stdout ?? ''), stderr: String(stderr ?? e?.message ?? '') });
    });
  });
}

/** Tells the kernel to fail every pending and future request of a hung FUSE connection. */
export async function abortFuseConnection(minor: number): Promise<boolean> {
  const base = '/sys/fs/fuse/connections';
  try {
    await access(`${base}/${minor}/abort`);
  } catch {
    await runTool('mount', ['-t', 'fusectl', 'none', base]);
  }
  try {
    await writeFile(`${base}/${minor}/abort`, '1');
    return true;
  } catch {
    return false;
  }
}

/**
 * Unmounts a FUSE mount by path: a plain unmount first, a lazy one when it is busy, and as the
 * last resort aborting the connection (a server that stopped answering) and detaching it.
 * Resolves true when the path is no longer a FUSE mountpoint.
 */
export async function unmountByPath(abs: string): Promise<boolean> {
  let m = await findMount(abs);
  if (!m) return true;
  if (!isFuse(m)) return false;
  await runTool('fusermount', ['-u', abs]);
  m = await findMount(abs);
  if (!m || !isFuse(m)) return true;
  await runTool('fusermount', ['-uz', abs]);
  m = await findMount(abs);
  if (!m || !isFuse(m)) return true;
  await abortFuseConnection(m.minor);
  await runTool('fusermount', ['-uz', abs]);
  if (process.getuid?.() === 0) await runTool('umount', ['-l', abs]);
  m = await findMount(abs);
  return !m || !isFuse(m);
}
