import * as os from 'node:os';
import * as path from 'node:path';
import yargs, { type Argv } from 'yargs';
import { type CreationPolicy, OPEN_POLICY } from '../server/chain-host.js';
import { AuthService, NO_CHAINS_POLICY, RemoteAuthService, authHandler, authPolicy, remoteAuthPolicy } from '../server/auth/index.js';
import { parseAuthUrl } from '../src/net/auth-client.js';
import { NetError } from '../src/net/errors.js';
import { TEST_SCRYPT } from '../src/crypto/index.js';
import { type MetricsServer, MetricsAddressError, metricsRegistry, parseHostPort, serveMetrics } from '../server/metrics.js';
import { AtedbServer } from '../server/server.js';
import { StoreUnavailable, parseStoreUrl } from '../server/store/jetstream-store.js';
import { UserError, runCli } from './errors.js';
import { type CompactMode, parseCompactMode } from '../src/view/compaction-policy.js';

export function defaultServerDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'atedb');
}

interface SoloArgs {
  'data-dir'?: string;
  listen: string;
  port: number;
  policy: string;
  'max-connections': number;
  'max-open-chains': number;
  'handshake-timeout': number;
  'max-commit-bytes'?: number;
  'subscriber-buffer': number;
  'receive-budget': number;
  json: boolean;
  'stats-interval': number;
  metrics?: string;
  auth?: boolean;
  /** `--policy auth` asks this separate auth service (and runs none here). */
  'auth-url'?: string;
  'auth-server-key'?: string;
  'auth-kdf': string;
  'login-max-failures': number;
  'login-lockout': number;
  'max-new-users': number;
  /** `atedb auth`: the service alone. */
  authOnly?: boolean;
  store?: string;
  replicas?: number;
  'store-stream'?: string;
  'compact-mode': string;
  'tombstone-retention': number;
}

