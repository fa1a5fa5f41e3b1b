import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlSocketPath, queryControl } from '../../fs/daemon/control-socket.js';
import type { MountPanelStatus } from '../../cli/tui/mount-panel.js';
import { findMount, unmountByPath } from '../../fs/daemon/mounttab.js';
import { CLI, availableTransports, haveTool, mountForTest, run, shOk, sleep, unmountAll } from './harness.js';

/**
 * Loading progress on a real mount: an index rebuild of a chain of a few hundred commits prints
 * its phase with percentages up to 100 % (off a terminal, on stderr), and `atefs status` (the
 * control socket) answers 'loading' with the phase meanwhile; an open with its index intact stays
 * quiet under the default ATEFS_PROGRESS_AFTER_MS.
 */

/** Asks the control socket of `dir` every few ms until stopped: every answer it got. */
function pollStatus(dir: string): { stop(): Promise<MountPanelStatus[]> } {
  const seen: MountPanelStatus[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      try { seen.push(await queryControl<MountPanelStatus>(controlSocketPath(dir), 1000)); } catch { /* not listening yet */ }
      await sleep(5);
    }
  })();
  // The last answer is asked for after the stop: the mount is up by then.
  return { stop: async () => { on = false; await loop; seen.push(await queryControl<MountPanelStatus>(controlSocketPath(dir))); return seen; } };
}

const transport = availableTransports().includes('kernel') ? 'kernel' : availableTransports()[0]!;

