// Options, events and URLs of the replication client (remote-chain.ts).
import type { Commit, ReaderRef } from '../chain/index.js';
import type { CryptoPool, SigningKeyPair } from '../crypto/index.js';
import type { CompactOptions } from '../log/index.js';
import type { Session } from '../session/index.js';
import { NetError, type RemoteRejected, type ServerMisbehaved } from './errors.js';

export type RecoveryMode = 'async' | 'readonly' | 'sync';
export type RemoteStatus = 'offline' | 'connecting' | 'syncing' | 'online' | 'refused' | 'closed';

export const DEFAULT_PORT = 5000;

export interface RemoteAddress {
  host: string;
  port: number;
}

/**
 * tcp://host[:port]/chain/name, or several nodes of a cluster: tcp://h1[:p1],h2[:p2]/chain/name.
 * host/port are the first node (where the local copy is named after); `nodes` lists them all, in
 * the order the client tries them.
 */
export function parseRemoteUrl(url: string): { host: string; port: number; name: string; nodes: RemoteAddress[] } {
  const m = /^tcp:\/\/([^/]+)\/(.+)$/i.exec(url);
  const bad = () => new NetError(`'${url}' is not a remote chain URL (tcp://host[:port][,host[:port]...]/chain/name)`);
  if (!m) throw bad();
  const nodes = m[1]!.split(',').map((part) => {
    const a = /^([^/:,\s[\]]+|\[[^\]]+\])(?::(\d+))?$/.exec(part.trim());
    if (!a) throw bad();
    const port = a[2] ? Number(a[2]) : DEFAULT_PORT;
    if (port > 65535) throw bad();
    return { host: a[1]!.replace(/^\[|\]$/g, ''), port };
  });
  return { host: nodes[0]!.host, port: nodes[0]!.port, name: m[2]!, nodes };
}

export interface RemoteChainOptions {
  url: string;
  session: Session;
  /** Where the replica, the staging log, the pin and the head live; null = memory (tests). */
  dir: string | null;
  mode?: RecoveryMode;
  /** Pinned genesis hash; otherwise the replica's, or trust on first use. */
  genesisHash?: Buffer;
  /** Create the chain (a fresh genesis owned by the session) when the server does not have it. */
  create?: { readers?: ReaderRef[]; openRoot?: boolean; rootKeys?: Buffer[]; creatorReads?: boolean } | boolean;
  knownHosts?: string;
  serverKey?: string;
  /** Identity proven in the handshake (default: the session's signing key). */
  identity?: SigningKeyPair | null;
  pool?: CryptoPool | null;
  backoff?: { minMs?: number; maxMs?: number };
  /** How long a 'confirmed' wait survives disconnections before it fails (the commit stays staged). */
  confirmTimeoutMs?: number;
  /**
   * How long opening a chain this client holds nothing of waits for its history (handshake
   * included) before it fails (default 30 s). Apart from confirmTimeoutMs: a short confirmation
   * wait must not make a first open fail on a loaded machine.
   */
  openTimeoutMs?: number;
  onNewHost?: (address: string, fingerprint: string) => void;
  /**
   * Progress of downloading history (the first open of a chain, or a long absence): seqs held and
   * the server's newest as it said when sending. Once caught up, done === total.
   */
  onDownload?: (done: number, total: number) => void;
  /** Keepalive: a ping this often; no answer by the next one closes the connection (reconnects). */
  pingIntervalMs?: number;
  /** This machine's clock (tests skew it); the server's is derived from it and the measured offset. */
  now?: () => number;
  /** Tests: passed to the idle compaction of the staging log (a crash injected at one of its steps). */
  stagingCompaction?: Pick<CompactOptions, 'failAt' | 'onStep'>;
}

export interface RemoteChainEvents {
  commit: [{ seq: number; commit: Commit; own: boolean }];
  /** A staged commit the server refused, handed back with the confirmed versions of its DAOs
   *  (to rebase or to keep aside); never dropped silently. */
  rejected: [{ commit: Commit; error: RemoteRejected; current: Map<string, number> }];
  status: [RemoteStatus];
  refused: [ServerMisbehaved];
  warning: [string];
  /** The replica was behind the server's compaction cut: records the server dropped were dropped
   *  here too and the confirmed state rebuilt (no 'commit' event says what disappeared: anything
   *  built from earlier commits must be rebuilt from the replica). */
  rebased: [{ cut: number; dropped: number }];
}

