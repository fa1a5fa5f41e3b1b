// node dist/scripts/bench/verify-batcher.js — the server's verify batcher alone, no network: 64
// loops each verify a commit through the batcher, wait for a group-committed 3 ms "fdatasync"
// (one timer covers everyone waiting when it starts, as the log's group commit does), then go on.
// Alternates the batcher answering a turn's commits as one verifyMany (group = all) with groups of
// VERIFY_GROUP, and prints commits/s beside the pool's verify rate measured right after each run.
import * as os from 'node:os';
import { CommitBuilder, DataKeyCache, MemoryAuthorityState, checkAgainstState, createGenesis, signersOf, verifySignatures } from '../../src/chain/index.js';
import { CryptoPool, randomBytes } from '../../src/crypto/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { VERIFY_GROUP, VerifyBatcher } from '../../server/verify-batcher.js';

const CLIENTS = 64;
const PER_CLIENT = Number(process.env.BENCH_PER_CLIENT ?? 12);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const FSYNC_MS = 3;

const pool = new CryptoPool({ size: 2 });
const session = Session.of(createIdentity('bench'));
const keys = new DataKeyCache(session);
const g = await createGenesis({ name: 'bench/batcher', keyring: session, chainReaders: session.chainReaders(), keys, pool });
const state = new MemoryAuthorityState();
state.applyEffects(checkAgainstState(state, g, signersOf(g)));
const commits = await Promise.all(Array.from({ length: CLIENTS * PER_CLIENT }, () => {
  const b = new CommitBuilder({ state, keyring: session, keys, pool });
  b.put({ payload: randomBytes(64) });
  return b.build();
}));

let waiting: Array<() => void> = [];
let syncing = false;
function fsync(): Promise<void> {
  return new Promise((r) => {
    waiting.push(r);
    if (!syncing) startSync();
  });
}
function startSync(): void {
  syncing = true;
  const covered = waiting;
  waiting = [];
  setTimeout(() => {
    for (const r of covered) r();
    if (waiting.length) startSync();
    else syncing = false;
  }, FSYNC_MS);
}

console.log(`verify batcher — node ${process.version}, ${os.availableParallelism()} cores, load average ${os.loadavg()[0]!.toFixed(1)}; ${CLIENTS} loops x ${PER_CLIENT} commits, ${FSYNC_MS} ms group-committed fdatasync`);
for (let rep = 0; rep < REPS; rep++) {
  for (const group of [Number.POSITIVE_INFINITY, VERIFY_GROUP]) {
    const batcher = new VerifyBatcher(pool, 256, group);
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CLIENTS }, async (_, k) => {
      for (let i = 0; i < PER_CLIENT; i++) {
        await batcher.verify(commits[k * PER_CLIENT + i]!);
        await fsync();
      }
    }));
    const rate = commits.length / ((performance.now() - t0) / 1000);
    const t1 = performance.now();
    await verifySignatures(commits.slice(0, 256), pool);
    const ceiling = 256 / ((performance.now() - t1) / 1000);
    console.log(`groups of ${String(group === Number.POSITIVE_INFINITY ? 'all' : group).padStart(3)}: ${Math.round(rate).toLocaleString('en-US').padStart(6)} commits/s; verify rate right after ${Math.round(ceiling).toLocaleString('en-US')}/s`);
  }
}
await pool.close();
