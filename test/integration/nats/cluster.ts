// The 3-node loopback nats-server cluster of the JetStream tests. It lives with the benchmarks
// (scripts/bench/lib/nats-cluster.ts) because `npm run bench:cluster` starts the same cluster from dist/.
export * from '../../../scripts/bench/lib/nats-cluster.js';
