import { afterAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findMount } from '../../fs/daemon/mounttab.js';
import {
  CLI, availableTransports, ensureBuilt, mountForTest, run, runCliAs, sh, sleep, unmountAll,
} from './harness.js';
import { NONROOT_TRANSPORT, daemonTransport } from './nonroot.js';
import { TEST_SCRYPT } from '../../src/crypto/index.js';
import { Session, createIdentity, defaultConfigDir, loadOrCreateLocalIdentity, writeTokenFile } from '../../src/session/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';
import { Filesystem } from '../../fs/core/index.js';
import { crc32 } from 'node:zlib';
import { FRAME_HEADER, decodeHeader } from '../../src/log/format.js';

/** [start, end) of every frame of a segment file. */
function frames(seg: Buffer): Array<[number, number]> {
  const h = decodeHeader(seg);
  if (typeof h === 'string') throw new Error(h);
  const out: Array<[number, number]> = [];
  for (let off = h.headerLen; off + FRAME_HEADER <= seg.length;) {
    const end = off + FRAME_HEADER + seg.readUInt32LE(off + 4);
    out.push([off, end]);
    off = end;
  }
  return out;
}

/** The mount daemon's life cycle and the CLI around it: errors, signals, stale mounts, stats. */

const node = process.execPath;

async function tempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(join(tmpdir(), prefix));
}

async function waitFor(cond: () => Promise<boolean>, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}

const noStack = (s: string) => !/\n\s+at .+:\d+:\d+/.test(s);

afterAll(async () => { await unmountAll(); });

