// The zero runway (src/log/runway.ts): durable appends of a file-backed log overwrite zeros written
// ahead of them, so their fdatasync need not grow the file; the zeros are never taken for frames,
// a torn tail or damage, and sealed or closed segments end at their last frame.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openLog, repairLog } from '../../src/log/index.js';
import { LOCK, segmentName } from '../../src/log/format.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'log-runway-'));
let n = 0;
const freshDir = () => path.join(root, `c${n++}`);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const chainId = 'runway/test';
const seg = (dir: string, id = 1) => path.join(dir, segmentName(id));

describe('zero runway', () => {
  it('durable appends write into zeros laid ahead of them; close cuts the runway; a copy taken while open reads back whole, with no torn tail', async () => {
    const dir = freshDir();
    const log = await openLog({ dir, chainId });
    const payloads: Buffer[] = [];
    const sizes: number[] = [];
    for (let i = 0; i < 300; i++) {
      const p = randomBytes(4096);
      payloads.push(p);
      await log.append(p, 'durable');
      sizes.push(fs.statSync(seg(dir)).size);
    }
    const logical = log.sizeBytes();
    // The file is ahead of the frames, and grew only a few times (once per runway), not per append.
    expect(sizes.at(-1)!).toBeGreaterThan(logical);
    expect(new Set(sizes).size).toBeLessThan(10);
    // A crash now (the files as they are): the zeros are the end, not damage.
    const copy = freshDir();
    fs.cpSync(dir, copy, { recursive: true });
    fs.rmSync(path.join(copy, LOCK)); // held by this (live) process: the crashed writer's is stale
    const reopened = await openLog({ dir: copy, chainId });
    expect(reopened.recovery.truncatedBytes).toBe(0);
    expect([...reopened.records()].map((r) => Buffer.from(r.payload))).toEqual(payloads);
    expect(fs.statSync(seg(copy)).size, 'a writable open cuts the zeros').toBe(reopened.sizeBytes());
    await reopened.append(Buffer.from('after the crash'), 'durable');
    await reopened.close();
    // A read-only reader of the running log sees the same records and cuts nothing.
    const ro = await openLog({ dir, chainId, readOnly: true });
    expect(ro.recovery.truncatedBytes).toBe(0);
    expect([...ro.records()].length).toBe(300);
    await ro.close();
    // repairLog finds no damage in it either.
    await log.close();
    expect(fs.statSync(seg(dir)).size, 'close cuts the runway').toBe(logical);
    const r = await repairLog(dir);
    expect(r.truncatedAt).toBeNull();
  });

  it('a sealed segment ends at its last frame (rotation cuts the runway); reopening reads every record', async () => {
    const dir = freshDir();
    const log = await openLog({ dir, chainId, segmentSize: 256 << 10 });
    const payloads: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const p = randomBytes(3000);
      payloads.push(p);
      await log.append(p, i % 3 === 0 ? 'durable' : 'local');
    }
    const ids = fs.readdirSync(dir).filter((f) => /^\d+\.seg$/.test(f)).sort();
    expect(ids.length).toBeGreaterThan(2);
    // Every sealed segment: no zeros after its frames (a reopen would refuse trailing bytes there).
    await log.close();
    const again = await openLog({ dir, chainId });
    expect(again.recovery.truncatedBytes).toBe(0);
    expect([...again.records()].map((x) => Buffer.from(x.payload))).toEqual(payloads);
    await again.close();
  });

  it('off for logs kept in memory and when asked (zeroRunway: false)', async () => {
    const dir = freshDir();
    const log = await openLog({ dir, chainId, zeroRunway: false });
    for (let i = 0; i < 20; i++) await log.append(randomBytes(4096), 'durable');
    expect(fs.statSync(seg(dir)).size).toBe(log.sizeBytes());
    await log.close();
  });
});
