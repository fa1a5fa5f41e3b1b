// Shared harness of the atedb integration tests: real `node dist/cli/atedb.js solo` processes on
// 127.0.0.1 with a port the kernel picks (--port 0, read back from the listening line), killed by
// PID when the file ends; a protocol-level client; chain worlds of test identities.
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { ensureBuilt } from '../../e2e/harness.js';
import {
  type Commit, CommitBuilder, DataKeyCache, MemoryAuthorityState, checkAgainstState, createGenesis, decodeCommit, signersOf,
} from '../../../src/chain/index.js';
import { AuthRefused, type ClientSession, type Credentials, type Message, type Outgoing, connectClient, createUser, login } from '../../../src/net/index.js';
import { type Identity, Session, createIdentity } from '../../../src/session/index.js';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const ATEDB = join(ROOT, 'dist', 'cli', 'atedb.js');
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Solo {
  proc: ChildProcess;
  pid: number;
  port: number;
  fingerprint: string;
  dataDir: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<Solo>();
const tempDirs: string[] = [];

afterAll(async () => {
  for (const s of running) {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  running.clear();
  for (const d of tempDirs) await fsp.rm(d, { recursive: true, force: true });
});

export async function tempDir(prefix: string): Promise<string> {
  const d = await fsp.mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

/** Starts `atedb solo` and waits for its listening line. `port` 0 = any free port. */
export async function startSolo(o: { dataDir?: string; port?: number; args?: string[]; command?: 'solo' | 'auth' } = {}): Promise<Solo> {
  // dist/ is what runs: rebuilt first when older than the sources (shared with the e2e suites).
  await ensureBuilt();
  const dataDir = o.dataDir ?? (await tempDir('atedb-data-'));
  const proc = spawn(process.execPath, [ATEDB, o.command ?? 'solo', '--data-dir', dataDir, '--port', String(o.port ?? 0), ...(o.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const t0 = Date.now();
  let m: RegExpMatchArray | null = null;
  while (!(m = out.match(/listening: ([\d.]+):(\d+) fingerprint: (\S+)/))) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`atedb solo exited: ${err}`);
    if (Date.now() - t0 > 20_000) throw new Error(`atedb solo did not start: ${out} ${err}`);
    await sleep(20);
  }
  const s: Solo = {
    proc, pid: proc.pid!, port: Number(m[2]), fingerprint: m[3]!, dataDir, stdout: () => out, stderr: () => err, exited,
    async kill(signal = 'SIGKILL') {
      try {
        process.kill(proc.pid!, signal);
      } catch {
        // gone
      }
      const r = await exited;
      running.delete(s);
      return r;
    },
  };
  running.add(s);
  return s;
}

/** A protocol-level client: requests by id, everything else collected in `inbox`. */
export class RawClient {
  readonly inbox: Message[] = [];
  private nextId = 1;
  private waiters = new Map<number, (m: Message) => void>();
  private watchers: Array<{ pred: (m: Message) => boolean; resolve: (m: Message) => void }> = [];
  closed = false;

  constructor(readonly s: ClientSession) {
    s.conn.on('message', (m) => {
      const id = (m as { id?: number | null }).id;
      if (typeof id === 'number' && this.waiters.has(id) && m.t !== 'hist') {
        const w = this.waiters.get(id)!;
        this.waiters.delete(id);
        w(m);
        return;
      }
      this.inbox.push(m);
      this.watchers = this.watchers.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
    });
    s.conn.on('close', () => { this.closed = true; });
  }

  static async connect(port: number, knownHosts: string, identity?: Identity): Promise<RawClient> {
    return new RawClient(await connectClient({ host: '127.0.0.1', port, knownHosts, ...(identity ? { identity: identity.signing } : {}) }));
  }

  request(m: Outgoing & { id?: number }, timeoutMs = 30_000): Promise<Message> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${m.t} #${id}`)), timeoutMs);
      this.waiters.set(id, (r) => { clearTimeout(timer); resolve(r); });
      this.s.conn.send({ ...m, id } as Outgoing);
    });
  }

  append(chain: string, commit: Buffer): Promise<Message> {
    return this.request({ t: 'append', id: 0, chain, commit });
  }

  /** Subscribes and waits for the end of history; the history commits are returned in order. */
  async subscribe(chain: string, genesis: Buffer | null, from = 1): Promise<{ commits: Buffer[]; eoh: Extract<Message, { t: 'eoh' }> }> {
    const id = this.nextId++;
    const start = this.inbox.length;
    const done = this.waitFor((m) => (m.t === 'eoh' && m.chain === chain) || (m.t === 'err' && m.id === id));
    this.s.conn.send({ t: 'sub', id, chain, genesis, from });
    const end = await done;
    if (end.t === 'err') throw new Error(`${end.code}: ${end.detail}`);
    const commits = this.inbox.slice(start).flatMap((m) => (m.t === 'hist' && m.chain === chain ? m.commits : []));
    return { commits, eoh: end as Extract<Message, { t: 'eoh' }> };
  }

  waitFor(pred: (m: Message) => boolean, timeoutMs = 30_000): Promise<Message> {
    const hit = this.inbox.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('message did not arrive')), timeoutMs);
      this.watchers.push({ pred, resolve: (m) => { clearTimeout(timer); resolve(m); } });
    });
  }

  close(): void {
    this.s.conn.close();
  }
}

