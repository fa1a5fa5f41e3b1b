// An event bus on one chain through atedb: publishers append events, subscribers follow the chain.
// Every publisher and subscriber is its own connection with its own replica; the server orders
// the commits once, so every subscriber sees every event, in the same order.
//   node examples/event-bus.mjs [tcp://host:port/chain] [--publishers 3] [--subscribers 3] [--events 10]
// Without a URL a throw-away atedb solo is started for the run.
import { createHash } from 'node:crypto';
import { chainUrl, openReplica, option } from './lib/remote.mjs';

const P = Number(option('publishers', '3'));
const S = Number(option('subscribers', '3'));
const E = Number(option('events', '10'));
const server = await chainUrl('examples/event-bus');
const subscribers = [];
const publishers = [];
try {
  for (let i = 0; i < S; i++) subscribers.push(await openReplica(server.url));
  for (let i = 0; i < P; i++) publishers.push(await openReplica(server.url));
  const total = P * E;
  // Subscribe before anything is published: changes() yields every commit applied from now on.
  const received = subscribers.map(async (chain) => {
    const seen = [];
    for await (const notice of chain.changes({ type: 'event' })) {
      for (const c of notice.changes) if (!c.deleted) seen.push(chain.load(c.key).value);
      if (seen.length >= total) break;
    }
    return seen;
  });
  // Publishers publish concurrently; each event is one signed commit.
  await Promise.all(publishers.map(async (chain, p) => {
    for (let n = 0; n < E; n++) {
      const tx = chain.begin();
      tx.store({ from: `publisher-${p + 1}`, n, at: Date.now() }, { type: 'event' });
      await tx.commit({ scope: 'remote' });
    }
  }));
  const timeout = setTimeout(() => { console.error('subscribers did not receive every event within 30 s'); process.exit(1); }, 30_000);
  const seen = await Promise.all(received);
  clearTimeout(timeout);
  const orders = seen.map((events) => events.map((e) => `${e.from}#${e.n}`).join(','));
  seen.forEach((events, i) => {
    const digest = createHash('sha256').update(orders[i]).digest('hex').slice(0, 16);
    console.log(`subscriber ${i + 1}: ${events.length} events, order ${digest}, first ${events[0].from}#${events[0].n}, last ${events.at(-1).from}#${events.at(-1).n}`);
  });
  // Each publisher's own events arrive in the order it published them.
  const inOrder = seen[0].length === total && publishers.every((_, p) => {
    const ns = seen[0].filter((e) => e.from === `publisher-${p + 1}`).map((e) => e.n);
    return ns.length === E && ns.every((n, i) => n === i);
  });
  if (orders.every((o) => o === orders[0]) && inOrder) console.log(`all ${S} subscribers saw all ${total} events from ${P} publishers in the same order`);
  else {
    console.log('MISMATCH: subscribers disagree on the events or their order');
    process.exitCode = 1;
  }
} finally {
  for (const c of [...subscribers, ...publishers]) await c.close();
  await server.stop();
}
