// atedb solo's own figures from a real process: the --json stats lines every --stats-interval and
// GET /metrics (--metrics) count the connections, the appends confirmed and the rejections by
// reason that a real client caused.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../e2e/harness.js';
import { ATEDB, RawClient, TestChain, sleep, tempDir } from './atedb/harness.js';

interface StatsLine {
  at: number;
  connections: { open: number; total: number };
  chainsOpen: number;
  appends: number;
  events: number;
  bytesIn: number;
  bytesOut: number;
  rejected: Record<string, number>;
  fsync: { count: number; p50Ms: number | null; p99Ms: number | null };
}

let proc: ChildProcess;
let out = '';
let err = '';
let port = 0;
let metrics = '';
let kh = '';

const statsLines = (): StatsLine[] => out.split('\n').filter((l) => l.startsWith('{"stats"')).map((l) => (JSON.parse(l) as { stats: StatsLine }).stats);

/** Waits for a stats line printed after `since` that satisfies `pred`. */
async function statsWhere(pred: (s: StatsLine) => boolean, since = 0): Promise<StatsLine> {
  for (let i = 0; i < 300; i++) {
    const hit = statsLines().find((s) => s.at > since && pred(s));
    if (hit) return hit;
    await sleep(50);
  }
  throw new Error(`no such stats line: ${out.split('\n').slice(-3).join('\n')} ${err}`);
}

async function scrape(): Promise<string> {
  const r = await fetch(`http://${metrics}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return r.text();
}

function metric(text: string, name: string): number {
  const m = text.match(new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (\\S+)$`, 'm'));
  if (!m) throw new Error(`no ${name} in\n${text}`);
  return Number(m[1]);
}

