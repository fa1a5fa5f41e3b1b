// `atefs log` and the chain's history: every commit of a local chain newest first, with who signed
// it; with --path only the commits that changed one file (resolved and matched client-side, with
// the user's keys). Also what `atefs mount --at` serves: the chain as it was at a seq or a time.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { decodeCommit, decodeMeta, publicKeyId, type Commit } from '../src/chain/index.js';
import { defaultPool } from '../src/crypto/index.js';
import { openLog, type LogRecord, type RedoLog } from '../src/log/index.js';
import { defaultConfigDir, findPin, loadOrCreateLocalIdentity, type Session } from '../src/session/index.js';
import { View } from '../src/view/index.js';
import { eventSpans } from '../src/view/record-spans.js';
import { ChainStore, LOCAL_CHAIN_ID, resolveChainDir } from '../fs/chain-store/index.js';
import { BLOCKS, DELTAS, DENTRIES, inodeKey } from '../fs/chain-store/keys.js';
import { readMountRecordOf } from '../fs/daemon/registry.js';

import { UserError, chainOpenError } from './errors.js';

export interface CommitSummary {
  seq: number;
  time: string;
  /** Signers: the local identity's name where it signed, else the key fingerprint (16 hex). */
  signers: string[];
  events: number;
  bytes: number;
}

/** The chain directory named by a chain directory itself, a mountpoint of one, or --log-path. */
export async function chainDirOf(target: string | undefined, logPath: string | undefined): Promise<string> {
  if (!target) return resolveChainDir(logPath);
  const abs = path.resolve(target);
  if (await fsp.access(path.join(abs, 'log')).then(() => true, () => false)) return abs;
  // A dead mount's path does not resolve: its record still names the chain.
  const rec = await readMountRecordOf(abs);
  if (rec?.chain) return rec.chain;
  if (rec) throw new UserError(`${target} is mounted from a chain that has no history on this machine (${rec.chain ?? 'temp'})`);
  throw new UserError(`${target} is neither a chain directory nor an atefs mount`);
}

export async function openHistoryLog(chainDir: string): Promise<RedoLog> {
  const logDir = path.join(chainDir, 'log');
  if (!(await fsp.access(logDir).then(() => true, () => false))) throw new UserError(`no chain at ${chainDir}`);
  // Read-only: no writer lock, so a mounted chain can be listed while its daemon writes.
  return openLog({ dir: logDir, chainId: LOCAL_CHAIN_ID, readOnly: true, maxRecordSize: 64 << 20 });
}

function summarize(rec: LogRecord, c: Commit, names: Map<string, string>): CommitSummary {
  return {
    seq: rec.seq,
    time: new Date(c.header.timestamp).toISOString(),
    signers: c.signatures.map((s) => {
      const id = publicKeyId(s.publicKey);
      return names.get(id) ?? id.slice(0, 16);
    }),
    events: c.events.length,
    bytes: rec.payload.length,
  };
}

/** DAO keys whose changes are changes of the file at `file` (its inode, its blocks, its name). */
async function fileMatcher(chainDir: string, log: RedoLog, session: Session, file: string): Promise<(c: Commit) => boolean> {
  const pin = (await findPin(defaultConfigDir(), chainDir)).hash;
  // A private, temporary index: the chain's own may be in use by a daemon.
  const view = await View.open({ log, keyring: session, pool: defaultPool(), pinnedGenesis: pin ?? null, readOnly: true, compaction: { auto: false } });
  try {
    let store: ChainStore;
    try {
      store = new ChainStore(view, { readOnly: true });
    } catch (e) {
      throw chainOpenError(e); // a chain written by a newer atefs: one line, as a mount says it
    }
    const parts = file.split('/').filter((p) => p && p !== '.');
    let parent = 1;
    let ino = 1;
    let nameKey: string | null = null;
    for (const p of parts) {
      const next = store.lookupDentry(parent, Buffer.from(p));
      if (next === undefined) throw new UserError(`${file}: no such file in the chain (at its newest state)`);
      nameKey = view.nameKey(inodeKey(parent), DENTRIES, Buffer.from(p));
      parent = ino = next;
    }
    const ik = inodeKey(ino);
    return (c) => c.events.some((e) => {
      const m = e.meta;
      return m.key === ik || m.key === nameKey || (m.parent?.key === ik && (m.parent.collection === BLOCKS || m.parent.collection === DELTAS));
    });
  } finally {
    await view.close();
  }
}

