import { Filesystem, type FilesystemOptions, type FsStore } from '../fs/core/index.js';
import { existsSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { RemoteFs, defaultRemoteDir } from '../fs/remote/remote-store.js';
import { defaultDataDir } from '../fs/chain-store/open-local.js';
import { parseRemoteUrl } from '../src/net/index.js';
import { ChainStore, TRUST_HINT, checkUnpinnedChain, findPin, openLocalChain, resolveChainDir, type LocalChain } from '../fs/chain-store/index.js';
import { defaultBulkPool, defaultPool } from '../src/crypto/index.js';
import { PINS_FILE, defaultConfigDir, loadOrCreateLocalIdentity, readTokenFile, type Session, type Token } from '../src/session/index.js';
import { View, type ViewProgress } from '../src/view/index.js';
import { openHistoryLog, parseHistoryPoint, resolveHistoryPoint } from './history.js';
import { UserError, chainOpenError } from './errors.js';
import type { MountArgs } from './mount-args.js';
import type { MountPanelStatus } from './tui/mount-panel.js';
import { type RemoteMountKeys, remoteMountKeys } from './mount-token.js';
import { renewGroupRoot } from '../fs/remote/group-root.js';
import { currentRole } from '../src/net/index.js';

/**
 * Chooses and opens the store a mount serves: a local chain (persistent, or in memory for --temp);
 * remote chains plug in at openRemoteStore.
 */

/**
 * Live figures for the status panel; every field is optional. A remote mount's link to the server
 * and what is not on it yet are the panel's own fields (MountPanelStatus).
 */
export interface StoreStatus extends Pick<MountPanelStatus, 'connection' | 'server' | 'lag' | 'stagedUploads' | 'stagedBytes' | 'conflicts' | 'lastConflict'> {
  logBytes?: number;
  /** Newest commit seq applied. */
  seq?: number;
  /** Events committed by this mount. */
  events?: number;
  /** Live data: what df shows as used. */
  liveBytes?: number;
  compaction?: string;
}

export interface OpenedStore {
  store: FsStore;
  /** What the panel calls the chain (a path, a URL, "temp"). */
  chain: string;
  /** e.g. "temp (in memory)", "local", "replicated". */
  mode: string;
  /** The local chain directory served (for `atefs log DIR`); absent for temp and remote mounts. */
  chainDir?: string;
  /** True when nobody else changes the chain: long kernel caches and kernel_cache are safe. */
  local: boolean;
  /** Let the kernel keep file pages across opens (default: `local`). */
  kernelCache?: boolean;
  /** How soon after a change the core commits (default the core's 1 s; remote mounts: sooner, for close-to-open). */
  commitDelayMs?: number | (() => number);
  /** A burst of bulk data commits later than commitDelayMs (CommitterOptions.burst). */
  commitBurst?: { bytes: number; maxMs: number };
  status?(): StoreStatus;
  /** Commit counters and summed times of the store (stats file), e.g. signing time. */
  timings?(): Record<string, number>;
  /** Options of the core over this store (a group chain: owner ids of new files, its root, noatime). */
  fsOptions?: Pick<FilesystemOptions, 'creator' | 'rootUid' | 'rootGid' | 'rootMode' | 'atime'>;
  /** Called after the core committed everything (core.destroy()). */
  close(): Promise<void>;
}

/** What the daemon hears while (and after) a store opens. */
export interface OpenHooks {
  /** The view's progress: opening (index check, replay, rebuild) and, later, its compactions. */
  onProgress?: (p: ViewProgress) => void;
}

/** How a mount opens its store (runMount takes another one in tests). */
export type StoreFactory = (args: MountArgs, hooks?: OpenHooks) => Promise<OpenedStore>;

export async function openStore(args: MountArgs, hooks: OpenHooks = {}): Promise<OpenedStore> {
  if (args.at !== undefined) return openHistoricStore(args, hooks);
  if (args.remote) return openRemoteStore(args, hooks);
  if (args.temp) return openTempStore(args, hooks);
  return openPersistentLocalStore(args, hooks);
}

/**
 * --temp: the same encrypted, signed chain code on an in-memory log and a throw-away index, so a
 * temporary mount behaves (and performs) like a persistent one but leaves nothing behind.
 */
export async function openTempStore(args: MountArgs, hooks: OpenHooks = {}): Promise<OpenedStore> {
  const opened = await openChainStore({ ...args, readOnly: false }, { memory: true }, hooks);
  if (args.readOnly) {
    // A read-only temp mount is an empty tree: create its root; the core is then opened read-only.
    await (await Filesystem.open(opened.store)).destroy();
  }
  return opened;
}

/** The local chain under --log-path (default $XDG_DATA_HOME/atefs/local), created on first use. */
export async function openPersistentLocalStore(args: MountArgs, hooks: OpenHooks = {}): Promise<OpenedStore> {
  return openChainStore(args, { chainDir: args.logPath, memory: false }, hooks);
}

async function openChainStore(args: MountArgs, where: { chainDir?: string; memory: boolean }, hooks: OpenHooks): Promise<OpenedStore> {
  const session = await keysOf(args);
  const chain: LocalChain = await opening(() => openLocalChain({
    session,
    ...(where.chainDir ? { chainDir: where.chainDir } : {}),
    memory: where.memory,
    readOnly: args.readOnly,
    trustChain: args.trustChain,
    acceptRollback: args.acceptRollback,
    ...(args.compactMode ? { compactMode: args.compactMode } : {}),
    deferSignatures: !args.signEachCommit,
    onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
    ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
  }));
  if (args.compactNow && !args.readOnly) await chain.view.compact('manual');
  return {
    ...servedChain(chain, where.memory ? 'temp' : chain.chainDir, where.memory ? 'temp (in memory, encrypted, not persisted)' : 'local'),
    ...(where.memory ? {} : { chainDir: chain.chainDir }),
    status: () => {
      const s = chain.view.stats();
      const c = s.lastCompaction;
      const compaction = s.compacting ? 'running'
        : c ? `${c.skipped ? `skipped (${c.skipped})` : `${fmtMiB(c.bytesBefore)} -> ${fmtMiB(c.bytesAfter)} in ${Math.round(c.ms)} ms`} (${c.reason})` : undefined;
      return { logBytes: s.logBytes, liveBytes: s.liveBytes, seq: s.watermarkSeq, events: chain.store.timings.events, ...(compaction ? { compaction } : {}) };
    },
    // Commit timings, and the log against its live data (the space bound; compaction-scheduler.ts).
    // and what the open's torn-tail recovery cut off (issue 13: never silent).
    timings: () => ({ ...chain.store.timings, ...(chain.scheduler?.counters() ?? {}), tornTailBytes: chain.log.recovery.truncatedBytes }),
  };
}

/**
 * --at SEQ|TIME: the local chain as it was then, read-only: its records up to that point replayed
 * (and validated) into an in-memory log and index. The chain itself is only read.
 */
export async function openHistoricStore(args: MountArgs, hooks: OpenHooks = {}): Promise<OpenedStore> {
  const chainDir = resolveChainDir(args.logPath);
  const point = parseHistoryPoint(args.at!);
  // The chain's own log, read-only (no writer lock: its mount may be running), and a private
  // index replayed up to the point; the chain's own index is not touched.
  const log = await openHistoryLog(chainDir);
  let seq = 0;
  const { view, store } = await opening(async () => {
    seq = await resolveHistoryPoint(log, chainDir, point);
    const session = await keysOf(args);
    const pin = (await findPin(defaultConfigDir(), chainDir)).hash ?? null;
    // Served like any mount: an unpinned chain only when trusted (it is not pinned from here).
    if (pin === null) await checkUnpinnedChain(log, { where: chainDir, pinsFile: join(defaultConfigDir(), PINS_FILE), keyring: session, pool: defaultPool(), trust: args.trustChain, howToTrust: TRUST_HINT });
    const v = await View.open({ log, keyring: session, pool: defaultPool(), bulkPool: defaultBulkPool(), pinnedGenesis: pin, readOnly: true, untilSeq: seq, compaction: { auto: false }, ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}) });
    try {
      // Refuses a chain marked with a feature this version does not know (FsFeatureUnknown).
      return { view: v, store: new ChainStore(v, { readOnly: true, cacheTimeout: 3600 }) };
    } catch (e) {
      await v.close().catch(() => undefined);
      throw e;
    }
  }, () => log.close());
  return servedChain({
    store,
    async close() {
      await store.close();
      await view.close();
      await log.close();
    },
  }, `${chainDir} at seq ${seq}`, `history (read-only, seq ${seq})`);
}

