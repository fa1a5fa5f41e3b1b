// A replication client in its own process (so a test can SIGKILL it): node client-proc.mjs
//   <url> <replica dir> <config dir> <count> <wait: staged|confirmed|sync-all>
// Opens (creating the chain if needed), commits <count> values, prints one line per staged commit
// ("staged <hash>"), then either exits after everything is confirmed (sync-all) or waits to be killed.
import { RemoteChain } from '../../../dist/src/net/index.js';
import { loadOrCreateLocalIdentity } from '../../../dist/src/session/index.js';

const [url, dir, configDir, countArg, wait] = process.argv.slice(2);
const { session } = await loadOrCreateLocalIdentity(configDir);
const chain = await RemoteChain.open({
  url, session, dir, create: { openRoot: true }, knownHosts: `${configDir}/known_hosts`, backoff: { minMs: 50, maxMs: 300 },
});
const line = (s) => process.stdout.write(`${s}\n`);
line(`open ${chain.lastSeq} pending ${chain.pendingCount}`);
for (let i = 0; i < Number(countArg); i++) {
  const r = await chain.commit((b) => b.put({ payload: Buffer.from(`value ${i} of ${process.pid}`) }));
  line(`staged ${r.commit.hash.toString('hex')}`);
}
if (wait === 'sync-all') {
  while (chain.pendingCount > 0 || chain.status !== 'online') await new Promise((r) => setTimeout(r, 20));
  line(`done ${chain.lastSeq}`);
  await chain.close();
  process.exit(0);
}
line('waiting');
setInterval(() => {}, 1000);
