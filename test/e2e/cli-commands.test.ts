import { afterAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { crc, decodeHeader, frameLen, FRAME_HEADER } from '../../src/log/format.js';
import { CLI, ROOT, ensureBuilt, expectRefusal, mountForTest, run, shOk, unmountAll } from './harness.js';

/**
 * The README's commands as a user runs them: the default XDG chain, `atefs unmount` committing
 * what is dirty, `atefs verify` / `atefs repair` (exit codes, the damaged copy), --compact-now and
 * --compact-mode, and the commands that are not built yet. Every daemon gets this file's own
 * XDG directories (test/setup-env.ts), never the developer's.
 */

const node = process.execPath;
const atefs = (...args: string[]) => run(node, [CLI, ...args], { timeout: 120_000 });
const xdgConfig = () => process.env.XDG_CONFIG_HOME!;
const xdgData = () => process.env.XDG_DATA_HOME!;
const defaultChain = () => join(xdgData(), 'atefs', 'local');

afterAll(async () => { await unmountAll(); });

async function logBytes(chainDir: string): Promise<number> {
  let n = 0;
  for (const f of await fsp.readdir(join(chainDir, 'log'))) if (f.endsWith('.seg')) n += (await fsp.stat(join(chainDir, 'log', f))).size;
  return n;
}

/** Frame offsets of a segment file: [start, end) of each frame. */
/** Copies the default chain to `copy`; its first segment, read, with its frames (at least 3). */
async function copyDefaultChain(copy: string): Promise<{ segPath: string; seg: Buffer; fr: Array<[number, number]> }> {
  await fsp.cp(defaultChain(), copy, { recursive: true, filter: (p) => !p.endsWith('LOCK') });
  const segName = (await fsp.readdir(join(copy, 'log'))).filter((f) => f.endsWith('.seg')).sort()[0]!;
  const segPath = join(copy, 'log', segName);
  const seg = await fsp.readFile(segPath);
  const fr = frames(seg);
  expect(fr.length).toBeGreaterThanOrEqual(3);
  return { segPath, seg, fr };
}

function frames(seg: Buffer): Array<[number, number]> {
  const h = decodeHeader(seg);
  if (typeof h === 'string') throw new Error(h);
  const out: Array<[number, number]> = [];
  for (let off = h.headerLen; off + FRAME_HEADER <= seg.length;) {
    const end = off + FRAME_HEADER + frameLen(seg, off);
    out.push([off, end]);
    off = end;
  }
  return out;
}

describe('the default chain under XDG directories, `atefs unmount`, verify and repair', () => {
  const content = 'written without fsync, committed by `atefs unmount`\n';

  it('a mount without --log-path creates the identity, the pin and the chain where the README says', async () => {
    await ensureBuilt();
    const m = await mountForTest({ temp: false });
    await fsp.mkdir(join(m.dir, 'd'));
    await fsp.writeFile(join(m.dir, 'd', 'f'), content);
    await fsp.writeFile(join(m.dir, 'big'), Buffer.alloc(3_000_000, 7));
    // `atefs unmount` asks the daemon to commit what is dirty and unmount.
    const u = await atefs('unmount', m.dir);
    expect(u.code).toBe(0);
    expect(await m.exited).toBe(0);
    await m.unmount();

    const conf = join(xdgConfig(), 'atefs');
    expect((await fsp.stat(conf)).mode & 0o777).toBe(0o700);
    expect((await fsp.stat(join(conf, 'identity.token'))).mode & 0o777).toBe(0o600);
    const pins = JSON.parse(await fsp.readFile(join(conf, 'pinned-chains.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(pins)).toContain(defaultChain());
    expect((await fsp.readdir(join(defaultChain(), 'log'))).some((f) => f.endsWith('.seg'))).toBe(true);
    expect((await fsp.stat(join(defaultChain(), 'index'))).isDirectory()).toBe(true);

    // A new daemon on the default chain sees what was only ever dirty in the old one's memory.
    const again = await mountForTest({ temp: false });
    try {
      expect(await fsp.readFile(join(again.dir, 'd', 'f'), 'utf8')).toBe(content);
      expect((await fsp.stat(join(again.dir, 'big'))).size).toBe(3_000_000);
    } finally {
      await again.unmount();
    }
  }, 180_000);

  it('atefs verify: exit 0 and ok on the intact default chain (pinned)', async () => {
    const v = await atefs('verify', '--json');
    expect(v.code).toBe(0);
    const r = JSON.parse(v.stdout) as { ok: boolean; pinned: boolean; accepted: number; records: number; problems: unknown[] };
    expect(r).toMatchObject({ ok: true, pinned: true, problems: [] });
    expect(r.accepted).toBe(r.records);
    expect(r.accepted).toBeGreaterThanOrEqual(2);
  });

  it('a damaged frame: verify exits 1 naming it; repair cuts the log back, keeps the damaged part, and verify passes again', async () => {
    const copy = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-damaged-'));
    try {
      const { segPath, seg, fr } = await copyDefaultChain(copy);
      // A byte inside the second frame, with valid frames after it: corruption, not a torn tail.
      const [start, end] = fr[1]!;
      const damaged = Buffer.from(seg);
      damaged[start + Math.floor((end - start) / 2)]! ^= 0xff;
      await fsp.writeFile(segPath, damaged);

      const v = await atefs('verify', '--log-path', copy, '--json');
      expect(v.code).toBe(1);
      const r = JSON.parse(v.stdout) as { ok: boolean; problems: Array<{ reason: string; message: string }> };
      expect(r.ok).toBe(false);
      expect(r.problems[0]).toMatchObject({ reason: 'LogCorruptError' });
      expect(r.problems[0]!.message).toContain(`offset ${start}`);

      const rep = await atefs('repair', '--log-path', copy);
      expect(rep.code).toBe(0);
      expect(rep.stdout + rep.stderr).toContain(`truncated at segment 1 offset ${start}`);
      const files = await fsp.readdir(join(copy, 'log'));
      const aside = files.filter((f) => f.startsWith(`${basename(segPath)}.damaged-`));
      expect(aside).toHaveLength(1);
      // Nothing is deleted without a copy: the cut log plus the copy hold every damaged byte.
      const cut = await fsp.readFile(segPath);
      expect(cut.equals(damaged.subarray(0, start))).toBe(true);
      const kept = await fsp.readFile(join(copy, 'log', aside[0]!));
      expect(kept.subarray(kept.length - (damaged.length - start)).equals(damaged.subarray(start))).toBe(true);

      const v2 = await atefs('verify', '--log-path', copy);
      expect(v2.code).toBe(0);
      const again = await atefs('repair', '--log-path', copy);
      expect(again.code).toBe(0);
      expect(again.stdout + again.stderr).toMatch(/no damage found, nothing changed/);
    } finally {
      await fsp.rm(copy, { recursive: true, force: true });
    }
  });

  it('an older copy of the chain restored: verify reports the rollback, the mount refuses it in one line, --accept-rollback mounts it', async () => {
    const logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-rollback-'));
    const older = `${logPath}-older`;
    try {
      let m = await mountForTest({ temp: false, extraArgs: ['--log-path', logPath] });
      await fsp.writeFile(join(m.dir, 'kept'), 'old\n');
      await m.unmount();
      await fsp.cp(logPath, older, { recursive: true, filter: (p) => !p.endsWith('LOCK') });
      m = await mountForTest({ temp: false, extraArgs: ['--log-path', logPath] });
      await fsp.rm(join(m.dir, 'kept'));
      await fsp.writeFile(join(m.dir, 'newer'), 'new\n');
      await m.unmount();
      await fsp.rm(logPath, { recursive: true });
      await fsp.cp(older, logPath, { recursive: true });

      const v = await atefs('verify', '--log-path', logPath, '--json');
      expect(v.code).toBe(1);
      const r = JSON.parse(v.stdout) as { ok: boolean; history: Array<{ reason: string; message: string }> };
      expect(r.ok).toBe(false);
      expect(r.history.map((h) => h.reason)).toEqual(['rollback']);

      const mnt = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-rollback-mnt-'));
      await expectRefusal(['mount', mnt, '--log-path', logPath], /^refusing a rolled-back chain: the chain at .* ends at seq \d+, but this user has seen it up to seq \d+ .*--accept-rollback/, { mountpoint: mnt });
      await fsp.rm(mnt, { recursive: true, force: true });
      // And a torn tail behind it (half a frame): verify names it, the mount cuts it with a warning.
      const seg = join(logPath, 'log', (await fsp.readdir(join(logPath, 'log'))).filter((f) => f.endsWith('.seg')).sort().pop()!);
      await fsp.appendFile(seg, Buffer.alloc(9, 1));
      const v2 = JSON.parse((await atefs('verify', '--log-path', logPath, '--json')).stdout) as { history: Array<{ reason: string; message: string }> };
      expect(v2.history.map((h) => h.reason)).toEqual(['torn-tail', 'rollback']);
      expect(v2.history[0]!.message).toMatch(/^9 byte\(s\) at segment \d+ offset \d+ do not form a valid record/);
      const statsFile = `${older}-stats.json`;
      m = await mountForTest({ temp: false, extraArgs: ['--log-path', logPath, '--accept-rollback', '--stats-file', statsFile] });
      try {
        expect(m.output().stderr).toMatch(/warning: .*Accepted \(--accept-rollback\): the head is re-pinned/);
        expect(m.output().stderr).toMatch(/warning: recovered a torn tail: 9 byte\(s\) at the end of segment/);
        expect(await fsp.readFile(join(m.dir, 'kept'), 'utf8')).toBe('old\n');
      } finally {
        await m.unmount();
      }
      // The stats file counts what the recovery cut.
      expect((JSON.parse(await fsp.readFile(statsFile, 'utf8')) as { commit: Record<string, number> }).commit.tornTailBytes).toBe(9);
      await fsp.rm(statsFile, { force: true });
      // Re-pinned: mounts again without the flag.
      m = await mountForTest({ temp: false, extraArgs: ['--log-path', logPath] });
      await m.unmount();
    } finally {
      await fsp.rm(logPath, { recursive: true, force: true });
      await fsp.rm(older, { recursive: true, force: true });
    }
  }, 180_000);

  it('repair validates the chain: a commit changed in the middle (CRC recomputed) is cut with what follows, kept aside; a stray segment is moved aside, never deleted', async () => {
    const copy = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-forged-'));
    try {
      const { segPath, seg, fr } = await copyDefaultChain(copy);
      // The second frame's payload changed and its CRC made to match: only validation can tell.
      const [start, end] = fr[1]!;
      const forged = Buffer.from(seg);
      forged[start + FRAME_HEADER + Math.floor((end - start - FRAME_HEADER) * 0.6)]! ^= 0x01;
      forged.writeUInt32LE(crc(forged, start + 4, end), start);
      await fsp.writeFile(segPath, forged);
      const stray = join(copy, 'log', '00000099.seg');
      await fsp.writeFile(stray, 'not a segment the manifest names');

      const rep = await atefs('repair', '--log-path', copy, '--json');
      expect(rep.code).toBe(0);
      const r = JSON.parse(rep.stdout) as { truncatedAt: { offset: number }; invalid: { seq: number; reason: string }; unlisted: string[]; movedAside: string };
      expect(r.truncatedAt.offset).toBe(start);
      expect(r.invalid.seq).toBe(forged.readUInt32LE(start + 8));
      expect(r.unlisted).toHaveLength(1);
      const files = await fsp.readdir(join(copy, 'log'));
      expect(files).not.toContain('00000099.seg');
      expect(await fsp.readFile(join(copy, 'log', r.unlisted[0]!), 'utf8')).toBe('not a segment the manifest names');
      const kept = await fsp.readFile(r.movedAside);
      expect(kept.equals(forged.subarray(start))).toBe(true);
      expect((await fsp.readFile(segPath)).equals(forged.subarray(0, start))).toBe(true);
      const v = await atefs('verify', '--log-path', copy);
      expect(v.code).toBe(0);
    } finally {
      await fsp.rm(copy, { recursive: true, force: true });
    }
  });

  it('verify of a directory without a chain is an error exit with one line', async () => {
    const empty = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-nochain-'));
    try {
      await expectRefusal(['verify', '--log-path', empty], /^no chain at /);
    } finally {
      await fsp.rm(empty, { recursive: true, force: true });
    }
  });
});

describe('compaction options', () => {
  it('--compact-now compacts before mounting: deleted data leaves the log, live data stays', async () => {
    const logPath = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-compact-'));
    try {
      const m = await mountForTest({ temp: false, extraArgs: ['--log-path', logPath, '--compact-mode', 'never'] });
      // A commit is kept or dropped whole (DESIGN: signatures cover it): the file to delete gets its own.
      await shOk(`head -c 4000000 /dev/urandom > ${m.dir}/gone && sync ${m.dir}/gone && rm ${m.dir}/gone && echo keep > ${m.dir}/keep && sync ${m.dir}/keep`);
      // Rewrites and deletes in commits of their own: versions compaction drops between kept ones.
      await shOk(`cd ${m.dir} && mkdir d && for i in 1 2 3 4 5; do echo $i > d/f; echo $i >> keep2; setfattr -n user.i -v $i d/f 2>/dev/null; sync d/f; done; echo x > d/g && sync d/g && rm d/g && sync .`);
      await m.unmount();
      const before = await logBytes(logPath);
      expect(before).toBeGreaterThan(4_000_000);
      // 'never' kept it all; --compact-now compacts anyway.
      const again = await mountForTest({ temp: false, extraArgs: ['--log-path', logPath, '--compact-mode', 'never', '--compact-now'] });
      try {
        const after = await logBytes(logPath);
        expect(after).toBeLessThan(before - 3_500_000);
        expect(await fsp.readFile(join(again.dir, 'keep'), 'utf8')).toBe('keep\n');
        expect(await fsp.readFile(join(again.dir, 'd', 'f'), 'utf8')).toBe('5\n');
      } finally {
        await again.unmount();
      }
      // verify understands what compaction keeps (issue 11: it reported "rejected (conflict): DAO
      // ... version 2, expected 1" for almost every commit of a compacted chain and exited 1).
      const v = await atefs('verify', '--log-path', logPath);
      expect(v.stdout).not.toMatch(/rejected/);
      expect(v.stdout).toMatch(/ 0 problem\(s\) \(compacted/);
      expect(v.code).toBe(0);
    } finally {
      await fsp.rm(logPath, { recursive: true, force: true });
    }
  }, 180_000);

  it('an unknown --compact-mode is refused with one line and nothing is mounted', async () => {
    const dir = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-badmode-'));
    try {
      await expectRefusal(['mount', dir, '--temp', '--compact-mode', 'sometimes'], /compact/i, { mountpoint: dir });
    } finally {
      await fsp.rmdir(dir).catch(() => {});
    }
  });
});

describe('auth commands without an auth server', () => {
  for (const args of [['create-user'], ['create-token']]) {
    it(`atefs ${args.join(' ')}: one line naming --auth`, async () => {
      await expectRefusal([...args], 'say which auth server: --auth tcp://host[:port] (or set ATEFS_AUTH)', { code: 1 });
    });
  }
});

describe('atedb solo', () => {
  it('--help names its options and exits 0', async () => {
    await ensureBuilt();
    const r = await run(node, [join(ROOT, 'dist', 'cli', 'atedb.js'), 'solo', '--help'], { timeout: 60_000 });
    expect(r.code).toBe(0);
    for (const opt of ['--data-dir', '--listen', '--port', '--policy', '--max-connections', '--json']) expect(r.stdout).toContain(opt);
  });

  it('an unknown --policy is refused with one line', async () => {
    await ensureBuilt();
    const r = await run(node, [join(ROOT, 'dist', 'cli', 'atedb.js'), 'solo', '--policy', 'closed', '--port', '0'], { timeout: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/policy/);
  });
});