/**
 * Opens a chain's store (the chain, or a point of its history): on failure `undo` runs, and the
 * typed failures become one clear line (chainOpenError).
 */
async function opening<T>(open: () => Promise<T>, undo?: () => Promise<unknown>): Promise<T> {
  try {
    return await open();
  } catch (e) {
    await undo?.().catch(() => undefined);
    throw chainOpenError(e);
  }
}

/** A chain's store as a mount serves it: local (nobody else writes it), closed with the chain. */
function servedChain(chain: Pick<LocalChain, 'store' | 'close'>, label: string, mode: string): OpenedStore {
  return { store: chain.store, chain: label, mode, local: true, close: () => chain.close() };
}

/** The keys a mount uses: the token file's (--token-path), else the local identity. */
async function keysOf(args: MountArgs): Promise<Session> {
  return (await sessionFromArgs(args)) ?? (await loadOrCreateLocalIdentity(defaultConfigDir())).session;
}

const fmtMiB = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;

/**
 * A passphrase on the command line is readable by every user of the machine for as long as the
 * process runs (ps, /proc/PID/cmdline) and stays in the shell's history. It still works (scripts
 * rely on it), but says so; --background hands it to its daemon through the environment instead
 * (mount.ts), which only the same user can read.
 */
export const PASSCODE_ARGV_WARNING =
  'warning: --passcode on the command line is visible to other users (ps, /proc) and kept in your shell history; set $ATEFS_PASSCODE instead';

