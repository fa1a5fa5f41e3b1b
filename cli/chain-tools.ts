import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LOCAL_CHAIN_ID, findPin, resolveChainDir } from '../fs/chain-store/index.js';
import { type DeferredCheck, cutProblem, macCheck, verifyChain } from '../src/chain/index.js';
import { defaultPool } from '../src/crypto/index.js';
import { type LogPosition, type RedoLog, type RepairResult, cutLog, openLog, repairLog } from '../src/log/index.js';
import {
  LOCAL_IDENTITY_FILE, type StoredHeadLookup, compareWithHead, defaultConfigDir, loadOrCreateLocalIdentity, lookupHead,
} from '../src/session/index.js';
import { UserError } from './errors.js';

/**
 * `atefs verify` and `atefs repair`: the chain's own integrity tools, on the local chain a mount
 * would serve (--log-path or the default). Neither may run while the chain is mounted: the log's
 * writer lock refuses them.
 */

/** One report: a JSON line with --json, else the human line. */
export function out(json: boolean, obj: Record<string, unknown>, line: string): void {
  process.stdout.write(json ? `${JSON.stringify(obj)}\n` : `${line}\n`);
}

/** Validates every commit (hash, signatures, authority, time) and lists all problems without stopping. */
export async function runVerify(a: { logPath?: string; json: boolean }): Promise<void> {
  const chainDir = resolveChainDir(a.logPath);
  const logDir = path.join(chainDir, 'log');
  if (!(await fsp.access(logDir).then(() => true, () => false))) throw new UserError(`no chain at ${chainDir}`);
  const found = await findPin(defaultConfigDir(), chainDir);
  const pin = found.hash ?? null;
  const stored = await storedHeadOf(found.key);
  let log;
  try {
    log = await openLog({ dir: logDir, chainId: LOCAL_CHAIN_ID, readOnly: true, ...(stored?.seen ? { chainHashAt: stored.seen.seq } : {}) });
  } catch (e) {
    const err = e as Error;
    out(a.json, { chain: chainDir, ok: false, problems: [{ reason: err.name, message: err.message }] }, `${chainDir}: ${err.name}: ${err.message}`);
    process.exitCode = 1;
    return;
  }
  try {
    const r = await verifyChain(log, { pinnedGenesis: pin, pool: defaultPool(), ...(await ownDeferredCheck()) });
    const history = historyProblems(log, stored, stored ? (await loadOrCreateLocalIdentity(defaultConfigDir())).session.signingKeys().map((k) => k.publicKey) : []);
    const ok = r.problems.length === 0 && history.length === 0 && (pin === null || r.genesisHash === pin);
    out(a.json, { chain: chainDir, ok, pinned: pin !== null, ...r, history, head: { seq: log.chain.head.seq, hash: log.chain.head.hash.toString('hex') } },
      `${chainDir}: ${r.records} commits, ${r.accepted} valid, ${r.events} events, ${r.problems.length + history.length} problem(s)` +
      (r.compacted ? ' (compacted: checked against the versions compaction kept)' : '') +
      (pin === null ? ' (no pinned genesis: trusted as found)' : ''));
    if (!a.json) {
      for (const p of r.problems) process.stdout.write(`  seq ${p.seq} at segment ${p.pos.segment} offset ${p.pos.offset}: ${p.reason}: ${p.message}\n`);
      for (const h of history) process.stdout.write(`  history: ${h.reason}: ${h.message}\n`);
    }
    if (!ok) process.exitCode = 1;
  } finally {
    await log.close();
  }
}

/** The stored head of the chain (src/session/heads.ts), when the local identity exists to check it. */
async function storedHeadOf(key: string): Promise<StoredHeadLookup | null> {
  const configDir = defaultConfigDir();
  if (!(await fsp.access(path.join(configDir, LOCAL_IDENTITY_FILE)).then(() => true, () => false))) return null;
  return lookupHead(configDir, key, (await loadOrCreateLocalIdentity(configDir)).session);
}

/**
 * The local identity's check of deferred signatures (its own MACs), when the identity exists: the
 * tail a mount had not signed off yet when it stopped verifies for its owner (the next mount signs
 * it off); to anyone else only sign-offs count.
 */
async function ownDeferredCheck(): Promise<{ deferred?: DeferredCheck }> {
  const configDir = defaultConfigDir();
  if (!(await fsp.access(path.join(configDir, LOCAL_IDENTITY_FILE)).then(() => true, () => false))) return {};
  return { deferred: macCheck((await loadOrCreateLocalIdentity(configDir)).session.signingKeys()) };
}

