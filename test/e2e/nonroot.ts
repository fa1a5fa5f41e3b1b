/**
 * Mount daemons run as an unprivileged user, for the e2e suites' 'kernel-nonroot' transport: the
 * kernel transport mounting through the setuid fusermount, as every non-root user does.
 *
 * The test process stays root (it checks ownership as other uids, drops caches); the daemon runs
 * as NONROOT_USER through setpriv (no PAM, no login shell: the PID we get is the daemon's own, so
 * it is killed by PID like any other). Root reaches the mount only through allow_other, so every
 * non-root mount is made with --allow-other (user_allow_other in /etc/fuse.conf).
 *
 * prepareNonroot() brings the machine to what a stock Debian with the `fuse` package and udev has
 * (idempotently, like scripts/setup): /dev/fuse mode 0666, user_allow_other, and the test user.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const NONROOT_TRANSPORT = 'kernel-nonroot';
/** The unprivileged user the daemons run as (a system user without a home, created when missing). */
export const NONROOT_USER = 'atefs-nonroot';

export interface NonrootUser { name: string; uid: number; gid: number; home: string }

let prepared: NonrootUser | null = null;

function idOf(flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, NONROOT_USER], { encoding: 'utf8' }).trim());
}

function userExists(): boolean {
  try { idOf('-u'); return true; } catch { return false; }
}

/** Uncomments or appends `user_allow_other` in /etc/fuse.conf (fusermount reads it at each mount). */
export function ensureUserAllowOther(path = '/etc/fuse.conf'): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  if (/^[ \t]*user_allow_other[ \t]*$/m.test(text)) return;
  const next = /^#[ \t]*user_allow_other[ \t]*$/m.test(text)
    ? text.replace(/^#[ \t]*user_allow_other[ \t]*$/m, 'user_allow_other')
    : `${text}${text && !text.endsWith('\n') ? '\n' : ''}user_allow_other\n`;
  writeFileSync(path, next);
}

/**
 * Makes this machine able to mount as NONROOT_USER and returns the user with a private home whose
 * XDG directories the daemons of this test process share (identity and pins stay the same across
 * remounts of one chain). Root only.
 */
export function prepareNonroot(): NonrootUser {
  if (prepared) return prepared;
  if (process.getuid?.() !== 0) throw new Error('non-root mount tests set up the machine and must run as root');
  if ((statSync('/dev/fuse').mode & 0o666) !== 0o666) chmodSync('/dev/fuse', 0o666);
  ensureUserAllowOther();
  if (!userExists()) {
    try {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', NONROOT_USER], { stdio: 'pipe' });
    } catch (e) {
      // Another test process may have created it meanwhile.
      if (!userExists()) throw e;
    }
  }
  const uid = idOf('-u');
  const gid = idOf('-g');
  const home = mkdtempSync(join(tmpdir(), 'atefs-nonroot-home-'));
  for (const d of ['config', 'data', 'state', 'run']) mkdirSync(join(home, d), { mode: 0o700 });
  for (const d of ['', 'config', 'data', 'state', 'run']) chownSync(join(home, d), uid, gid);
  prepared = { name: NONROOT_USER, uid, gid, home };
  return prepared;
}

/** A directory every user may create files in (e.g. /tmp): never handed to anyone. */
function isSharedDir(dir: string): boolean {
  const st = statSync(dir);
  return (st.mode & 0o1002) === 0o1002;
}

/**
 * A directory the daemon must write (a log directory), owned by the user with what it holds
 * (created when missing). A shared directory such as /tmp, '/' or tmpdir() itself is refused: an
 * earlier version chowned /tmp recursively when a test put its stats file there.
 */
function giveToUser(u: NonrootUser, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const real = resolve(dir);
  if (real === '/' || real === resolve(tmpdir()) || isSharedDir(real)) {
    throw new Error(`refusing to hand the shared directory ${real} to ${u.name}`);
  }
  execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, real]);
}

/**
 * The daemon writes `file` (its stats file): in a shared directory (sticky, world-writable) the
 * user can create it already, and only a file left there by another user is handed over; any other
 * directory becomes the user's (not recursively).
 */
function giveFileToUser(u: NonrootUser, file: string): void {
  const dir = dirname(resolve(file));
  mkdirSync(dir, { recursive: true });
  if (!isSharedDir(dir)) chownSync(dir, u.uid, u.gid);
  if (existsSync(file)) chownSync(file, u.uid, u.gid);
}

export interface NonrootLaunch { cmd: string; args: string[]; env: NodeJS.ProcessEnv }

/** The --transport the daemon is given for a suite's transport name. */
export function daemonTransport(transport: string): string {
  return transport === NONROOT_TRANSPORT ? 'kernel' : transport;
}

/**
 * How to start `node <daemonArgs>` as the non-root user on `mountpoint` (null: a command that
 * mounts nothing, e.g. `atefs unmount`): the mountpoint, a --log-path and the directory of a
 * --stats-file are handed to the user first.
 */
export function nonrootLaunch(daemonArgs: string[], mountpoint: string | null): NonrootLaunch {
  const u = prepareNonroot();
  if (mountpoint !== null) try {
    chownSync(mountpoint, u.uid, u.gid);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // A remount on a directory the last unmount removed; or the dead mount a SIGKILLed daemon
    // left (ENOTCONN): the directory under it is the user's already, and the daemon detaches it.
    if (code === 'ENOENT') giveToUser(u, mountpoint);
    else if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') throw e;
  }
  for (let i = 0; i < daemonArgs.length - 1; i++) {
    if (daemonArgs[i] === '--log-path') giveToUser(u, daemonArgs[i + 1]!);
    if (daemonArgs[i] === '--stats-file') giveFileToUser(u, daemonArgs[i + 1]!);
  }
  return {
    cmd: 'setpriv',
    args: ['--reuid', String(u.uid), '--regid', String(u.gid), '--clear-groups', '--', process.execPath, ...daemonArgs],
    env: {
      ...process.env,
      HOME: u.home,
      USER: u.name,
      LOGNAME: u.name,
      XDG_CONFIG_HOME: join(u.home, 'config'),
      XDG_DATA_HOME: join(u.home, 'data'),
      XDG_STATE_HOME: join(u.home, 'state'),
      XDG_RUNTIME_DIR: join(u.home, 'run'),
      CI: 'true',
    },
  };
}
