// Request/reply over a chain through atedb (the original's API framework): a caller stores a
// request DAO; a handler process on the other side follows the chain, and answers each request
// with a reply DAO (a child of the request, with reply-to naming it); the caller awaits the reply
// with a timeout, which surfaces as a TimeoutError.
//   node examples/rpc.mjs [tcp://host:port/chain] [--timeout 1000]
//        starts the handler as a process of its own, makes a few calls, stops the handler
//        (a throw-away atedb without a URL)
//   node examples/rpc.mjs URL --serve                         only the handler
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TimeoutError } from 'atefs';
import { chainUrl, openReplica, option, sleep } from './lib/remote.mjs';

const server = await chainUrl('examples/rpc');
const chain = await openReplica(server.url);

const methods = {
  add: (a, b) => a + b,
  upper: (s) => s.toUpperCase(),
  divide: (a, b) => {
    if (b === 0) throw new Error('division by zero');
    return a / b;
  },
  sleep: async (ms) => {
    await sleep(ms);
    return `slept ${ms} ms`;
  },
};

/** The handler: answers every request committed from now on, each as it comes (concurrently). */
async function serve() {
  const requests = chain.changes({ type: 'request' });
  let stopping = false;
  process.once('SIGTERM', () => {
    stopping = true;
    void requests.return();
  });
  console.log(`handler ${process.pid} ready`);
  for await (const notice of requests) {
    for (const c of notice.changes) {
      if (c.deleted || c.version !== 1) continue;
      const { method, args } = chain.load(c.key).value;
      void (async () => {
        let answer;
        try {
          if (!Object.hasOwn(methods, method)) throw new Error(`no method '${method}'`);
          answer = { result: await methods[method](...args) };
        } catch (e) {
          answer = { error: e.message };
        }
        if (stopping) return;
        await chain.transact((tx) => {
          tx.store(answer, { parent: c.key, collection: 'replies', replyTo: c.key, type: 'reply' });
        }, { scope: 'remote' });
      })();
    }
  }
}

/** One call: the request DAO, then its reply (a child of it) within `timeoutMs`, else TimeoutError. */
async function call(method, args, timeoutMs) {
  const tx = chain.begin();
  const request = tx.store({ method, args }, { type: 'request' });
  // Subscribed before the request is committed: the reply cannot slip past.
  const replies = chain.changes({ parent: request, type: 'reply' });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${method}(${args.join(', ')})`, timeoutMs)), timeoutMs);
  });
  try {
    await tx.commit({ scope: 'remote' });
    const reply = (async () => {
      for await (const notice of replies) {
        const c = notice.changes.find((x) => !x.deleted);
        if (c) return chain.load(c.key).value;
      }
      throw new Error('the subscription ended');
    })();
    const answer = await Promise.race([reply, timeout]);
    if (answer.error !== undefined) throw new Error(answer.error);
    return answer.result;
  } finally {
    clearTimeout(timer);
    await replies.return();
  }
}

try {
  if (process.argv.includes('--serve')) await serve();
  else {
    const handler = spawn(process.execPath, [fileURLToPath(import.meta.url), server.url, '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const gone = new Promise((r) => handler.once('exit', r));
    await new Promise((resolve, reject) => {
      handler.stdout.on('data', (d) => { if (/ready/.test(d)) resolve(); });
      handler.once('exit', () => reject(new Error('the handler exited before it was ready')));
    });
    const timeoutMs = Number(option('timeout', '1000'));
    const show = async (method, args) => {
      const label = `${method}(${args.map((a) => JSON.stringify(a)).join(', ')})`;
      try {
        console.log(`${label} = ${JSON.stringify(await call(method, args, timeoutMs))}`);
      } catch (e) {
        if (e instanceof TimeoutError) console.log(`${label}: no reply within ${e.ms} ms (TimeoutError)`);
        else console.log(`${label}: failed: ${e.message}`);
      }
    };
    await show('add', [2, 3]);
    await show('upper', ['hello']);
    await show('divide', [1, 0]);
    await show('sleep', [timeoutMs * 3]);
    await show('add', [40, 2]);
    handler.kill('SIGTERM'); // by its PID
    await gone;
  }
} finally {
  await chain.close();
  await server.stop();
}
// A stopped handler does not wait for the calls it still runs (their replies would go nowhere).
if (process.argv.includes('--serve')) process.exit(0);
