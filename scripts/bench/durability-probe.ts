/**
 * The client side of bench:fs's durability workloads (lib/fs-durability.ts), run as its own process
 * so a hung mount blocks only this child (the bench kills it by its process group) and never the
 * bench's own threadpool. Prints one JSON line on stdout.
 *
 *   fsync <file> <n>
 *     n times: a 4 KiB pwrite of fresh random bytes at the next offset, then fsync; each iteration
 *     timed. Prints { latenciesMs, sha256 } (sha256 of what the file must now hold).
 *   rewrite <file> <fileBytes> <rewriteBytes> <pageBytes> <syncBytes> <progressFile>
 *     fills the file with random pages (fsync), then rewrites random pages with random bytes until
 *     rewriteBytes were written, with an fsync every syncBytes (a database's checkpoints). Keeps a
 *     copy in memory, so it knows what the file must hold. After every syncBytes it writes the
 *     bytes written so far to progressFile (on tmpfs) for the bench's space sampler.
 *     Every write and fsync of the rewrites is timed: what a writer waits for, the filesystem's
 *     compaction included. Prints { fillSeconds, rewriteSeconds, rewriteBytes, sha256,
 *     longestWriteMs, longestFsyncMs, fsyncMs (every fsync's time, in order), startedAt (epoch ms
 *     when the rewrites began), slowest (per wall-clock second since startedAt, the longest call
 *     that ended in it) }.
 *
 * Synchronous I/O on purpose: one request in flight at a time, like the database it stands for.
 */
import { openSync, writeSync, fsyncSync, closeSync, writeFileSync } from 'node:fs';
import { randomBytes, randomFillSync, randomInt, createHash } from 'node:crypto';

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

function fsyncProbe(file: string, n: number): void {
  const fd = openSync(file, 'w');
  const hash = createHash('sha256');
  const latenciesMs: number[] = [];
  const page = Buffer.alloc(4096);
  for (let i = 0; i < n; i++) {
    randomFillSync(page);
    hash.update(page);
    const t0 = now();
    writeSync(fd, page, 0, page.length, i * page.length);
    fsyncSync(fd);
    latenciesMs.push(now() - t0);
  }
  closeSync(fd);
  process.stdout.write(`${JSON.stringify({ latenciesMs, sha256: hash.digest('hex') })}\n`);
}

function rewriteProbe(file: string, fileBytes: number, rewriteBytes: number, pageBytes: number, syncBytes: number, progressFile: string): void {
  const pages = Math.floor(fileBytes / pageBytes);
  const mirror = randomBytes(pages * pageBytes);
  const fd = openSync(file, 'w');
  let written = 0;
  const progress = (): void => writeFileSync(progressFile, String(written));
  const t0 = now();
  for (let off = 0; off < mirror.length; off += syncBytes) {
    written += writeSync(fd, mirror, off, Math.min(syncBytes, mirror.length - off), off);
    fsyncSync(fd);
    progress();
  }
  const t1 = now();
  const startedAt = Date.now();
  let done = 0;
  let sinceSync = 0;
  let longestWriteMs = 0;
  let longestFsyncMs = 0;
  const fsyncMs: number[] = [];
  const slowest: number[] = [];
  // The longest call per wall-clock second: the bench lines it up with its space samples.
  const note = (endMs: number, ms: number): void => {
    const s = Math.floor((endMs - t1) / 1000);
    while (slowest.length <= s) slowest.push(0);
    if (ms > slowest[s]!) slowest[s] = ms;
  };
  const timedFsync = (): void => {
    const a = now();
    fsyncSync(fd);
    const b = now();
    fsyncMs.push(b - a);
    if (b - a > longestFsyncMs) longestFsyncMs = b - a;
    note(b, b - a);
  };
  while (done < rewriteBytes) {
    const p = randomInt(pages);
    const page = mirror.subarray(p * pageBytes, (p + 1) * pageBytes);
    randomFillSync(page);
    const a = now();
    writeSync(fd, page, 0, pageBytes, p * pageBytes);
    const b = now();
    if (b - a > longestWriteMs) longestWriteMs = b - a;
    note(b, b - a);
    done += pageBytes; written += pageBytes; sinceSync += pageBytes;
    if (sinceSync >= syncBytes) { timedFsync(); sinceSync = 0; progress(); }
  }
  timedFsync();
  progress();
  const t2 = now();
  closeSync(fd);
  const sha256 = createHash('sha256').update(mirror).digest('hex');
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  process.stdout.write(`${JSON.stringify({
    fillSeconds: (t1 - t0) / 1000, rewriteSeconds: (t2 - t1) / 1000, rewriteBytes: done, sha256,
    longestWriteMs: r3(longestWriteMs), longestFsyncMs: r3(longestFsyncMs), fsyncMs: fsyncMs.map(r3), startedAt, slowest: slowest.map(r3),
  })}\n`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'fsync' && args.length === 2) fsyncProbe(args[0]!, Number(args[1]));
else if (mode === 'rewrite' && args.length === 6) {
  const [file, fileBytes, rewriteBytes, pageBytes, syncBytes, progressFile] = args as [string, string, string, string, string, string];
  rewriteProbe(file, Number(fileBytes), Number(rewriteBytes), Number(pageBytes), Number(syncBytes), progressFile);
} else {
  process.stderr.write('usage: durability-probe fsync <file> <n> | rewrite <file> <fileBytes> <rewriteBytes> <pageBytes> <syncBytes> <progressFile>\n');
  process.exit(2);
}
