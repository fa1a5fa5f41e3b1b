import type { Argv } from 'yargs';
import { kernelTransportAvailable } from '../fs/kernel/mount-syscall.js';
import type { TransportName } from '../fs/mount.js';

/** `atefs mount` options, as the daemon and the store factory see them. */
export interface MountArgs {
  dir: string;
  remote?: string;
  logPath?: string;
  temp: boolean;
  readOnly: boolean;
  allowOther: boolean;
  transport: TransportName;
  background: boolean;
  passcode?: string;
  tokenPath?: string;
  compactMode?: string;
  compactNow: boolean;
  signEachCommit: boolean;
  /** Mount an existing chain this user never pinned (and pin it). */
  trustChain: boolean;
  acceptRollback: boolean;
  /** A read-only mount of the chain as it was at this seq or ISO time. */
  at?: string;
  statsFile?: string;
  /** Remote mounts: async (default), readonly or sync (see the README). */
  recoveryMode?: 'async' | 'readonly' | 'sync';
  /** Remote mounts: the server key fingerprint to expect (instead of trust on first contact). */
  serverKey?: string;
  json: boolean;
  debug: boolean;
}

/**
 * The transport used when --transport is not given: the kernel transport (fs/kernel) for every
 * user who can mount with it (root through mount(2), anyone else through the setuid fusermount),
 * fuse-native only where it cannot (not Linux, no /dev/fuse, no fusermount).
 */
export function defaultTransport(): TransportName {
  return kernelTransportAvailable() ? 'kernel' : 'fuse-native';
}

export function mountOptions<T>(y: Argv<T>) {
  return y
    .positional('dir', { type: 'string', demandOption: true, describe: 'directory to mount on (created if missing, must be empty)' })
    .positional('remote', { type: 'string', describe: 'remote chain URL (tcp://host:port/chain); local chain when absent' })
    .option('log-path', { type: 'string', describe: 'directory of the local chain (default under $XDG_DATA_HOME/atefs)' })
    .option('temp', { type: 'boolean', default: false, describe: 'a throw-away filesystem kept in memory; nothing is persisted' })
    .option('read-only', { type: 'boolean', default: false, describe: 'mount read-only (writes fail with EROFS)' })
    .option('allow-other', { type: 'boolean', default: false, describe: 'let other users enter the mount (modes are still enforced)' })
    .option('transport', { type: 'string', choices: ['kernel', 'fuse-native'] as const, describe: 'how to talk to the kernel (default: kernel; fuse-native has the limits listed in the README)' })
    .option('background', { type: 'boolean', default: false, describe: 'detach once mounted; the daemon logs under $XDG_STATE_HOME/atefs' })
    .option('passcode', { type: 'string', describe: 'passphrase of an encrypted --token-path file (or $ATEFS_PASSCODE)' })
    .option('token-path', { type: 'string', describe: 'token file whose keys to use instead of the local identity (remote mounts: $XDG_CONFIG_HOME/atefs/token when there is one)' })
    .option('compact-mode', { type: 'string', describe: 'when to compact the chain (see the README)' })
    .option('trust-chain', { type: 'boolean', default: false, describe: 'mount an existing chain that this user never pinned (copied, moved, restored), and pin it' })
    .option('accept-rollback', { type: 'boolean', default: false, describe: 'mount a chain older than, diverging from, or with gaps against the history this user has seen (a restore made on purpose), and re-pin its head' })
    .option('compact-now', { type: 'boolean', default: false, describe: 'compact the chain before mounting' })
    .option('sign-each-commit', { type: 'boolean', default: false, describe: 'local chains: sign every commit before fsync returns, instead of MAC-authenticating it and signing it off in the background (slower fsync)' })
    .option('at', { type: 'string', describe: "mount the local chain read-only as it was at a commit seq or an ISO time (see 'atefs log')" })
    .option('recovery-mode', { type: 'string', choices: ['async', 'readonly', 'sync'] as const, describe: 'remote mounts: async (writes never wait for the server; staged while offline), readonly (EROFS while offline), sync (fsync waits for the server)' })
    .option('server-key', { type: 'string', describe: 'remote mounts: the server key fingerprint to expect' })
    .option('stats-file', { type: 'string', describe: 'write per-opcode request counters as JSON here on SIGUSR2 and at unmount' })
    .option('json', { type: 'boolean', default: false, describe: 'JSON lines on stdout instead of plain lines' })
    .option('debug', { type: 'boolean', default: false, describe: 'FUSE debug output on stderr' });
}

export function toMountArgs(v: Record<string, unknown>): MountArgs {
  const s = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  return {
    dir: String(v.dir),
    remote: s('remote'),
    logPath: s('logPath'),
    temp: !!v.temp,
    readOnly: !!v.readOnly || s('at') !== undefined,
    allowOther: !!v.allowOther,
    transport: (s('transport') as TransportName | undefined) ?? defaultTransport(),
    background: !!v.background,
    passcode: s('passcode'),
    tokenPath: s('tokenPath'),
    compactMode: s('compactMode'),
    compactNow: !!v.compactNow,
    signEachCommit: !!v.signEachCommit,
    trustChain: !!v.trustChain,
    acceptRollback: !!v.acceptRollback,
    at: s('at'),
    statsFile: s('statsFile'),
    recoveryMode: s('recoveryMode') as MountArgs['recoveryMode'],
    serverKey: s('serverKey'),
    json: !!v.json,
    debug: !!v.debug,
  };
}
