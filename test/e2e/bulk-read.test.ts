// Large reads of committed blocks are read and decrypted on worker threads (the kernel transport's
// workers even write the reply themselves; fuse-native's reads wait for blocks fetched ahead). They
// must return exactly what was written, and a block changed on disk behind the daemon's back must
// fail the read with EIO — never hand out other bytes — without taking the daemon down.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { decodeHeader } from '../../src/log/format.js';
import { availableTransports, mountForTest, sh, shOk, unmountAll, type TestMount } from './harness.js';

afterAll(async () => { await unmountAll(); });

const MiB = 1 << 20;

/** Flips bytes in the middle of the largest commit record of the log and fixes its frame checksum. */
/**
 * Changes three payload bytes (frame CRC recomputed) in every commit record of 4 MiB or more — the
 * file blocks' commits — so that whichever of them a read takes from disk, not from a cache, fails
 * its AEAD check. (Only the largest one, as before, was sometimes a block the daemon still had
 * decrypted in its cache.)
 */
function tamperLargeRecords(logDir: string): number {
  let n = 0;
  for (const name of readdirSync(logDir).filter((f) => f.endsWith('.seg'))) {
    const file = join(logDir, name);
    const b = readFileSync(file);
    const h = decodeHeader(b);
    if (typeof h === 'string') throw new Error(`${file}: ${h}`);
    for (let off = h.headerLen; off + 16 <= b.length;) {
      const len = b.readUInt32LE(off + 4);
      if (len >= 4 * MiB && off + 16 + len <= b.length) {
        // Three bytes 1000 apart: at least one lands inside a block's sealed payload.
        for (const d of [0, 1000, 2000]) b[off + 16 + Math.floor(len / 2) + d] ^= 0x5a;
        b.writeUInt32LE(crc32(b.subarray(off + 4, off + 16 + len)), off);
        n++;
      }
      off += 16 + len;
    }
    writeFileSync(file, b);
  }
  if (n === 0) throw new Error('no large commit record to tamper with');
  return n;
}

describe.each(availableTransports())('bulk reads through a %s mount', (transport) => {
  let chain: string;
  let src: string;
  const mountChain = (extra: string[] = []): Promise<TestMount> =>
    mountForTest({ transport, temp: false, extraArgs: ['--log-path', chain, ...extra] });

  beforeAll(async () => {
    chain = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-bulk-'));
    src = join(chain, '..', `${chain.split('/').pop()}-src.bin`);
    await shOk(`head -c ${64 * MiB} /dev/urandom > ${src}`);
  });
  afterAll(async () => {
    await fsp.rm(chain, { recursive: true, force: true });
    await fsp.rm(src, { force: true });
  });
  afterEach(async () => { await unmountAll(); });

  it('a 64 MiB file reads back exactly after a remount (large reads served off the main thread)', async () => {
    let m = await mountChain();
    await shOk(`dd if=${src} of=${m.dir}/big bs=1M conv=fsync status=none`);
    await m.unmount();
    const stats = join(chain, '..', `${chain.split('/').pop()}-stats.json`);
    m = await mountChain(['--stats-file', stats]);
    await shOk('sync; echo 3 > /proc/sys/vm/drop_caches');
    await shOk(`dd if=${m.dir}/big of=/dev/null bs=1M status=none && cmp ${m.dir}/big ${src}`);
    // Small reads at odd offsets (served in the daemon) agree too.
    await shOk(`cmp <(dd if=${m.dir}/big bs=4096 skip=1234 count=7 status=none) <(dd if=${src} bs=4096 skip=1234 count=7 status=none)`);
    await m.unmount();
    if (transport === 'kernel') {
      const c = JSON.parse(readFileSync(stats, 'utf8')).counters as Record<string, number>;
      expect(c.bulkReads).toBeGreaterThan(32);
      expect(c.bulkFallbacks).toBe(0);
    }
    await fsp.rm(stats, { force: true });
  }, 300_000);

  it('a block changed on disk while mounted fails its read with EIO, and the daemon keeps serving', async () => {
    // A chain of its own: its large records are the two files' block commits.
    const own = await fsp.mkdtemp(join(tmpdir(), 'atefs-e2e-bulk-t-'));
    // The tampered read is logged as an error on purpose.
    const m = await mountForTest({ transport, temp: false, extraArgs: ['--log-path', own], expectErrors: true });
    await shOk(`dd if=${src} of=${m.dir}/victim bs=1M conv=fsync status=none && echo ok > ${m.dir}/small`);
    // 64 MiB: more than the daemon's decrypted-block cache, so the tampered block comes from disk.
    await shOk(`dd if=${src} of=${m.dir}/evict bs=1M conv=fsync status=none && cat ${m.dir}/evict > /dev/null`);
    const logDir = join(own, 'log');
    expect(statSync(logDir).isDirectory()).toBe(true);
    expect(tamperLargeRecords(logDir)).toBeGreaterThanOrEqual(2);
    await shOk('sync; echo 3 > /proc/sys/vm/drop_caches');
    const r = await sh(`cat ${m.dir}/victim ${m.dir}/evict | cmp - <(cat ${src} ${src})`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Input\/output error/);
    expect((await shOk(`cat ${m.dir}/small`)).trim()).toBe('ok');
    await m.unmount();
    await fsp.rm(own, { recursive: true, force: true });
  }, 300_000);
});
