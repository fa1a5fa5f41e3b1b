// A mount whose commits fail (the chain's log on a real, small tmpfs that fills up) through a
// real mount on every transport: the writer's fsync fails, new writes fail with ENOSPC instead of
// being accepted and dropped, the daemon's log and stats file say what failed and how much is not
// committed, the mount recovers once space returns, and `atefs unmount` on a full disk exits
// non-zero and says what is lost.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableTransports, mountForTest, runCliAs, sh, shOk, sleep, unmountAll, type TestMount } from './harness.js';

const tmpfsMounts: string[] = [];
async function releaseTmpfs(): Promise<void> {
  await unmountAll();
  for (const m of tmpfsMounts.splice(0)) if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
}
afterAll(releaseTmpfs);

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

describe.each(availableTransports())('commits failing on a full disk through a %s mount', (transport) => {
  let work: string;
  let logPath: string;
  let statsFile: string;
  const mount = (dir?: string): Promise<TestMount> => mountForTest({
    transport, temp: false, expectErrors: true, extraArgs: ['--log-path', logPath, '--stats-file', statsFile], ...(dir ? { dir } : {}),
  });
  const stats = async (): Promise<{ commit: Record<string, number>; commitHealth: Record<string, unknown> } | null> => {
    try { return JSON.parse(await fsp.readFile(statsFile, 'utf8')); } catch { return null; }
  };

  beforeAll(async () => {
    work = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-full-'));
    logPath = join(work, 'chain');
    statsFile = join(work, 'stats.json');
  });
  afterAll(async () => {
    await releaseTmpfs();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });
  afterEach(async () => { await unmountAll(); });

  it('fsync fails and writes are refused while full, the mount recovers when space returns; unmount on a full disk reports the loss', async (ctx) => {
    // The chain is created on the disk, then its log moves onto a 6 MiB tmpfs (the index stays).
    const first = await mount();
    const dir = first.dir;
    await shOk(`echo before > ${dir}/before`);
    await first.unmount();
    const logDir = join(logPath, 'log');
    await fsp.rename(logDir, `${logDir}.disk`);
    await fsp.mkdir(logDir);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', logDir], { encoding: 'utf8' });
    if (r.status !== 0) return ctx.skip();
    tmpfsMounts.push(logDir);
    await fsp.cp(`${logDir}.disk`, logDir, { recursive: true });
    const src = join(work, 'src');
    // 2 MiB: more than the free space left below plus the 1 MiB runway of zeros the log keeps past
    // its end (src/log/runway.ts), which a commit fills before it needs new space.
    await shOk(`head -c 2097152 /dev/urandom > ${src}`);
    const srcSum = (await shOk(`sha256sum < ${src}`)).split(' ')[0];

    const m = await mount(dir);
    const filler = join(logDir, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(logDir) - (256 << 10))));
    // 2 MiB cannot be committed into 256 KiB (+ the runway): the writer's fsync fails.
    const dd = await sh(`dd if=${src} of=${dir}/big bs=64k conv=fsync status=none`);
    expect(dd.code).not.toBe(0);
    expect(dd.stderr).toMatch(/No space left on device|Input\/output error/);
    // Nothing new is accepted while commits fail; what was written reads back.
    const refused = await sh(`echo refused > ${dir}/refused`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/No space left on device/);
    expect((await shOk(`sha256sum < ${dir}/big`)).split(' ')[0]).toBe(srcSum);
    // The daemon's log and stats file say what failed, how the mount behaves, and what is pending.
    await until(() => /error: commit failed: .*changes fail with ENOSPC until a commit succeeds; \d+ inode records?, \d+ directory entr(y|ies) and [\d.]+ (MiB|KiB) of file data not committed/.test(m.output().stderr), 'the failure in the daemon log');
    await until(async () => (await stats())?.commitHealth?.state === 'retrying', 'the failure in the stats file');
    const s1 = (await stats())!;
    expect(s1.commit.failures).toBeGreaterThanOrEqual(1);
    expect(s1.commitHealth.lastError).toMatch(/ENOSPC|no space/i);
    expect((s1.commitHealth.uncommitted as { bytes: number }).bytes).toBeGreaterThanOrEqual(1 << 20);

    // Space returns: the retry commits it all, and the mount takes changes again.
    fs.rmSync(filler);
    await until(() => /commits succeed again after \d+ failed attempts?; the mount accepts changes again/.test(m.output().stderr), 'the recovery in the daemon log');
    await shOk(`echo later > ${dir}/later && sync ${dir}/later`);
    const s2 = (await stats())!;
    expect(s2.commitHealth.state).toBe('ok');

    // Full again, with data accepted before the background commit fails: unmount cannot commit it.
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(logDir) - (128 << 10))));
    await shOk(`cp ${src} ${dir}/lost`);
    await until(() => /error: commit failed/.test(m.output().stderr.split('commits succeed again')[1] ?? ''), 'the second failure in the daemon log');
    const un = await runCliAs(transport, ['unmount', dir]);
    expect(un.code).not.toBe(0);
    expect(un.stderr).toMatch(/failed to shut down cleanly: the final commit failed \(\d+ inode records?, \d+ directory entr(y|ies) and [\d.]+ (MiB|KiB) of file data not committed\): .*; these changes are lost/);
    expect(await m.exited).toBe(1);
    const final = (await stats())!;
    expect((final as unknown as { final: boolean }).final).toBe(true);
    expect(final.commitHealth.state).toBe('retrying');
    await m.unmount();

    fs.rmSync(filler);
    const again = await mount(dir);
    try {
      expect(await fsp.readFile(join(dir, 'before'), 'utf8')).toBe('before\n');
      expect(await fsp.readFile(join(dir, 'later'), 'utf8')).toBe('later\n');
      expect((await shOk(`sha256sum < ${dir}/big`)).split(' ')[0]).toBe(srcSum);
      expect(fs.existsSync(join(dir, 'refused'))).toBe(false);
      expect(fs.existsSync(join(dir, 'lost'))).toBe(false);
    } finally {
      await again.unmount();
    }
  }, 300_000);
});