async function solo(a: SoloArgs): Promise<void> {
  if (a.policy !== 'open' && a.policy !== 'auth') throw new UserError(`--policy ${a.policy}: 'open' or 'auth'`);
  if (a.authOnly && a.auth === false) throw new UserError('atedb auth --no-auth would serve nothing');
  const authUrl = a['auth-url'];
  if (authUrl !== undefined) {
    if (a.policy !== 'auth') throw new UserError('--auth-url is where --policy auth asks: give --policy auth with it');
    try {
      parseAuthUrl(authUrl);
    } catch (e) {
      if (e instanceof NetError) throw new UserError(`--auth-url: ${e.message}`);
      throw e;
    }
  } else if (a['auth-server-key'] !== undefined) throw new UserError('--auth-server-key pins the service of --auth-url: give --auth-url too');
  if (a['auth-server-key'] !== undefined && !/^SHA256:[A-Za-z0-9+/]{43}$/.test(a['auth-server-key'])) {
    throw new UserError(`--auth-server-key ${a['auth-server-key']}: a fingerprint SHA256:... (the 'listening:' line of the auth server)`);
  }
  if (a.policy === 'auth' && a.auth === false && authUrl === undefined) throw new UserError('--policy auth needs the auth service (drop --no-auth, or give --auth-url)');
  if (a['auth-kdf'] !== 'production' && a['auth-kdf'] !== 'test') throw new UserError(`--auth-kdf ${a['auth-kdf']}: 'production' or 'test'`);
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new UserError(`--port ${a.port}: not a TCP port`);
  if (!(a['stats-interval'] > 0)) throw new UserError(`--stats-interval ${a['stats-interval']}: give milliseconds above 0`);
  let metricsAt: { host: string; port: number } | null = null;
  try {
    if (a.metrics !== undefined) metricsAt = parseHostPort(a.metrics);
  } catch (e) {
    if (e instanceof MetricsAddressError) throw new UserError(`--metrics: ${e.message}`);
    throw e;
  }
  let store: { kind: 'jetstream'; servers: string[]; replicas?: number; stream?: string } | undefined;
  if (a.store !== undefined && a.store !== 'file') {
    try {
      store = { kind: 'jetstream', servers: parseStoreUrl(a.store) };
    } catch (e) {
      if (e instanceof StoreUnavailable) throw new UserError(`--store: ${e.message}`);
      throw e;
    }
    if (a.replicas !== undefined) {
      if (!Number.isInteger(a.replicas) || a.replicas < 1 || a.replicas > 5) throw new UserError(`--replicas ${a.replicas}: JetStream takes 1 to 5`);
      store.replicas = a.replicas;
    }
    if (a['store-stream'] !== undefined) {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(a['store-stream'])) throw new UserError(`--store-stream ${a['store-stream']}: letters, digits, '_' and '-' only`);
      store.stream = a['store-stream'];
    }
  }
  let compactMode: CompactMode;
  try {
    compactMode = parseCompactMode(a['compact-mode'] ?? 'never');
  } catch (e) {
    throw new UserError(`--compact-mode: ${(e as Error).message}`);
  }
  // The JetStream store keeps every chain's whole history (a stream is not rewritten in place).
  const retention = a['tombstone-retention'] ?? 7 * 24 * 3600;
  if (!(retention >= 0)) throw new UserError(`--tombstone-retention ${retention}: give seconds, 0 or more`);
  if (store && compactMode !== 'never') throw new UserError(`--compact-mode ${compactMode}: only the file store compacts; a JetStream store (--store nats://...) keeps whole histories`);
  const dataDir = path.resolve(a['data-dir'] ?? defaultServerDataDir());
  const out = (line: string) => process.stdout.write(`${line}\n`);
  // The user/group/token service answers on the same port; its state is in <data-dir>/auth. With
  // --auth-url the service is elsewhere: this node runs none (users and groups made here would
  // not be the ones its policy asks about), clients talk to that service with --auth URL.
  const remote = authUrl === undefined ? null : new RemoteAuthService({
    url: authUrl, knownHosts: path.join(dataDir, 'auth_known_hosts'),
    ...(a['auth-server-key'] ? { serverKey: a['auth-server-key'] } : {}),
    onNewHost: (addr, fp) => process.stderr.write(`auth service ${addr}: pinned host key ${fp} (${path.join(dataDir, 'auth_known_hosts')})\n`),
  });
  const auth = a.auth === false || remote ? null : await AuthService.open({
    dir: path.join(dataDir, 'auth'),
    ...(a['auth-kdf'] === 'test' ? { scrypt: TEST_SCRYPT } : {}),
    maxNewUsers: a['max-new-users'],
    limits: { maxFailures: a['login-max-failures'], maxAddressFailures: a['login-max-failures'] * 4, lockoutMs: a['login-lockout'] },
  });
  const policy: CreationPolicy = a.authOnly ? NO_CHAINS_POLICY : remote ? remoteAuthPolicy(remote) : a.policy === 'auth' ? authPolicy(auth!) : OPEN_POLICY;
  // Asked once at start: pins the service's host key on first contact and says whether it answers
  // (a node starts anyway; creations are refused as unavailable until the service answers).
  const remoteInfo = remote ? await remote.info().then((i) => ({ ok: true as const, ...i }), (e: Error) => ({ ok: false as const, error: e.message })) : null;
  const server = new AtedbServer({
    dataDir, host: a.listen, port: a.port, policy,
    ...(auth ? { auth: authHandler(auth, (l) => process.stderr.write(`${l}\n`)) } : {}),
    maxConnections: a['max-connections'], subscriberBufferBytes: a['subscriber-buffer'], receiveBudgetBytes: a['receive-budget'], maxOpenChains: a['max-open-chains'], handshakeTimeoutMs: a['handshake-timeout'],
    ...(a['max-commit-bytes'] ? { limits: { maxCommitBytes: a['max-commit-bytes'] } } : {}),
    log: (l) => process.stderr.write(`${l}\n`),
    ...(store ? { store } : {}),
    ...(compactMode !== 'never' ? { compaction: { mode: compactMode, retentionMs: retention * 1000 } } : {}),
  });
  // Before start: the latency histogram counts from the first append on.
  const registry = metricsAt ? metricsRegistry(server.stats) : null;
  try {
    await server.start();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new UserError(`${a.listen}:${a.port} is already in use`);
    if (err.code === 'EACCES') throw new UserError(`no permission to listen on ${a.listen}:${a.port}`);
    if (e instanceof StoreUnavailable) throw new UserError(`--store: ${e.message}`);
    throw e;
  }
  let metrics: MetricsServer | null = null;
  if (metricsAt) {
    try {
      metrics = await serveMetrics(metricsAt.host, metricsAt.port, registry!);
    } catch (e) {
      await server.shutdown();
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EADDRINUSE') throw new UserError(`--metrics ${a.metrics}: already in use`);
      if (err.code === 'EACCES') throw new UserError(`--metrics ${a.metrics}: no permission to listen there`);
      throw e;
    }
  }
  // What runs while the server does (the panel or the stats lines); stopped first on a signal.
  const running: Array<() => void> = [];
  // Signal handlers first: a supervisor may signal as soon as it reads the listening line.
  const stopped = new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      for (const f of running) f();
      if (!a.json) out(`${sig}: shutting down`);
      server.shutdown().then(() => metrics?.close()).then(() => auth?.close()).then(resolve, (e: Error) => {
        process.stderr.write(`shutdown: ${e.message}\n`);
        process.exitCode = 1;
        resolve();
      });
    };
    // `on`, not `once`: Ink's exit hook (signal-exit) re-raises a signal nobody else listens to
    // any more, which would kill the panel's process mid-shutdown; `stopping` ignores repeats.
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Compacts every open chain now (--compact-mode other than never; its runs are logged).
    process.on('SIGUSR2', () => {
      if (compactMode === 'never') process.stderr.write('SIGUSR2: compaction is off (--compact-mode never)\n');
      else if (!stopping) void server.compactNow();
    });
  });
  const id = server.identity;
  const listening = `${server.address}:${server.port}`;
  const metricsAddr = metrics ? `${metrics.address.includes(':') ? `[${metrics.address}]` : metrics.address}:${metrics.port}` : undefined;
  if (a.json) {
    out(JSON.stringify({ listening, fingerprint: id.fingerprint, dataDir, identityCreated: id.created, policy: policy.name, store: server.storeKind, ...(auth ? { authFingerprint: auth.fingerprint } : {}),
      ...(remote ? { authUrl: remote.url, ...(remoteInfo!.ok ? { authFingerprint: remoteInfo!.service, authHostFingerprint: remoteInfo!.host } : { authUnavailable: remoteInfo!.error }) } : {}),
      ...(metricsAddr ? { metrics: metricsAddr } : {}) }));
    // One line of figures every --stats-interval (the fsync histogram buckets stay in /metrics).
    const timer = setInterval(() => {
      const { fsync: { buckets: _b, ...fsync }, ...rest } = server.stats.snapshot();
      out(JSON.stringify({ stats: { ...rest, fsync } }));
    }, a['stats-interval']);
    running.push(() => clearInterval(timer));
  } else {
    if (id.created) out(`created server identity ${id.file}`);
    out(`listening: ${listening} fingerprint: ${id.fingerprint}${metricsAddr ? ` metrics: ${metricsAddr}` : ''}`);
    if (auth) out(`auth service: ${auth.fingerprint} policy: ${policy.name}`);
    if (remote) {
      out(remoteInfo!.ok
        ? `auth service: ${remoteInfo!.service} at ${remote.url} (host key ${remoteInfo!.host}) policy: ${policy.name}`
        : `auth service: at ${remote.url}, not answering now (${remoteInfo!.error}): chain creation is refused until it does; policy: ${policy.name}`);
    }
    if (store) out(`store: JetStream at ${store.servers.join(',')}`);
    const tty = process.stdout.isTTY && process.env.CI !== 'true' && process.env.CI !== '1';
    if (tty) {
      const { showAtedbPanel } = await import('./tui/atedb-panel.js');
      const panel = showAtedbPanel(
        { listening, fingerprint: id.fingerprint, dataDir, policy: policy.name, ...(metricsAddr ? { metrics: metricsAddr } : {}) },
        () => server.stats.snapshot(),
      );
      running.push(() => panel.stop());
    }
  }
  await stopped;
  if (!a.json) out('stopped');
}

