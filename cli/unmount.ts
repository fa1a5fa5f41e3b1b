import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { findMount, isFuse, unmountByPath } from '../fs/daemon/mounttab.js';
import { forgetMount, processAlive, readMountRecord } from '../fs/daemon/registry.js';
import { UserError } from './errors.js';

/**
 * `atefs unmount <dir>`: asks the daemon serving <dir> to shut down (it commits, then unmounts);
 * without a live daemon (killed, or a foreign FUSE mount) it unmounts by path, lazily if busy.
 */

const DAEMON_EXIT_MS = 60_000;

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function isAtefsDaemon(pid: number): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('atefs');
  } catch {
    return false;
  }
}

export async function runUnmount(a: { dir: string; json?: boolean }): Promise<void> {
  const abs = resolve(a.dir);
  const m = await findMount(abs);
  if (!m) throw new UserError(`${abs} is not mounted`);
  if (!isFuse(m)) throw new UserError(`${abs} is not a FUSE mount (${m.fstype}); not touching it`);
  const rec = await readMountRecord(abs);
  let how = 'unmounted by path';
  if (rec && processAlive(rec.pid) && (await isAtefsDaemon(rec.pid))) {
    process.kill(rec.pid, 'SIGTERM');
    const deadline = Date.now() + DAEMON_EXIT_MS;
    while (processAlive(rec.pid) && Date.now() < deadline) await sleep(100);
    how = processAlive(rec.pid) ? 'daemon still committing; unmounted by path' : 'daemon committed and exited';
  }
  if (await findMount(abs)) {
    if (!(await unmountByPath(abs))) throw new UserError(`could not unmount ${abs}`);
  }
  const after = rec ? await readMountRecord(abs) : undefined;
  if (after && after.pid === rec?.pid && after.exitError) {
    await forgetMount(abs, after.pid);
    throw new UserError(`${abs} is unmounted, but the daemon failed to shut down cleanly: ${after.exitError}`);
  }
  if (a.json) process.stdout.write(`${JSON.stringify({ event: 'unmounted', mountpoint: abs, how })}\n`);
  else process.stdout.write(`unmounted: ${abs}\n`);
}