beforeAll(async () => {
  await ensureBuilt();
  const dataDir = await tempDir('atedb-stats-');
  kh = join(await tempDir('atedb-stats-kh-'), 'known_hosts');
  proc = spawn(process.execPath, [ATEDB, 'solo', '--data-dir', dataDir, '--port', '0', '--json', '--stats-interval', '200', '--metrics', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  for (let i = 0; i < 1000 && !out.includes('\n'); i++) await sleep(20);
  const first = JSON.parse(out.split('\n')[0]!) as { listening: string; metrics: string };
  port = Number(first.listening.split(':')[1]);
  metrics = first.metrics;
  expect(metrics).toMatch(/^127\.0\.0\.1:\d+$/);
});

afterAll(() => {
  try {
    process.kill(proc.pid!, 'SIGKILL');
  } catch {
    // gone
  }
});

describe('atedb solo --json stats lines and --metrics', () => {
  it('the listening event comes first, then a stats line every interval', async () => {
    await statsWhere(() => true);
    await sleep(700);
    const lines = out.split('\n').filter(Boolean);
    expect(JSON.parse(lines[0]!)).toHaveProperty('listening');
    expect(lines.slice(1).every((l) => l.startsWith('{"stats"'))).toBe(true);
    expect(statsLines().length).toBeGreaterThanOrEqual(3);
    expect(statsLines()[0]).toMatchObject({ appends: 0, rejected: {}, connections: { open: 0 } });
  });

  it('count the appends, the rejections by reason and the connections a client causes', async () => {
    const ch = await TestChain.create('acme/stats');
    const c = await RawClient.connect(port, kh);
    expect(await c.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok', seq: 1 });
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const commit = await ch.build({ n: 2 });
      expect(await c.append(ch.name, commit.bytes)).toMatchObject({ t: 'ok', seq: i + 2 });
      ch.apply(commit.bytes);
      sent.push(commit);
    }
    // two rejections: a replay and a chain that is not there
    expect(await c.append(ch.name, sent[0]!.bytes)).toMatchObject({ t: 'rej', reason: 'replay' });
    expect(await c.append('no/such', sent[1]!.bytes)).toMatchObject({ t: 'rej', reason: 'unknown-chain' });
    const t0 = Date.now();

    const s = await statsWhere((x) => x.appends === 4 && x.connections.open === 1, t0);
    expect(s.connections.total).toBeGreaterThanOrEqual(1);
    expect(s.chainsOpen).toBe(1);
    expect(s.events).toBe(ch.genesis.events.length + 6);
    expect(s.rejected).toEqual({ replay: 1, 'unknown-chain': 1 });
    expect(s.bytesIn).toBeGreaterThan(sent.reduce((a, x) => a + x.bytes.length, 0));
    expect(s.bytesOut).toBeGreaterThan(0);
    expect(s.fsync.count).toBe(4);
    expect(s.fsync.p99Ms).toBeGreaterThan(0);

    const m = await scrape();
    expect(metric(m, 'atedb_appends_total')).toBe(4);
    expect(metric(m, 'atedb_connections_open')).toBe(1);
    expect(metric(m, 'atedb_chains_open')).toBe(1);
    expect(metric(m, 'atedb_rejected_total{reason="replay"}')).toBe(1);
    expect(metric(m, 'atedb_rejected_total{reason="unknown-chain"}')).toBe(1);
    expect(metric(m, 'atedb_fsync_seconds_count')).toBe(4);
    expect(metric(m, 'atedb_fsync_seconds_bucket{le="+Inf"}')).toBe(4);
    expect(metric(m, 'atedb_received_bytes_total')).toBe(s.bytesIn);

    // the client goes: open connections drop, the total and the wire bytes stay
    c.close();
    const t1 = Date.now();
    const after = await statsWhere((x) => x.connections.open === 0, t1);
    expect(after.connections.total).toBe(s.connections.total);
    expect(after.bytesIn).toBeGreaterThanOrEqual(s.bytesIn);
    const m2 = await scrape();
    expect(metric(m2, 'atedb_connections_open')).toBe(0);
    expect(metric(m2, 'atedb_connections_total')).toBe(s.connections.total);
  });

  it('serves only /metrics', async () => {
    expect((await fetch(`http://${metrics}/`)).status).toBe(404);
    expect((await fetch(`http://${metrics}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('stops on SIGTERM, metrics endpoint included', async () => {
    const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    process.kill(proc.pid!, 'SIGTERM');
    expect(await exit).toBe(0);
    await expect(fetch(`http://${metrics}/metrics`)).rejects.toThrow();
  });
});

// The panel needs a terminal: util-linux `script` gives the process a pseudo-terminal.
const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasScript)('atedb solo in a terminal', () => {
  it('shows the panel with live figures; SIGINT stops it and the server, exit 0', async () => {
    const dataDir = await tempDir('atedb-tty-');
    const { CI: _ci, ...env } = process.env;
    const cmd = `stty cols 110 rows 40; exec '${process.execPath}' '${ATEDB}' solo --data-dir '${dataDir}' --port 0`;
    const sc = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let screen = '';
    sc.stdout!.on('data', (d: Buffer) => { screen += d.toString(); });
    const exited = new Promise<number | null>((r) => sc.once('exit', (code) => r(code)));
    const plain = () => screen.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '');
    let node = 0;
    try {
      for (let i = 0; i < 500 && !/listening: [\d.]+:\d+/.test(plain()); i++) await sleep(20);
      const tp = Number(plain().match(/listening: [\d.]+:(\d+)/)![1]);
      const ch = await TestChain.create('acme/tty');
      const c = await RawClient.connect(tp, join(await tempDir('atedb-tty-kh-'), 'known_hosts'));
      expect(await c.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok', seq: 1 });
      expect(await c.append('no/such', ch.genesis.bytes)).toMatchObject({ t: 'rej', reason: 'wrong-genesis' });
      // The panel redraws on its own timer: wait for a frame that shows both the append and the refusal.
      for (let i = 0; i < 200 && !(/appends\s+1 \(/.test(plain()) && /rejected\s+1:/.test(plain())); i++) await sleep(25);
      const p = plain();
      expect(p).toMatch(/atedb solo\s+listening\s+127\.0\.0\.1:\d+/);
      expect(p).toMatch(/connections\s+1 open/);
      expect(p).toMatch(/chains open\s+1/);
      expect(p).toMatch(/appends\s+1 \(/);
      expect(p).toMatch(/rejected\s+1: wrong-genesis 1/);
      c.close();
      // the node process is script's child (the shell exec'd it)
      node = Number(execFileSync('ps', ['-o', 'pid=', '--ppid', String(sc.pid)]).toString().trim().split(/\s+/)[0]);
      expect(node).toBeGreaterThan(0);
      process.kill(node, 'SIGINT');
      expect(await exited).toBe(0);
      expect(plain()).toMatch(/SIGINT: shutting down[\s\S]*stopped/);
    } finally {
      for (const pid of [node, sc.pid!]) {
        try {
          if (pid) process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });
});