/** Options of the user/group/token service (atedb solo and atedb auth). */
function authServiceOptions<T>(y: Argv<T>) {
  return y
    .option('auth', { type: 'boolean', default: true, describe: 'run the user/group/token service on the same port (--no-auth: without it)' })
    .option('auth-kdf', { type: 'string', default: 'production', describe: "scrypt cost given to new users: 'production' or 'test' (cheap; clients accept it only with ATEFS_ALLOW_WEAK_KDF=1)" })
    .option('login-max-failures', { type: 'number', default: 5, describe: 'failed logins of one account in a row before it is locked (4x that per address)' })
    .option('login-lockout', { type: 'number', default: 60_000, describe: 'ms of the first lockout; each further one doubles it (up to an hour)' })
    .option('max-new-users', { type: 'number', default: 20, describe: 'accounts one address may create per 10 minutes' });
}

/** The options of `solo` and `node` (one process either way; `node` requires --store). */
function soloOptions<T>(y: Argv<T>) {
  return y
    .option('data-dir', { type: 'string', describe: 'where chains and the server key live (default $XDG_DATA_HOME/atedb)' })
    .option('listen', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0 for all)' })
    .option('port', { type: 'number', default: 5000, describe: 'TCP port (0: any free port, printed)' })
    .option('policy', { type: 'string', default: 'open', describe: "chain creation policy: 'open' (first valid genesis creates a chain) or 'auth' (personal chains rooted at their user's key, group chains at the group's)" })
    .option('max-connections', { type: 'number', default: 1024 })
    .option('max-open-chains', { type: 'number', default: 256, describe: 'chains kept open at once; idle ones beyond are closed' })
    .option('handshake-timeout', { type: 'number', default: 10_000, describe: 'ms a client has to finish its handshake' })
    .option('max-commit-bytes', { type: 'number', describe: 'largest commit accepted (default 64 MiB)' })
    .option('subscriber-buffer', { type: 'number', default: 32 << 20, describe: 'bytes queued for a client that does not read before it is disconnected' })
    .option('receive-budget', { type: 'number', default: 512 << 20, describe: 'bytes of incomplete frames buffered across all connections' })
    .option('json', { type: 'boolean', default: false, describe: 'print the listening line as JSON, then a JSON line of figures every --stats-interval' })
    .option('stats-interval', { type: 'number', default: 5000, describe: 'ms between two --json stats lines' })
    .option('metrics', { type: 'string', describe: 'serve GET /metrics (Prometheus text format) on HOST:PORT (port 0: any free port, printed)' })
    .option('store', { type: 'string', describe: "where chains live: 'file' (default, under --data-dir) or nats://h1:4222,h2:4222,h3:4222 (a JetStream cluster shared by every atedb node; give them all the same server.key)" })
    .option('replicas', { type: 'number', describe: 'JetStream stream replicas when the stream is created (default 3 on a cluster, 1 on a single server)' })
    .option('store-stream', { type: 'string', describe: 'JetStream stream name (default ATEDB)' })
    .option('tombstone-retention', { type: 'number', default: 7 * 24 * 3600, describe: 'seconds a server compaction keeps the commit of a deletion (the clients\' default: a week)' })
    .option('compact-mode', { type: 'string', default: 'never', describe: "server-side compaction of hosted chains: never (default), modified, timer, factor, size, factor-or-timer, size-or-timer (the client's modes; file store only). Clients whose history is below a compaction cut are refused: see the README" })
    .option('auth-url', { type: 'string', describe: "with --policy auth: ask the auth service at tcp://host[:port] (an `atedb auth`) when a chain is created, and run none here" })
    .option('auth-server-key', { type: 'string', describe: "the --auth-url server's host key fingerprint (SHA256:..., its 'listening:' line); default: pinned on first contact in <data-dir>/auth_known_hosts" });
}

