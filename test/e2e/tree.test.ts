import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { availableTransports, haveTool, settleLinks, shOk, transportCaps, type TestMount } from './harness.js';
import { mountOnLog, remountAndCompare, type LogMount } from './remount.js';
import { checksums, describeTree, makeTree } from './tree.js';

/**
 * Real tools over a real tree: untar a few thousand files (with symlinks and hard links) and
 * compare with the same tree on tmpfs; cp -a in and within the mount; git.
 */

const SHM = '/dev/shm';
let work: string;
let src: string;
let tarball: string;
let srcDesc: { plain: string; timed: string };
let srcSums: string;

beforeAll(async () => {
  work = await mkdtemp(join(SHM, 'atefs-e2e-tree-'));
  src = join(work, 'src');
  makeTree(src, { files: 3000, dirs: 120, symlinks: 150, hardlinks: 120, seed: 20261122 });
  tarball = join(work, 'tree.tar');
  await shOk(`tar -C ${src} -cf ${tarball} .`);
  srcDesc = { plain: await describeTree(src, { times: false }), timed: await describeTree(src, { times: true }) };
  srcSums = await checksums(src);
}, 300_000);

afterAll(async () => { if (work) await rm(work, { recursive: true, force: true }); });

describe.each(availableTransports())('trees through a %s mount', (transport) => {
  const caps = transportCaps(transport);
  let m: TestMount;
  let lm: LogMount | undefined;
  beforeAll(async () => { lm = await mountOnLog({ transport }); m = lm.m; });
  afterAll(async () => { await remountAndCompare(lm); }, 600_000);

  it('untar of 3,000 files with symlinks and hard links matches the tmpfs tree (stat and sha256)', async () => {
    const dst = join(m.dir, 'untar');
    await shOk(`mkdir ${dst} && tar -C ${dst} -xpf ${tarball}`, { timeout: 300_000 });
    await settleLinks(transport);
    const desc = await describeTree(dst, { times: caps.separateTimes });
    expect(desc.split('\n').length).toBe(srcDesc.plain.split('\n').length);
    expect(desc).toBe(caps.separateTimes ? srcDesc.timed : srcDesc.plain);
    expect(await checksums(dst)).toBe(srcSums);
    // And back out: tar of the mounted tree extracts to the same bytes on tmpfs.
    const back = join(work, `back-${transport}`);
    await shOk(`mkdir ${back} && tar -C ${dst} -cf - . | tar -C ${back} -xpf -`, { timeout: 300_000 });
    expect(await checksums(back)).toBe(srcSums);
    await rm(back, { recursive: true, force: true });
    await shOk(`rm -rf ${dst}`, { timeout: 300_000 });
    expect((await shOk(`ls -A ${m.dir}`)).trim()).toBe('');
  }, 600_000);

  it('cp -a into the mount and within it preserves content, modes and links', async () => {
    const a = join(m.dir, 'cp-a');
    const b = join(m.dir, 'cp-b');
    await shOk(`cp -a ${src} ${a}`, { timeout: 300_000 });
    // cp -a finds hard links by st_nlink > 1: on fuse-native it must see fresh link counts.
    await settleLinks(transport);
    await shOk(`cp -a ${a} ${b}`, { timeout: 300_000 });
    await settleLinks(transport);
    expect(await describeTree(a, { times: caps.separateTimes })).toBe(caps.separateTimes ? srcDesc.timed : srcDesc.plain);
    expect(await describeTree(b, { times: caps.separateTimes })).toBe(caps.separateTimes ? srcDesc.timed : srcDesc.plain);
    // Both copies: a block lost in the first one (tmpfs -> mount) is copied faithfully into the second.
    expect(await checksums(a)).toBe(srcSums);
    expect(await checksums(b)).toBe(srcSums);
    await shOk(`rm -rf ${a} ${b}`, { timeout: 300_000 });
  }, 600_000);

  it.skipIf(!haveTool('git'))('git init, add, commit, status and fsck inside the mount', async () => {
    const repo = join(m.dir, 'repo');
    const git = 'git -c user.name=atefs -c user.email=atefs@example.invalid -c init.defaultBranch=main -c gc.auto=0';
    await shOk(`mkdir ${repo} && cd ${repo} && ${git} init -q && find ${src} -maxdepth 1 -type f | head -100 | xargs cp -t . && echo hello > README && ` +
      `${git} add -A && ${git} commit -qm first && echo more >> README && ${git} commit -qam second && ` +
      `${git} mv README README.md && ${git} commit -qm rename`, { timeout: 300_000 });
    expect((await shOk(`cd ${repo} && git log --oneline | wc -l`)).trim()).toBe('3');
    expect((await shOk(`cd ${repo} && git status --porcelain`)).trim()).toBe('');
    await shOk(`cd ${repo} && git fsck --strict --no-progress`);
    expect(await shOk(`cd ${repo} && git show HEAD~1:README`)).toBe('hello\nmore\n');
    await shOk(`cd ${repo} && ${git} gc -q && git fsck --no-progress && git clone -q ${repo} ${repo}-clone`, { timeout: 300_000 });
    expect(await shOk(`cat ${repo}-clone/README.md`)).toBe('hello\nmore\n');
  }, 300_000);
});
