// The library against a real atedb solo (one per file, shared by the tests): leases of tcp://
// chains are the server's (held by a connection, freed when it dies or its TTL ends), and the
// atedb examples (hello world, event bus, work queue, request/reply) run as a user runs them —
// node processes importing the package — with assertions on what they print.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { LeaseHeld, LeaseNotOwner, openChain } from '../../src/api/index.js';
import { ROOT, type Solo, sleep, startSolo, tempDir } from './atedb/harness.js';

const run = promisify(execFile);

let solo: Solo;
let env: NodeJS.ProcessEnv;
let config: string;
const url = (chain: string) => `tcp://127.0.0.1:${solo.port}/${chain}`;

beforeAll(async () => {
  solo = await startSolo();
  const home = await tempDir('ate-remote-examples-');
  config = join(home, 'config', 'atefs');
  // TMPDIR: the examples' replica directories land here too (a SIGKILLed worker cannot remove its own).
  env = { ...process.env, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config'), TMPDIR: join(home, 'tmp') };
  await mkdir(join(home, 'tmp'));
});

const example = async (file: string, ...args: string[]) => {
  const r = await run(process.execPath, [join(ROOT, 'examples', file), ...args], { cwd: ROOT, env, timeout: 90_000 });
  return r.stdout;
};

/** A node process whose stdout lines are collected; waitLine resolves on the first matching line. */
function proc(args: string[]) {
  const p: ChildProcess = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  let buf = '';
  const watchers: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  p.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of [...watchers]) {
        const m = line.match(w.re);
        if (m) {
          watchers.splice(watchers.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  });
  p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return {
    pid: p.pid!, lines, exited, stderr: () => err,
    waitLine(re: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
      const hit = lines.map((l) => l.match(re)).find((m) => m);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line ${re} within ${ms} ms; got:\n${lines.join('\n')}\n${err}`)), ms);
        watchers.push({ re, resolve: (m) => { clearTimeout(t); resolve(m); } });
      });
    },
  };
}

const KEY = 'aa'.repeat(16);

/** Polls tryAcquire: a disconnect reaches the server a moment after the client closed. */
async function acquireWithin(chain: Awaited<ReturnType<typeof openChain>>, ms: number) {
  const t0 = Date.now();
  for (;;) {
    const lease = await chain.leases.tryAcquire(KEY, 1000);
    if (lease || Date.now() - t0 > ms) return { lease, waited: Date.now() - t0 };
    await sleep(50);
  }
}

describe('remote leases (the server\'s lease table through openChain)', () => {
  it('a lease held by another process blocks acquire, and is free again as soon as that process is killed', async () => {
    const holder = proc([join(ROOT, 'test/integration/atedb/lease-proc.mjs'), url('leases/one'), await tempDir('lease-proc-'), KEY, '60000']);
    const [, owner] = await holder.waitLine(/^held (\S+) (\d+)$/);
    const a = await openChain(url('leases/one'), { dir: await tempDir('lease-a-'), configDir: config });
    try {
      expect(await a.leases.tryAcquire(KEY, 1000)).toBeNull();
      expect((await a.leases.get(KEY))?.owner).toBe(owner);
      await expect(a.leases.acquire(KEY, 1000)).rejects.toBeInstanceOf(LeaseHeld);
      // Same identity (one config dir), another connection: not the holder.
      expect(a.leases.owner).toBe(owner);
      await expect(a.leases.release(KEY)).rejects.toBeInstanceOf(LeaseNotOwner);
      process.kill(holder.pid, 'SIGKILL');
      await holder.exited;
      const { lease, waited } = await acquireWithin(a, 10_000);
      expect(lease).not.toBeNull();
      expect(waited).toBeLessThan(10_000); // the TTL was 60 s: freed by the disconnect
      await a.leases.release(KEY);
      expect(await a.leases.get(KEY)).toBeNull();
    } finally {
      await a.close();
    }
  });

  it('a lease ends with its TTL; the holder renews, the other connection waits; a closed chain frees its leases', async () => {
    const a = await openChain(url('leases/two'), { dir: await tempDir('lease-a-'), configDir: config });
    const b = await openChain(url('leases/two'), { dir: await tempDir('lease-b-'), configDir: config });
    try {
      const l = await a.leases.acquire(KEY, 400);
      expect(l.expiresAt).toBeGreaterThan(Date.now());
      expect(await b.leases.tryAcquire(KEY, 400)).toBeNull();
      await a.leases.acquire(KEY, 400); // the holder renews
      await sleep(600);
      expect(await b.leases.tryAcquire(KEY, 60_000)).not.toBeNull();
      await expect(a.leases.release(KEY)).rejects.toBeInstanceOf(LeaseNotOwner);
      await b.close(); // b held it for 60 s: freed with b's connection
      const { lease, waited } = await acquireWithin(a, 10_000);
      expect(lease).not.toBeNull();
      expect(waited).toBeLessThan(10_000);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a lease granted after another client committed and released sees that commit at once', async () => {
    const a = await openChain(url('leases/three'), { dir: await tempDir('lease-a-'), configDir: config });
    const b = await openChain(url('leases/three'), { dir: await tempDir('lease-b-'), configDir: config });
    try {
      for (let round = 0; round < 10; round++) {
        await a.leases.acquire(KEY, 5000);
        const tx = a.begin();
        const k = tx.store({ round });
        await tx.commit({ scope: 'remote' });
        await a.leases.release(KEY);
        await b.leases.acquire(KEY, 5000);
        expect(b.tryLoad<{ round: number }>(k)?.value.round).toBe(round);
        await b.leases.release(KEY);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('atedb examples', () => {
  it('hello world: against atedb with a tcp:// argument, twice', async () => {
    expect(await example('hello-world.mjs', url('universe'))).toBe('Hello world!\n');
    expect(await example('hello-world.mjs', url('universe'))).toBe('Hello world!\n');
  });

  it('event bus: every subscriber sees every event in the same order', async () => {
    const out = await example('event-bus.mjs', url('bus'), '--publishers', '3', '--subscribers', '3', '--events', '8');
    const subs = out.split('\n').filter((l) => l.startsWith('subscriber '));
    expect(subs).toHaveLength(3);
    const digests = subs.map((l) => /^subscriber \d: 24 events, order ([0-9a-f]{16}),/.exec(l)?.[1]);
    expect(digests.every((d) => d && d === digests[0])).toBe(true);
    expect(out).toMatch(/^all 3 subscribers saw all 24 events from 3 publishers in the same order$/m);
    expect(out).not.toMatch(/MISMATCH/);
  });

  it('work queue: workers as processes, each job done exactly once', async () => {
    const out = await example('work-queue.mjs', url('queue/demo'), '--jobs', '9', '--workers', '3', '--ms', '100');
    const done = out.split('\n').filter((l) => / done job \d+$/.test(l)).map((l) => Number(/(\d+)$/.exec(l)![1]));
    expect(done.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(out).toMatch(/^9 jobs, each done exactly once$/m);
  });

  const doneLines = (ws: Array<ReturnType<typeof proc>>) => ws.flatMap((w) => w.lines.filter((l) => / done job \d+$/.test(l)).map((l) => Number(/(\d+)$/.exec(l)![1])));

  it('work queue: a worker killed (SIGKILL) mid-job loses its job to another worker; no job done twice', async () => {
    const q = url('queue/kill');
    expect(await example('work-queue.mjs', q, '--enqueue', '10', '--ms', '400')).toMatch(/^enqueued 10 jobs$/m);
    const script = join(ROOT, 'examples', 'work-queue.mjs');
    const workers = [0, 1, 2].map(() => proc([script, q, '--worker', '--ttl', '3000']));
    const victim = workers[0]!;
    const [, job] = await victim.waitLine(/^worker \d+ took job (\d+)$/);
    process.kill(victim.pid, 'SIGKILL'); // mid-job: the job takes 400 ms
    await victim.exited;
    const rest = workers.slice(1);
    expect(await Promise.all(rest.map((w) => w.exited))).toEqual([0, 0]);
    expect(victim.lines.some((l) => l.endsWith(`done job ${job}`))).toBe(false);
    // The victim's job was taken again and completed by another worker.
    expect(rest.some((w) => w.lines.some((l) => l.endsWith(` took job ${job}`)) && w.lines.some((l) => l.endsWith(` done job ${job}`)))).toBe(true);
    const done = doneLines(workers).sort((x, y) => x - y);
    expect(done).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const report = await example('work-queue.mjs', q, '--report');
    expect(report).toMatch(new RegExp(`^job ${job} done by (?!${victim.pid}\\b)\\d+ \\(result ${Number(job) ** 2}, version 1\\)$`, 'm'));
    expect(report).toMatch(/^10 jobs, each done exactly once$/m);
  });

  it('work queue: a frozen worker (SIGSTOP) loses its lease when the TTL ends; thawed, it gives the job up', async () => {
    const q = url('queue/stop');
    await example('work-queue.mjs', q, '--enqueue', '4', '--ms', '300');
    const script = join(ROOT, 'examples', 'work-queue.mjs');
    const frozen = proc([script, q, '--worker', '--ttl', '1500']);
    const [, job] = await frozen.waitLine(/^worker \d+ took job (\d+)$/);
    process.kill(frozen.pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    const other = proc([script, q, '--worker', '--ttl', '1500']);
    try {
      await other.waitLine(new RegExp(`^worker \\d+ done job ${job}$`), 30_000);
      // Taken only once the frozen worker's lease expired (its connection stayed up).
      expect(Date.now() - stoppedAt).toBeGreaterThan(1000);
    } finally {
      process.kill(frozen.pid, 'SIGCONT');
    }
    await frozen.waitLine(new RegExp(`^worker \\d+ lost job ${job} \\(`));
    expect(await frozen.exited).toBe(0);
    expect(await other.exited).toBe(0);
    expect(frozen.lines.some((l) => l.endsWith(`done job ${job}`))).toBe(false);
    expect(doneLines([frozen, other]).sort()).toEqual([1, 2, 3, 4]);
    expect(await example('work-queue.mjs', q, '--report')).toMatch(/^4 jobs, each done exactly once$/m);
  });

  it('request/reply: a handler process answers; a slow call surfaces as TimeoutError', async () => {
    // 2 s: a normal call answers well within it even on a loaded machine.
    const out = await example('rpc.mjs', url('rpc'), '--timeout', '2000');
    expect(out.trim().split('\n')).toEqual([
      'add(2, 3) = 5',
      'upper("hello") = "HELLO"',
      'divide(1, 0): failed: division by zero',
      'sleep(6000): no reply within 2000 ms (TimeoutError)',
      'add(40, 2) = 42',
    ]);
  });
});