export function main(argv: string[]): void {
  void runCli(async () => {
    await yargs(argv)
      .scriptName('atedb')
      .usage('$0 <command> [options]')
      .command('solo', 'run one atedb node (chains in an embedded file store, or --store nats://...; and the auth service)', (y) => authServiceOptions(soloOptions(y)),
        async (a) => solo(a as unknown as SoloArgs))
      .command('node', 'run one atedb node of a cluster: `solo` with --store nats://h1,h2,h3 required', (y) => authServiceOptions(soloOptions(y)).demandOption('store'),
        async (a) => solo(a as unknown as SoloArgs))
      .command('auth', 'run the user/group/token service alone (hosting no chains)', (y) => authServiceOptions(y
        .option('data-dir', { type: 'string', describe: 'where the service key and state live (default $XDG_DATA_HOME/atedb)' })
        .option('listen', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0 for all)' })
        .option('port', { type: 'number', default: 5000, describe: 'TCP port (0: any free port, printed)' })
        .option('json', { type: 'boolean', default: false, describe: 'print the listening line as JSON' })),
      async (a) => solo({
        'policy': 'open', 'max-connections': 1024, 'max-open-chains': 16, 'handshake-timeout': 10_000, 'subscriber-buffer': 32 << 20,
        'receive-budget': 64 << 20, 'stats-interval': 60_000, ...(a as unknown as Partial<SoloArgs>), authOnly: true,
      } as SoloArgs))
      .demandCommand(1, 'say which command to run (see --help)')
      .strict()
      .fail((msg, err) => { throw err ?? new UserError(msg); })
      .help()
      .parseAsync();
  });
}
