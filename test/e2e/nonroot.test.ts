import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMount, unmountByPath } from '../../fs/daemon/mounttab.js';
import { CLI, OTHER_GID, OTHER_UID, ensureBuilt, mountForTest, sh, shOk, sleep, unmountAll } from './harness.js';
import { NONROOT_TRANSPORT, ensureUserAllowOther, nonrootLaunch, prepareNonroot } from './nonroot.js';

/**
 * The kernel transport for an unprivileged user: the daemon runs as NONROOT_USER and mounts
 * through the setuid fusermount. (The e2e suites run on it as the 'kernel-nonroot' transport; this
 * file checks what is particular to it.)
 */

const asRoot = process.getuid?.() === 0;

afterAll(async () => { await unmountAll(); });

async function uidOf(pid: number): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
}

describe.skipIf(!asRoot)('the kernel transport without root', () => {
  it('is the default for a non-root user: mounted by fusermount for that user, served by our protocol', async () => {
    await ensureBuilt();
    const u = prepareNonroot();
    const dir = await mkdtemp(join(tmpdir(), 'atefs-e2e-nr-'));
    // No --transport and no --allow-other.
    const launch = nonrootLaunch([CLI, 'mount', dir, '--temp', '--json'], dir);
    const child = spawn(launch.cmd, launch.args, { env: launch.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number | string>((ok) => child.on('exit', (c, s) => ok(c ?? s ?? 'unknown')));
    try {
      for (let i = 0; i < 300 && !out.includes('\n'); i++) await sleep(100);
      const event = JSON.parse(out.split('\n')[0] || '{}') as Record<string, unknown>;
      expect(event, err).toMatchObject({ event: 'mounted', mountpoint: dir, transport: 'kernel', pid: child.pid });
      expect(await uidOf(child.pid!)).toBe(u.uid);
      const m = await findMount(dir);
      expect(m?.fstype).toBe('fuse.atefs');
      const info = (await fsp.readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === dir)!;
      expect(info).toMatch(new RegExp(`user_id=${u.uid},group_id=${u.gid}`));
      expect(info).toMatch(/default_permissions/);
      expect(info).not.toMatch(/allow_other/);
      // Without allow_other the kernel admits nobody but the mounting user, root included.
      expect((await sh(`stat ${dir}`)).code).not.toBe(0);

      // The user works in it and unmounts it with fusermount -u; the daemon commits and exits 0.
      await shOk(`cd ${dir} && echo hi > a && ln a b && test "$(stat -c %h a)" = 2 && rm b && test "$(stat -c %h a)" = 1 && test "$(stat -c %U a)" = ${u.name}`, { uid: u.uid, gid: u.gid });
      // Bounded retry on EBUSY: another test process walking /tmp may hold the directory a moment.
      await shOk(`for i in $(seq 20); do e=$(fusermount -u ${dir} 2>&1) && exit 0; case "$e" in *busy*) sleep 0.25;; *) break;; esac; done; echo "$e" >&2; exit 1`, { uid: u.uid, gid: u.gid });
      expect(await Promise.race([exited, sleep(20_000).then(() => 'timeout')])).toBe(0);
      expect(await findMount(dir)).toBeUndefined();
    } finally {
      await unmountByPath(dir);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await fsp.rmdir(dir).catch(() => {});
    }
  }, 120_000);

  it('--allow-other: files belong to whoever created them (the mounting user, another uid, root)', async () => {
    const u = prepareNonroot();
    const m = await mountForTest({ transport: NONROOT_TRANSPORT, allowOther: true });
    try {
      await shOk(`chmod 0777 ${m.dir}`, { uid: u.uid, gid: u.gid });
      await shOk(`echo mine > ${m.dir}/by-user && mkdir ${m.dir}/dir-by-user`, { uid: u.uid, gid: u.gid });
      await shOk(`echo theirs > ${m.dir}/by-other && mkdir ${m.dir}/dir-by-other`, { uid: OTHER_UID, gid: OTHER_GID });
      await shOk(`echo root > ${m.dir}/by-root`);
      const owners = await shOk(`cd ${m.dir} && stat -c '%n %u %g' by-user dir-by-user by-other dir-by-other by-root`);
      expect(owners.trim().split('\n')).toEqual([
        `by-user ${u.uid} ${u.gid}`, `dir-by-user ${u.uid} ${u.gid}`,
        `by-other ${OTHER_UID} ${OTHER_GID}`, `dir-by-other ${OTHER_UID} ${OTHER_GID}`,
        'by-root 0 0',
      ]);
      // Modes are enforced between them (default_permissions): the other uid cannot write the user's file.
      await shOk(`chmod 0644 ${m.dir}/by-user`, { uid: u.uid, gid: u.gid });
      expect((await sh(`echo x >> ${m.dir}/by-user`, { uid: OTHER_UID, gid: OTHER_GID })).stderr).toMatch(/Permission denied/);
      // Only root or the owner may chown; the mounting user is neither for another's file.
      expect((await sh(`chown ${u.uid} ${m.dir}/by-other`, { uid: u.uid, gid: u.gid })).code).not.toBe(0);
      await shOk(`chown ${u.uid}:${u.gid} ${m.dir}/by-other`);
      expect((await shOk(`stat -c %u ${m.dir}/by-other`)).trim()).toBe(String(u.uid));
    } finally {
      await m.unmount();
    }
  }, 120_000);

  it('user_allow_other is switched on idempotently in a fuse.conf', async () => {
    const d = await mkdtemp(join(tmpdir(), 'atefs-fuseconf-'));
    try {
      const f = join(d, 'fuse.conf');
      await fsp.writeFile(f, '# comment\n#user_allow_other\nmount_max = 10\n');
      ensureUserAllowOther(f);
      ensureUserAllowOther(f);
      expect(await fsp.readFile(f, 'utf8')).toBe('# comment\nuser_allow_other\nmount_max = 10\n');
      await fsp.writeFile(f, 'mount_max = 10');
      ensureUserAllowOther(f);
      ensureUserAllowOther(f);
      expect(await fsp.readFile(f, 'utf8')).toBe('mount_max = 10\nuser_allow_other\n');
    } finally {
      await fsp.rm(d, { recursive: true, force: true });
    }
  });
});
