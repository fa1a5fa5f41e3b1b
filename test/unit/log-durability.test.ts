import { afterAll, afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openLog, type Durability } from '../../src/log/index.js';
import { FRAME_HEADER, segmentName } from '../../src/log/format.js';
import { IoTrace } from '../log-io-trace.js';

// Durability made observable: every fdatasync of the log goes through a traced LogIo (the log's
// I/O seam), and each acknowledgement is marked in the same ordered trace. A log that skipped
// fdatasync, or resolved durable appends when the sync started rather than when it returned,
// passes every crash test (the page cache survives a SIGKILL) but fails these.

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'log-durability-'));
let n = 0;
const freshDir = () => path.join(root, `c${n++}`);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let uninstall: (() => void) | null = null;
afterEach(() => { uninstall?.(); uninstall = null; });
const traced = (delayMs = 0) => {
  const t = new IoTrace();
  t.syncDelayMs = delayMs;
  uninstall = t.install();
  return t;
};

/** Marks the acknowledgement of an append in the trace, with the file and end of its frame. */
const ack = (t: IoTrace, dir: string, label: string, len: number) => (r: { seq: number; pos: { segment: number; offset: number } }) => {
  t.mark(label, { file: path.join(dir, segmentName(r.pos.segment)), end: r.pos.offset + FRAME_HEADER + len });
  return r;
};

describe('redo log durability (traced fdatasync)', () => {
  it('a durable append is acknowledged only after an fdatasync covering its bytes returned', async () => {
    const t = traced(25); // a slow disk: an ack that does not wait lands visibly before the sync ends
    const dir = freshDir();
    const log = await openLog({ dir, chainId: 'acme/durable', segmentSize: 8192 });
    const sizes: number[] = [];
    // Sequential ones, concurrent ones (group commit) and ones crossing segment rotations.
    for (let i = 0; i < 10; i++) {
      const p = Buffer.alloc(100 + i * 37, i);
      sizes.push(p.length);
      await log.append(p, 'durable').then(ack(t, dir, `durable ${i}`, p.length));
    }
    await Promise.all(Array.from({ length: 60 }, (_, i) => {
      const p = Buffer.alloc(300 + i, i);
      return log.append(p, 'durable').then(ack(t, dir, `concurrent ${i}`, p.length));
    }));
    // 'none' appends become durable with the flush that follows them.
    const lazy = await Promise.all(Array.from({ length: 5 }, (_, i) => log.append(Buffer.alloc(50, i), 'none')));
    await log.flush('durable');
    for (const r of lazy) ack(t, dir, `flushed ${r.seq}`, 50)(r);

    const marks = t.events.map((e, i) => ({ e, i })).filter(({ e }) => e.kind === 'mark');
    expect(marks.length).toBe(75);
    expect(t.syncEnds().length).toBeGreaterThan(0);
    for (const { e, i } of marks) {
      if (e.kind !== 'mark') continue;
      const covering = t.firstSyncCovering(e.file!, e.end!);
      expect(covering, `${e.label}: no fdatasync of ${e.file} covering byte ${e.end}`).toBeGreaterThanOrEqual(0);
      expect(covering, `${e.label}: acknowledged before its fdatasync returned`).toBeLessThan(i);
    }
    await log.close();
  });

  it('a local append waits for no fdatasync; a later durable one does', async () => {
    const t = traced(25);
    const dir = freshDir();
    const log = await openLog({ dir, chainId: 'acme/durable' });
    const before = t.syncEnds().length;
    const l = await log.append(Buffer.from('local'), 'local' as Durability);
    ack(t, dir, 'local', 5)(l);
    // Written to the OS (a reader sees it), no sync needed.
    const i = t.events.length - 1;
    expect(t.events.slice(0, i).some((e) => e.kind === 'write')).toBe(true);
    expect(t.syncEnds().length).toBe(before);
    const d = await log.append(Buffer.from('durable'), 'durable');
    ack(t, dir, 'durable', 7)(d);
    const j = t.events.length - 1;
    const covering = t.firstSyncCovering(path.join(dir, segmentName(d.pos.segment)), d.pos.offset + FRAME_HEADER + 7);
    expect(covering).toBeGreaterThan(i);
    expect(covering).toBeLessThan(j);
    await log.close();
  });

  it('200 concurrent durable appends share far fewer than 200 fdatasyncs, and every one is covered', async () => {
    const t = traced(5);
    const dir = freshDir();
    const log = await openLog({ dir, chainId: 'acme/durable' });
    const startsBefore = t.events.filter((e) => e.kind === 'sync-start').length;
    const res = await Promise.all(Array.from({ length: 200 }, (_, i) =>
      log.append(Buffer.from(`r${i}`), 'durable').then(ack(t, dir, `r${i}`, `r${i}`.length))));
    expect(res.map((r) => r.seq)).toEqual(res.map((_, i) => i + 1));
    const syncs = t.events.filter((e) => e.kind === 'sync-start').length - startsBefore;
    expect(syncs).toBeGreaterThanOrEqual(1);
    expect(syncs).toBeLessThanOrEqual(10);
    for (const [i, e] of t.events.entries()) {
      if (e.kind !== 'mark') continue;
      const covering = t.firstSyncCovering(e.file!, e.end!);
      expect(covering).toBeGreaterThanOrEqual(0);
      expect(covering).toBeLessThan(i);
    }
    await log.close();
  });
});
