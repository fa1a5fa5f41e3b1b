// node dist/scripts/bench/nats-election.js [TRIALS] — the reference for bench:cluster's failover:
// how long Debian's nats-server itself takes to elect a new stream leader after the old one is
// SIGKILLed, with no atedb involved (a 3-node loopback cluster, one R3 stream; the time from the
// kill until a survivor logs "new stream leader"). The killed node is restarted between trials.
// Every process is started here and stopped by PID.
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsCluster } from './lib/nats-cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TRIALS = Number(process.argv[2] ?? 6);

async function streamLeader(cluster: NatsCluster, create: boolean): Promise<string> {
  for (let i = 0; ; i++) {
    try {
      const nc = await connect({ servers: cluster.servers });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2000 });
        if (create) await jsm.streams.add({ name: 'PROBE', subjects: ['probe.>'], num_replicas: 3 });
        const leader = (await jsm.streams.info('PROBE')).cluster?.leader;
        if (leader) return leader;
      } finally {
        await nc.close();
      }
    } catch (e) {
      if (i > 60) throw e;
    }
    await sleep(250);
  }
}

async function main(): Promise<void> {
  const cluster = await NatsCluster.start({ size: 3 });
  const times: number[] = [];
  try {
    await streamLeader(cluster, true);
    for (let trial = 0; trial < TRIALS; trial++) {
      const leader = await streamLeader(cluster, false);
      const victim = cluster.node(leader);
      const survivors = cluster.nodes.filter((n) => n !== victim);
      const elected = cluster.whenLogged(survivors, /new stream leader for '[^']*PROBE'/, 30_000);
      const t0 = performance.now();
      await cluster.kill(victim, 'SIGKILL');
      const t = await elected;
      times.push(t - t0);
      console.log(`trial ${trial + 1}: ${leader} SIGKILLed, new stream leader after ${(t - t0).toFixed(0)} ms`);
      await cluster.startNode(victim);
      await sleep(3000);
    }
  } finally {
    await cluster.destroy();
  }
  times.sort((a, b) => a - b);
  console.log(`nats-server stream-leader election after SIGKILL, ${times.length} trials: min ${times[0]!.toFixed(0)} median ${times[Math.floor(times.length / 2)]!.toFixed(0)} max ${times[times.length - 1]!.toFixed(0)} ms`);
}

main().catch((e: Error) => {
  console.error(`nats-election failed: ${e.stack ?? e.message}`);
  process.exitCode = 1;
});