/** What is wrong with the history as a whole: a torn tail, a gap, a bad compaction cut, a rollback. */
function historyProblems(log: RedoLog, stored: StoredHeadLookup | null, ownKeys: Buffer[]): Array<{ reason: string; message: string }> {
  const out: Array<{ reason: string; message: string }> = [];
  const rec = log.recovery;
  if (rec.truncatedBytes > 0 && rec.truncatedAt) {
    out.push({ reason: 'torn-tail', message: `${rec.truncatedBytes} byte(s) at segment ${rec.truncatedAt.segment} offset ${rec.truncatedAt.offset} do not form a valid record (a mount cuts them off)` });
  }
  if (log.chain.problem) out.push({ reason: 'gap', message: log.chain.problem.message });
  const cut = cutProblem(log, ownKeys);
  if (cut) out.push({ reason: 'compaction-cut', message: cut });
  if (stored?.forged) out.push({ reason: 'head-forged', message: 'the stored head of this chain does not verify (chain-heads.json edited?)' });
  if (stored?.seen) {
    const cmp = compareWithHead(log.chain, stored.seen);
    if (cmp === 'older') out.push({ reason: 'rollback', message: `the log ends at seq ${log.chain.head.seq} but this user has seen seq ${stored.seen.seq}: cut back or an older copy restored` });
    if (cmp === 'diverged') out.push({ reason: 'diverged', message: `at seq ${stored.seen.seq} the log's chain hash differs from the one this user has seen` });
  }
  return out;
}

/**
 * Truncates the log at its first damaged record after copying the damaged remainder aside, and
 * drops the index so the next mount rebuilds it from what remains. Nothing is deleted without a copy.
 */
export async function runRepair(a: { logPath?: string; json: boolean }): Promise<void> {
  const chainDir = resolveChainDir(a.logPath);
  const logDir = path.join(chainDir, 'log');
  if (!(await fsp.access(logDir).then(() => true, () => false))) throw new UserError(`no chain at ${chainDir}`);
  let r: RepairResult;
  try {
    r = await repairLog(logDir);
  } catch (e) {
    const err = e as Error;
    if (err.name === 'LogLockedError') throw new UserError(`the chain is in use (mounted?): ${err.message}`);
    throw e;
  }
  // Frames hold; now the chain: the first commit that fails validation, or that follows a gap no
  // compaction cut covers, is cut with everything after it (kept aside like a damaged frame).
  let invalid: { seq: number; reason: string; message: string } | null = null;
  const bad = await firstInvalidCommit(chainDir, logDir);
  if (bad) {
    const c = await cutLog(logDir, bad.pos);
    invalid = { seq: bad.seq, reason: bad.reason, message: bad.message };
    r = { ...c, unlisted: [...(r.unlisted ?? []), ...(c.unlisted ?? [])] };
  }
  if (r.truncatedAt) await fsp.rm(path.join(chainDir, 'index'), { recursive: true, force: true });
  const unlisted = r.unlisted?.length ? `; segment files the manifest does not name were moved aside: ${r.unlisted.join(', ')}` : '';
  out(a.json, { chain: chainDir, ...r, ...(invalid ? { invalid } : {}) },
    r.truncatedAt
      ? `${chainDir}: truncated at segment ${r.truncatedAt.segment} offset ${r.truncatedAt.offset}` +
        (invalid ? ` (commit seq ${invalid.seq}: ${invalid.reason}: ${invalid.message})` : '') +
        `; damaged part kept in ${r.movedAside}; the index is rebuilt on the next mount` +
        ' (if commits this user had seen were cut, the mount refuses it until --accept-rollback)' + unlisted
      : `${chainDir}: no damage found, nothing changed${unlisted}`);
}

/** The first record of the log that fails validation (src/chain) or follows an uncovered gap; null when none. */
async function firstInvalidCommit(chainDir: string, logDir: string): Promise<{ seq: number; pos: LogPosition; reason: string; message: string } | null> {
  const pin = (await findPin(defaultConfigDir(), chainDir)).hash ?? null;
  const log = await openLog({ dir: logDir, chainId: LOCAL_CHAIN_ID, readOnly: true });
  try {
    // A tail whose sign-off a crash lost is the writer's own durable data, not damage: vouched
    // for by its MAC (src/chain/deferred.ts), it is kept.
    const report = await verifyChain(log, { pinnedGenesis: pin, pool: defaultPool(), ...(await ownDeferredCheck()) });
    let first: { seq: number; pos: LogPosition; reason: string; message: string } | null = report.problems[0] ?? null;
    const gap = log.chain.problem;
    if (gap && (!first || gap.seq < first.seq)) {
      for (const rec of log.records({ seq: gap.seq })) {
        first = { seq: rec.seq, pos: rec.pos, reason: 'gap', message: gap.message };
        break;
      }
    }
    return first;
  } finally {
    await log.close();
  }
}
