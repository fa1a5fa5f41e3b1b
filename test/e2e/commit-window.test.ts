// Issue 11, the wedge, through real mounts of a persistent chain: directory sequences inside one
// commit window (1 s) must commit, a file written seconds later must be committed in the
// background, `atefs unmount` must succeed, and a remount must show exactly that tree.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, availableTransports, mountForTest, run, shOk, sleep, unmountAll, type TestMount } from './harness.js';

afterAll(async () => { await unmountAll(); });

/** Each runs in its own directory (committed before), all of them in one bash: one window. */
const SEQUENCES = [
  'mkdir d; touch d/f; rm d/f; rmdir d',
  'mkdir d; mkdir d/e; rmdir d/e; rmdir d',
  'mkdir d; touch d/f; mv d/f g; rmdir d',
  'mkdir d; mkdir d/e; touch d/e/f; rm d/e/f; rmdir d/e; rmdir d',
  'mkdir d; mkdir d/e; mkdir d/e/x; rmdir d/e/x; rmdir d/e; rmdir d',
  'mkdir d; mkdir d/e; echo f > d/e/f; mv d/e/f g; rmdir d/e; rmdir d',
  'mkdir d; echo linked > d/f; ln d/f h; rm d/f; rmdir d',
  'mkdir d; mkdir d/e; echo moved > d/e/f; mv d/e e2; rmdir d',
];

/** Names, types, modes, sizes and link counts (no times: the remount compares the same tree). */
async function listing(dir: string): Promise<string> {
  return shOk(`cd ${dir} && find . -printf '%p %y %m %s %n\\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum`);
}

describe.each(availableTransports())('one commit window through a %s mount', (transport) => {
  let logPath: string;
  const mount = (dir?: string): Promise<TestMount> =>
    mountForTest({ transport, temp: false, extraArgs: ['--log-path', logPath], ...(dir ? { dir } : {}) });

  beforeAll(async () => { logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-window-')); });
  afterAll(async () => { if (logPath) await fsp.rm(logPath, { recursive: true, force: true }); });
  afterEach(async () => { await unmountAll(); });

  it('directories created and removed in one window commit; later writes commit in the background and survive a remount', async () => {
    const m = await mount();
    const d = m.dir;
    await shOk(`cd ${d} && mkdir ${SEQUENCES.map((_, i) => `v${i}`).join(' ')}`);
    await sleep(1500); // committed: the sequences below run in directories the chain holds
    // The issue's exact sequence at the root, then every variant in its own directory: one bash,
    // a few ms for all of it, well inside the 1 s window.
    await shOk(`cd ${d} && mkdir d; touch d/f; rm d/f; rmdir d; ${SEQUENCES.map((s, i) => `(cd v${i} && ${s})`).join('; ')}`);
    await sleep(2500);
    await shOk(`echo 'written after the sequence' > ${d}/after`);
    // Two background commit windows: no failure in the daemon's log, nothing left to commit.
    await sleep(2500);
    expect(m.output().stderr).not.toMatch(/commit failed|not found/);
    const want = await listing(d);
    expect(want).toContain('./after f 644 27 1');
    expect(want).toContain('./v2/g f 644 0 1');
    expect(want).toContain('./v5/g f 644 2 1');
    expect(want).toContain('./v6/h f 644 7 1');
    expect(want).toContain('./v7/e2/f f 644 6 1');
    expect(want).not.toMatch(/\/d[ /]/);

    // Committed in the background already: SIGKILL loses nothing of it (the log holds it).
    m.kill('SIGKILL');
    await m.exited;
    const again = await mount(d);
    try {
      expect(await listing(again.dir)).toBe(want);
      expect(await fsp.readFile(join(again.dir, 'after'), 'utf8')).toBe('written after the sequence\n');
      // And once more with a window closed by `atefs unmount` (the final commit).
      await shOk(`cd ${again.dir} && mkdir d; touch d/f; rm d/f; rmdir d; echo last > last`);
      const r = await run(process.execPath, [CLI, 'unmount', again.dir]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(await again.exited).toBe(0);
    } finally {
      await again.unmount();
    }
    const third = await mount(d);
    try {
      expect(await fsp.readFile(join(third.dir, 'last'), 'utf8')).toBe('last\n');
      expect(await fsp.readFile(join(third.dir, 'after'), 'utf8')).toBe('written after the sequence\n');
    } finally {
      await third.unmount();
    }
  }, 300_000);
});
