// atedb for the network benchmarks (net, auth, cluster): `atedb solo` from dist/, resolved with its
// port once it prints its listening line (stderr goes to the benchmark's), and a raw append client.
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { type ClientSession, type Message, connectClient } from '../../../src/net/index.js';

export async function startAtedb(repo: string, dataDir: string, args: string[] = []): Promise<{ proc: ChildProcess; port: number }> {
  // ATEDB_NODE_ARGS: extra node flags for the server process only (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`).
  const nodeArgs = (process.env.ATEDB_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, path.join(repo, 'dist', 'cli', 'atedb.js'), 'solo', '--data-dir', dataDir, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /listening: [\d.]+:(\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', () => reject(new Error(`atedb exited: ${text}`)));
  });
  return { proc, port };
}

/** Appends over one connection, many in flight, each answered by its request id. */
export class Client {
  private waiters = new Map<number, (m: Message) => void>();
  private next = 1;
  constructor(readonly s: ClientSession) {
    s.conn.on('message', (m) => {
      const id = (m as { id?: number }).id;
      if (typeof id === 'number' && this.waiters.has(id)) {
        this.waiters.get(id)!(m);
        this.waiters.delete(id);
      }
    });
  }
  static async connect(port: number, kh: string): Promise<Client> {
    return new Client(await connectClient({ host: '127.0.0.1', port, knownHosts: kh }));
  }
  append(chain: string, commit: Buffer): Promise<Message> {
    const id = this.next++;
    return new Promise((r) => {
      this.waiters.set(id, r);
      this.s.conn.send({ t: 'append', id, chain, commit });
    });
  }
}
