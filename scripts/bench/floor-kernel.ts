#!/usr/bin/env node
/**
 * The kernel-transport floor: a trivial in-memory filesystem (lib/floor-core.ts) served by
 * fs/kernel's mountKernel with the options `atefs mount --temp --transport kernel` passes, so the
 * gap between it and atefs is atefs itself, not the transport. Root only (mount(2)).
 *
 *   node dist/scripts/bench/floor-kernel.js <mountpoint> [--stats-file F] [--cache-timeout S]
 *
 * Prints `mounted: <dir>` when ready; SIGUSR2 writes { counters } to the stats file; SIGTERM /
 * SIGINT unmount and exit. Its own process: the transport serves from the main thread.
 */
import { resolve } from 'node:path';
import { mountKernel } from '../../fs/kernel/index.js';
import { FloorCore } from './lib/floor-core.js';
import { writeCountersFile } from './lib/stats-file.js';

let dir = '';
let statsFile: string | undefined;
let cacheTimeout = 60; // what cli/mount-store.ts gives a temp/local store
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]!;
  if (a === '--stats-file') statsFile = resolve(argv[++i]!);
  else if (a === '--cache-timeout') cacheTimeout = Number(argv[++i]);
  else if (a.startsWith('--')) { process.stderr.write(`floor-kernel: unknown option ${a}\n`); process.exit(2); }
  else dir = resolve(a);
}
if (!dir) { process.stderr.write('usage: floor-kernel <mountpoint> [--stats-file F]\n'); process.exit(2); }

const core = new FloorCore(cacheTimeout);
// The same MountOptions cli/mount.ts hands to mountFilesystem for a temp store.
const handle = await mountKernel(core, dir, {
  transport: 'kernel', allowOther: false, readOnly: false, fsname: 'floor', debug: false,
  cacheTimeout, kernelCache: true,
} as Parameters<typeof mountKernel>[2]);

const dump = (): void => { if (statsFile) writeCountersFile(statsFile, { transport: 'kernel', pid: process.pid, counters: handle.counters() }); };
process.on('SIGUSR2', dump);
let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  handle.unmount().then(
    () => { dump(); process.exit(0); },
    (e: Error) => { process.stderr.write(`floor-kernel: unmount: ${e.message}\n`); process.exit(1); },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
void handle.ended.then((e) => { if (!stopping) { process.stderr.write(`floor-kernel: connection ended${e ? `: ${e.message}` : ''}\n`); dump(); process.exit(e ? 1 : 0); } });
process.stdout.write(`mounted: ${dir}\n`);
