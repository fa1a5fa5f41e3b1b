import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableTransports, haveTool, shOk, sleep, unmountAll } from './harness.js';
import { mountOnLog, type LogMount } from './remount.js';

/**
 * System-level durability: the daemon under strace, an fsync(2) through the mount, and the order
 * of the daemon's own system calls: the FUSE_FSYNC request read from /dev/fuse, an fdatasync of a
 * file of the chain's log that returned, and only then the reply written to /dev/fuse. Nothing in
 * the daemon is trusted to say so itself.
 */

const FUSE_FSYNC = 20;

interface Call { idx: number; entry: number; pid: string; name: string; fdPath: string; text: string; ret: number }

/** strace -xx prints every byte as \xNN, paths included. */
const unhex = (s: string) => Buffer.from(s.replace(/\\x/g, ''), 'hex');

/** Joins "<unfinished ...>" / "<... resumed>" halves; `entry` is where the call started, `idx` where it returned. */
function parseStrace(text: string): Call[] {
  const pending = new Map<string, { text: string; idx: number }>();
  const calls: Call[] = [];
  text.split('\n').forEach((line, idx) => {
    const m = /^(\d+) +(.*)$/.exec(line); // strace pads short pids: "812  read(" and "81234 read("
    if (!m) return;
    const [, pid, rest] = m as unknown as [string, string, string];
    let full: string;
    let entry = idx;
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (resumed) {
      const p = pending.get(pid);
      if (!p) return;
      pending.delete(pid);
      full = p.text + resumed[1]!;
      entry = p.idx;
    } else if (rest.endsWith('<unfinished ...>')) {
      pending.set(pid, { text: rest.slice(0, -'<unfinished ...>'.length), idx });
      return;
    } else full = rest;
    const c = /^(\w+)\((\d+)<((?:\\x[0-9a-f]{2})*)>(.*)\) += (-?\d+)/.exec(full);
    if (!c) return;
    calls.push({ idx, entry, pid, name: c[1]!, fdPath: unhex(c[3]!).toString(), text: c[4]!, ret: Number(c[5]) });
  });
  return calls;
}

/** The first string argument of a call (the buffer read or written, or the first iovec). */
function firstBuffer(c: Call): Buffer | null {
  const m = /"((?:\\x[0-9a-f]{2})*)"/.exec(c.text);
  return m ? unhex(m[1]!) : null;
}

let work: string | undefined;
afterAll(async () => {
  await unmountAll();
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(!haveTool('strace')).each(availableTransports())('fsync through a %s mount, under strace', (transport) => {
  it('the FUSE reply to an fsync follows an fdatasync of the chain log that returned', async () => {
    work ??= await mkdtemp(join(tmpdir(), 'atefs-e2e-strace-'));
    const out = join(work, `${transport}.strace`);
    const lm: LogMount = await mountOnLog({ transport });
    const st = spawn('strace', ['-f', '-y', '-xx', '-s', '32', '-e', 'trace=read,readv,write,writev,fdatasync,fsync', '-o', out, '-p', String(lm.m.pid)],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    st.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const stExited = new Promise<void>((ok) => st.on('exit', () => ok()));
    try {
      for (let i = 0; i < 100 && !/attached/.test(err); i++) await sleep(100);
      expect(err).toMatch(/attached/);
      await sleep(300); // every thread attached
      await shOk(`head -c 300000 /dev/urandom > ${lm.m.dir}/f && dd if=/dev/urandom of=${lm.m.dir}/g bs=64k count=3 conv=fsync status=none`);
      await sleep(300);
    } finally {
      st.kill('SIGINT');
      await Promise.race([stExited, sleep(10_000)]);
      if (st.exitCode === null) st.kill('SIGKILL');
    }
    await lm.m.unmount();
    await rm(lm.logPath, { recursive: true, force: true });

    const calls = parseStrace(await readFile(out, 'utf8'));
    const fuse = (c: Call) => c.fdPath === '/dev/fuse';
    const requests = calls.filter((c) => fuse(c) && /^(read|readv)$/.test(c.name) && c.ret >= 40).map((c) => {
      const b = firstBuffer(c)!;
      return { c, opcode: b.readUInt32LE(4), unique: b.readBigUInt64LE(8) };
    });
    const replies = calls.filter((c) => fuse(c) && /^(write|writev)$/.test(c.name)).map((c) => {
      const b = firstBuffer(c)!;
      return { c, error: b.readInt32LE(4), unique: b.readBigUInt64LE(8) };
    });
    const syncs = calls.filter((c) => c.name === 'fdatasync' && c.ret === 0 && c.fdPath.startsWith(lm.logPath));
    expect(requests.length, 'no FUSE request seen: strace did not trace the serving threads').toBeGreaterThan(0);
    const fsyncs = requests.filter((r) => r.opcode === FUSE_FSYNC);
    expect(fsyncs.length).toBeGreaterThanOrEqual(1);
    for (const f of fsyncs) {
      const reply = replies.find((r) => r.unique === f.unique && r.c.entry > f.c.idx);
      expect(reply, `no reply to FUSE_FSYNC ${f.unique}`).toBeDefined();
      expect(reply!.error).toBe(0);
      const between = syncs.filter((s) => s.idx > f.c.idx && s.idx < reply!.c.entry);
      expect(between.length, `FUSE_FSYNC ${f.unique} answered with no fdatasync of ${lm.logPath} in between`).toBeGreaterThan(0);
    }
  }, 180_000);
});