/** `atefs log`: commits newest first (all, or those that changed --path). */
export async function runLog(a: { target?: string; logPath?: string; path?: string; limit?: number; json: boolean }): Promise<void> {
  const chainDir = await chainDirOf(a.target, a.logPath);
  const { session, identity } = await loadOrCreateLocalIdentity(defaultConfigDir());
  const names = new Map<string, string>();
  if (identity.signing) names.set(publicKeyId(identity.signing.publicKey), identity.name);
  const log = await openHistoryLog(chainDir);
  try {
    let mountRel: string | undefined = a.path;
    if (mountRel && a.target && path.isAbsolute(mountRel)) mountRel = path.relative(path.resolve(a.target), mountRel);
    const match = mountRel !== undefined ? await fileMatcher(chainDir, log, session, mountRel) : null;
    const out: CommitSummary[] = [];
    for (const rec of log.records()) {
      const c = decodeCommit(rec.payload);
      // Sign-offs (deferred signatures, src/chain/deferred.ts) change nothing: not history.
      if (c.header.genesis || c.header.signs) continue;
      if (match && !match(c)) continue;
      out.push(summarize(rec, c, names));
    }
    out.reverse();
    const shown = a.limit !== undefined ? out.slice(0, a.limit) : out;
    if (a.json) {
      process.stdout.write(`${JSON.stringify({ chain: chainDir, ...(a.path ? { path: a.path } : {}), commits: shown })}\n`);
      return;
    }
    for (const s of shown) {
      process.stdout.write(`${String(s.seq).padStart(8)}  ${s.time}  ${s.signers.join(',').padEnd(20)}  ${String(s.events).padStart(6)} events  ${fmtBytes(s.bytes)}\n`);
    }
    if (shown.length === 0) process.stdout.write(a.path ? `no commit changed ${a.path}\n` : 'no commits yet\n');
  } finally {
    await log.close();
  }
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/** A point in history: a seq (an integer) or a time (ISO 8601). */
export type HistoryPoint = { seq: number } | { time: number };

export function parseHistoryPoint(s: string): HistoryPoint {
  if (/^\d+$/.test(s)) return { seq: Number(s) };
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new UserError(`--at ${s}: give a commit seq (see 'atefs log') or an ISO time like 2026-12-01T10:00:00Z`);
  return { time: t };
}

/**
 * The seq of a point in history. Compaction drops records whose effects later records replaced,
 * so a point is shown only if the records kept rebuild it exactly: every DAO's first version after
 * the point must follow the version it had at the point. A version missing there may have been
 * dropped before the point, and the point is refused rather than shown wrong.
 */
export async function resolveHistoryPoint(log: RedoLog, chainDir: string, at: HistoryPoint): Promise<number> {
  // One pass over the log: the point's seq, whether records were compacted away (seqs skip), and
  // per DAO its kept versions (event metadata only: nothing is hashed or decrypted).
  let lastSeq = 0;
  let seq = 0;
  let prev = 0;
  let compacted = false;
  // Points [from, to) where some DAO's kept versions skip one: its state there is unknown.
  const bad: Array<[number, number]> = [];
  const last = new Map<string, [number, number]>();
  for (const rec of log.records()) {
    lastSeq = rec.seq;
    if ('seq' in at ? rec.seq <= at.seq : decodeCommit(rec.payload).header.timestamp <= at.time) seq = rec.seq;
    if (rec.seq !== prev + 1) compacted = true;
    prev = rec.seq;
    for (const sp of eventSpans(rec.payload)) {
      const m = decodeMeta(rec.payload.subarray(sp.metaStart, sp.metaStart + sp.metaLen));
      const [s0, v0] = last.get(m.key) ?? [0, 0];
      if (m.version !== v0 + 1) bad.push([s0, rec.seq]);
      last.set(m.key, [rec.seq, m.version]);
    }
  }
  if ('seq' in at && at.seq > lastSeq) throw new UserError(`--at ${at.seq}: the chain's newest commit is seq ${lastSeq}`);
  if (seq === 0) throw new UserError(`the chain at ${chainDir} has no commit at or before that point`);
  if (!compacted) return seq;
  let next = seq;
  for (const [from, to] of bad.sort((x, y) => x[0] - y[0])) if (from <= next && next < to) next = to;
  if (next !== seq) {
    throw new UserError(`--at: the state at seq ${seq} was compacted away (records it needs were dropped); the next point that can be shown exactly is seq ${next}`);
  }
  return seq;
}
