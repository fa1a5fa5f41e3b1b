// Torn tails, bit flips and damage in the middle, on real files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { LogCorruptError, openLog, repairLog, type LogPosition } from '../../src/log/index.js';
import { segmentName } from '../../src/log/format.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'log-recovery-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const chainId = 'recovery/test';

interface Built {
  dir: string;
  payloads: Buffer[];
  acks: Array<{ seq: number; pos: LogPosition }>;
}

async function build(name: string, count: number, segmentSize = 64 << 20, smallTail = 0): Promise<Built> {
  const dir = path.join(root, name);
  const log = await openLog({ dir, chainId, segmentSize });
  const payloads = Array.from({ length: count }, (_, i) => randomBytes(randomInt(0, i >= count - smallTail ? 60 : 400)));
  const acks = await log.appendBatch(payloads, 'durable');
  await log.close();
  return { dir, payloads, acks };
}

/** Copy of a built log with `mutate` applied to one segment file. */
let copies = 0;
function damaged(b: Built, segment: number, mutate: (bytes: Buffer) => Buffer): string {
  const dir = path.join(root, `copy${copies++}`);
  fs.cpSync(b.dir, dir, { recursive: true });
  const f = path.join(dir, segmentName(segment));
  fs.writeFileSync(f, mutate(fs.readFileSync(f)));
  return dir;
}

async function contents(dir: string) {
  const log = await openLog({ dir, chainId });
  const recs = [...log.records()].map((r) => ({ seq: r.seq, payload: Buffer.from(r.payload) }));
  const rec = log.recovery;
  await log.close();
  return { recs, rec };
}
const prefix = (b: Built, n: number) => b.payloads.slice(0, n).map((payload, i) => ({ seq: i + 1, payload }));

