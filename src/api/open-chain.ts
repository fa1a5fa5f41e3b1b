// openChain: the library's one way in. A name opens (creating on first use) a local chain under
// the user's data directory; { temp: true } an in-memory one; a tcp:// URL a replica of a chain
// on an atedb server. The keys are the local identity's unless a session or a token file is given.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataKeyCache, checkUnpinnedChain, createGenesis, toGenesisHash, type ReaderRef } from '../chain/index.js';
import { defaultBulkPool, defaultPool } from '../crypto/index.js';
import { makeChainDirPrivate, openLog } from '../log/index.js';
import {
  PINS_FILE, type GuardedHistory, type Session, defaultConfigDir, findPin, guardHistory, lookupHead, loadOrCreateLocalIdentity, readTokenFile, readersOfPrincipal, writePin,
} from '../session/index.js';
import { View, parseCompactMode } from '../view/index.js';
import { type RecoveryMode, groupChainCreateOptions, parseRemoteUrl } from '../net/index.js';
import { Chain } from './chain.js';
import { openRemote } from './open-remote.js';
import { ChainUnavailable, InvalidChainTarget } from './errors.js';
import { LocalLeases } from './leases.js';

export interface OpenChainOptions {
  /** Keys to use (a token file's session, a fresh identity). Default: the local identity. */
  session?: Session;
  /** A token file to take the keys from (instead of `session`). */
  tokenPath?: string;
  /** Passcode of an encrypted token file. */
  passcode?: string;
  /** Keep nothing on disk: an in-memory log and index (tests, caches, throw-away work). */
  temp?: boolean;
  /** Where a local chain lives (log/ and index/ inside). Default $XDG_DATA_HOME/ate/chains/<name>. */
  dir?: string;
  /** Identity, pins: default $XDG_CONFIG_HOME/atefs. */
  configDir?: string;
  /** Chain-wide readers besides the creator, for a chain created by this call. */
  readers?: ReaderRef[];
  /** tcp:// chains created by this call: root keys other than the session's signing keys (a group
   *  chain is rooted at the group's owner/delegate key), and whether the creator's own read key is
   *  a chain-wide reader (default true). */
  rootKeys?: Buffer[];
  creatorReads?: boolean;
  /** Open without writing (a missing chain is an error). */
  readOnly?: boolean;
  /** Compaction mode (never, modified, timer, factor, size, factor-or-timer, size-or-timer). */
  compactMode?: string;
  /** Lease owner name of a local chain (default: user name + pid); a tcp:// chain's leases are held by its connection. */
  leaseOwner?: string;
  /**
   * Open an existing chain that was never pinned in `configDir` (copied, moved, restored, or
   * another user's), pinning it. Without it such a chain is refused (ChainNotPinned).
   */
  trustChain?: boolean;
  /** tcp:// chains: 'sync' (default here: a commit resolves once the server confirmed it), 'readonly'. */
  recoveryMode?: RecoveryMode;
  /** tcp:// chains: demand this server key fingerprint (SHA256:...) instead of known_hosts TOFU. */
  serverKey?: string;
  /**
   * Open a chain older than, diverging from, or with gaps against the history this user has seen
   * (a restore made on purpose), re-pinning its head. Without it that is refused
   * (ChainRolledBack, ChainHistoryBroken: src/session/history-guard.ts).
   */
  acceptRollback?: boolean;
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}(\/[a-z0-9][a-z0-9._-]{0,62}){0,3}$/i;

export async function openChain(target: string, o: OpenChainOptions = {}): Promise<Chain> {
  if (/^[a-z]+:\/\//i.test(target)) {
    if (!/^tcp:\/\//i.test(target)) throw new InvalidChainTarget(`'${target}': only tcp:// remote chains exist`);
    let u;
    try {
      u = parseRemoteUrl(target);
    } catch (e) {
      throw new InvalidChainTarget((e as Error).message);
    }
    if (!NAME.test(u.name)) throw new InvalidChainTarget(`'${u.name}' is not a chain name`);
    const configDir = o.configDir ?? defaultConfigDir();
    const session = await sessionOf(o, configDir);
    const dir = path.resolve(o.dir ?? path.join(defaultChainsDir(), 'remote', `${u.host}+${u.port}`, u.name));
    // A group chain (`<group>/<db>`) created with a session that holds the group's keys is rooted at
    // and read by the group's keys (what the auth policy demands), unless told otherwise.
    const parts = u.name.split('/');
    const group = parts.length === 2 && !o.rootKeys && !o.readers ? groupChainCreateOptions(session, parts[0]!) : null;
    if (group) o = { ...o, ...group };
    return openRemote(target, session, {
      dir, configDir,
      create: o.readOnly ? false : (o.readers || o.rootKeys || o.creatorReads === false)
        ? { ...(o.readers ? { readers: o.readers } : {}), ...(o.rootKeys ? { rootKeys: o.rootKeys } : {}), ...(o.creatorReads === false ? { creatorReads: false } : {}) }
        : true,
      ...(o.recoveryMode ? { mode: o.recoveryMode } : {}),
      ...(o.serverKey ? { serverKey: o.serverKey } : {}),
    });
  }
  if (!NAME.test(target) || target.split('/').some((s) => s === '.' || s === '..')) {
    throw new InvalidChainTarget(`'${target}' is not a chain name (letters, digits, '.', '_', '-', up to 4 '/'-separated parts)`);
  }
  const configDir = o.configDir ?? defaultConfigDir();
  const session = await sessionOf(o, configDir);
  return openLocal(target, session, configDir, o);
}

async function sessionOf(o: OpenChainOptions, configDir: string): Promise<Session> {
  if (o.session) return o.session;
  if (o.tokenPath) return (await readTokenFile(o.tokenPath, o.passcode !== undefined ? { passphrase: o.passcode } : {})).session;
  return (await loadOrCreateLocalIdentity(configDir)).session;
}

export function defaultChainsDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'ate', 'chains');
}

