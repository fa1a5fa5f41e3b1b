// A real nats-server cluster on 127.0.0.1 for the JetStream store's tests (test/integration/nats/
// cluster.ts) and `npm run bench:cluster`: N nodes (default 3) with JetStream, each with its own store
// dir and config file in one temp dir, client and route ports picked free by the kernel, started by
// PID and stopped by PID (never by name). Nodes can be SIGKILLed and restarted on the same ports and
// store dirs (the cluster must survive a node's death and a whole-cluster restart).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p)) ?? null;

/** max_payload the test cluster runs with: commits of a few MiB fit in one message. */
export const TEST_MAX_PAYLOAD = 8 << 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export interface NatsNode {
  name: string;
  port: number;
  routePort: number;
  storeDir: string;
  config: string;
  proc: ChildProcess | null;
  pid: number | null;
  log: string;
}

export class NatsCluster {
  private constructor(readonly dir: string, readonly nodes: NatsNode[]) {}

  /** nats://127.0.0.1:p1,127.0.0.1:p2,... (the form `atedb solo --store` takes). */
  get url(): string {
    return `nats://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  get servers(): string[] {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`);
  }

  static async start(o: { size?: number; maxPayload?: number } = {}): Promise<NatsCluster> {
    if (!NATS_SERVER) throw new Error('nats-server is not installed (scripts/setup installs Debian\'s package)');
    const size = o.size ?? 3;
    const dir = await fsp.mkdtemp(join(tmpdir(), 'atedb-nats-'));
    const nodes: NatsNode[] = [];
    for (let i = 0; i < size; i++) {
      nodes.push({ name: `n${i + 1}`, port: await freePort(), routePort: await freePort(), storeDir: join(dir, `n${i + 1}`), config: join(dir, `n${i + 1}.conf`), proc: null, pid: null, log: '' });
    }
    for (const n of nodes) {
      await fsp.mkdir(n.storeDir, { recursive: true });
      const routes = nodes.filter((m) => m !== n).map((m) => `"nats-route://127.0.0.1:${m.routePort}"`).join(', ');
      // Quoted store dir; a small JetStream memory budget (the machine is shared).
      await fsp.writeFile(n.config, [
        `server_name: ${n.name}`,
        'listen: 127.0.0.1:' + n.port,
        `max_payload: ${o.maxPayload ?? TEST_MAX_PAYLOAD}`,
        `jetstream { store_dir: "${n.storeDir}", max_memory_store: 64MB, max_file_store: 2GB }`,
        ...(size > 1 ? [`cluster { name: atedb-test, listen: 127.0.0.1:${n.routePort}, routes: [${routes}] }`] : []),
        '',
      ].join('\n'));
    }
    const c = new NatsCluster(dir, nodes);
    live.add(c);
    await Promise.all(nodes.map((n) => c.startNode(n)));
    return c;
  }

  /** Starts (or restarts) one node on its ports and store dir; resolves when it accepts clients. */
  async startNode(n: NatsNode): Promise<void> {
    const proc = spawn(NATS_SERVER!, ['-c', n.config], { stdio: ['ignore', 'pipe', 'pipe'] });
    n.proc = proc;
    n.pid = proc.pid!;
    n.log = '';
    const add = (d: Buffer) => { n.log = (n.log + d.toString()).slice(-20_000); };
    proc.stdout!.on('data', add);
    proc.stderr!.on('data', add);
    proc.once('exit', () => { if (n.proc === proc) { n.proc = null; n.pid = null; } });
    const t0 = Date.now();
    while (!(await portOpen(n.port))) {
      if (n.proc !== proc) throw new Error(`nats-server ${n.name} exited: ${n.log.slice(-2000)}`);
      if (Date.now() - t0 > 15_000) throw new Error(`nats-server ${n.name} did not listen: ${n.log.slice(-2000)}`);
      await sleep(30);
    }
  }

  /** Signals one node by PID and waits for it to exit. */
  async kill(n: NatsNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = n.proc;
    if (!proc || n.pid === null) return;
    const exited = new Promise<void>((r) => (proc.exitCode !== null || proc.signalCode !== null ? r() : proc.once('exit', () => r())));
    try {
      process.kill(n.pid, signal);
    } catch {
      // already gone
    }
    await exited;
  }

  /**
   * performance.now() when one of `nodes` next logs a line matching `re` (NaN after `timeoutMs`):
   * what nats-server itself says happened, e.g. "new stream leader for ..." after a leader died.
   */
  whenLogged(nodes: NatsNode[], re: RegExp, timeoutMs = 60_000): Promise<number> {
    return new Promise<number>((resolve) => {
      const watched = nodes.flatMap((n) => [n.proc?.stdout, n.proc?.stderr]).filter((s) => s != null);
      const done = (t: number) => {
        clearTimeout(timer);
        for (const s of watched) s.off('data', seen);
        resolve(t);
      };
      const seen = (d: Buffer) => { if (re.test(d.toString())) done(performance.now()); };
      const timer = setTimeout(() => done(Number.NaN), timeoutMs);
      for (const s of watched) s.on('data', seen);
    });
  }

  node(name: string): NatsNode {
    const n = this.nodes.find((m) => m.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Stops every node (SIGTERM: a clean JetStream shutdown, SIGKILL after 5 s). */
  async stopAll(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => {
      const proc = n.proc;
      if (!proc) return;
      const t = setTimeout(() => { if (n.pid !== null) try { process.kill(n.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
      await this.kill(n, 'SIGTERM');
      clearTimeout(t);
    }));
  }

  async restartAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.startNode(n)));
  }

  /** Stops every node and removes the temp dir. */
  async destroy(): Promise<void> {
    live.delete(this);
    await Promise.all(this.nodes.map((n) => this.kill(n, 'SIGKILL')));
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

const live = new Set<NatsCluster>();
// A test file that throws before its afterAll still leaves no nats-server behind.
process.once('exit', () => {
  for (const c of live) for (const n of c.nodes) if (n.pid !== null) try { process.kill(n.pid, 'SIGKILL'); } catch { /* gone */ }
});
