// Large records (commits of file blocks) are written on the threadpool while appends go on queueing
// behind them; rotations, reads of the tail and closes in between re-write them synchronously. Every
// acknowledged record must read back exactly — through read, readSlice and the file range other
// threads read — before and after a reopen, and a full disk must fail them cleanly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DiskFull, openLog, type RedoLog } from '../../src/log/index.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'log-large-'));
const full = path.join(tmp, 'full');
let mounted = false;
beforeAll(() => {
  fs.mkdirSync(full);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', full], { encoding: 'utf8' });
  mounted = r.status === 0;
});
afterAll(() => {
  if (mounted && spawnSync('umount', [full]).status !== 0) spawnSync('umount', ['-l', full]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const chainId = 'large/test';
type Acked = { seq: number; pos: { segment: number; offset: number }; payload: Buffer };

function checkAll(log: RedoLog, acked: Acked[]): void {
  for (const a of acked) {
    const r = log.read(a.pos);
    expect(r.seq).toBe(a.seq);
    expect(Buffer.from(r.payload).equals(a.payload)).toBe(true);
    const start = Math.floor(a.payload.length / 3);
    const n = Math.min(1000, a.payload.length - start);
    expect(log.readSlice(a.pos, start, n).equals(a.payload.subarray(start, start + n))).toBe(true);
    const at = log.fileRange!(a.pos, start, n)!;
    const b = Buffer.alloc(n);
    const fd = fs.openSync(at.path, 'r');
    try {
      fs.readSync(fd, b, 0, n, at.offset);
    } finally {
      fs.closeSync(fd);
    }
    expect(b.equals(a.payload.subarray(start, start + n))).toBe(true);
  }
}

describe('log: large records', () => {
  it('concurrent large and small appends across rotations read back exactly, before and after reopen', async () => {
    const dir = path.join(tmp, 'a');
    let log = await openLog({ dir, chainId, segmentSize: 3 << 20, maxRecordSize: 4 << 20 });
    const acked: Acked[] = [];
    for (let round = 0; round < 4; round++) {
      const batch = Array.from({ length: 10 }, (_, i) => randomBytes(i % 3 === 0 ? 300 : (600 << 10) + i * 1000));
      const res = await Promise.all(batch.map((p, i) => log.append(p, i % 2 ? 'durable' : 'local')));
      res.forEach((r, i) => acked.push({ seq: r.seq, pos: r.pos, payload: batch[i]! }));
      // The tail is readable while the next writes are queued and in flight.
      const more = randomBytes(800 << 10);
      const pending = log.append(more, 'local');
      checkAll(log, acked);
      const r = await pending;
      acked.push({ seq: r.seq, pos: r.pos, payload: more });
    }
    expect(acked.map((a) => a.seq)).toEqual(acked.map((_, i) => i + 1));
    checkAll(log, acked);
    await log.close();
    log = await openLog({ dir, chainId, maxRecordSize: 4 << 20 });
    expect(log.recovery.truncatedBytes).toBe(0);
    checkAll(log, acked);
    expect([...log.records()].map((r) => r.seq)).toEqual(acked.map((a) => a.seq));
    await log.close();
  });

  it('records appended as pieces read back as their concatenation, before and after reopen', async () => {
    const dir = path.join(tmp, 'parts');
    let log = await openLog({ dir, chainId, maxRecordSize: 4 << 20 });
    const acked: Acked[] = [];
    for (const sizes of [[10, 0, 700 << 10, 3], [1], [], [65536, 65536, 65536], [300 << 10, 300 << 10]]) {
      const parts = sizes.map((n) => randomBytes(n));
      const r = await log.appendParts!(parts, sizes.length % 2 ? 'durable' : 'local');
      acked.push({ seq: r.seq, pos: r.pos, payload: Buffer.concat(parts) });
    }
    checkAll(log, acked);
    await log.close();
    log = await openLog({ dir, chainId, maxRecordSize: 4 << 20 });
    expect(log.recovery.truncatedBytes).toBe(0);
    checkAll(log, acked);
    await log.close();
  });

  it('a durable flush right after large appends covers them; close waits for writes in flight', async () => {
    const dir = path.join(tmp, 'b');
    const log = await openLog({ dir, chainId, maxRecordSize: 4 << 20 });
    const payloads = Array.from({ length: 6 }, () => randomBytes(1 << 20));
    const acks = payloads.map((p) => log.append(p, 'none'));
    const none = await Promise.all(acks);
    const local = log.append(randomBytes(700 << 10), 'local');
    await log.flush('durable');
    await local;
    await log.close();
    const again = await openLog({ dir, chainId, maxRecordSize: 4 << 20 });
    none.forEach((r, i) => expect(Buffer.from(again.read(r.pos).payload).equals(payloads[i]!)).toBe(true));
    expect([...again.records()]).toHaveLength(7);
    await again.close();
  });

  it('a full disk fails large appends with DiskFull, keeps what was acknowledged, and recovers', async (ctx) => {
    if (!mounted) ctx.skip();
    const dir = path.join(full, 'c');
    const log = await openLog({ dir, chainId, maxRecordSize: 4 << 20 });
    const acked: Acked[] = [];
    let err: unknown = null;
    for (let i = 0; i < 40 && !err; i++) {
      const payload = randomBytes(700 << 10);
      try {
        const r = await log.append(payload, i % 2 ? 'durable' : 'local');
        acked.push({ seq: r.seq, pos: r.pos, payload });
      } catch (e) {
        err = e;
      }
    }
    expect(err).toBeInstanceOf(DiskFull);
    expect(acked.length).toBeGreaterThan(3);
    // A group of large appends queued behind a failing one fails as a whole.
    const group = await Promise.allSettled(Array.from({ length: 4 }, () => log.append(randomBytes(700 << 10), 'local')));
    expect(group.every((g) => g.status === 'rejected' && (g.reason as Error).name === 'DiskFull')).toBe(true);
    checkAll(log, acked);
    expect([...log.records()].map((r) => r.seq)).toEqual(acked.map((a) => a.seq));
    expect(log.nextSeq).toBe(acked.length + 1);
    await log.close();
    const again = await openLog({ dir, chainId, maxRecordSize: 4 << 20 });
    expect([...again.records()].map((r) => r.seq)).toEqual(acked.map((a) => a.seq));
    checkAll(again, acked);
    await again.close();
  });
});