describe('atefs mount: user mistakes are one clear line', () => {
  it('a non-empty mountpoint is refused', async () => {
    await ensureBuilt();
    const dir = await tempDir('atefs-e2e-nonempty-');
    await fsp.writeFile(join(dir, 'occupied'), 'x');
    const r = await run(node, [CLI, 'mount', dir, '--temp'], { env: { ...process.env, CI: 'true' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not empty/);
    expect(noStack(r.stderr)).toBe(true);
    expect(await findMount(dir)).toBeUndefined();
    await fsp.rm(dir, { recursive: true });
  });

  it('conflicting options are refused', async () => {
    const dir = await tempDir('atefs-e2e-conflict-');
    const r = await run(node, [CLI, 'mount', dir, '--temp', '--log-path', dir], { env: { ...process.env, CI: 'true' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--temp/);
    expect(noStack(r.stderr)).toBe(true);
    const t = await run(node, [CLI, 'mount', dir, '--temp', '--transport', 'carrier-pigeon'], { env: { ...process.env, CI: 'true' } });
    expect(t.code).not.toBe(0);
    expect(noStack(t.stderr)).toBe(true);
    await fsp.rmdir(dir);
  });

  it('--passcode without --token-path is refused, nothing is mounted', async () => {
    const dir = await tempDir('atefs-e2e-passcode-');
    const r = await run(node, [CLI, 'mount', dir, '--log-path', join(dir, '..', 'nolog'), '--passcode', 'x'], { env: { ...process.env, CI: 'true' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe('--passcode unlocks a token file: give it with --token-path');
    expect(await findMount(dir)).toBeUndefined();
    await fsp.rmdir(dir);
  });

  it('--passcode on the command line works but warns; $ATEFS_PASSCODE does not; --background keeps it out of the daemon\'s argv', async () => {
    const base = await tempDir('atefs-e2e-passcode-argv-');
    const token = join(base, 'sealed.token');
    const secret = 'pw-on-argv-5f1c2a';
    await writeTokenFile(token, Session.of(createIdentity('passcode-test')), { ttlMs: null, passphrase: secret, scrypt: TEST_SCRYPT });
    const warning = /^warning: --passcode on the command line is visible to other users \(ps, \/proc\) and kept in your shell history; set \$ATEFS_PASSCODE instead$/m;
    const transport = availableTransports()[0];
    const viaArgv = await mountForTest({ transport, extraArgs: ['--token-path', token, '--passcode', secret] });
    try {
      await fsp.writeFile(join(viaArgv.dir, 'f'), 'x');
      expect(viaArgv.output().stderr).toMatch(warning);
      expect(viaArgv.output().stderr.match(/--passcode on the command line/g)).toHaveLength(1);
    } finally {
      await viaArgv.unmount();
    }
    process.env.ATEFS_PASSCODE = secret;
    let viaEnv;
    try {
      viaEnv = await mountForTest({ transport, extraArgs: ['--token-path', token] });
    } finally {
      delete process.env.ATEFS_PASSCODE;
    }
    try {
      await fsp.writeFile(join(viaEnv.dir, 'f'), 'x');
      expect(viaEnv.output().stderr).not.toMatch(/--passcode/);
    } finally {
      await viaEnv.unmount();
    }
    // --background: the warning reaches the user (not just the daemon's log file), and the daemon,
    // which runs for hours, does not carry the passphrase on its command line.
    const dir = join(base, 'mnt');
    const r = await run(node, [CLI, 'mount', dir, '--temp', '--background', '--json', '--token-path', token, '--passcode', secret], { env: { ...process.env, CI: 'true' } });
    try {
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(warning);
      const pid = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { pid: number }).pid;
      const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8');
      expect(cmdline).toContain('--token-path');
      expect(cmdline).not.toContain(secret);
      expect(cmdline).not.toContain('--passcode');
    } finally {
      const u = await run(node, [CLI, 'unmount', dir]);
      expect(u.code).toBe(0);
      await fsp.rm(base, { recursive: true, force: true });
    }
  });

  it('an existing chain this user never pinned is refused in one line; --trust-chain mounts and pins it', async () => {
    const base = await tempDir('atefs-e2e-unpinned-');
    const logPath = join(base, 'chain');
    // This user's chain, but pinned elsewhere (another config directory: a copy, lost pins).
    const me = await loadOrCreateLocalIdentity(defaultConfigDir());
    const made = await openLocalChain({ chainDir: logPath, configDir: join(base, 'other-config'), session: me.session });
    await (await Filesystem.open(made.store)).destroy();
    await made.close();
    const env = { ...process.env, CI: 'true' };
    const dir = join(base, 'mnt');
    try {
      const r = await run(node, [CLI, 'mount', dir, '--log-path', logPath], { env });
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^refusing an unpinned chain: the chain at .* holds commits \(up to seq \d+\) but is not pinned in .*pinned-chains\.json: .*--trust-chain/);
      expect(await findMount(dir)).toBeUndefined();
      const m = await mountForTest({ transport: availableTransports()[0], temp: false, extraArgs: ['--log-path', logPath, '--trust-chain'], dir: await tempDir('atefs-e2e-trusted-') });
      try {
        expect(m.output().stderr).toMatch(/warning: trusting the unpinned chain at .* \(--trust-chain\): its genesis is pinned now/);
      } finally {
        await m.unmount();
        await fsp.rm(m.dir, { recursive: true, force: true });
      }
      // Pinned now: no flag needed.
      const again = await mountForTest({ transport: availableTransports()[0], temp: false, extraArgs: ['--log-path', logPath], dir: await tempDir('atefs-e2e-trusted-') });
      expect(again.output().stderr).not.toMatch(/unpinned/);
      await again.unmount();
      await fsp.rm(again.dir, { recursive: true, force: true });
    } finally {
      await fsp.rm(base, { recursive: true, force: true });
    }
  });

  it('a chain whose record fails validation on load is refused in one line naming that record', async () => {
    const base = await tempDir('atefs-e2e-badrecord-');
    const logPath = join(base, 'chain');
    const made = await openLocalChain({ chainDir: logPath });
    const fs = await Filesystem.open(made.store);
    await fs.destroy();
    await made.close();
    // The genesis is record 1, the root directory record 2: break record 2's format byte and
    // recompute its frame CRC, so only validation can tell.
    const segDir = join(logPath, 'log');
    const seg = join(segDir, (await fsp.readdir(segDir)).filter((f) => f.endsWith('.seg')).sort()[0]!);
    const b = await fsp.readFile(seg);
    const [start, end] = frames(b)[1]!;
    b[start + 16]! ^= 0x5a;
    b.writeUInt32LE(crc32(b.subarray(start + 4, end)), start);
    await fsp.writeFile(seg, b);
    await fsp.rm(join(logPath, 'index'), { recursive: true, force: true });
    try {
      const r = await run(node, [CLI, 'mount', join(base, 'mnt'), '--log-path', logPath], { env: { ...process.env, CI: 'true' } });
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(new RegExp(`^the chain's log is damaged: chain load stopped at record seq 2 \\(segment \\d+, offset ${start}\\): .*malformed.* \\(see 'atefs verify' and 'atefs repair'\\)$`));
    } finally {
      await fsp.rm(base, { recursive: true, force: true });
    }
  });

  it('a token file that does not exist is one clear line', async () => {
    const dir = await tempDir('atefs-e2e-token-');
    const r = await run(node, [CLI, 'mount', dir, '--temp', '--token-path', join(dir, '..', 'no-such-token')], { env: { ...process.env, CI: 'true' } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no token file at/);
    expect(noStack(r.stderr)).toBe(true);
    expect(await findMount(dir)).toBeUndefined();
    await fsp.rmdir(dir);
  });

  it('a refused mount (chain in use) removes the mountpoint directories it created, and only those', async () => {
    const base = await tempDir('atefs-e2e-inuse-');
    const logPath = join(base, 'chain');
    const first = await mountForTest({ transport: availableTransports()[0], temp: false, extraArgs: ['--log-path', logPath] });
    try {
      const env = { ...process.env, CI: 'true' };
      const target = join(base, 'made', 'for', 'mount');
      const r = await run(node, [CLI, 'mount', target, '--log-path', logPath], { env });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/in use/);
      expect(noStack(r.stderr)).toBe(true);
      expect(await fsp.readdir(base)).toEqual(['chain']); // made/, made/for/ and made/for/mount are gone
      // A directory that was there before is left alone.
      const existing = join(base, 'existing');
      await fsp.mkdir(existing);
      const again = await run(node, [CLI, 'mount', existing, '--log-path', logPath], { env });
      expect(again.code).not.toBe(0);
      expect((await fsp.stat(existing)).isDirectory()).toBe(true);
    } finally {
      await first.unmount();
      await fsp.rm(base, { recursive: true, force: true });
    }
  });

  it('unmounting something that is not mounted is an error', async () => {
    const dir = await tempDir('atefs-e2e-notmounted-');
    const r = await run(node, [CLI, 'unmount', dir]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe(`${dir} is not mounted`);
    await fsp.rmdir(dir);
  });
});

describe.each(availableTransports())('mount daemon life cycle (%s)', (transport) => {
  it('SIGTERM commits, unmounts and exits 0', async () => {
    const m = await mountForTest({ transport });
    await fsp.writeFile(join(m.dir, 'f'), 'data');
    m.kill('SIGTERM');
    expect(await m.exited).toBe(0);
    expect(await findMount(m.dir)).toBeUndefined();
    expect(m.output().stderr).toMatch(/unmounted: /);
    await m.unmount();
  });

  it('a daemon killed with SIGKILL leaves a stale mount that the next mount cleans up', async () => {
    const m = await mountForTest({ transport });
    await fsp.writeFile(join(m.dir, 'f'), 'data');
    m.kill('SIGKILL');
    await m.exited;
    const stale = await findMount(m.dir);
    expect(stale).toBeDefined();
    const err = await fsp.stat(m.dir).then(() => 'alive', (e: NodeJS.ErrnoException) => e.code);
    expect(err).toBe('ENOTCONN');
    const again = await mountForTest({ transport, dir: m.dir });
    expect(again.output().stderr).toMatch(/stale mount/);
    expect(await fsp.readdir(again.dir)).toEqual([]); // --temp: a fresh, empty filesystem
    await fsp.writeFile(join(again.dir, 'g'), 'ok');
    expect(await fsp.readFile(join(again.dir, 'g'), 'utf8')).toBe('ok');
    await again.unmount();
    await m.unmount();
    await fsp.rmdir(m.dir).catch(() => {});
  });

  it('`atefs unmount` asks the daemon to shut down; the mount is gone and the daemon exits 0', async () => {
    const m = await mountForTest({ transport });
    await fsp.mkdir(join(m.dir, 'd'));
    const r = await run(node, [CLI, 'unmount', m.dir]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`unmounted: ${m.dir}`);
    expect(await m.exited).toBe(0);
    expect(await findMount(m.dir)).toBeUndefined();
    await m.unmount();
  });

  it('an unmount from outside (fusermount -u) ends the daemon', async () => {
    const m = await mountForTest({ transport });
    const r = await run('fusermount', ['-u', m.dir]);
    expect(r.code).toBe(0);
    const code = await Promise.race([m.exited, sleep(20_000).then(() => 'still running')]);
    expect(code).toBe(0);
    await m.unmount();
  });

  it('a busy mount is still unmounted (lazily) by `atefs unmount`', async () => {
    const m = await mountForTest({ transport });
    await fsp.mkdir(join(m.dir, 'cwd'));
    const holder = sh(`cd ${join(m.dir, 'cwd')} && sleep 3`);
    await sleep(300);
    const r = await run(node, [CLI, 'unmount', m.dir]);
    expect(r.code).toBe(0);
    expect(await findMount(m.dir)).toBeUndefined();
    await holder;
    expect(await m.exited).toBe(0);
    await m.unmount();
  });

  it('record locks of a local chain work between processes; on the kernel transport the kernel keeps them (no SETLK reaches the daemon)', async () => {
    const m = await mountForTest({ transport });
    const f = join(m.dir, 'db.lock');
    await fsp.writeFile(f, 'x');
    // A holder takes a write lock on bytes 0-9 and waits; a second process cannot, then can once it is gone.
    const script = `
import fcntl, os, subprocess, sys, time
p = sys.argv[1]
holder = subprocess.Popen([sys.executable, '-c', "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0); print('held', flush=True); time.sleep(30)", p], stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline().strip() == 'held'
fd = os.open(p, os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
    print('not excluded')
except OSError:
    print('excluded')
holder.kill(); holder.wait()
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
print('free')
`;
    const r = await run('python3', ['-c', script, f], { timeout: 60_000 });
    expect(r.stdout.trim().split('\n'), r.stderr).toEqual(['excluded', 'free']);
    await m.unmount();
    const st = await m.stats();
    if (daemonTransport(transport) === 'kernel') {
      expect(st?.counters.SETLK ?? 0).toBe(0);
      expect(st?.counters.GETLK ?? 0).toBe(0);
    }
  });

  it('--stats-file: per-opcode counters on SIGUSR2 and at unmount', async () => {
    const statsDir = await tempDir('atefs-e2e-stats-');
    const file = join(statsDir, 'stats.json');
    const m = await mountForTest({ transport, extraArgs: ['--stats-file', file] });
    await fsp.writeFile(join(m.dir, 'a'), 'x'.repeat(100_000));
    await fsp.readFile(join(m.dir, 'a'));
    await fsp.readdir(m.dir);
    m.kill('SIGUSR2');
    expect(await waitFor(async () => fsp.access(file).then(() => true, () => false))).toBe(true);
    const first = JSON.parse(await fsp.readFile(file, 'utf8')) as { transport: string; seq: number; final: boolean; counters: Record<string, number> };
    expect(first.transport).toBe(daemonTransport(transport));
    expect(first.final).toBe(false);
    expect(first.seq).toBe(1);
    const total = Object.values(first.counters).reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(3);
    expect(Object.values(first.counters).every((v) => Number.isInteger(v) && v >= 0)).toBe(true);
    m.kill('SIGTERM');
    expect(await m.exited).toBe(0);
    const last = JSON.parse(await fsp.readFile(file, 'utf8')) as { final: boolean; counters: Record<string, number> };
    expect(last.final).toBe(true);
    expect(Object.values(last.counters).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(total);
    await m.unmount();
    await fsp.rm(statsDir, { recursive: true });
  });

  it('df reports live data: used space goes down after a delete, while the stats file says what the log holds', async () => {
    const statsDir = await tempDir('atefs-e2e-df-');
    const file = join(statsDir, 'stats.json');
    const m = await mountForTest({ transport, extraArgs: ['--stats-file', file] });
    try {
      const used = async () => Number((await sh(`df -B1 --output=used ${m.dir} | tail -1`)).stdout.trim());
      const empty = await used();
      await sh(`head -c 20000000 /dev/urandom > ${join(m.dir, 'big')} && sync -f ${m.dir}`);
      let full = 0;
      expect(await waitFor(async () => (full = await used()) > empty + 19_000_000)).toBe(true);
      await sh(`rm ${join(m.dir, 'big')} && sync -f ${m.dir}`);
      let after = full;
      expect(await waitFor(async () => (after = await used()) < empty + 1_000_000)).toBe(true);
      expect(after).toBeLessThan(full - 19_000_000);
      m.kill('SIGTERM');
      expect(await m.exited).toBe(0);
      const stats = JSON.parse(await fsp.readFile(file, 'utf8')) as { space: { liveBytes: number; logBytes: number } };
      expect(stats.space.logBytes).toBeGreaterThan(20_000_000); // the log keeps the deleted data until compaction
      expect(stats.space.liveBytes).toBeLessThan(1_000_000);
    } finally {
      await m.unmount();
      await fsp.rm(statsDir, { recursive: true, force: true });
    }
  });

  it('--read-only: reads work, every change is EROFS', async () => {
    const m = await mountForTest({ transport, readOnly: true });
    expect(await fsp.readdir(m.dir)).toEqual([]);
    for (const attempt of [
      () => fsp.writeFile(join(m.dir, 'f'), 'x'),
      () => fsp.mkdir(join(m.dir, 'd')),
      () => fsp.symlink('t', join(m.dir, 'l')),
      () => fsp.chmod(m.dir, 0o700),
      () => fsp.utimes(m.dir, 1, 1),
    ]) {
      const code = await attempt().then(() => 'no error', (e: NodeJS.ErrnoException) => e.code);
      expect(code).toBe('EROFS');
    }
    const r = await sh(`touch ${join(m.dir, 'x')}`);
    expect(r.stderr).toMatch(/Read-only file system/);
    await m.unmount();
  });

  it('--json prints a JSON mounted event; --background detaches and `atefs unmount` stops it', async () => {
    const dir = await tempDir('atefs-e2e-bg-');
    const r = await runCliAs(transport, ['mount', dir, '--temp', '--transport', daemonTransport(transport), '--background', ...(transport === NONROOT_TRANSPORT ? ['--allow-other'] : [])], dir);
    try {
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(`mounted: ${dir}`);
      expect(await findMount(dir)).toBeDefined();
      await fsp.writeFile(join(dir, 'bg'), 'background works');
      expect(await fsp.readFile(join(dir, 'bg'), 'utf8')).toBe('background works');
      const u = await runCliAs(transport, ['unmount', dir, '--json']);
      expect(u.code).toBe(0);
      expect(JSON.parse(u.stdout)).toMatchObject({ event: 'unmounted', mountpoint: dir, how: 'daemon committed and exited' });
      expect(await findMount(dir)).toBeUndefined();
    } finally {
      if (await findMount(dir)) await run('fusermount', ['-uz', dir]);
    }

    const m = await mountForTest({ transport, dir, extraArgs: ['--json'] });
    const first = JSON.parse(m.output().stdout.split('\n')[0]!) as Record<string, unknown>;
    expect(first).toMatchObject({ event: 'mounted', mountpoint: dir, transport: daemonTransport(transport), pid: m.pid });
    await m.unmount();
    await fsp.rmdir(dir);
  });
});
