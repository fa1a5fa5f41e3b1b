import { afterAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, availableTransports, mountForTest, run, shOk, unmountAll } from './harness.js';

/**
 * Loading progress on a real mount: an index rebuild of a chain of a few hundred commits prints
 * its phase with percentages up to 100 % (off a terminal, on stderr); an open with its index
 * intact stays quiet under the default ATEFS_PROGRESS_AFTER_MS.
 */

const transport = availableTransports().includes('kernel') ? 'kernel' : availableTransports()[0]!;

const progressLines = (stderr: string) => stderr.split('\n').filter((l) => /^[a-z :]+: \d+% \(/.test(l));

afterAll(async () => { await unmountAll(); });

describe(`loading progress (${transport} mounts)`, () => {
  it('an index rebuild shows its phase from 0 % to 100 %; a fast open shows nothing', async () => {
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
      m = await mountForTest({ ...mountArgs, dir, env: { ATEFS_PROGRESS_AFTER_MS: '0' } });
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
      await m.unmount();
    } finally {
      await unmountAll();
      await fsp.rm(logPath, { recursive: true, force: true });
    }
  }, 600_000);
});
