import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  OTHER_GID, OTHER_UID, availableTransports, haveTool, mountForTest, sh, shOk, unmountAll,
  type TestMount,
} from './harness.js';
import { checksums } from './tree.js';

/** Persistence, crash safety and encryption at rest of the chain behind `atefs mount --log-path DIR`. */

afterAll(async () => { await unmountAll(); });

/** Everything stat can say, plus xattrs and symlink targets, in a stable order (no reads: atime stays). */
async function snapshot(dir: string): Promise<string> {
  const stat = await shOk(`cd ${dir} && find . -printf '%p %y %m %U %G %s %n %l %T@ %A@ %C@\\n' | LC_ALL=C sort`);
  // Per path in sorted order: directory listing order need not survive a remount.
  const xattrs = haveTool('getfattr')
    ? (await sh(`cd ${dir} && find . | LC_ALL=C sort | while read -r p; do getfattr -h -d -e hex "$p" 2>/dev/null; done`)).stdout
    : '';
  return `${stat}\n${xattrs}`;
}

describe.each(availableTransports())('persistence through a %s mount', (transport) => {
  let logPath: string;
  const mountPersistent = (extra: string[] = [], dir?: string): Promise<TestMount> =>
    mountForTest({ transport, temp: false, allowOther: false, extraArgs: ['--log-path', logPath, ...extra], ...(dir ? { dir } : {}) });

  beforeAll(async () => { logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-chain-')); });
  afterAll(async () => { if (logPath) await fsp.rm(logPath, { recursive: true, force: true }); });
  // A failed check must not leave a daemon holding the chain's lock for the next test.
  afterEach(async () => { await unmountAll(); });

  it('unmount and remount: every file, mode, owner, time, xattr and link is identical', async () => {
    const m = await mountPersistent();
    const d = m.dir;
    await shOk([
      `mkdir -p ${d}/a/b/c ${d}/empty && echo hello > ${d}/a/f1 && head -c 300000 /dev/urandom > ${d}/a/b/big`,
      `head -c 5000 /dev/urandom > ${d}/a/b/c/mid && printf '' > ${d}/zero && ln ${d}/a/f1 ${d}/a/b/hard`,
      `ln -s ../f1 ${d}/a/b/sym && ln -s /nowhere/at/all ${d}/dangling && mkfifo ${d}/fifo`,
      `chmod 640 ${d}/a/f1 && chmod 2775 ${d}/a/b && chmod 1777 ${d}/empty && chmod 700 ${d}/a/b/c`,
      `chown ${OTHER_UID}:${OTHER_GID} ${d}/a/b/big && chown :${OTHER_GID} ${d}/a/b/c/mid`,
      `touch -d '2019-05-06 07:08:09.5 UTC' ${d}/a/b/c/mid && touch -h -d '2018-01-01 UTC' ${d}/a/b/sym`,
      haveTool('setfattr') ? `setfattr -n user.note -v 'persist me' ${d}/a/f1 && setfattr -n user.bin -v 0x0001feff ${d}/a/b` : 'true',
    ].join(' && '));
    const sums = await checksums(d);
    const before = await snapshot(d);
    await m.unmount();

    const again = await mountPersistent([], m.dir);
    try {
      expect(await snapshot(again.dir)).toBe(before);
      expect(await checksums(again.dir)).toBe(sums);
      expect(await fsp.readlink(join(again.dir, 'a/b/sym'))).toBe('../f1');
    } finally {
      await again.unmount();
    }
  }, 300_000);

  it('SIGKILL after fsync: the fsynced data is there after the next mount', async () => {
    const m = await mountPersistent();
    await shOk(`head -c 2000000 /dev/urandom > ${tmpdir()}/atefs-e2e-fsync-src`);
    await shOk(`dd if=${tmpdir()}/atefs-e2e-fsync-src of=${m.dir}/synced bs=64k conv=fsync status=none && mkdir ${m.dir}/syncdir && ` +
      `echo small > ${m.dir}/syncdir/s && sync ${m.dir}/syncdir/s ${m.dir}/syncdir`);
    const want = await shOk(`sha256sum < ${tmpdir()}/atefs-e2e-fsync-src`);
    m.kill('SIGKILL');
    await m.exited;
    const again = await mountPersistent([], m.dir);
    try {
      expect(again.output().stderr).toMatch(/stale mount/);
      expect(await shOk(`sha256sum < ${again.dir}/synced`)).toBe(want);
      expect(await fsp.readFile(join(again.dir, 'syncdir/s'), 'utf8')).toBe('small\n');
    } finally {
      await again.unmount();
    }
    await fsp.rm(`${tmpdir()}/atefs-e2e-fsync-src`, { force: true });
  }, 300_000);

  it('SIGKILL without fsync: the next mount shows a consistent earlier state (a prefix of the files written), no EIO', async () => {
    const m = await mountPersistent();
    // Each file's content is a known function of its name, so any surviving file can be checked.
    // bash builtins only, and the loop stops at the first failure (the daemon is gone).
    const writer = sh(`cd ${m.dir} && mkdir -p w && for i in $(seq 1 3000); do ` +
      `printf -v pad '%*s' $((i % 50 + 1)) ''; printf 'file %05d %s\\n' $i "\${pad// /x}" > w/f$i || break; done`, { timeout: 120_000 });
    // Background commits run 1 s after the first change: by 2.5 s at least one has reached the log.
    await new Promise((ok) => setTimeout(ok, 2500));
    m.kill('SIGKILL');
    await m.exited;
    await writer;
    const again = await mountPersistent([], m.dir);
    try {
      const r = await sh(`cd ${again.dir} && find . -type f -exec cat {} + > /dev/null && ls -laR . > /dev/null`);
      expect(r.code).toBe(0);
      expect(r.stderr).not.toMatch(/Input\/output error/);
      const names = await fsp.readdir(join(again.dir, 'w'));
      const survived = names.map((n) => Number(n.slice(1))).sort((a, b) => a - b);
      expect(survived.length).toBeGreaterThan(0);
      // Files were written one after the other: an earlier state holds f1..fN and nothing else,
      // each of f1..fN-1 with its full content (fN may have been caught between create and write).
      const last = survived[survived.length - 1]!;
      expect(survived).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      for (const i of survived) {
        const full = `file ${String(i).padStart(5, '0')} ${'x'.repeat((i % 50) + 1)}\n`;
        const got = await fsp.readFile(join(again.dir, 'w', `f${i}`), 'utf8');
        if (i < last) expect(got, `f${i}`).toBe(full);
        else expect(full.startsWith(got), `f${i}`).toBe(true);
      }
    } finally {
      await again.unmount();
    }
  }, 300_000);

  it('at rest: the chain holds no file name, content, symlink target or xattr value in plaintext', async () => {
    const m = await mountPersistent();
    const mark = 'ZqPlaintextCanary';
    await shOk(`mkdir ${m.dir}/dir-${mark}-name && echo 'content-${mark}-body' > ${m.dir}/dir-${mark}-name/file-${mark}-fname && ` +
      `ln -s target-${mark}-link ${m.dir}/sym && ` +
      `head -c 200000 /dev/zero | tr '\\0' 'Q' | sed 's/^/block-${mark}-data/' > ${m.dir}/blocky` +
      (haveTool('setfattr') ? ` && setfattr -n user.k -v xattr-${mark}-value ${m.dir}/blocky` : ''));
    await m.unmount();
    const hits = await sh(`grep -r -a -l -e ${mark} -e QQQQQQQQQQQQQQQQ ${logPath}`);
    expect(hits.stdout).toBe('');
    expect(hits.code).toBe(1); // grep: no match
  }, 300_000);
});
