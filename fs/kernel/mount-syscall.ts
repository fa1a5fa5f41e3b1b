/**
 * Attaching and detaching the kernel transport's /dev/fuse connection.
 *
 * Node cannot call mount(2) itself. Two ways, chosen by kernelMountMethod():
 *  - 'mount' (root or CAP_SYS_ADMIN): util-linux's `mount -i` calls mount(2) directly (no
 *    /sbin/mount.fuse helper) with the /dev/fuse descriptor we opened handed to the child as fd 3;
 *    `umount` detaches.
 *  - 'fusermount' (any other user): the setuid `fusermount` mounts and sends the descriptor back
 *    (fusermount.ts); `fusermount -u` detaches. Needs read/write access to /dev/fuse (mode 0666,
 *    as udev sets it on a stock Debian) and, for allow_other, user_allow_other in /etc/fuse.conf.
 */
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fusermountMount, fusermountUnmount } from './fusermount.js';

export class KernelMountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelMountError';
  }
}

/** True when this process may call mount(2) itself: root or CAP_SYS_ADMIN. */
function maySysMount(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (!m) return false;
    const CAP_SYS_ADMIN = 21n;
    return ((BigInt('0x' + m[1]) >> CAP_SYS_ADMIN) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** fusermount (libfuse 2, Debian's `fuse`) or fusermount3 (libfuse 3) on PATH; both speak _FUSE_COMMFD. */
export function findFusermount(): string | null {
  for (const name of ['fusermount', 'fusermount3']) {
    for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
      if (!dir) continue;
      const p = join(dir, name);
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch { /* next */ }
    }
  }
  return null;
}

export type KernelMountMethod = 'mount' | 'fusermount';

/**
 * How this process can attach a kernel-transport mount, or null when it cannot (not Linux, no
 * /dev/fuse, neither root nor a fusermount). ATEFS_KERNEL_MOUNT=fusermount makes root mount
 * through fusermount too (tests of that path).
 */
export function kernelMountMethod(): KernelMountMethod | null {
  if (process.platform !== 'linux' || !existsSync('/dev/fuse')) return null;
  const forced = process.env.ATEFS_KERNEL_MOUNT;
  if (forced !== 'fusermount' && maySysMount()) return 'mount';
  return findFusermount() ? 'fusermount' : null;
}

/** True when the kernel transport can mount here (as root, or through fusermount as anyone). */
export function kernelTransportAvailable(): boolean {
  return kernelMountMethod() !== null;
}

export function run(cmd: string, args: string[], fd?: number): Promise<{ code: number; stderr: string }> {
  return new Promise((res) => {
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', 'pipe'];
    if (fd !== undefined) stdio.push(fd);
    const child = spawn(cmd, args, { stdio });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (e) => res({ code: -1, stderr: e.message }));
    child.on('close', (code) => res({ code: code ?? -1, stderr: stderr.trim() }));
  });
}

/** Mount entries (decoded paths) for `dir` in /proc/self/mountinfo. */
export function mountedAt(dir: string): Array<{ fstype: string; source: string }> {
  const abs = resolve(dir);
  const out: Array<{ fstype: string; source: string }> = [];
  let text = '';
  try { text = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return out; }
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10) continue;
    if (unescape(f[4]!) !== abs) continue;
    const dash = f.indexOf('-');
    out.push({ fstype: f[dash + 1] ?? '', source: unescape(f[dash + 2] ?? '') });
  }
  return out;
}

/**
 * A FUSE mount whose daemon died leaves "Transport endpoint is not connected" behind. Detach it
 * (lazily: a process may still sit in it) so the directory can be mounted again.
 */
export async function recoverStale(dir: string): Promise<boolean> {
  let stale = false;
  try {
    statSync(dir);
  } catch (e) {
    stale = (e as NodeJS.ErrnoException).code === 'ENOTCONN';
  }
  if (!stale && !mountedAt(dir).some((m) => m.fstype.startsWith('fuse'))) return false;
  if (!stale) return false; // a live FUSE mount belongs to someone: leave it to the caller's error
  const r = await umount(dir, true);
  if (r.code !== 0) throw new KernelMountError(`stale mount at ${dir} could not be detached: ${r.stderr}`);
  return true;
}

export interface MountArgs {
  fd: number;
  mountpoint: string;
  fsname: string;
  allowOther: boolean;
  readOnly: boolean;
  maxRead: number;
}