const progressLines = (stderr: string) => stderr.split('\n').filter((l) => /^[a-z :]+: \d+% \(/.test(l));

afterAll(async () => { await unmountAll(); });

describe(`loading progress (${transport} mounts)`, () => {
  it('an index rebuild and a compaction show their phases from 0 % to 100 %; a fast open shows nothing', async () => {
    const logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-progress-'));
    const mountArgs = { transport, temp: false, extraArgs: ['--log-path', logPath] };
    try {
      // A chain of ~200 commits (one per synced file) and 16 MiB of content.
      let m = await mountForTest(mountArgs);
      await shOk(`for i in $(seq 200); do echo "file $i" > ${m.dir}/f$i; sync ${m.dir}/f$i; done`, { timeout: 300_000 });
      await shOk(`head -c 16777216 /dev/urandom > ${m.dir}/big && sync ${m.dir}/big`);
      const sum = await shOk(`md5sum < ${m.dir}/big`);
      const dir = m.dir;
      await m.unmount();

      // Index intact: the open checks it against the log in a few ms, below the threshold.
      m = await mountForTest({ ...mountArgs, dir, env: { ATEFS_PROGRESS_AFTER_MS: '' } });
      expect(progressLines(m.output().stderr)).toEqual([]);
      await m.unmount();

      await fsp.rm(join(logPath, 'index'), { recursive: true, force: true });
      const poll = pollStatus(dir);
      m = await mountForTest({ ...mountArgs, dir, env: { ATEFS_PROGRESS_AFTER_MS: '0' } });
      const seen = await poll.stop();
      // While the index was rebuilt the socket already answered: state 'loading' with the phase.
      const during = seen.filter((s) => s.state === 'loading' && s.progress?.phase === 'rebuild');
      expect(during.length, JSON.stringify(seen.map((s) => [s.state, s.progress?.percent]))).toBeGreaterThan(0);
      expect(during[0]).toMatchObject({ mountpoint: dir, chain: logPath, progress: { label: 'rebuilding the index', unit: 'bytes', finished: false } });
      expect(seen.at(-1)?.state).toBe('mounted');
      const lines = progressLines(m.output().stderr);
      const rebuild = lines.filter((l) => l.startsWith('rebuilding the index: '));
      expect(rebuild.length).toBeGreaterThanOrEqual(2);
      const pct = rebuild.map((l) => Number(/: (\d+)% /.exec(l)![1]));
      expect(pct[0]).toBe(0);
      expect(pct.at(-1)).toBe(100);
      expect(pct).toEqual([...pct].sort((a, b) => a - b));
      expect(rebuild[0]).toMatch(/\(0 B of 1[6-9]\.\d MiB, /);
      expect(rebuild.at(-1)).toMatch(/: 100% \(1[6-9]\.\d MiB in \d+\.\d s, [\d.]+ (KiB|MiB|GiB)\/s\)$/);
      // The rebuilt index serves the same files; status shows no phase under way any more.
      expect(await shOk(`cat ${m.dir}/f123`)).toBe('file 123\n');
      expect(await shOk(`md5sum < ${m.dir}/big`)).toBe(sum);
      const status = await run(process.execPath, [CLI, 'status', m.dir], { timeout: 30_000, env: { ...process.env, CI: 'true' } });
      expect(status.stdout).toContain('state: mounted\n');
      expect(status.stdout).not.toContain('progress:');
      await shOk(`rm ${m.dir}/big && sync ${m.dir}`);
      await m.unmount();

      // --compact-now compacts while the mount opens: each step of the compaction from 0 to 100 %.
      m = await mountForTest({ ...mountArgs, extraArgs: [...mountArgs.extraArgs, '--compact-now'], dir, env: { ATEFS_PROGRESS_AFTER_MS: '0' } });
      const compaction = progressLines(m.output().stderr).filter((l) => l.startsWith('compaction: '));
      const steps = [...new Set(compaction.map((l) => l.slice(0, l.indexOf('%')).replace(/: \d+$/, '')))];
      expect(steps).toEqual(['compaction: finding live records', 'compaction: checking the new log', 'compaction: writing the new log', 'compaction: updating the index']);
      for (const step of steps) {
        const mine = compaction.filter((l) => l.startsWith(`${step}: `)).map((l) => Number(/: (\d+)% /.exec(l)![1]));
        expect(mine[0], step).toBe(0);
        expect(mine.at(-1), step).toBe(100);
      }
      expect(await shOk(`cat ${m.dir}/f7`)).toBe('file 7\n');
      await m.unmount();
    } finally {
      await unmountAll();
      await fsp.rm(logPath, { recursive: true, force: true });
    }
  }, 600_000);

  it.skipIf(!haveTool('script'))('in a terminal the mount draws the rebuild as an Ink bar, then its panel', async () => {
    const logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-progress-tty-'));
    const work = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-progress-tty-w-'));
    const dir = join(work, 'mnt');
    const typescript = join(work, 'typescript');
    let pid: number | undefined;
    try {
      const m = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', logPath] });
      await shOk(`for i in $(seq 40); do echo "file $i" > ${m.dir}/f$i; sync ${m.dir}/f$i; done; head -c 8388608 /dev/urandom > ${m.dir}/big && sync ${m.dir}/big`, { timeout: 300_000 });
      await m.unmount();
      await fsp.rm(join(logPath, 'index'), { recursive: true, force: true });
      // A pseudo-terminal of 120 columns (script(1)); CI unset: the daemon draws with Ink.
      const cmd = `stty cols 120 rows 40; exec env -u CI ATEFS_PROGRESS_AFTER_MS=0 ${process.execPath} ${CLI} mount ${dir} --transport ${transport} --log-path ${logPath}`;
      const child = spawn('script', ['-qfc', cmd, typescript], { stdio: 'ignore' });
      pid = child.pid;
      const exited = new Promise((ok) => child.on('exit', ok));
      let up = false;
      for (let i = 0; i < 600 && !up; i++) {
        await sleep(100);
        up = await queryControl<MountPanelStatus>(controlSocketPath(dir), 1000).then((s) => s.state === 'mounted', () => false);
      }
      expect(up).toBe(true);
      await sleep(1500); // the panel's first frames
      const u = await run(process.execPath, [CLI, 'unmount', dir], { timeout: 60_000 });
      expect(u.code, u.stderr).toBe(0);
      await Promise.race([exited, sleep(30_000)]);
      // What the terminal was sent, without the escape sequences.
      const screen = (await fsp.readFile(typescript, 'utf8')).replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '');
      expect(screen).toContain(`atefs: opening ${logPath}`);
      expect(screen).toMatch(/rebuilding the index\r?\n\s*[█░]{30}\s+\d+%\s+[\d.]+ (B|KiB|MiB) of [\d.]+ MiB, /);
      expect(screen).toMatch(/atefs\s+mounted\s+/);
      expect(screen).toMatch(/chain\s+/);
    } finally {
      if (await findMount(dir)) await unmountByPath(dir);
      if (pid !== undefined) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await unmountAll();
      await fsp.rm(work, { recursive: true, force: true });
      await fsp.rm(logPath, { recursive: true, force: true });
    }
  }, 600_000);
});
