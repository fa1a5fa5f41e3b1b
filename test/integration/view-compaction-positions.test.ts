// Index positions after a compaction that ran next to writers.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogPosition, RedoLog } from '../../src/log/index.js';
import type { View } from '../../src/view/index.js';
import { type Chain, makeChain, snapshot } from '../unit/view-fixtures.js';

const chains: Chain[] = [];
async function chain(): Promise<Chain> {
  const c = await makeChain();
  chains.push(c);
  return c;
}
afterEach(async () => {
  for (const c of chains.splice(0)) await c.cleanup();
});

function segFile(c: Chain, segment: number): string {
  return join(c.logDir, `${String(segment).padStart(8, '0')}.seg`);
}

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
