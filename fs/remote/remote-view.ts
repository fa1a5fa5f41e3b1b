// The view a remote mount serves, built from its replication client's logs: the genesis, every
// commit the server confirmed (server order), then this machine's staged commits that still fit.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type Commit, DataKeyCache, type EventMeta } from '../../src/chain/index.js';
import { defaultBulkPool, defaultPool } from '../../src/crypto/index.js';
import { openLog, type RedoLog } from '../../src/log/index.js';
import type { RemoteChain } from '../../src/net/index.js';
import type { Session } from '../../src/session/index.js';
import { View } from '../../src/view/index.js';
import type { ViewProgress } from '../../src/view/progress.js';
import { decodeDentry } from '../chain-store/codec.js';
import { inoOfKey } from './remote-batch.js';

/** Names of the entries `c` deletes, read before it is applied (a tombstone carries no name). */
export function dentryNamesBefore(view: View, c: Commit): Map<string, { parent: number; name: Buffer }> {
  const out = new Map<string, { parent: number; name: Buffer }>();
  for (const ev of c.events) {
    const m = ev.meta;
    if (m.type !== 'dentry' || !m.tombstone || !m.parent) continue;
    const r = view.tryGet(m.key)?.data;
    if (r) out.set(m.key, { parent: inoOfKey(m.parent.key), name: decodeDentry(r).name });
  }
  return out;
}

export interface Built {
  view: View;
  log: RedoLog;
  /** Staged commits that do not apply on top of the replica. */
  lost: Commit[];
  /** Replica commits applied (for invalidation). */
  fresh: Commit[];
  /** The next replica seq not in the view. */
  next: number;
  /** Events of interesting keys by `key:version` (the base versions of lost changes). */
  bases: Map<string, { meta: EventMeta; payload: Buffer | null }>;
}

/** A fresh view: genesis, every confirmed commit in server order, then the staged ones that fit. */
export async function buildView(
  rc: RemoteChain, genesis: Commit, o: { dir: string | null; session: Session }, generation: number, interest: Set<string>, skip: Set<string>,
  onProgress?: (p: ViewProgress) => void,
): Promise<Built> {
  const dir = o.dir ? path.join(o.dir, `view-${generation}`) : null;
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
  const maxRecordSize = 80 << 20;
  // The view's log is rebuilt on every mount and never needs to be durable; a rotation would
  // fdatasync a whole segment on the thread that serves the mount: large segments, few rotations.
  const log = await openLog(dir
    ? { dir: path.join(dir, 'log'), chainId: rc.name, genesisHash: genesis.hash, maxRecordSize, segmentSize: 1 << 30 }
    : { memory: true, chainId: rc.name, genesisHash: genesis.hash, maxRecordSize });
  let view: View;
  try {
    view = await View.open({
      log, keyring: o.session, keys: new DataKeyCache(o.session), pool: defaultPool(), bulkPool: defaultBulkPool(),
      pinnedGenesis: genesis.hash, genesis, compaction: { mode: 'never' }, readOnly: false,
      now: () => Date.now() + rc.clockOffsetMs,
      // Server order: commits of several writers, not applied (see ValidationOptions.backwardsToleranceMs).
      backwardsToleranceMs: Number.POSITIVE_INFINITY,
    });
  } catch (e) {
    await log.close().catch(() => undefined);
    throw e;
  }
  const bases = new Map<string, { meta: EventMeta; payload: Buffer | null }>();
  const note = (c: Commit) => {
    for (const ev of c.events) if (interest.has(ev.meta.key)) bases.set(`${ev.meta.key}:${ev.meta.version}`, { meta: ev.meta, payload: ev.payload });
  };
  const fresh: Commit[] = [];
  // Confirmed commits (already validated by the replication client), until caught up: more may
  // arrive while this runs, and they are in the replica before they are announced.
  let next = 2;
  // The build is one commit at a time through the view: a long chain takes a while (a bar).
  const report = (done: number) => onProgress?.({ phase: 'rebuild', done, total: Math.max(done, rc.lastSeq), unit: 'records', records: done });
  report(0);
  let reported = performance.now();
  for (;;) {
    let any = false;
    for (const { seq, commit } of rc.commits(next)) {
      any = true;
      next = seq + 1;
      await view.submit(commit, 'local', true, { gap: rc.belowCut(seq) });
      fresh.push(commit);
      note(commit);
      if (performance.now() - reported > 100) {
        report(seq);
        reported = performance.now();
      }
    }
    if (!any || next > rc.lastSeq) break;
  }
  report(next - 1);
  const lost: Commit[] = [];
  for (const c of rc.stagedCommits()) {
    if (view.state.hasCommit(c.hash) || skip.has(c.hash.toString('hex'))) continue;
    try {
      await view.submit(c, 'local', true);
      note(c);
    } catch {
      lost.push(c);
    }
  }
  return { view, log, lost, fresh, bases, next };
}

