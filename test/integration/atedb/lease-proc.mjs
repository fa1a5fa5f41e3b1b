// A lease holder in its own process (so a test can SIGKILL it): node lease-proc.mjs <url> <replica
// dir> <key hex> <ttl ms>. Opens the chain (identity from $XDG_CONFIG_HOME), takes the lease,
// prints "held <owner> <expiresAt>" and waits to be killed.
import { openChain } from 'atefs';

const [url, dir, key, ttl] = process.argv.slice(2);
const chain = await openChain(url, { dir });
const lease = await chain.leases.acquire(key, Number(ttl));
process.stdout.write(`held ${lease.owner} ${lease.expiresAt}\n`);
setInterval(() => {}, 1000);