/** A chain as a test writes it: identities, a local copy of the authority state, a builder. */
export class TestChain {
  readonly state = new MemoryAuthorityState();
  private clockSkew = 0;
  private constructor(readonly name: string, readonly genesis: Commit, readonly writers: Identity[], readonly keys: Map<Identity, DataKeyCache>) {}

  static async create(name: string, writers: Identity[] = [createIdentity('alice'), createIdentity('bob')], o: { openRoot?: boolean } = {}): Promise<TestChain> {
    const owner = writers[0]!;
    // The genesis keyring holds every writer's read key (to wrap the root data key for each); only
    // the owner's signing key is a root key.
    const session = Session.of(owner, ...writers.slice(1));
    const keys = new DataKeyCache(Session.of(owner));
    const chainReaders = writers.flatMap((w) => Session.of(w).chainReaders());
    const genesis = await createGenesis({ name, keyring: session, rootKeys: [owner.signing.publicKey], chainReaders, keys, openRoot: o.openRoot ?? true });
    const map = new Map<Identity, DataKeyCache>(writers.map((w) => [w, w === owner ? keys : new DataKeyCache(Session.of(w))]));
    const c = new TestChain(name, genesis, writers, map);
    c.apply(genesis.bytes);
    return c;
  }

  /** Applies a confirmed commit to the local state (checked, as a client would). */
  apply(bytes: Buffer): Commit {
    const commit = decodeCommit(bytes);
    this.state.applyEffects(checkAgainstState(this.state, commit, signersOf(commit)));
    return commit;
  }

  /** Builds a signed commit writing `n` fresh DAOs (not applied locally until confirmed). */
  async build(o: { by?: Identity; n?: number; payload?: Buffer; now?: () => number; key?: string } = {}): Promise<Commit> {
    const by = o.by ?? this.writers[0]!;
    const b = new CommitBuilder({ state: this.state, keyring: Session.of(by), keys: this.keys.get(by)!, now: o.now ?? (() => Date.now() + this.clockSkew) });
    for (let i = 0; i < (o.n ?? 1); i++) b.put({ ...(o.key ? { key: o.key } : {}), payload: o.payload ?? Buffer.from(`value ${i} ${Math.random()}`) });
    return b.build();
  }
}

/**
 * A lying server for tests: a man in the middle that holds the real server's identity key (as a
 * dishonest operator would), terminates the client's connection with it, talks to the real server
 * and rewrites what the server says through `transform` before the client sees it.
 */
export async function lyingProxy(
  upstreamPort: number,
  serverKeyFile: string,
  transform: (m: Message) => Message[],
): Promise<{ port: number; close: () => Promise<void> }> {
  const net = await import('node:net');
  const { acceptClient } = await import('../../../src/net/index.js');
  const { signingPublicKeyOf } = await import('../../../src/crypto/index.js');
  const [, b64] = (await fsp.readFile(serverKeyFile, 'utf8')).trim().split(/\s+/);
  const secretKey = Buffer.from(b64!, 'base64');
  const hostKey = { secretKey, publicKey: signingPublicKeyOf(secretKey) };
  const kh = join(await tempDir('atedb-proxy-kh-'), 'known_hosts');
  const sockets = new Set<import('node:net').Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    void (async () => {
      const down = await acceptClient(socket, { hostKey });
      const early: Message[] = [];
      let up: ClientSession | null = null;
      down.conn.on('message', (m) => (up ? up.conn.send(m as Outgoing) : early.push(m)));
      up = await connectClient({ host: '127.0.0.1', port: upstreamPort, knownHosts: kh });
      sockets.add(up.conn.socket);
      for (const m of early) up.conn.send(m as Outgoing);
      const u = up;
      u.conn.on('message', (m) => { for (const x of transform(m)) down.conn.send(x as Outgoing); });
      down.conn.on('close', () => u.conn.close());
      u.conn.on('close', () => down.conn.close());
    })().catch(() => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as import('node:net').AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Users `<name>@example.org` (password `pw <name>`) created at the auth service `url`, then logged in. */
export async function usersAt(url: string, names: string[], o: { knownHosts: string }): Promise<Credentials[]> {
  for (const u of names) await createUser(url, `${u}@example.org`, `pw ${u}`, o);
  const out: Credentials[] = [];
  for (const u of names) {
    const r = await login(url, `${u}@example.org`, `pw ${u}`, o);
    out.push({ session: r.session, claims: r.claims });
  }
  return out;
}

/** The AuthRefused `p` fails with; anything else (or success) fails the test. */
export async function authRefusal(p: Promise<unknown>): Promise<AuthRefused> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AuthRefused) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}
