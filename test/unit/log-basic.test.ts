import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  LogHeaderMismatch,
  LogLockedError,
  RecordTooLarge,
  openLog,
  type Durability,
  type LogRecord,
} from '../../src/log/index.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'log-basic-'));
let n = 0;
const freshDir = () => path.join(root, `c${n++}`);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const all = (it: Iterable<LogRecord>) => [...it].map((r) => ({ seq: r.seq, payload: Buffer.from(r.payload) }));

for (const mode of ['file', 'memory'] as const) {
  const opts = (extra: Record<string, unknown> = {}) =>
    mode === 'memory' ? { memory: true, dir: freshDir(), chainId: 'acme/docs', ...extra } : { dir: freshDir(), chainId: 'acme/docs', ...extra };

  describe(`redo log basics (${mode})`, () => {
    it('appends with every durability, reads by position, iterates in order, reopens', async () => {
      const o = opts({ segmentSize: 4096 });
      const log = await openLog(o);
      expect(log.nextSeq).toBe(1);
      expect(log.lastPos).toBeNull();
      const written: Buffer[] = [];
      const acks: Array<{ seq: number; pos: { segment: number; offset: number } }> = [];
      const modes: Durability[] = ['none', 'local', 'durable'];
      for (let i = 0; i < 300; i++) {
        const p = randomBytes(Math.floor(Math.random() * 300));
        written.push(p);
        acks.push(await log.append(p, modes[i % 3]));
      }
      expect(acks.map((a) => a.seq)).toEqual(written.map((_, i) => i + 1));
      expect(new Set(acks.map((a) => a.pos.segment)).size).toBeGreaterThan(3); // rotated
      for (let i = 0; i < written.length; i += 7) {
        const r = log.read(acks[i]!.pos);
        expect(r.seq).toBe(i + 1);
        expect(r.payload.equals(written[i]!)).toBe(true);
      }
      expect(all(log.records())).toEqual(written.map((payload, i) => ({ seq: i + 1, payload })));
      for (let i = 0; i < written.length; i += 13) {
        const p = written[i]!;
        const start = Math.floor(p.length / 3);
        expect(log.readSlice(acks[i]!.pos, start, p.length - start).equals(p.subarray(start))).toBe(true);
        expect(() => log.readSlice(acks[i]!.pos, start, p.length - start + 1)).toThrow(/outside the record/);
      }
      expect(all(log.records({ seq: 150 })).map((r) => r.seq)).toEqual(written.slice(149).map((_, i) => i + 150));
      expect(all(log.records({ pos: acks[200]!.pos }))[0]!.seq).toBe(201);
      expect(log.lastPos).toEqual(acks[299]!.pos);
      await log.close();
      const again = await openLog(o);
      expect(again.recovery).toEqual({ truncatedBytes: 0, records: 300 });
      expect(again.nextSeq).toBe(301);
      expect(again.lastPos).toEqual(acks[299]!.pos);
      expect(all(again.records())).toEqual(written.map((payload, i) => ({ seq: i + 1, payload })));
      await again.close();
    });

    it('concurrent durable appends all land in order (their shared fdatasyncs: log-durability.test.ts)', async () => {
      const log = await openLog(opts());
      const res = await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(Buffer.from(`r${i}`), 'durable')));
      expect(res.map((r) => r.seq)).toEqual(res.map((_, i) => i + 1));
      const batch = await log.appendBatch([Buffer.from('a'), Buffer.from('b')], 'local');
      expect(batch.map((b) => b.seq)).toEqual([201, 202]);
      expect(log.read(batch[1]!.pos).payload.toString()).toBe('b');
      await log.close();
    });

    it('refuses too-large records, a second writer, and a foreign chain', async () => {
      const o = opts({ maxRecordSize: 100 });
      const log = await openLog(o);
      await expect(log.append(Buffer.alloc(101))).rejects.toBeInstanceOf(RecordTooLarge);
      await expect(log.append(Buffer.alloc(101))).rejects.toMatchObject({ name: 'RecordTooLarge' });
      await log.append(Buffer.alloc(100));
      await expect(openLog(o)).rejects.toBeInstanceOf(LogLockedError);
      await log.close();
      await expect(openLog({ ...o, chainId: 'other' })).rejects.toBeInstanceOf(LogHeaderMismatch);
      const g = randomBytes(32);
      const o2 = opts({ genesisHash: g });
      await (await openLog(o2)).close();
      await expect(openLog({ ...o2, genesisHash: randomBytes(32) })).rejects.toMatchObject({ name: 'LogHeaderMismatch' });
      const ok = await openLog(o2);
      await ok.close();
    });

    it('follow() yields existing records, then records appended after it started', async () => {
      const log = await openLog(opts({ segmentSize: 2048 }));
      await log.append(Buffer.from('old'), 'local');
      const ac = new AbortController();
      const seen: string[] = [];
      const done = (async () => {
        for await (const r of log.follow({ seq: 1 }, ac.signal)) {
          seen.push(r.payload.toString());
          if (seen.length === 60) ac.abort();
        }
      })();
      for (let i = 0; i < 59; i++) {
        await log.append(Buffer.from(`new${i}`.padEnd(100, '.')), i % 2 ? 'none' : 'durable');
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));
      }
      await log.flush('local');
      await done;
      expect(seen[0]).toBe('old');
      expect(seen.slice(1).map((s) => s.replace(/\.+$/, ''))).toEqual(Array.from({ length: 59 }, (_, i) => `new${i}`));
      await log.close();
    });

    it('compacts to a selection, keeps seqs, appends keep working', async () => {
      const o = opts({ segmentSize: 4096 });
      const log = await openLog(o);
      for (let i = 1; i <= 200; i++) await log.append(Buffer.from(`v${i}`.padEnd(50, '-')), 'none');
      let pending: Promise<unknown> | undefined;
      const r = await log.compact((rec) => {
        // An append that arrives while compaction copies: must survive the switch.
        if (rec.seq === 100) pending = log.append(Buffer.from('during'), 'local');
        return rec.seq % 2 === 0;
      });
      await pending;
      expect(r.bytesAfter).toBeLessThan(r.bytesBefore);
      const seqs = [...log.records()].map((x) => x.seq);
      expect(seqs).toEqual([...Array.from({ length: 100 }, (_, i) => 2 * (i + 1)), 201]);
      for (const [seq, pos] of r.positions) expect(log.read(pos).seq).toBe(seq);
      const next = await log.append(Buffer.from('after'));
      expect(next.seq).toBe(log.nextSeq - 1);
      await log.close();
      const again = await openLog(o);
      expect([...again.records()].map((x) => x.seq)).toEqual([...seqs, next.seq]);
      await again.compact(() => false);
      expect([...again.records()]).toEqual([]);
      const s = again.nextSeq;
      await again.close();
      const third = await openLog(o);
      expect(third.nextSeq).toBe(s);
      await third.close();
    });
  });
}
