// What the atedb examples share: the chain URL from the command line (or a throw-away `atedb solo`
// started for the run when none is given), and opening a replica in a directory of its own (each
// openChain keeps a local replica; two in one process, or two processes, must not share one).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openChain } from 'atefs';

const ATEDB = fileURLToPath(new URL('../../dist/cli/atedb.js', import.meta.url));

/** The tcp:// URL given on the command line, else one on a fresh `atedb solo` (stopped by stop()). */
export async function chainUrl(defaultName) {
  const given = process.argv.slice(2).find((a) => a.startsWith('tcp://'));
  if (given) return { url: given, stop: async () => {} };
  const dataDir = await mkdtemp(join(tmpdir(), 'ate-example-atedb-'));
  const proc = spawn(process.execPath, [ATEDB, 'solo', '--data-dir', dataDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const port = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening: [\d.]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`atedb solo exited (${code}) before listening`)));
  });
  return {
    url: `tcp://127.0.0.1:${port}/${defaultName}`,
    stop: async () => {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await gone;
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** openChain on a tcp:// URL with a replica directory of its own, removed on close(). */
export async function openReplica(url, opts = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'ate-example-replica-'));
  const chain = await openChain(url, { ...opts, dir });
  const close = chain.close.bind(chain);
  chain.close = async () => {
    await close();
    // (retries: a head save of the replica may still be landing as it closes)
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  return chain;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The value of `--name value` on the command line, or `dflt`. */
export function option(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
