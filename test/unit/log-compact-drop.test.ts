// Compaction with dropBefore (CompactOptions): a prefix the caller declares dead is dropped without
// being read back — the replication client's staging log once every staged commit is confirmed
// (src/net/remote-chain.ts) — and an interruption at any step still leaves the old log or the
// new one, with every record at or after dropBefore and the seqs continuing.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { openLog, recordHash, type CompactionStep } from '../../src/log/index.js';
import { IoTrace } from '../log-io-trace.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'log-compact-drop-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const chainId = 'compact-drop/test';
const genesisHash = randomBytes(32);
let n = 0;
const freshDir = () => path.join(root, `c${n++}`);

let uninstall: (() => void) | null = null;
afterEach(() => { uninstall?.(); uninstall = null; });

function expected(payloads: Buffer[]): Buffer {
  let h = genesisHash;
  for (const p of payloads) h = createHash('sha256').update(h).update(recordHash(p)).digest();
  return h;
}

/** A log in `dir` holding `count` records of `size` bytes, durable, over several segments when small ones are asked for. */
async function build(dir: string, count: number, size: number, segmentSize?: number) {
  const log = await openLog({ dir, chainId, genesisHash, ...(segmentSize ? { segmentSize } : {}) });
  const payloads = Array.from({ length: count }, () => randomBytes(size));
  for (const p of payloads) await log.append(p, 'durable');
  return { log, payloads };
}

describe('compaction that drops a dead prefix (dropBefore)', () => {
  it('drops everything without reading it back; a compaction asked record by record reads it all', async () => {
    const t = new IoTrace();
    uninstall = t.install();
    // 8 MiB in one segment (the staging log's segments are 1 GiB) and 8 MiB over several.
    for (const segmentSize of [undefined, 1 << 20]) {
      const dir = freshDir();
      const { log, payloads } = await build(dir, 32, 256 << 10, segmentSize);
      const before = t.bytesReadUnder(dir);
      const r = await log.compact(() => true, { dropBefore: log.nextSeq });
      const read = t.bytesReadUnder(dir) - before;
      expect(read, `segmentSize ${segmentSize}`).toBe(0);
      expect(r.bytesBefore).toBeGreaterThan(8 << 20);
      expect(r.bytesAfter).toBeLessThan(64 << 10);
      expect([...log.records()]).toEqual([]);
      expect((await log.append(Buffer.from('after'), 'durable')).seq).toBe(33);
      await log.close();
      const again = await openLog({ dir, chainId, genesisHash });
      expect([...again.records()].map((x) => x.seq)).toEqual([33]);
      expect(again.chain.problem).toBeNull();
      expect(again.chain.head.hash.equals(expected([...payloads, Buffer.from('after')]))).toBe(true);
      await again.close();
    }
    // The same drop asked of `keep` record by record reads every byte back: what the measurement sees.
    const dir = freshDir();
    const { log } = await build(dir, 32, 256 << 10);
    const before = t.bytesReadUnder(dir);
    await log.compact(() => false);
    expect(t.bytesReadUnder(dir) - before).toBeGreaterThanOrEqual(8 << 20);
    await log.close();
  });

  it('keeps what is at or after dropBefore, in a segment it reads and in one it does not', async () => {
    const dir = freshDir();
    const { log, payloads } = await build(dir, 20, 300, 2048);
    const asked: number[] = [];
    await log.compact((r) => { asked.push(r.seq); return true; }, { dropBefore: 12 });
    // `keep` is asked only about records at or after dropBefore.
    expect(Math.min(...asked)).toBeGreaterThanOrEqual(12);
    expect([...log.records()].map((r) => r.seq)).toEqual([12, 13, 14, 15, 16, 17, 18, 19, 20]);
    await log.close();
    const again = await openLog({ dir, chainId, genesisHash });
    const recs = [...again.records()];
    expect(recs.map((r) => r.seq)).toEqual([12, 13, 14, 15, 16, 17, 18, 19, 20]);
    for (const r of recs) expect(Buffer.from(r.payload).equals(payloads[r.seq - 1]!)).toBe(true);
    expect(again.chain.problem).toBeNull();
    expect(again.chain.head.hash.equals(expected(payloads))).toBe(true);
    await again.close();
  });

  it('interrupted at any step, it leaves the old log or the new one, which opens and continues its seqs', async () => {
    const steps: CompactionStep[] = ['after-write-new', 'after-fsync-new', 'after-manifest-tmp', 'after-rename', 'after-dir-fsync', 'after-delete-old'];
    for (const failAt of steps) {
      for (const dropBefore of [21, 15]) {
        const dir = freshDir();
        const { log, payloads } = await build(dir, 20, 300, 2048);
        await expect(log.compact(() => true, { dropBefore, failAt })).rejects.toThrow(/injected crash/);
        await log.close().catch(() => undefined);
        const again = await openLog({ dir, chainId, genesisHash });
        const seqs = [...again.records()].map((r) => r.seq);
        const all = payloads.map((_, i) => i + 1);
        const switched = failAt === 'after-rename' || failAt === 'after-dir-fsync' || failAt === 'after-delete-old';
        const what = `${failAt}, dropBefore ${dropBefore}`;
        expect(seqs, what).toEqual(switched ? all.filter((s) => s >= dropBefore) : all);
        expect(again.chain.problem, what).toBeNull();
        expect(again.chain.head.hash.equals(expected(payloads)), what).toBe(true);
        for (const r of again.records()) expect(Buffer.from(r.payload).equals(payloads[r.seq - 1]!), what).toBe(true);
        expect((await again.append(Buffer.from('next'), 'durable')).seq, what).toBe(21);
        // No leftover of the other state: the directory holds what the log lists.
        const segs = fs.readdirSync(dir).filter((f) => f.endsWith('.seg')).length;
        expect(segs, what).toBe(again.segmentList!().length);
        await again.close();
      }
    }
  });
});