/**
 * Whether the mount needs `default_permissions` (the kernel checks modes against the caller).
 * Other users reach the mount only with allow_other: then it is needed — without it a path walk
 * through dentries the kernel has cached never asks us, so another uid could pass a directory it
 * may not search. Without allow_other the kernel admits only the mounting uid; when that is root,
 * which passes every read/write/search check anyway (exec of a regular file still needs an x bit,
 * which the kernel checks either way), the kernel's checks add nothing to the core's own
 * (fs/core/permissions.ts, setattr's owner rules) except a GETATTR of the parent directory after
 * every create and unlink (the kernel drops the directory's attributes each time): ~8.6k
 * requests per untar or rm -rf of the bench tree. A non-root mounting user keeps them: it could
 * lock itself out of a directory it then walks through cached dentries.
 */
export function kernelChecksPermissions(allowOther: boolean, uid: number): boolean {
  return allowOther || uid !== 0;
}

/**
 * Mounts `a.mountpoint` and returns the /dev/fuse descriptor of the new connection (the kernel
 * sends INIT on it once it is read). Non-root mounts always get default_permissions (see
 * kernelChecksPermissions); fusermount adds nosuid and nodev itself.
 */
export async function attachFuse(a: Omit<MountArgs, 'fd'>, method: KernelMountMethod): Promise<number> {
  const uid = process.getuid?.() ?? 0;
  const st = statSync(a.mountpoint);
  if (!st.isDirectory()) throw new KernelMountError(`${a.mountpoint} is not a directory`);
  if (method === 'fusermount') {
    const fsname = a.fsname.replace(/[,\s]/g, '_') || 'atefs';
    const o = [`fsname=${fsname}`, 'subtype=atefs', `max_read=${a.maxRead}`];
    if (kernelChecksPermissions(a.allowOther, uid)) o.push('default_permissions');
    if (a.allowOther) o.push('allow_other');
    if (a.readOnly) o.push('ro');
    try {
      return await fusermountMount({ mountpoint: a.mountpoint, options: o.join(',') });
    } catch (e) {
      const msg = (e as Error).message;
      if (/\/dev\/fuse/.test(msg) && /denied|EACCES/i.test(msg)) {
        throw new KernelMountError(`${msg} (/dev/fuse must be mode 0666 for non-root mounts: sudo chmod 0666 /dev/fuse, or run scripts/setup)`);
      }
      if (/allow_other/.test(msg)) {
        throw new KernelMountError(`${msg} (--allow-other without root needs user_allow_other in /etc/fuse.conf)`);
      }
      throw e;
    }
  }
  const fd = openSync('/dev/fuse', 'r+');
  try {
    await mountFuse({ ...a, fd });
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

export async function mountFuse(a: MountArgs): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const st = statSync(a.mountpoint);
  if (!st.isDirectory()) throw new KernelMountError(`${a.mountpoint} is not a directory`);
  const o = [`fd=3`, `rootmode=40000`, `user_id=${uid}`, `group_id=${gid}`, `max_read=${a.maxRead}`];
  if (kernelChecksPermissions(a.allowOther, uid)) o.push('default_permissions');
  if (a.allowOther) o.push('allow_other');
  if (a.readOnly) o.push('ro');
  o.push('nosuid', 'nodev');
  const fsname = a.fsname.replace(/[,\s]/g, '_') || 'atefs';
  const r = await run('mount', ['-i', '-t', 'fuse.atefs', '-o', o.join(','), fsname, a.mountpoint], a.fd);
  if (r.code !== 0) throw new KernelMountError(`mount of ${a.mountpoint} failed: ${r.stderr || `exit ${r.code}`}`);
}

/** Detaches the mount on `dir` (lazily: even while busy): umount as root, else fusermount -u. */
export async function umount(dir: string, lazy = false): Promise<{ code: number; stderr: string }> {
  if (!maySysMount()) return fusermountUnmount(dir, lazy);
  return run('umount', lazy ? ['-l', dir] : [dir]);
}

/** Aborts a FUSE connection by its device number (the minor of st_dev of the mount root). */
export function abortConnection(dev: number): void {
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  try {
    // Writing anything to "abort" ends the connection: pending and future requests fail.
    writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1');
  } catch { /* not mounted (fusectl) or already gone */ }
}
