import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { availableTransports, sh, shOk, type TestMount } from './harness.js';
import { mountOnLog, remountAndCompare, type LogMount } from './remount.js';

/** Big directories, parallel writers and a sparse 1 GiB file, through a real mount. */

describe.each(availableTransports())('bulk workloads through a %s mount', (transport) => {
  let m: TestMount;
  let shm: string;
  let lm: LogMount | undefined;
  beforeAll(async () => {
    lm = await mountOnLog({ transport });
    m = lm.m;
    shm = await fsp.mkdtemp('/dev/shm/atefs-e2e-bulk-');
  });
  afterAll(async () => {
    await remountAndCompare(lm);
    if (shm) await fsp.rm(shm, { recursive: true, force: true });
  }, 300_000);

  it('readdir of 10,000 entries returns each name exactly once', async () => {
    const d = join(m.dir, 'big-dir');
    await shOk(`mkdir ${d} && cd ${d} && seq -f 'entry-%05g' 0 9999 | xargs touch && mkdir sub-a sub-b`, { timeout: 300_000 });
    const names = await fsp.readdir(d);
    expect(names.length).toBe(10_002);
    expect(new Set(names).size).toBe(10_002);
    const want = Array.from({ length: 10_000 }, (_, i) => `entry-${String(i).padStart(5, '0')}`).concat(['sub-a', 'sub-b']).sort();
    expect([...names].sort()).toEqual(want);
    // ls -f includes . and ..; find -type f counts regular files (d_type from readdir).
    expect((await shOk(`ls -f ${d} | wc -l`)).trim()).toBe('10004');
    expect((await shOk(`find ${d} -mindepth 1 -maxdepth 1 -type f | wc -l`)).trim()).toBe('10000');
    expect((await fsp.stat(d)).nlink).toBe(4);
    await shOk(`rm -rf ${d}`, { timeout: 300_000 });
    expect(await fsp.readdir(m.dir)).not.toContain('big-dir');
  }, 300_000);

  it('concurrent writers on different files each get their own bytes', async () => {
    const srcs = [0, 1, 2, 3].map((i) => join(shm, `src-${i}`));
    await shOk(srcs.map((s, i) => `head -c ${(6 + i) * 1024 * 1024 + 12345} /dev/urandom > ${s}`).join(' && '));
    const dsts = srcs.map((_, i) => join(m.dir, `parallel-${i}`));
    // Mixed write sizes: dd with 1 MiB blocks, cp, cat through a pipe, dd with odd 4,000-byte blocks.
    await shOk(
      `dd if=${srcs[0]} of=${dsts[0]} bs=1M status=none & cp ${srcs[1]} ${dsts[1]} & ` +
      `cat ${srcs[2]} | cat > ${dsts[2]} & dd if=${srcs[3]} of=${dsts[3]} bs=4000 status=none & wait`,
      { timeout: 300_000 },
    );
    const a = await shOk(`cd ${shm} && sha256sum src-0 src-1 src-2 src-3 | cut -d' ' -f1`);
    const b = await shOk(`cd ${m.dir} && sha256sum parallel-0 parallel-1 parallel-2 parallel-3 | cut -d' ' -f1`);
    expect(b).toBe(a);
  }, 300_000);

  it('concurrent O_APPEND writers on one file lose and tear no record', async () => {
    const f = join(m.dir, 'appended.log');
    const writers = 4;
    const lines = 400;
    // Each line is one write(2) of 59 bytes with O_APPEND (bash >>).
    const script = Array.from({ length: writers }, (_, w) =>
      `(for i in $(seq -w 1 ${lines}); do printf 'writer-${w} line-%s %s\\n' "$i" "${'x'.repeat(40)}" >> ${f}; done) &`).join(' ') + ' wait';
    await shOk(script, { timeout: 300_000 });
    const text = await fsp.readFile(f, 'utf8');
    const all = text.split('\n').filter(Boolean);
    expect(all.length).toBe(writers * lines);
    expect(text.length).toBe(writers * lines * 'writer-0 line-001 \n'.length + writers * lines * 40);
    for (let w = 0; w < writers; w++) {
      const mine = all.filter((l) => l.startsWith(`writer-${w} `));
      expect(mine.length).toBe(lines);
      // Each writer's records stay in its own order and intact.
      mine.forEach((l, i) => expect(l).toBe(`writer-${w} line-${String(i + 1).padStart(3, '0')} ${'x'.repeat(40)}`));
    }
  }, 300_000);

  it('a sparse 1 GiB file: small st_blocks, holes read as zeros, data at the end', async () => {
    const f = join(m.dir, 'sparse');
    const GiB = 1024 ** 3;
    await shOk(`printf 'HEAD' > ${f} && printf 'TAIL' | dd of=${f} bs=1 seek=${GiB - 4} conv=notrunc status=none`);
    const st = await fsp.stat(f);
    expect(st.size).toBe(GiB);
    expect(st.blocks).toBeLessThan(1024); // a couple of 64 KiB blocks at most, not 2 million sectors
    const fh = await fsp.open(f, 'r');
    try {
      const buf = Buffer.alloc(1024 * 1024);
      for (const off of [4096, 300 * 1024 * 1024, 700 * 1024 * 1024 + 123, GiB - buf.length - 4]) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, off);
        expect(bytesRead).toBe(buf.length);
        expect(buf.every((b) => b === 0)).toBe(true);
      }
      const head = Buffer.alloc(4);
      await fh.read(head, 0, 4, 0);
      expect(head.toString()).toBe('HEAD');
      const tail = Buffer.alloc(8);
      const { bytesRead } = await fh.read(tail, 0, 8, GiB - 4);
      expect(tail.subarray(0, bytesRead).toString()).toBe('TAIL');
    } finally {
      await fh.close();
    }
    // A write in the middle of the hole fills only its block.
    await shOk(`printf 'MID' | dd of=${f} bs=1 seek=${512 * 1024 * 1024} conv=notrunc status=none`);
    expect((await fsp.stat(f)).blocks).toBeLessThan(1024);
    expect((await sh(`dd if=${f} bs=1 skip=${512 * 1024 * 1024} count=3 status=none`)).stdout).toBe('MID');
    await fsp.unlink(f);
  }, 300_000);
});
