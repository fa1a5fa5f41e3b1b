// An exactly-once work queue on a chain through atedb: jobs are DAOs under the queue's root; a
// worker takes a job under a lease (the server's: held by the worker's connection, dropped when
// it dies, expiring after its TTL when it hangs) and, in one transaction, deletes the job and
// stores its result under a key derived from the job's number. A worker that lost its lease gives
// the job up; the transaction re-reads the job, so even a worker that missed that notice cannot
// record a job twice.
//   node examples/work-queue.mjs [tcp://host:port/chain] [--jobs 12] [--workers 3] [--ms 200]
//        enqueue, run the workers as processes of their own, report (a throw-away atedb without a URL)
//   node examples/work-queue.mjs URL --enqueue N [--ms 200]    only enqueue N jobs
//   node examples/work-queue.mjs URL --worker [--ttl 2000]     work until the queue is empty
//   node examples/work-queue.mjs URL --report                  who did which job; exactly once?
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Disconnected, LeaseNotOwner, NotFound } from 'atefs';
import { chainUrl, openReplica, option, sleep } from './lib/remote.mjs';

const has = (flag) => process.argv.includes(`--${flag}`);
const server = await chainUrl('examples/work-queue');
const chain = await openReplica(server.url);
const root = chain.namedKey('work-queue');
const log = (line) => process.stdout.write(`${line}\n`);

async function enqueue(count, ms) {
  await chain.transact((tx) => {
    const q = tx.tryLoad(root)?.value ?? { enqueued: 0 };
    tx.store({ enqueued: q.enqueued + count }, { key: root, type: 'work-queue' }); // the parent first
    for (let i = 0; i < count; i++) {
      tx.store({ n: q.enqueued + i + 1, ms }, { parent: root, collection: 'jobs', type: 'job' });
    }
  }, { scope: 'remote' });
  log(`enqueued ${count} jobs`);
}

/** One worker: until no job is left, take one under a lease, do it, complete it in one transaction. */
async function work(ttl) {
  const me = process.pid;
  let count = 0;
  for (;;) {
    const tx = chain.begin();
    const jobs = chain.tryLoad(root) ? tx.childKeys(root, 'jobs') : [];
    tx.cancel();
    if (jobs.length === 0) break;
    let key = null;
    // Start at a random job so that workers do not all queue up on the first one.
    const start = Math.floor(Math.random() * jobs.length);
    for (let i = 0; i < jobs.length && !key; i++) {
      const k = jobs[(start + i) % jobs.length];
      if (await chain.leases.tryAcquire(k, ttl)) key = k;
    }
    if (!key) {
      await sleep(100); // every job is someone's: look again (a lease ends with its holder or its TTL)
      continue;
    }
    // The lease reply came after every commit the server had confirmed before granting it: a job
    // completed meanwhile is already gone here.
    const job = chain.tryLoad(key);
    if (!job) {
      await chain.leases.release(key).catch(() => undefined);
      continue;
    }
    const { n, ms } = job.value;
    log(`worker ${me} took job ${n}`);
    let lost = null;
    const t0 = Date.now();
    let renewed = t0;
    try {
      while (Date.now() - t0 < ms) {
        await sleep(Math.min(50, ms));
        if (Date.now() - renewed > ttl / 3) {
          await chain.leases.renew(key, ttl);
          renewed = Date.now();
        }
      }
      await chain.leases.renew(key, ttl); // still ours at the end of the work?
    } catch (e) {
      if (!(e instanceof LeaseNotOwner || e instanceof Disconnected)) throw e;
      lost = e;
    }
    if (lost) {
      log(`worker ${me} lost job ${n} (${lost.name})`);
      continue;
    }
    try {
      await chain.transact((t) => {
        t.load(key); // NotFound: someone else completed it
        const resultKey = t.keyOf(root, `job-${n}`, 'done');
        if (t.exists(resultKey)) throw new NotFound(resultKey);
        t.delete(key);
        t.store({ n, by: me, result: n * n }, { key: resultKey, parent: root, collection: 'done', type: 'result' });
      }, { scope: 'remote' });
      count++;
      log(`worker ${me} done job ${n}`);
    } catch (e) {
      if (!(e instanceof NotFound)) throw e;
      log(`worker ${me} lost job ${n} (completed by another worker)`);
    }
    await chain.leases.release(key).catch(() => undefined);
  }
  log(`worker ${me} exits after ${count} jobs`);
}

function report() {
  const q = chain.tryLoad(root)?.value ?? { enqueued: 0 };
  const tx = chain.begin();
  const results = tx.children(root, 'done').sort((a, b) => a.value.n - b.value.n);
  const left = tx.childKeys(root, 'jobs').length;
  tx.cancel();
  for (const r of results) log(`job ${r.value.n} done by ${r.value.by} (result ${r.value.result}, version ${r.version})`);
  const once = results.length === q.enqueued && left === 0 && results.every((r, i) => r.value.n === i + 1 && r.version === 1);
  log(once ? `${q.enqueued} jobs, each done exactly once` : `NOT EXACTLY ONCE: ${results.length} results of ${q.enqueued} jobs, ${left} left`);
  if (!once) process.exitCode = 1;
}

try {
  if (has('enqueue')) await enqueue(Number(option('enqueue', '12')), Number(option('ms', '200')));
  else if (has('worker')) await work(Number(option('ttl', '2000')));
  else if (has('report')) report();
  else {
    await enqueue(Number(option('jobs', '12')), Number(option('ms', '200')));
    const self = fileURLToPath(import.meta.url);
    const workers = Array.from({ length: Number(option('workers', '3')) }, () => {
      const p = spawn(process.execPath, [self, server.url, '--worker', '--ttl', option('ttl', '2000')], { stdio: ['ignore', 'inherit', 'inherit'] });
      return new Promise((resolve) => p.once('exit', resolve));
    });
    await Promise.all(workers);
    report();
  }
} finally {
  await chain.close();
  await server.stop();
}
