/**
 * Suites on a persistent chain (not --temp) that end with a remount-and-compare: a background
 * commit that was rejected leaves the core serving from memory, so only a fresh daemon replaying
 * the log shows what was really stored.
 */
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountForTest, settleLinks, sh, shOk, type MountForTestOptions, type TestMount } from './harness.js';

export interface LogMount {
  m: TestMount;
  logPath: string;
  opts: MountForTestOptions;
}

/** A mount on a fresh persistent chain directory (--log-path). */
export async function mountOnLog(o: MountForTestOptions = {}): Promise<LogMount> {
  const logPath = await mkdtemp(join(tmpdir(), 'atefs-e2e-log-'));
  const opts = { ...o, temp: false, extraArgs: ['--log-path', logPath, ...(o.extraArgs ?? [])] };
  return { m: await mountForTest(opts), logPath, opts };
}

/**
 * Everything stat says about a tree except atimes (reads change them), plus the sha256 of every
 * file and the xattrs: what must be identical after a remount.
 */
export async function treeState(dir: string): Promise<string> {
  const stat = await shOk(`cd ${dir} && find . -printf '%p %y %m %U %G %s %n %l %T@ %C@\\n' | LC_ALL=C sort`, { timeout: 300_000 });
  const sums = await shOk(`cd ${dir} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum`, { timeout: 300_000 });
  const xattrs = (await sh(`cd ${dir} && find . | LC_ALL=C sort | while read -r p; do getfattr -h -d -e hex "$p" 2>/dev/null; done`, { timeout: 300_000 })).stdout;
  return `${stat}\n${sums}\n${xattrs}`;
}

/**
 * Unmounts (the harness checks the daemon's exit, stderr and commit counters), mounts the same
 * chain again on the same directory, and fails unless the tree is exactly what it was; then
 * unmounts and removes the chain.
 */
export async function remountAndCompare(lm: LogMount | undefined): Promise<void> {
  if (!lm) return;
  let before: string | null = null;
  try {
    // fuse-native caches each name's attributes for 1 s: a link made just now (git clone) may
    // still show the old link count and ctime under the other name.
    await settleLinks(lm.m.transport);
    before = await treeState(lm.m.dir);
  } finally {
    await lm.m.unmount();
  }
  try {
    const again = await mountForTest({ ...lm.opts, dir: lm.m.dir });
    try {
      const after = await treeState(again.dir);
      if (after !== before) {
        const a = before.split('\n');
        const b = after.split('\n');
        const lost = a.filter((l) => !b.includes(l)).slice(0, 20);
        const gained = b.filter((l) => !a.includes(l)).slice(0, 20);
        throw new Error(`the tree changed across a remount of ${lm.logPath}:\n- before only:\n${lost.join('\n')}\n- after only:\n${gained.join('\n')}`);
      }
    } finally {
      await again.unmount();
      await rmdir(lm.m.dir).catch(() => {});
    }
  } finally {
    await rm(lm.logPath, { recursive: true, force: true });
  }
}
