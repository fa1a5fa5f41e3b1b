import { promises as fsp, statfsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultBulkPool, defaultPool } from '../../src/crypto/index.js';
import { makeChainDirPrivate, makeDirPrivate, openLog, type RedoLog } from '../../src/log/index.js';
import { DataKeyCache, checkUnpinnedChain, createGenesis, publicKeyId, toGenesisHash, type ReaderRef } from '../../src/chain/index.js';
import {
  PINS_FILE, type GuardedHistory, defaultConfigDir, findPin, guardHistory, loadOrCreateLocalIdentity, lookupHead, readPins, readersOfPrincipal, writePin,
  type Session,
} from '../../src/session/index.js';
import { View, parseCompactMode, type ViewProgress } from '../../src/view/index.js';
import { ChainStore } from './chain-store.js';
import { emptyTimings, timedSigningPool } from './commit-timings.js';
import { CompactionScheduler, type CompactionSchedulerOptions } from './compaction-scheduler.js';

export interface OpenLocalChainOptions {
  /** Chain directory (log/ and index/ inside). Default $XDG_DATA_HOME/atefs/local. */
  chainDir?: string;
  /** Where the identity and the pinned genesis hashes live. Default $XDG_CONFIG_HOME/atefs. */
  configDir?: string;
  /** Keys to use instead of the local identity (a token file's session). */
  session?: Session;
  readOnly?: boolean;
  /** In-memory log and temporary index (nothing persisted): `--temp` on the real chain code. */
  memory?: boolean;
  compactMode?: string;
  onProgress?: (p: ViewProgress) => void;
  /** Chain-wide readers besides the owner (a group role's read key, say), for a new chain. */
  extraReaders?: ReaderRef[];
  /** Told about a --log-path left readable by others, and when an unpinned chain is trusted. */
  onWarning?: (msg: string) => void;
  /**
   * Open an existing chain that this user never pinned (copied, moved, restored), pinning it;
   * without it such a chain is refused with ChainNotPinned (src/chain/pinning.ts).
   */
  trustChain?: boolean;
  /**
   * Open a chain that is older than, diverges from, or has gaps against the head this user has
   * seen (src/session/history-guard.ts), re-pinning the head; without it that is refused.
   */
  acceptRollback?: boolean;
  /** Largest commit a batch is cut into (ChainStoreOptions.commitBudget; tests use small ones). */
  commitBudget?: number;
  /**
   * Size at which the log starts a new segment (default LOCAL_SEGMENT_SIZE). The space runs compact
   * a selection of segments (compaction-scheduler.ts victims): smaller ones let a run pick the
   * deadest parts of the log and copy no more than fits under the space bound.
   */
  segmentSize?: number;
  /**
   * Page deltas for partly rewritten blocks (block-delta.ts): default true; false writes whole
   * blocks (reads apply deltas either way). The first batch written with them marks the chain
   * (codec.ts FS_FEATURES), which atefs from before deltas then refuses to mount.
   */
  pageDeltas?: boolean;
  /**
   * Compaction policy runs deferred to pauses in commits (compaction-scheduler.ts; default), or
   * false: the view runs it after every commit.
   */
  deferCompaction?: CompactionSchedulerOptions | false;
  /**
   * Commits are durable and MAC-authenticated at once and signed off in the background
   * (src/chain/deferred.ts; default true), or false: each commit waits for its signature.
   */
  deferSignatures?: boolean;
}

export interface LocalChain {
  store: ChainStore;
  view: View;
  log: RedoLog;
  chainDir: string;
  genesisHash: string;
  created: boolean;
  /** Compaction runs of a writable chain (null: read-only, or the view compacts by itself). */
  scheduler: CompactionScheduler | null;
  close(): Promise<void>;
}

/** The chain directory a mount without --log-path uses. */
export function resolveChainDir(chainDir?: string): string {
  return path.resolve(chainDir ?? path.join(defaultDataDir(), 'local'));
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'atefs');
}

