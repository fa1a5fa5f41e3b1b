import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, availableTransports, expectRefusal, mountForTest, run, shOk, unmountAll, type TestMount } from './harness.js';

/**
 * The chain's history as a feature: `atefs log` (all commits, or those of one file) and
 * `atefs mount --at SEQ|TIME` (a read-only mount of an earlier state), on a real persistent chain
 * written through a real mount.
 */

const transport = availableTransports().includes('kernel') ? 'kernel' : availableTransports()[0]!;

interface Summary { seq: number; time: string; signers: string[]; events: number; bytes: number }

async function atefs(...args: string[]): Promise<string> {
  const r = await run(process.execPath, [CLI, ...args], { timeout: 120_000 });
  if (r.code !== 0) throw new Error(`atefs ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function commits(logPath: string, ...extra: string[]): Promise<Summary[]> {
  return (JSON.parse(await atefs('log', '--log-path', logPath, '--json', ...extra)) as { commits: Summary[] }).commits;
}

/** Every regular file under dir with its content, sorted: what a state of the tree is here. */
async function tree(dir: string): Promise<string> {
  return shOk(`cd ${dir} && find . -type f | LC_ALL=C sort | while read -r f; do printf '%s=%s\\n' "$f" "$(cat "$f")"; done`);
}

describe(`history through a ${transport} mount`, () => {
  let logPath: string;
  let m: TestMount | undefined;
  /** [newest seq after the step, tree after the step] per step. */
  const steps: Array<{ seq: number; tree: string; time: string }> = [];

  beforeAll(async () => {
    logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-history-'));
    m = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', logPath] });
    const d = m.dir;
    // Each step ends with a durable commit (sync DIR: an fsync of the directory; syncfs never reaches a FUSE daemon); the log is read while the daemon writes it.
    // The trees are written down, not read back: a read would change atimes, itself a commit.
    for (const [script, after] of [
      [`echo one > ${d}/a.txt`, './a.txt=one'],
      [`echo two > ${d}/b.txt && mkdir ${d}/sub && echo deep > ${d}/sub/c.txt`, './a.txt=one\n./b.txt=two\n./sub/c.txt=deep'],
      [`echo changed > ${d}/a.txt`, './a.txt=changed\n./b.txt=two\n./sub/c.txt=deep'],
      [`rm ${d}/b.txt && mv ${d}/sub/c.txt ${d}/c.txt`, './a.txt=changed\n./c.txt=deep'],
    ] as const) {
      await shOk(`${script} && sync ${d}`);
      const newest = await commits(logPath, '--limit', '1');
      steps.push({ seq: newest[0]!.seq, time: newest[0]!.time, tree: `${after}\n` });
    }
    await m.unmount();
    m = undefined;
  }, 300_000);

  afterAll(async () => {
    await unmountAll();
    if (logPath) await fsp.rm(logPath, { recursive: true, force: true });
  });

  it('atefs log lists every commit newest first, with its signer, events and size', async () => {
    const all = await commits(logPath);
    expect(all.length).toBeGreaterThanOrEqual(4);
    expect(all[0]!.seq).toBeGreaterThanOrEqual(steps[3]!.seq);
    for (const s of steps) expect(all.some((c) => c.seq === s.seq)).toBe(true);
    const seqs = all.map((c) => c.seq);
    expect([...seqs].sort((a, b) => b - a)).toEqual(seqs);
    for (const c of all) {
      expect(c.signers.length).toBeGreaterThan(0);
      expect(c.events).toBeGreaterThan(0);
      expect(c.bytes).toBeGreaterThan(0);
    }
    const plain = await atefs('log', '--log-path', logPath);
    expect(plain.split('\n')[0]).toMatch(new RegExp(`^\\s*${steps[3]!.seq}\\s+\\d{4}-\\d\\d-\\d\\dT.*events`));
  });

  it('atefs log --path lists exactly the commits that touched that file', async () => {
    const inStep = (seq: number) => steps.findIndex((s) => seq <= s.seq);
    const a = (await commits(logPath, '--path', 'a.txt')).map((c) => inStep(c.seq));
    // a.txt was written in steps 0 and 2 only.
    expect(new Set(a)).toEqual(new Set([0, 2]));
    // c.txt: created in step 1 (as sub/c.txt), moved in step 3.
    const c = (await commits(logPath, '--path', 'c.txt')).map((x) => inStep(x.seq));
    expect(new Set(c)).toEqual(new Set([1, 3]));
    await expectRefusal(['log', '--log-path', logPath, '--path', 'b.txt'], /b\.txt: no such file/);
  });

  it('atefs mount --at SEQ shows each earlier state exactly, read-only', async () => {
    for (const s of steps) {
      const past = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', logPath, '--at', String(s.seq)] });
      try {
        expect(await tree(past.dir)).toBe(s.tree);
        const w = await run('sh', ['-c', `echo x > ${past.dir}/new`]);
        expect(w.code).not.toBe(0);
        expect(w.stderr).toMatch(/Read-only file system/);
      } finally {
        await past.unmount();
      }
    }
  }, 300_000);

  it('--at TIME picks the newest commit at or before that time; points outside the chain are refused', async () => {
    const past = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', logPath, '--at', steps[1]!.time] });
    try {
      expect(await tree(past.dir)).toBe(steps[1]!.tree);
    } finally {
      await past.unmount();
    }
    const dir = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-at-'));
    try {
      for (const [at, msg] of [['999999', /newest commit is seq/], ['2001-01-01T00:00:00Z', /no commit at or before/], ['yesterday', /give a commit seq/]] as const) {
        await expectRefusal(['mount', dir, '--log-path', logPath, '--at', at], msg, { mountpoint: dir });
      }
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('after a compaction, a point whose records were dropped is refused, with the next exact point named', async () => {
    const chain = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-history-c-'));
    try {
      const w = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', chain] });
      const seqs: number[] = [];
      // A's commit (x.txt, its name, the root's times) is wholly replaced by B's and C's: compaction
      // drops it, so the state at B (which still had the first x.txt) cannot be rebuilt.
      for (const script of [`echo 1 > ${w.dir}/x.txt`, `echo y > ${w.dir}/y.txt`, `echo 2 > ${w.dir}/t && mv ${w.dir}/t ${w.dir}/x.txt`]) {
        await shOk(`${script} && sync ${w.dir}`);
        seqs.push((await commits(chain, '--limit', '1'))[0]!.seq);
      }
      await w.unmount();
      const c = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', chain, '--compact-now'] });
      await c.unmount();
      expect((await commits(chain)).map((x) => x.seq)).not.toContain(seqs[0]);
      const dir = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-at-'));
      try {
        await expectRefusal(['mount', dir, '--log-path', chain, '--at', String(seqs[1])],
          new RegExp(`state at seq ${seqs[1]} was compacted away .*the next point that can be shown exactly is seq ${seqs[2]}`), { mountpoint: dir });
      } finally {
        await fsp.rm(dir, { recursive: true, force: true });
      }
      const p = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', chain, '--at', String(seqs[2])] });
      try {
        expect(await tree(p.dir)).toBe('./x.txt=2\n./y.txt=y\n');
      } finally {
        await p.unmount();
      }
    } finally {
      await fsp.rm(chain, { recursive: true, force: true });
    }
  }, 300_000);
});
