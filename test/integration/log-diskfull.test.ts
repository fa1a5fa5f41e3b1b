// Disk full on a real 2 MiB tmpfs: appends fail with DiskFull, nothing partial stays behind,
// the log is readable meanwhile and appendable again once space returns.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DiskFull, openLog } from '../../src/log/index.js';

const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'log-diskfull-'));
let mounted = false;
beforeAll(() => {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { encoding: 'utf8' });
  mounted = r.status === 0;
  if (!mounted) console.warn(`tmpfs mount failed (need root): ${r.stderr}`);
});
afterAll(() => {
  if (mounted && spawnSync('umount', [mnt]).status !== 0) spawnSync('umount', ['-l', mnt]);
  fs.rmSync(mnt, { recursive: true, force: true });
});

const chainId = 'full/test';

describe('disk full', () => {
  it('durable, local and buffered appends fail with DiskFull; the log stays readable and recovers when space returns', async (ctx) => {
    if (!mounted) ctx.skip();
    const dir = path.join(mnt, 'chain');
    const filler = path.join(mnt, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(1200 << 10));
    const log = await openLog({ dir, chainId, segmentSize: 128 << 10 });
    const acked: Array<{ seq: number; payload: Buffer }> = [];
    let err: unknown = null;
    for (let i = 0; i < 1000 && !err; i++) {
      const payload = randomBytes(4096);
      try {
        const r = await log.append(payload, i % 2 ? 'durable' : 'local');
        acked.push({ seq: r.seq, payload });
      } catch (e) {
        err = e;
      }
    }
    expect(err).toBeInstanceOf(DiskFull);
    expect((err as Error).name).toBe('DiskFull');
    expect(acked.length).toBeGreaterThan(50);
    // still full: a concurrent group fails as a whole, a buffered batch fails at flush
    const group = await Promise.allSettled(Array.from({ length: 8 }, () => log.append(randomBytes(4096), 'durable')));
    expect(group.every((g) => g.status === 'rejected' && (g.reason as Error).name === 'DiskFull')).toBe(true);
    for (let i = 0; i < 400; i++) await log.append(randomBytes(4096), 'none').catch(() => undefined);
    await expect(log.flush('local')).rejects.toMatchObject({ name: 'DiskFull' });
    // readable meanwhile, and nothing but acknowledged records in it
    expect([...log.records()].map((r) => r.seq)).toEqual(acked.map((a) => a.seq));
    expect(log.nextSeq).toBe(acked.length + 1);
    // space returns
    fs.rmSync(filler);
    for (let i = 0; i < 20; i++) {
      const payload = randomBytes(4096);
      const r = await log.append(payload, 'durable');
      expect(r.seq).toBe(acked.length + 1);
      acked.push({ seq: r.seq, payload });
    }
    await log.close();
    const again = await openLog({ dir, chainId });
    expect(again.recovery.truncatedBytes).toBe(0);
    const recs = [...again.records()].map((r) => ({ seq: r.seq, payload: Buffer.from(r.payload) }));
    expect(recs).toEqual(acked);
    await again.close();
  });

  it('opening a new log on a full disk fails with DiskFull and leaves nothing half-made', async (ctx) => {
    if (!mounted) ctx.skip();
    const filler = path.join(mnt, 'filler2');
    const fd = fs.openSync(filler, 'w');
    try {
      const chunk = Buffer.alloc(64 << 10);
      for (;;) fs.writeSync(fd, chunk);
    } catch {
      /* full */
    } finally {
      fs.closeSync(fd);
    }
    const dir = path.join(mnt, 'fresh');
    await expect(openLog({ dir, chainId })).rejects.toMatchObject({ name: 'DiskFull' });
    fs.rmSync(filler);
    const log = await openLog({ dir, chainId });
    expect((await log.append(Buffer.from('x'))).seq).toBe(1);
    await log.close();
  });
});