export const LOCAL_CHAIN_ID = 'atefs/local';
/** What the refusal of an unpinned chain tells the user (src/chain/pinning.ts). */
export const TRUST_HINT = 'If you know where it comes from, mount it once with --trust-chain to pin it';
/** What the refusal of a rolled-back or broken history tells the user (src/session/history-guard.ts). */
export const ACCEPT_HINT = 'If you restored it on purpose, mount it once with --accept-rollback to accept it as it is';
/** What a chain directory holds: the log's segments and the LMDB index. */
const CHAIN_DIR_ENTRIES = ['log', 'index'] as const;
export { readPins, findPin, checkUnpinnedChain };

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(() => true, () => false);
}

/**
 * Segment size of a local chain's log: a sixteenth of the 128 MiB space slack, the unit a space
 * run picks its segments in (the deadest first, as many as fit under the bound); the log's own
 * default is 64 MiB, four of which made choices too coarse for a 64 MiB file's log of ~200 MiB.
 */
export const LOCAL_SEGMENT_SIZE = 8 << 20;

/** Opens (creating on first use) the local chain a mount without a remote serves. */
export async function openLocalChain(o: OpenLocalChainOptions = {}): Promise<LocalChain> {
  const configDir = o.configDir ?? defaultConfigDir();
  const chainDir = resolveChainDir(o.chainDir);
  const session = o.session ?? (await loadOrCreateLocalIdentity(configDir)).session;
  const user = session.user;
  if (!user) throw new Error('the session holds no user identity: it cannot own a local chain');
  const ownerReaders = readersOfPrincipal(user, { sym: true, kem: false });
  const logDir = path.join(chainDir, 'log');
  const indexDir = path.join(chainDir, 'index');
  if (!o.memory && !o.readOnly) {
    // The data directory under $XDG_DATA_HOME is atefs's own: private. A --log-path directory is
    // tightened when it holds only the chain, else left with a warning (private-files.ts says why).
    if (!o.chainDir) makeDirPrivate(defaultDataDir());
    makeChainDirPrivate(chainDir, CHAIN_DIR_ENTRIES, o.onWarning);
  }
  // Pinned under the real path (pins.ts), once the directory exists.
  const found = o.memory ? null : await findPin(configDir, chainDir);
  const pin = found?.hash;
  // The newest head this user has seen of this chain (src/session/heads.ts).
  const stored = found ? await lookupHead(configDir, found.key, session) : null;
  const fresh = o.memory || !(await exists(logDir));
  const pool = defaultPool();
  const keys = new DataKeyCache(session);

  let genesis;
  let genesisHash: Buffer | undefined = pin ? toGenesisHash(pin) : undefined;
  if (fresh && !pin) {
    if (o.readOnly) throw new Error(`no chain at ${chainDir} to mount read-only`);
    genesis = await createGenesis({ name: LOCAL_CHAIN_ID, keyring: session, chainReaders: [...ownerReaders, ...(o.extraReaders ?? [])], keys, pool });
    genesisHash = genesis.hash;
  }
  // Records up to 64 MiB: a commit (the store cuts batches at 24 MiB) is always one record (a
  // record larger than a segment gets a segment of its own).
  const maxRecordSize = 64 << 20;
  const segmentSize = o.segmentSize ?? LOCAL_SEGMENT_SIZE;
  const log = await openLog(o.memory
    ? { memory: true, chainId: LOCAL_CHAIN_ID, maxRecordSize, ...(genesisHash ? { genesisHash } : {}) }
    : { dir: logDir, chainId: LOCAL_CHAIN_ID, maxRecordSize, segmentSize, readOnly: !!o.readOnly, ...(genesisHash ? { genesisHash } : {}), ...(stored?.seen ? { chainHashAt: stored.seen.seq } : {}) });
  if (!genesis && !pin) {
    // An existing log that this user never pinned: refused unless trusted (src/chain/pinning.ts).
    try {
      await checkUnpinnedChain(log, { where: chainDir, pinsFile: path.join(configDir, PINS_FILE), keyring: session, pool, trust: !!o.trustChain, howToTrust: TRUST_HINT });
    } catch (e) {
      await log.close().catch(() => undefined);
      throw e;
    }
    if (o.trustChain) o.onWarning?.(`trusting the unpinned chain at ${chainDir} (--trust-chain): its genesis is pinned now`);
  }
  const torn = log.recovery;
  if (torn.truncatedBytes > 0 && torn.truncatedAt) {
    o.onWarning?.(`recovered a torn tail: ${torn.truncatedBytes} byte(s) at the end of segment ${torn.truncatedAt.segment} (offset ${torn.truncatedAt.offset}) ` +
      `were not a whole valid record and were cut${torn.keptAside ? ` (kept in ${path.join(logDir, torn.keptAside)})` : ''}`);
  }
  let guard: GuardedHistory | null = null;
  try {
    if (stored) {
      guard = await guardHistory({
        log, configDir, where: chainDir, stored, session, pool, accept: !!o.acceptRollback, howToAccept: ACCEPT_HINT,
        readOnly: !!o.readOnly, ...(o.onWarning ? { onWarning: o.onWarning } : {}),
      });
    }
  } catch (e) {
    await log.close().catch(() => undefined);
    throw e;
  }
  const defer = o.deferCompaction !== false && !o.readOnly && (!o.compactMode || parseCompactMode(o.compactMode) !== 'never');
  // The view signs commits through this pool: its sign() is timed for the stats file.
  const timings = emptyTimings();
  let view: View;
  try {
    view = await View.open({
      log,
      keyring: session,
      keys,
      pool: timedSigningPool(pool, timings),
      bulkPool: defaultBulkPool(),
      pinnedGenesis: genesisHash ?? null,
      ...(genesis ? { genesis } : {}),
      ...(o.memory ? {} : { indexPath: indexDir }),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      compaction: { ...(o.compactMode ? { mode: parseCompactMode(o.compactMode) } : {}), ...(defer ? { auto: false } : {}) },
      readOnly: !!o.readOnly,
      deferSignatures: o.deferSignatures !== false,
    });
  } catch (e) {
    await log.close().catch(() => undefined);
    await guard?.writer.close();
    throw e;
  }
  try {
    await guard?.afterLoad();
  } catch (e) {
    await view.close().catch(() => undefined);
    await log.close().catch(() => undefined);
    await guard?.writer.close();
    throw e;
  }
  const hash = view.genesisHash.toString('hex');
  // A new or trusted chain is pinned; a pin found under the path as given moves to the real path.
  if (found && (!pin || found.legacy)) await writePin(configDir, found.key, hash);
  let store: ChainStore;
  try {
    // Refuses a chain marked with a feature this version does not know (codec.ts FsFeatureUnknown).
    store = new ChainStore(view, {
      readOnly: !!o.readOnly,
      cacheTimeout: 60,
      owner: { readers: ownerReaders, signingKey: publicKeyId(user.signing!.publicKey) },
      ...(o.commitBudget !== undefined ? { commitBudget: o.commitBudget } : {}),
      pageDeltas: o.pageDeltas !== false,
      timings,
      bytesFree: o.memory ? undefined : () => {
        const s = statfsSync(chainDir);
        return s.bavail * s.bsize;
      },
    });
  } catch (e) {
    await view.close().catch(() => undefined);
    await log.close().catch(() => undefined);
    await guard?.writer.close();
    throw e;
  }
  let scheduler: CompactionScheduler | null = null;
  try {
    if (defer) {
      const s = scheduler = new CompactionScheduler(view, { serialize: (fn) => store.serialize(fn), ...(o.deferCompaction || {}) });
      store.writeBrake = (bytes) => s.pace(bytes);
    }
  } catch (e) {
    await view.close().catch(() => undefined);
    await log.close().catch(() => undefined);
    await guard?.writer.close();
    throw e;
  }
  return {
    store, view, log, chainDir, genesisHash: hash, created: !!genesis, scheduler,
    async close() {
      await scheduler?.stop();
      await store.close();
      await view.close();
      await log.close();
      await guard?.writer.close();
    },
  };
}
