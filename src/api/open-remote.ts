// openChain('tcp://host[:port]/name'): a replica of a server's chain as a library Chain. The
// replication client (src/net RemoteChain) keeps the replica and staging logs and validates what
// the server sends; the View (index, DIO) runs over its own log that mirrors the replica in server
// order (log seq = server seq), fed commit by commit as they are confirmed. A DIO commit is sent to
// the server and resolves once it is confirmed and applied here: in this build a remote Chain
// reads what the server confirmed (sync semantics); offline work with staged commits shown on top
// is RemoteChain's async mode, used directly.
import * as path from 'node:path';
import { type Commit, CommitRejected, DataKeyCache, type ReaderRef, toGenesisHash } from '../chain/index.js';
import { defaultBulkPool, defaultPool } from '../crypto/index.js';
import { openLog } from '../log/index.js';
import { type RecoveryMode, RemoteChain, RemoteRejected, parseRemoteUrl } from '../net/index.js';
import { type Session, readPins, writePin } from '../session/index.js';
import { Conflict, View } from '../view/index.js';
import { Chain } from './chain.js';
import { ChainUnavailable } from './errors.js';
import { RemoteLeases } from './leases.js';

export interface OpenRemoteOptions {
  /** Local state (replica, staging, view) directory; default under the data dir, by host and name. */
  dir: string;
  configDir: string;
  mode?: RecoveryMode;
  create?: boolean | { readers?: ReaderRef[]; rootKeys?: Buffer[]; creatorReads?: boolean };
  serverKey?: string;
  readOnly?: boolean;
  confirmTimeoutMs?: number;
}

function rcKey(url: string): string {
  const u = parseRemoteUrl(url);
  return `${u.host}:${u.port}/${u.name}`;
}

export async function openRemote(url: string, session: Session, o: OpenRemoteOptions): Promise<Chain> {
  const user = session.user;
  if (!user?.signing) throw new ChainUnavailable('the session holds no user identity with a signing key: it cannot open a chain');
  const pool = defaultPool();
  // The genesis is pinned in the config directory too (by URL), apart from the replica: a replica
  // deleted or swapped on disk does not make this client adopt whatever the server now offers.
  const pinKey = `tcp:${rcKey(url)}`;
  const pinned = (await readPins(o.configDir))[pinKey];
  const rc = await RemoteChain.open({
    url, session, dir: path.join(o.dir, 'replica'), mode: o.mode ?? 'sync', pool,
    ...(pinned ? { genesisHash: toGenesisHash(pinned) } : {}),
    knownHosts: path.join(o.configDir, 'known_hosts'), create: o.create ?? true,
    ...(o.serverKey ? { serverKey: o.serverKey } : {}),
    ...(o.confirmTimeoutMs ? { confirmTimeoutMs: o.confirmTimeoutMs } : {}),
  });
  const first = [...rc.commits(1)][0];
  if (!first) {
    await rc.close();
    throw new ChainUnavailable(`${url}: the server sent no genesis`);
  }
  if (!pinned) await writePin(o.configDir, pinKey, first.commit.hash.toString('hex'));
  const keys = new DataKeyCache(session);
  const genesis: Commit = first.commit;
  const log = await openLog({ dir: path.join(o.dir, 'view', 'log'), chainId: rc.name, genesisHash: genesis.hash });
  let view: View;
  try {
    view = await View.open({
      log, keyring: session, keys, pool, bulkPool: defaultBulkPool(), pinnedGenesis: genesis.hash, genesis,
      indexPath: path.join(o.dir, 'view', 'index'), compaction: { mode: 'never' }, readOnly: false,
      // Commits are timestamped with the server's clock (the offset the handshake and pings measure).
      now: () => Date.now() + rc.clockOffsetMs,
      // Server order: commits of several writers, not applied (see ValidationOptions.backwardsToleranceMs).
      backwardsToleranceMs: Number.POSITIVE_INFINITY,
    });
  } catch (e) {
    await log.close().catch(() => undefined);
    await rc.close();
    throw e;
  }
  // Feed the view in server order: what the replica has beyond the view's log, then every commit
  // as it is confirmed. One queue keeps the order; `applied` lets a DIO commit wait for its seq.
  let queue: Promise<unknown> = Promise.resolve();
  const applied = new Map<number, Promise<{ seq: number; changes: import('../view/lmdb-state.js').AppliedChange[] }>>();
  const feed = (seq: number, commit: Commit, own: boolean) => {
    const p = queue.then(async () => {
      if (seq < log.nextSeq) return { seq, changes: [] };
      if (seq !== log.nextSeq) throw new ChainUnavailable(`replica seq ${seq} arrived while the view holds up to ${log.nextSeq - 1}`);
      return view.submit(commit, 'local', own);
    });
    applied.set(seq, p);
    // A DIO commit waiting for this seq took the promise as soon as its confirmation arrived.
    p.finally(() => applied.delete(seq)).catch(() => undefined);
    queue = p.catch((e: Error) => view.fail(e));
    return p;
  };
  for (const { seq, commit } of rc.commits(log.nextSeq)) feed(seq, commit, true);
  rc.on('commit', (e) => { feed(e.seq, e.commit, e.own); });
  await queue;
  view.remote = {
    async submit(commit) {
      let r;
      try {
        r = await rc.submitCommit(commit, { wait: 'confirmed' });
      } catch (e) {
        // Lost a race in server order: the same Conflict a local chain raises (transact re-runs).
        // The replica may already hold the winner while the view is still applying it: let the
        // view catch up first, so the re-run reads the new state.
        if ((e instanceof RemoteRejected || e instanceof CommitRejected) && e.reason === 'conflict') {
          await queue.catch(() => undefined);
          throw new Conflict(/DAO ([0-9a-f]+)/.exec(e.message)?.[1] ?? '?', e.message);
        }
        throw e;
      }
      const seq = r.seq!;
      const done = applied.get(seq);
      const out = done ? await done : { seq, changes: [] };
      applied.delete(seq);
      return out;
    },
  };
  // Leases are the server's: held by this connection, dropped when it closes.
  const leases = new RemoteLeases(rc, () => queue.then(() => undefined, () => undefined));
  return new Chain(rc.name, view, session, leases, async () => {
    await queue.catch(() => undefined);
    await rc.close();
    await view.close();
    await log.close();
  });
}
