// `atefs verify tcp://host/chain`: a remote chain as its server holds it, checked on this machine.
// Every commit is downloaded into a throw-away replica — validated as it arrives, the server's
// signed heads checked against the history — and the replica is then verified like a local chain
// (every problem listed, not only the first). Nothing the server says about validity is trusted.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { verifyChain } from '../src/chain/index.js';
import { defaultPool } from '../src/crypto/index.js';
import { openLog } from '../src/log/index.js';
import { RemoteChain, parseRemoteUrl } from '../src/net/index.js';
import { defaultConfigDir, loadOrCreateLocalIdentity } from '../src/session/index.js';
import { out } from './chain-tools.js';
import { UserError } from './errors.js';

export async function runVerifyRemote(a: { url: string; serverKey?: string; json: boolean }): Promise<void> {
  let name: string;
  try {
    name = parseRemoteUrl(a.url).name;
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const session = (await loadOrCreateLocalIdentity(defaultConfigDir())).session;
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'atefs-verify-'));
  try {
    let genesis: Buffer | null;
    try {
      const rc = await RemoteChain.open({ url: a.url, session, dir: tmp, mode: 'readonly', create: false, pool: defaultPool(), ...(a.serverKey ? { serverKey: a.serverKey } : {}) });
      genesis = rc.genesisHash;
      await rc.close();
    } catch (e) {
      const err = e as Error;
      out(a.json, { chain: a.url, ok: false, problems: [{ reason: err.name, message: err.message }] }, `${a.url}: ${err.name}: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    const log = await openLog({ dir: path.join(tmp, 'replica'), chainId: name, readOnly: true });
    try {
      // The server's order: times may go backwards between writers, and none is in this machine's future.
      const r = await verifyChain(log, { pinnedGenesis: genesis, pool: defaultPool(), futureToleranceMs: Number.POSITIVE_INFINITY, backwardsToleranceMs: Number.POSITIVE_INFINITY });
      const ok = r.problems.length === 0;
      out(a.json, { chain: a.url, ok, ...r }, `${a.url}: ${r.records} commits, ${r.accepted} valid, ${r.events} events, ${r.problems.length} problem(s)`);
      if (!a.json) for (const p of r.problems) process.stdout.write(`  seq ${p.seq}: ${p.reason}: ${p.message}\n`);
      if (!ok) process.exitCode = 1;
    } finally {
      await log.close();
    }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}