describe('torn tail recovery', () => {
  let b: Built;
  let file: Buffer;
  beforeAll(async () => {
    b = await build('tail', 40, 64 << 20, 3);
    file = fs.readFileSync(path.join(b.dir, segmentName(1)));
  });

  it('truncating at every byte offset of the last records yields exactly the longest complete prefix', async () => {
    const firstCut = b.acks[36]!.pos.offset;
    const ends = b.acks.map((a, i) => a.pos.offset + 16 + b.payloads[i]!.length);
    const dir = path.join(root, 'cut');
    fs.cpSync(b.dir, dir, { recursive: true });
    const seg = path.join(dir, segmentName(1));
    let checked = 0;
    for (let cut = firstCut; cut <= file.length; cut++) {
      fs.writeFileSync(seg, file.subarray(0, cut));
      const complete = ends.filter((e) => e <= cut).length;
      const { recs, rec } = await contents(dir);
      expect(recs).toEqual(prefix(b, complete));
      expect(rec.records).toBe(complete);
      const goodEnd = complete > 0 ? ends[complete - 1]! : 0;
      // A remainder that happens to be all zeros (a frame header's first bytes can be) reads as a
      // runway (src/log/runway.ts): cut off like a torn tail, but not reported as one.
      const runway = cut > goodEnd && file.subarray(goodEnd, cut).every((x) => x === 0);
      expect(rec.truncatedBytes).toBe(runway ? 0 : cut - goodEnd);
      if (cut > goodEnd && !runway) expect(rec.truncatedAt).toEqual({ segment: 1, offset: goodEnd });
      // the repair happened on disk: the file ends at the last good frame now
      expect(fs.statSync(seg).size).toBe(goodEnd);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(3 * 16);
  });

  it('a flipped bit anywhere in the last frame loses only that frame', async () => {
    const last = b.acks[39]!.pos.offset;
    for (let i = 0; i < 60; i++) {
      const at = last + randomInt(0, file.length - last);
      const dir = damaged(b, 1, (x) => {
        x[at] ^= 1 << randomInt(0, 8);
        return x;
      });
      const { recs, rec } = await contents(dir);
      expect(recs).toEqual(prefix(b, 39));
      expect(rec.truncatedAt).toEqual({ segment: 1, offset: last });
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('garbage after the last frame is a torn tail; zeros are the end of the log (a runway, runway.ts), cut without a report', async () => {
    for (const tail of [randomBytes(3000), Buffer.concat([Buffer.alloc(5000), Buffer.from([1])]), Buffer.concat([randomBytes(7), Buffer.alloc(4000)])]) {
      const dir = damaged(b, 1, (x) => Buffer.concat([x, tail]));
      const { recs, rec } = await contents(dir);
      expect(recs).toEqual(prefix(b, 40));
      expect(rec.truncatedBytes).toBe(tail.length);
    }
    for (const tail of [Buffer.alloc(5000), Buffer.alloc(7), Buffer.alloc(1 << 20)]) {
      const dir = damaged(b, 1, (x) => Buffer.concat([x, tail]));
      const { recs, rec } = await contents(dir);
      expect(recs).toEqual(prefix(b, 40));
      expect(rec.truncatedBytes).toBe(0);
      expect(fs.statSync(path.join(dir, segmentName(1))).size, 'the zeros are cut off').toBe(file.length);
    }
  });

  it('read-only open reports a torn tail without truncating it', async () => {
    const dir = damaged(b, 1, (x) => x.subarray(0, x.length - 3));
    const log = await openLog({ dir, chainId, readOnly: true });
    expect(log.recovery.truncatedBytes).toBeGreaterThan(0);
    expect([...log.records()].length).toBe(39);
    await expect(log.append(Buffer.from('x'))).rejects.toThrow(/read-only/);
    await log.close();
    expect(fs.statSync(path.join(dir, segmentName(1))).size).toBe(file.length - 3);
  });
});

describe('damage in the middle', () => {
  let b: Built;
  beforeAll(async () => {
    b = await build('middle', 200, 8 << 10);
  });

  it('a flipped bit before the last frame stops the open, naming segment and offset; repair keeps the prefix and the rest aside', async () => {
    for (let round = 0; round < 30; round++) {
      // a record with valid records after it (in its segment or in later ones)
      const k = randomInt(0, 195);
      const { pos } = b.acks[k]!;
      const len = 16 + b.payloads[k]!.length;
      const at = pos.offset + randomInt(0, len);
      const bit = randomInt(0, 8);
      const dir = damaged(b, pos.segment, (x) => {
        x[at] ^= 1 << bit;
        return x;
      });
      const err = await openLog({ dir, chainId }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LogCorruptError);
      const ce = err as LogCorruptError;
      expect(ce.name).toBe('LogCorruptError');
      expect(ce.segment).toBe(pos.segment);
      expect(ce.offset).toBe(pos.offset);
      expect(ce.message).toContain(segmentName(pos.segment));
      expect(ce.message).toContain(String(pos.offset));
      const segBytes = fs.readFileSync(path.join(dir, segmentName(pos.segment)));
      const laterSegs = [...new Set(b.acks.map((a) => a.pos.segment))].filter((s) => s > pos.segment);
      const r = await repairLog(dir);
      expect(r.truncatedAt).toEqual(pos);
      expect(r.movedAside).not.toBeNull();
      expect(fs.readFileSync(r.movedAside!).equals(segBytes.subarray(pos.offset))).toBe(true);
      for (const s of laterSegs) {
        expect(fs.existsSync(path.join(dir, segmentName(s)))).toBe(false);
        expect(fs.readdirSync(dir).some((n) => n.startsWith(`${segmentName(s)}.damaged-`))).toBe(true);
      }
      const { recs, rec } = await contents(dir);
      expect(recs).toEqual(prefix(b, k));
      expect(rec.truncatedBytes).toBe(0);
      // and the repaired log is appendable, continuing the sequence
      const log = await openLog({ dir, chainId });
      expect((await log.append(Buffer.from('after repair'))).seq).toBe(k + 1);
      await log.close();
      expect(await repairLog(dir)).toEqual({ truncatedAt: null, movedAside: null });
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('damage before the last frame of the LAST segment is corruption too (valid frames follow it)', async () => {
    const one = await build('middle-one-segment', 30);
    for (let round = 0; round < 25; round++) {
      const k = randomInt(0, 29);
      const { pos } = one.acks[k]!;
      const at = pos.offset + randomInt(0, 16 + one.payloads[k]!.length);
      const bit = randomInt(0, 8);
      const dir = damaged(one, 1, (x) => {
        x[at] ^= 1 << bit;
        return x;
      });
      await expect(openLog({ dir, chainId })).rejects.toMatchObject({ name: 'LogCorruptError', segment: 1, offset: pos.offset });
      // the file was not touched by the failed open
      expect(fs.statSync(path.join(dir, segmentName(1))).size).toBe(fs.statSync(path.join(one.dir, segmentName(1))).size);
      const r = await repairLog(dir);
      expect(r.truncatedAt).toEqual(pos);
      expect((await contents(dir)).recs).toEqual(prefix(one, k));
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('a segment truncated before its end, followed by later segments, is corruption, not a torn tail', async () => {
    const seg1End = Math.max(...b.acks.filter((a) => a.pos.segment === 1).map((a) => a.pos.offset));
    const dir = damaged(b, 1, (x) => x.subarray(0, seg1End + 5));
    await expect(openLog({ dir, chainId })).rejects.toMatchObject({ name: 'LogCorruptError', segment: 1, offset: seg1End });
    const r = await repairLog(dir);
    expect(r.truncatedAt).toEqual({ segment: 1, offset: seg1End });
    const k = b.acks.findIndex((a) => a.pos.segment === 1 && a.pos.offset === seg1End);
    expect((await contents(dir)).recs).toEqual(prefix(b, k));
  });

  it('a damaged segment header and a damaged manifest are reported as corruption', async () => {
    const dir = damaged(b, 2, (x) => {
      x[20] ^= 4;
      return x;
    });
    await expect(openLog({ dir, chainId })).rejects.toMatchObject({ name: 'LogCorruptError', segment: 2, offset: 0 });
    const dir2 = path.join(root, 'badmanifest');
    fs.cpSync(b.dir, dir2, { recursive: true });
    const m = fs.readFileSync(path.join(dir2, 'MANIFEST'));
    m[m.length - 6] ^= 1;
    fs.writeFileSync(path.join(dir2, 'MANIFEST'), m);
    await expect(openLog({ dir: dir2, chainId })).rejects.toMatchObject({ name: 'LogCorruptError' });
  });
});

describe('property: reopen returns exactly what was appended', () => {
  it('random sizes, random durabilities, random segment sizes, several reopen cycles', async () => {
    for (let round = 0; round < 8; round++) {
      const dir = path.join(root, `prop${round}`);
      const segmentSize = randomInt(4 << 10, 256 << 10);
      const maxRecordSize = randomInt(1, 6000);
      const expected: Buffer[] = [];
      for (let cycle = 0; cycle < 3; cycle++) {
        const log = await openLog({ dir, chainId, segmentSize, maxRecordSize });
        expect(log.nextSeq).toBe(expected.length + 1);
        const n = randomInt(1, 150);
        const ops: Promise<unknown>[] = [];
        for (let i = 0; i < n; i++) {
          const p = randomBytes(randomInt(0, maxRecordSize + 1));
          expected.push(p);
          const d = (['none', 'local', 'durable'] as const)[randomInt(0, 3)];
          if (randomInt(0, 4) === 0) {
            const extra = randomBytes(randomInt(0, Math.min(maxRecordSize, 300) + 1));
            expected.push(extra);
            i++;
            ops.push(log.appendBatch([p, extra], d));
          } else ops.push(log.append(p, d));
        }
        await Promise.all(ops);
        await log.close();
      }
      const { recs, rec } = await contents(dir);
      expect(rec.truncatedBytes).toBe(0);
      expect(recs.length).toBe(expected.length);
      expect(recs).toEqual(expected.map((payload, i) => ({ seq: i + 1, payload })));
    }
  });
});
