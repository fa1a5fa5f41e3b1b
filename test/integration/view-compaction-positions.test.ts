// Index positions after compactions that ran next to writers, and the skip rule of automatic
// compactions (a log with little to reclaim is not rewritten).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogPosition, RedoLog } from '../../src/log/index.js';
import type { View } from '../../src/view/index.js';
import { type Chain, makeChain, segFile, snapshot, rebuildFromLog } from '../unit/view-fixtures.js';

const chains: Chain[] = [];
async function chain(opts: { segmentSize?: number } = {}): Promise<Chain> {
  const c = await makeChain(opts);
  chains.push(c);
  return c;
}
afterEach(async () => {
  for (const c of chains.splice(0)) await c.cleanup();
});


/** Every record the index names resolves, at its indexed position, to that very record. */
function expectIndexResolves(c: Chain, view: View): number {
  let n = 0;
  for (const [seq, r] of view.store.allRecords()) {
    expect(existsSync(segFile(c, r.segment)), `segment ${r.segment} of record ${seq}`).toBe(true);
    const rec = view.log.read({ segment: r.segment, offset: r.offset });
    expect(rec.seq).toBe(seq);
    expect(view.log.readSlice({ segment: r.segment, offset: r.offset }, 0, 16).equals(rec.payload.subarray(0, 16))).toBe(true);
    n++;
  }
  return n;
}

/** Runs `during` after the compaction took its cut and before the log rotates its active segment. */
function beforeLogCompact(log: RedoLog, during: () => Promise<void>): void {
  const orig = log.compact.bind(log);
  log.compact = async (keep, opts) => {
    log.compact = orig;
    await during();
    return orig(keep, opts);
  };
}

/** Name, size and SHA-256 of every file of the log directory. */
function logFiles(c: Chain): string[] {
  return readdirSync(c.logDir)
    .sort()
    .map((f) => `${f} ${createHash('sha256').update(readFileSync(join(c.logDir, f))).digest('hex')}`);
}

describe('view: compaction next to writers', () => {
  it('commits appended after the cut but before the rotation keep valid index positions', async () => {
    const c = await chain();
    let view = await c.open();
    const d = view.begin();
    const ks = Array.from({ length: 6 }, (_, i) => d.store(Buffer.alloc(2048, i)));
    await d.commit();
    for (let r = 0; r < 8; r++) {
      const t = view.begin();
      for (const k of ks) t.store(Buffer.alloc(2048, 100 + r), { key: k });
      await t.commit();
    }
    const cut = view.watermark.seq;
    const during: Array<{ seq: number; pos: LogPosition }> = [];
    const written: string[] = [];
    beforeLogCompact(view.log, async () => {
      for (let i = 0; i < 5; i++) {
        const t = view.begin();
        written.push(t.store(Buffer.from(`during ${i}`)));
        t.store(Buffer.alloc(2048, 200 + i), { key: ks[i]! });
        const res = await t.commit();
        const r = view.store.getRecord(res.seq)!;
        during.push({ seq: res.seq, pos: { segment: r.segment, offset: r.offset } });
      }
    });
    const rep = await view.compact();
    expect(rep.skipped).toBeNull();
    expect(during).toHaveLength(5);
    for (const { seq, pos } of during) {
      expect(seq).toBeGreaterThan(cut);
      // The scenario: these records sat in the segment the log rotated away and were copied.
      expect(view.store.getRecord(seq)!.segment).not.toBe(pos.segment);
      expect(existsSync(segFile(c, pos.segment))).toBe(false);
    }
    expect(expectIndexResolves(c, view)).toBe(rep.recordsKept);
    for (let i = 0; i < 5; i++) expect(view.get(written[i]!).data!.toString()).toBe(`during ${i}`);
    const after = snapshot(view);

    view = await c.open();
    expect(view.openReport.mode).toBe('tail');
    expectIndexResolves(c, view);
    expect(snapshot(view)).toEqual(after);
    // Writes after the compaction land in the live tail and resolve too.
    const t = view.begin();
    t.store(Buffer.from('later'), { key: ks[0]! });
    await t.commit();
    expectIndexResolves(c, view);
  });
});

