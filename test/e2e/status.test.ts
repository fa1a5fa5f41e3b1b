import { afterAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlSocketPath } from '../../fs/daemon/control-socket.js';
import { CLI, availableTransports, haveTool, mountForTest, run, shOk, sleep, unmountAll } from './harness.js';

/** `atefs status` against real mount daemons: the list, one mount's figures, the live panel in tmux. */

const transport = availableTransports().includes('kernel') ? 'kernel' : availableTransports()[0]!;

interface Line { dir: string; chain: string; transport: string; mode: string; state: string }
interface Status { mountpoint: string; chain: string; mode: string; state: string; commits: number; bytesWritten: number; seq?: number; logBytes?: number }

async function atefs(...args: string[]): Promise<string> {
  const r = await run(process.execPath, [CLI, ...args], { timeout: 60_000 });
  if (r.code !== 0) throw new Error(`atefs ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

afterAll(async () => { await unmountAll(); });

describe(`atefs status (${transport} mounts)`, () => {
  it('lists every mount of the user and answers for one through its 0600 control socket', async () => {
    const logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-status-'));
    const a = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', logPath] });
    const t = await mountForTest({ transport });
    try {
      const list = (JSON.parse(await atefs('status', '--json')) as { mounts: Line[] }).mounts;
      const la = list.find((l) => l.dir === a.dir);
      const lt = list.find((l) => l.dir === t.dir);
      expect(la).toMatchObject({ chain: logPath, transport, mode: 'local', state: 'mounted' });
      expect(lt).toMatchObject({ chain: 'temp', state: 'mounted' });
      expect(await atefs('status')).toMatch(new RegExp(`${a.dir}\\s+${logPath}\\s+${transport}\\s+local\\s+mounted`));

      await shOk(`head -c 3145728 /dev/urandom > ${a.dir}/three-mib && sync ${a.dir}/three-mib`);
      const s = JSON.parse(await atefs('status', a.dir, '--json')) as Status;
      expect(s).toMatchObject({ mountpoint: a.dir, chain: logPath, mode: 'local', state: 'mounted' });
      expect(s.bytesWritten).toBeGreaterThanOrEqual(3 << 20);
      expect(s.commits).toBeGreaterThanOrEqual(1);
      expect(s.logBytes).toBeGreaterThan(3 << 20);
      expect(s.seq).toBeGreaterThan(1);
      const plain = await atefs('status', a.dir);
      expect(plain).toContain(`mount: ${a.dir}\n`);
      expect(plain).toMatch(/bytes written: \d{7,}/);

      for (const dir of [a.dir, t.dir]) expect((await fsp.stat(controlSocketPath(dir))).mode & 0o777).toBe(0o600);

      // A daemon that died is reported as such, not as mounted.
      t.kill('SIGKILL');
      await t.exited;
      const after = (JSON.parse(await atefs('status', '--json')) as { mounts: Line[] }).mounts;
      expect(after.find((l) => l.dir === t.dir)?.state).toMatch(/stale/);
      const r = await run(process.execPath, [CLI, 'status', t.dir], { timeout: 30_000 });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/not an atefs mount/);
    } finally {
      await t.unmount();
      await a.unmount();
      await fsp.rm(logPath, { recursive: true, force: true });
    }
    const gone = (JSON.parse(await atefs('status', '--json')) as { mounts: Line[] }).mounts;
    expect(gone.find((l) => l.dir === a.dir)).toBeUndefined();
  }, 180_000);

  it.skipIf(!haveTool('tmux'))('the live panel in a terminal shows the figures while files are copied in', async () => {
    const m = await mountForTest({ transport });
    // A socket of its own (not /tmp/tmux-UID, whose permissions another process may have changed).
    const sockDir = await fsp.mkdtemp(join(tmpdir(), 'atefs-status-tmux-'));
    const sock = join(sockDir, 'tmux.sock');
    const env = ['XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_STATE_HOME'].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]}`).join(' ');
    try {
      await shOk(`tmux -S ${sock} new-session -d -x 120 -y 40 "env -u CI ${env} ${process.execPath} ${CLI} status ${m.dir} --interval 200; sleep 30"`);
      await shOk(`for i in 1 2 3 4 5 6 7 8; do head -c 1048576 /dev/urandom > ${m.dir}/f$i; done; sync ${m.dir}/f8`);
      let screen = '';
      for (let i = 0; i < 50; i++) {
        await sleep(200);
        screen = await shOk(`tmux -S ${sock} capture-pane -p`);
        if (/written\s+8\.0 MiB/.test(screen)) break;
      }
      expect(screen).toContain(m.dir);
      expect(screen).toMatch(/written\s+8\.0 MiB/);
      expect(screen).toMatch(/commits\s+\d+ \(\d+\.\d\/s\)/);
      expect(screen).toMatch(/Ctrl-C leaves this view/);
    } finally {
      await run('tmux', ['-S', sock, 'kill-server']);
      await fsp.rm(sockDir, { recursive: true, force: true });
      await m.unmount();
    }
  }, 120_000);
});
