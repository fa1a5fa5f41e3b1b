/**
 * The bench's non-root atefs daemon: the kernel transport mounting through the setuid fusermount,
 * as every non-root user does. Same machine set-up and user as the e2e suites' 'kernel-nonroot'
 * transport (test/e2e/nonroot.ts; not imported: test/ is outside the build): /dev/fuse 0666,
 * user_allow_other, the system user atefs-nonroot. The bench stays root (it drops caches and runs
 * the workloads); the daemon runs as the user through setpriv (it execs: the PID we get is the
 * daemon's own) and mounts with --allow-other, the only way root reaches a user's FUSE mount.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const NONROOT_USER = 'atefs-nonroot';

export interface NonrootUser { name: string; uid: number; gid: number }

const idOf = (flag: '-u' | '-g'): number => Number(execFileSync('id', [flag, NONROOT_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());

function userExists(): boolean {
  try { idOf('-u'); return true; } catch { return false; }
}

/** Why the non-root target cannot run here, or undefined. */
export function nonrootUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the bench must run as root to start a daemon as another user';
  if (!existsSync('/usr/bin/setpriv') && !existsSync('/bin/setpriv')) return 'setpriv (util-linux) missing';
  if (!existsSync('/bin/fusermount') && !existsSync('/usr/bin/fusermount')) return 'fusermount (Debian package fuse) missing';
  return undefined;
}

let prepared: NonrootUser | undefined;

/** Brings the machine to a stock Debian's state for non-root mounts (idempotent) and returns the user. */
export function prepareNonroot(): NonrootUser {
  if (prepared) return prepared;
  if ((statSync('/dev/fuse').mode & 0o666) !== 0o666) chmodSync('/dev/fuse', 0o666);
  const conf = '/etc/fuse.conf';
  const text = existsSync(conf) ? readFileSync(conf, 'utf8') : '';
  if (!/^[ \t]*user_allow_other[ \t]*$/m.test(text)) writeFileSync(conf, `${text}${text && !text.endsWith('\n') ? '\n' : ''}user_allow_other\n`);
  if (!userExists()) {
    try {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', NONROOT_USER], { stdio: 'pipe' });
    } catch (e) {
      if (!userExists()) throw e; // another process created it meanwhile otherwise
    }
  }
  prepared = { name: NONROOT_USER, uid: idOf('-u'), gid: idOf('-g') };
  return prepared;
}

/**
 * Hands the bench's own per-target directories (never a shared one: they are all fresh children
 * of the run's scratch directories) to the user, recursively.
 */
export function giveToUser(u: NonrootUser, dirs: string[]): void {
  for (const d of dirs) {
    const real = resolve(d);
    if (!/\/atefs-bench-\d+\//.test(real)) throw new Error(`refusing to hand ${real} (not a bench scratch directory) to ${u.name}`);
    execFileSync('chown', ['-R', `${u.uid}:${u.gid}`, real]);
  }
}

/** `setpriv ... -- node <argv>`: the argv of a daemon run as the user. */
export function asUser(u: NonrootUser, argv: string[]): { cmd: string; args: string[] } {
  return { cmd: 'setpriv', args: ['--reuid', String(u.uid), '--regid', String(u.gid), '--clear-groups', '--', process.execPath, ...argv] };
}