/** --token-path (with --passcode or $ATEFS_PASSCODE when it is encrypted): that token's keys. */
async function sessionFromArgs(args: MountArgs): Promise<Session | undefined> {
  if (!args.tokenPath) {
    if (args.passcode) throw new UserError('--passcode unlocks a token file: give it with --token-path');
    return undefined;
  }
  return (await tokenFromFile(args, args.tokenPath)).session;
}

/** The token file `file`, unlocked with --passcode or $ATEFS_PASSCODE; its failures as one line. */
async function tokenFromFile(args: MountArgs, file: string): Promise<Token> {
  const passphrase = args.passcode ?? process.env.ATEFS_PASSCODE;
  if (args.passcode) process.stderr.write(`${PASSCODE_ARGV_WARNING}\n`);
  try {
    return await readTokenFile(file, passphrase ? { passphrase } : {});
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new UserError(`no token file at ${file}`);
    switch (err.name) {
      case 'TokenExpired': case 'BadPassphrase': case 'PassphraseRequired': case 'TokenInvalid':
        throw new UserError(`${file}: ${err.message}`);
    }
    throw e;
  }
}

/**
 * The token a remote mount uses: --token-path, else the auth service's token in its default place
 * ($XDG_CONFIG_HOME/atefs/token) when there is one, else none (the local identity's keys).
 */
async function remoteToken(args: MountArgs): Promise<Token | null> {
  if (args.tokenPath) return tokenFromFile(args, args.tokenPath);
  const file = join(defaultConfigDir(), 'token');
  if (existsSync(file)) return tokenFromFile(args, file);
  if (args.passcode) throw new UserError(`--passcode unlocks a token file: give it with --token-path (there is none at ${file})`);
  return null;
}

/** How long an unmount waits for staged commits to reach the server (ATEFS_UPLOAD_TIMEOUT_MS). */
const UPLOAD_TIMEOUT_MS = 15_000;
/** Dirty bytes from which a remote mount's commit waits as long as a local one's (OpenedStore.commitBurst). */
const BURST_BYTES = 8 << 20;

/**
 * `atefs mount DIR tcp://host[:port]/chain`: the chain's replica and staging logs under --log-path
 * (default $XDG_DATA_HOME/atefs/remote/<host>/<chain>/), or in memory with --temp; the chain is
 * created on the server by the first mount (open policy). See fs/remote/remote-store.ts.
 */