async function openLocal(name: string, session: Session, configDir: string, o: OpenChainOptions): Promise<Chain> {
  const user = session.user;
  if (!user?.signing) throw new ChainUnavailable('the session holds no user identity with a signing key: it cannot open a chain');
  const chainDir = path.resolve(o.dir ?? path.join(defaultChainsDir(), name));
  const logDir = path.join(chainDir, 'log');
  const memory = !!o.temp;
  if (!memory && !o.readOnly) makeChainDirPrivate(chainDir, ['log', 'index']);
  const found = memory ? null : await findPin(configDir, chainDir, 'ate:');
  const pin = found?.hash;
  const stored = found ? await lookupHead(configDir, found.key, session) : null;
  const fresh = memory || !(await fsp.access(logDir).then(() => true, () => false));
  const pool = defaultPool();
  const keys = new DataKeyCache(session);
  let genesis;
  let genesisHash: Buffer | undefined = pin ? toGenesisHash(pin) : undefined;
  if (fresh) {
    if (o.readOnly) throw new ChainUnavailable(`no chain '${name}' at ${chainDir} to open read-only`);
    if (pin) throw new ChainUnavailable(`chain '${name}' at ${chainDir} is pinned (${pin.slice(0, 16)}...) but its log is gone; remove the pin from ${configDir} to create a new one`);
    const chainReaders = [...readersOfPrincipal(user, { sym: true, kem: false }), ...(o.readers ?? [])];
    genesis = await createGenesis({ name, keyring: session, chainReaders, keys, pool });
    genesisHash = genesis.hash;
  }
  const log = await openLog(memory
    ? { memory: true, chainId: name, ...(genesisHash ? { genesisHash } : {}) }
    : { dir: logDir, chainId: name, readOnly: !!o.readOnly, ...(genesisHash ? { genesisHash } : {}), ...(stored?.seen ? { chainHashAt: stored.seen.seq } : {}) });
  let view: View;
  let guard: GuardedHistory | null = null;
  try {
    if (!genesis && !pin) {
      await checkUnpinnedChain(log, {
        where: chainDir, pinsFile: path.join(configDir, PINS_FILE), keyring: session, pool, trust: !!o.trustChain,
        howToTrust: 'If you know where it comes from, open it once with { trustChain: true } to pin it',
      });
    }
    if (stored) {
      guard = await guardHistory({
        log, configDir, where: chainDir, stored, session, pool, accept: !!o.acceptRollback, readOnly: !!o.readOnly,
        howToAccept: 'If it was restored on purpose, open it once with { acceptRollback: true } to accept it as it is',
      });
    }
    view = await View.open({
      log, keyring: session, keys, pool, bulkPool: defaultBulkPool(),
      pinnedGenesis: genesisHash ?? null,
      ...(genesis ? { genesis } : {}),
      ...(memory ? {} : { indexPath: path.join(chainDir, 'index') }),
      compaction: o.compactMode ? { mode: parseCompactMode(o.compactMode) } : {},
      readOnly: !!o.readOnly,
    });
    try {
      await guard?.afterLoad();
    } catch (e) {
      await view.close().catch(() => undefined);
      throw e;
    }
  } catch (e) {
    await log.close().catch(() => undefined);
    await guard?.writer.close();
    throw e;
  }
  if (found && (!pin || found.legacy)) await writePin(configDir, found.key, view.genesisHash.toString('hex'));
  const owner = o.leaseOwner ?? `${user.name}:${process.pid}`;
  return new Chain(name, view, session, new LocalLeases(view, owner), async () => {
    await view.close();
    await log.close();
    await guard?.writer.close();
  });
}
