import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LOCAL_CHAIN_ID, findPin, resolveChainDir } from '../fs/chain-store/index.js';
import { verifyChain } from '../src/chain/index.js';
import { defaultPool } from '../src/crypto/index.js';
import { openLog, repairLog } from '../src/log/index.js';
import { defaultConfigDir } from '../src/session/index.js';
import { UserError } from './errors.js';

/**
 * `atefs verify` and `atefs repair`: the chain's own integrity tools, on the local chain a mount
 * would serve (--log-path or the default). Neither may run while the chain is mounted: the log's
 * writer lock refuses them.
 */

function out(json: boolean, obj: Record<string, unknown>, line: string): void {
  process.stdout.write(json ? `${JSON.stringify(obj)}\n` : `${line}\n`);
}

/** Validates every commit (hash, signatures, authority, time) and lists all problems without stopping. */
export async function runVerify(a: { logPath?: string; json: boolean }): Promise<void> {
  const chainDir = resolveChainDir(a.logPath);
  const logDir = path.join(chainDir, 'log');
  if (!(await fsp.access(logDir).then(() => true, () => false))) throw new UserError(`no chain at ${chainDir}`);
  const pin = (await findPin(defaultConfigDir(), chainDir)).hash ?? null;
  let log;
  try {
    log = await openLog({ dir: logDir, chainId: LOCAL_CHAIN_ID, readOnly: true });
  } catch (e) {
    const err = e as Error;
    out(a.json, { chain: chainDir, ok: false, problems: [{ reason: err.name, message: err.message }] }, `${chainDir}: ${err.name}: ${err.message}`);
    process.exitCode = 1;
    return;
  }
  try {
    const r = await verifyChain(log, { pinnedGenesis: pin, pool: defaultPool() });
    const ok = r.problems.length === 0 && (pin === null || r.genesisHash === pin);
    out(a.json, { chain: chainDir, ok, pinned: pin !== null, ...r },
      `${chainDir}: ${r.records} commits, ${r.accepted} valid, ${r.events} events, ${r.problems.length} problem(s)` +
      (r.compacted ? ' (compacted: checked against the versions compaction kept)' : '') +
      (pin === null ? ' (no pinned genesis: trusted as found)' : ''));
    if (!a.json) for (const p of r.problems) process.stdout.write(`  seq ${p.seq} at segment ${p.pos.segment} offset ${p.pos.offset}: ${p.reason}: ${p.message}\n`);
    if (!ok) process.exitCode = 1;
  } finally {
    await log.close();
  }
}

/**
 * Truncates the log at its first damaged record after copying the damaged remainder aside, and
 * drops the index so the next mount rebuilds it from what remains. Nothing is deleted without a copy.
 */
export async function runRepair(a: { logPath?: string; json: boolean }): Promise<void> {
  const chainDir = resolveChainDir(a.logPath);
  const logDir = path.join(chainDir, 'log');
  if (!(await fsp.access(logDir).then(() => true, () => false))) throw new UserError(`no chain at ${chainDir}`);
  let r;
  try {
    r = await repairLog(logDir);
  } catch (e) {
    const err = e as Error;
    if (err.name === 'LogLockedError') throw new UserError(`the chain is in use (mounted?): ${err.message}`);
    throw e;
  }
  if (r.truncatedAt) await fsp.rm(path.join(chainDir, 'index'), { recursive: true, force: true });
  out(a.json, { chain: chainDir, ...r },
    r.truncatedAt
      ? `${chainDir}: truncated at segment ${r.truncatedAt.segment} offset ${r.truncatedAt.offset}; damaged part kept in ${r.movedAside}; the index is rebuilt on the next mount`
      : `${chainDir}: no damage found, nothing changed`);
}