describe('view: automatic compaction skips logs with little to reclaim', () => {
  const auto = { compaction: { mode: 'factor' as const, factor: 0.4, minBytes: 0 } };

  it('a log that grew by live data only is not rewritten by the factor trigger', async () => {
    const c = await chain();
    const view = await c.open(auto);
    const d = view.begin();
    for (let i = 0; i < 8; i++) d.store(Buffer.alloc(8192, i));
    await d.commit();
    // The first commit grew the log from the genesis alone: that trigger (if any) found nothing dead.
    if (view.compacting) expect((await view.compacting).skipped).not.toBeNull();
    // Grow by new files only: every byte stays live.
    let rounds = 0;
    while (!view.compacting) {
      expect(++rounds).toBeLessThan(20);
      const t = view.begin();
      for (let i = 0; i < 4; i++) t.store(Buffer.alloc(8192, 16 + rounds));
      await t.commit();
    }
    const files = logFiles(c);
    const rep = await view.compacting;
    expect(rep.reason).toBe('factor');
    expect(rep.skipped).toMatch(/reclaimable/);
    expect(rep.bytesAfter).toBe(rep.bytesBefore);
    expect(rep.recordsKept).toBe(rep.recordsBefore);
    expect(logFiles(c)).toEqual(files);
    expect(view.stats().lastCompaction).toBe(rep);
    // The baseline moved: the next small commit does not try again.
    const t = view.begin();
    t.store(Buffer.alloc(100, 1));
    await t.commit();
    expect(view.compacting).toBeNull();
    // A manual compaction is never skipped, even when asked for while an automatic one runs.
    while (!view.compacting) {
      expect(++rounds).toBeLessThan(40);
      const g = view.begin();
      for (let i = 0; i < 4; i++) g.store(Buffer.alloc(8192, 64 + rounds));
      await g.commit();
    }
    const automatic = view.compacting;
    const manual = await view.compact('manual');
    expect((await automatic).skipped).not.toBeNull();
    expect(manual.reason).toBe('manual');
    expect(manual.skipped).toBeNull();
    expect(logFiles(c)).not.toEqual(files);
    expectIndexResolves(c, view);
  });

  it('a log of mostly superseded versions is compacted by the factor trigger', async () => {
    const c = await chain();
    const view = await c.open(auto);
    const d = view.begin();
    const ks = Array.from({ length: 8 }, (_, i) => d.store(Buffer.alloc(8192, i)));
    await d.commit();
    if (view.compacting) expect((await view.compacting).skipped).not.toBeNull();
    let rounds = 0;
    while (!view.compacting) {
      expect(++rounds).toBeLessThan(20);
      const t = view.begin();
      for (const k of ks) t.store(Buffer.alloc(8192, 16 + rounds), { key: k });
      await t.commit();
    }
    const files = logFiles(c);
    const before = snapshot(view);
    const rep = await view.compacting;
    expect(rep.reason).toBe('factor');
    expect(rep.skipped).toBeNull();
    expect(rep.recordsKept).toBe(2); // genesis + the last overwrite
    expect(rep.bytesAfter).toBeLessThan(rep.bytesBefore * 0.6);
    expect(logFiles(c)).not.toEqual(files);
    expect(snapshot(view)).toEqual(before);
    expectIndexResolves(c, view);
  });
});

describe('view: compaction of some segments', () => {
  it('compacts only the segments asked for, leaves the others byte for byte, and the view, its reopen and a rebuild agree', async () => {
    // Segments of ~one commit each.
    const c = await chain({ segmentSize: 20_000 });
    let view = await c.open();
    const d = view.begin();
    const ks = Array.from({ length: 8 }, (_, i) => d.store(Buffer.alloc(2048, i)));
    await d.commit();
    for (let r = 0; r < 12; r++) {
      const t = view.begin();
      // Every round rewrites most keys: older segments hold mostly superseded versions.
      for (const [i, k] of ks.entries()) if ((i + r) % 4 !== 0) t.store(Buffer.alloc(2048, 16 + r), { key: k });
      await t.commit();
    }
    const list = view.log.segmentList!();
    expect(list.length).toBeGreaterThan(6);
    const sealed = list.filter((s) => !s.active);
    // Compact every other sealed segment: retained ones hold versions whose predecessors go.
    const victims = new Set(sealed.filter((_, i) => i % 2 === 0).map((s) => s.id));
    const kept = sealed.filter((s) => !victims.has(s.id));
    const hashOf = (id: number) => createHash('sha256').update(readFileSync(segFile(c, id))).digest('hex');
    const keptHashes = kept.map((s) => hashOf(s.id));
    const before = snapshot(view);
    const rep = await view.compact('space', { segments: victims });
    expect(rep.skipped).toBeNull();
    expect(rep.bytesAfter).toBeLessThan(rep.bytesBefore);
    for (const id of victims) expect(existsSync(segFile(c, id))).toBe(false);
    expect(kept.map((s) => hashOf(s.id))).toEqual(keptHashes);
    // Every record of a retained segment is still indexed there.
    for (const s of kept) for (let q = s.firstSeq; q <= s.lastSeq; q++) expect(view.store.getRecord(q)?.segment).toBe(s.id);
    expect(snapshot(view)).toEqual(before);
    expectIndexResolves(c, view);

    view = await c.open();
    expect(view.openReport.mode).toBe('tail');
    expect(snapshot(view)).toEqual(before);
    // Rebuilt from the log alone (gap mode across created and retained segments): the same view.
    view = await rebuildFromLog(c);
    expect(view.openReport.mode).not.toBe('tail');
    expect(snapshot(view)).toEqual(before);
    expectIndexResolves(c, view);
    // And a whole compaction afterwards still converges.
    const again = await view.compact('manual');
    expect(again.skipped).toBeNull();
    expect(snapshot(view)).toEqual(before);
  });
});