export async function openRemoteStore(args: MountArgs, hooks: OpenHooks = {}): Promise<OpenedStore> {
  const url = args.remote!;
  try {
    parseRemoteUrl(url);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  if (args.at !== undefined) throw new UserError('--at mounts a point of a local chain\'s history; it does not apply to a remote chain');
  const token = await remoteToken(args);
  const session = token?.session ?? (await loadOrCreateLocalIdentity(defaultConfigDir())).session;
  const dir = args.temp ? null : resolvePath(args.logPath ?? defaultRemoteDir(defaultDataDir(), url));
  const mode = args.recoveryMode ?? 'async';
  const onWarning = (m: string) => process.stderr.write(`warning: ${m}\n`);
  const keys = token ? await remoteMountKeys(url, token, { configDir: defaultConfigDir(), ...(args.serverKey ? { serverKey: args.serverKey } : {}), onWarning }) : {};
  let rfs: RemoteFs;
  try {
    rfs = await RemoteFs.open({
      ...(keys.create ? { create: keys.create } : {}),
      ...(keys.group ? { group: { readers: keys.group.readers, writers: keys.group.writers, managers: keys.group.managers } } : {}),
      url, session, dir, configDir: defaultConfigDir(), mode, readOnly: args.readOnly,
      // The kernel transport is told exactly what changed elsewhere (notify messages): its caches
      // can stay long. fuse-native cannot be told: short timeouts.
      cacheTimeout: args.transport === 'kernel' ? 60 : 1,
      ...(args.serverKey ? { serverKey: args.serverKey } : {}),
      onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
    });
  } catch (e) {
    const err = e as Error;
    if (err.name === 'Disconnected' || err.name === 'NetError' || err.name === 'ServerMisbehaved' || err.name === 'HostKeyMismatch' || err.name === 'GroupRootMissing') throw new UserError(`cannot mount ${url}: ${err.message}`);
    throw chainOpenError(e);
  }
  const stopRefresh = keys.group && token ? refreshGroupKeys(rfs, url, token, keys.group, args, onWarning) : () => undefined;
  const uploadMs = Number(process.env.ATEFS_UPLOAD_TIMEOUT_MS) || UPLOAD_TIMEOUT_MS;
  const fastDelay = Number(process.env.ATEFS_REMOTE_COMMIT_DELAY_MS) || 100;
  const slowDelay = Math.max(fastDelay, 1000);
  return {
    store: rfs.store,
    chain: url,
    mode: `replicated (${mode}${args.temp ? ', in memory' : ''})${keys.group ? `, group ${keys.group.name}` : ''}`,
    local: false,
    // A group chain: what this mount creates belongs to the token's user in the group (the same
    // numbers on every machine), its root is a setgid directory of the group, and reading does
    // not write atimes (an atime is an inode write, which a member may not be allowed to make).
    ...(keys.group ? {
      fsOptions: {
        ...(keys.creator ? { creator: keys.creator, rootUid: keys.creator.uid, rootGid: keys.creator.gid } : {}),
        rootMode: 0o2775, atime: 'noatime' as const,
      },
    } : {}),
    kernelCache: args.transport === 'kernel',
    // Another machine sees a change once it is committed and relayed: commit soon after it
    // (100 ms) while the uploads keep up; while earlier commits are still on their way (a
    // burst: untar, a big copy) batch for a second, as a local mount does — fewer, larger commits.
    commitDelayMs: () => (rfs.rc.pendingCount > 0 ? slowDelay : fastDelay),
    // ...but a big copy in batches as large as a local mount's: 8 MiB dirty after the short
    // delay is a bulk write, not an edit another machine waits for.
    commitBurst: { bytes: BURST_BYTES, maxMs: slowDelay },
    status: () => {
      const s = rfs.status();
      const v = rfs.store.view.stats();
      return {
        seq: s.seq, lag: s.lag, connection: s.connection, ...(s.server ? { server: s.server } : {}),
        stagedUploads: s.pendingUploads, stagedBytes: s.pendingBytes, conflicts: s.conflicts,
        ...(s.lastConflict ? { lastConflict: s.lastConflict } : {}),
        logBytes: v.logBytes, liveBytes: v.liveBytes,
      };
    },
    timings: () => {
      const s = rfs.status();
      return { ...rfs.store.timings, pendingUploads: s.pendingUploads, pendingBytes: s.pendingBytes, conflicts: s.conflicts, resyncs: s.resyncs, seq: s.seq };
    },
    async close() {
      stopRefresh();
      // Upload what is staged first (while the server is reachable, up to the timeout).
      const before = rfs.rc.pendingCount;
      const left = await rfs.upload(uploadMs);
      if (left > 0) process.stderr.write(`${left} commit(s) (${rfs.rc.pendingBytes} bytes) stay staged in ${dir ?? 'memory (--temp: lost at exit)'}; the next mount of ${url} uploads them\n`);
      else if (before > 0) process.stderr.write(`uploaded ${before} staged commit(s) to ${url}\n`);
      await rfs.close();
    },
  };
}

/** How often a group mount asks the auth service for new key generations (ATEFS_GROUP_REFRESH_MS). */
const GROUP_REFRESH_MS = 60_000;

/**
 * A group mount's keys follow the group: every GROUP_REFRESH_MS it gathers again, and when a
 * removal made new generations (other readers or writers), what it writes from then on uses them
 * (ChainStore.setGroupKeys) and data keys it could not open before are tried again with the new
 * keys. A warning is said once until it changes. Returns the stop function.
 */
function refreshGroupKeys(rfs: RemoteFs, url: string, token: Token, current: NonNullable<RemoteMountKeys['group']>, args: MountArgs, onWarning: (m: string) => void): () => void {
  const ms = Number(process.env.ATEFS_GROUP_REFRESH_MS) || GROUP_REFRESH_MS;
  const id = (g: { readers: Array<{ id: string }>; writers: string[] }) => `${g.readers.map((r) => r.id).sort().join(',')}/${[...g.writers].sort().join(',')}`;
  let now = id(current);
  let said = '';
  const warnOnce = (m: string) => { if (m !== said) { said = m; onWarning(m); } };
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    remoteMountKeys(url, token, { configDir: defaultConfigDir(), ...(args.serverKey ? { serverKey: args.serverKey } : {}), onWarning: warnOnce })
      .then(async (k) => {
        if (!k.group) return;
        const g = k.group;
        if (id(g) !== now) {
          now = id(g);
          rfs.store.setGroupKeys(g);
          rfs.store.view.keys.clear();
          process.stderr.write(`group ${g.name}: new keys; what this mount writes from now on uses them\n`);
        }
        // An owner's or delegate's mount keeps the group root on the newest writer keys (between
        // two of the store's commits: they check versions optimistically). Usually a no-op.
        const manager = !!(currentRole(token.session, g.name, 'owner') ?? currentRole(token.session, g.name, 'delegate'));
        if (manager && !rfs.store.readOnly && await rfs.store.serialize(() => renewGroupRoot(rfs.store.view, g, manager))) {
          process.stderr.write(`group ${g.name}: the group root now admits the new writer keys\n`);
        }
      })
      .catch((e: Error) => warnOnce(`could not refresh the keys of group '${current.name}': ${e.message}`))
      .finally(() => { running = false; });
  }, ms);
  timer.unref?.();
  return () => clearInterval(timer);
}

/** The core over an opened store; an empty writable store gets a root owned by the mounting user. */
export async function openCore(opened: OpenedStore, args: MountArgs): Promise<Filesystem> {
  try {
    return await Filesystem.open(opened.store, { ...opened.fsOptions, readOnly: args.readOnly, ...(opened.commitDelayMs !== undefined ? { commitDelayMs: opened.commitDelayMs } : {}), ...(opened.commitBurst ? { commitBurst: opened.commitBurst } : {}) });
  } catch (e) {
    if ((e as Error).name === 'FsError' && (e as { code?: string }).code === 'EROFS') {
      throw new UserError('cannot mount an empty chain read-only: it has no root directory yet');
    }
    throw e;
  }
}
