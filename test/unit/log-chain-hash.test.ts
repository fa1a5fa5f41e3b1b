// The log's running chain hash (src/log/chain-hash.ts): computed on append and by the open scan,
// a gap in the middle (frames removed, CRCs intact) is found, compaction's cut certificate covers
// the gaps it made and nothing else.
import { afterAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { openLog, recordHash } from '../../src/log/index.js';
import { FRAME_HEADER, frameLen, segmentName } from '../../src/log/format.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'log-chain-hash-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const chainId = 'chain-hash/test';
const genesisHash = randomBytes(32);
let n = 0;

function expected(payloads: Buffer[]): Buffer {
  let h = genesisHash;
  for (const p of payloads) h = createHash('sha256').update(h).update(recordHash(p)).digest();
  return h;
}

async function build(count: number): Promise<{ dir: string; payloads: Buffer[]; hashes: Buffer[] }> {
  const dir = path.join(root, `c${n++}`);
  const log = await openLog({ dir, chainId, genesisHash });
  const payloads = Array.from({ length: count }, () => randomBytes(100));
  const acks = await log.appendBatch(payloads, 'durable');
  await log.close();
  return { dir, payloads, hashes: acks.map((a) => a.chainHash!) };
}

/** Removes whole frames (their CRCs intact) with the given seqs from segment 1. */
function dropFrames(dir: string, seqs: number[]): void {
  const f = path.join(dir, segmentName(1));
  const b = fs.readFileSync(f);
  const headerLen = b.readUInt32LE(12);
  const parts = [b.subarray(0, headerLen)];
  for (let off = headerLen; off < b.length;) {
    const end = off + FRAME_HEADER + frameLen(b, off);
    const seq = b.readUInt32LE(off + 8);
    if (!seqs.includes(seq)) parts.push(b.subarray(off, end));
    off = end;
  }
  fs.writeFileSync(f, Buffer.concat(parts));
}

describe('log chain hash', () => {
  it('appends return the running hash, and the open scan recomputes it', async () => {
    const { dir, payloads, hashes } = await build(6);
    expect(hashes[5]!.equals(expected(payloads))).toBe(true);
    const log = await openLog({ dir, chainId, genesisHash, chainHashAt: 3 });
    expect(log.chain.head.seq).toBe(6);
    expect(log.chain.head.hash.equals(expected(payloads))).toBe(true);
    expect(log.chain.problem).toBeNull();
    expect(log.chain.probe!.hash!.equals(hashes[2]!)).toBe(true);
    const more = randomBytes(50);
    const r = await log.append(more);
    expect(r.chainHash!.equals(expected([...payloads, more]))).toBe(true);
    await log.close();
  });

  it('frames removed from the middle are a problem; the head still says what is there', async () => {
    for (const gone of [[2], [3, 4], [5]]) {
      const { dir } = await build(6);
      dropFrames(dir, gone);
      const log = await openLog({ dir, chainId, genesisHash });
      expect(log.chain.problem?.seq).toBe(gone[gone.length - 1]! + 1);
      expect(log.chain.problem?.message).toMatch(/missing and no compaction certificate covers them/);
      await log.close();
    }
  });

  it('compaction leaves a cut certificate that covers its gaps, and only them', async () => {
    const { dir, payloads } = await build(8);
    let log = await openLog({ dir, chainId, genesisHash });
    let signed: Buffer | null = null;
    await log.compact((r) => r.seq % 2 === 0, {
      certify: async (m) => {
        signed = m;
        return { sig: Buffer.from('sig'), signer: Buffer.from('me') };
      },
    });
    expect(signed).not.toBeNull();
    const tail = randomBytes(70);
    await log.append(tail);
    await log.close();
    log = await openLog({ dir, chainId, genesisHash });
    expect(log.chain.problem).toBeNull();
    expect(log.chain.cut!.seq).toBe(8);
    expect(log.chain.cut!.sig.toString()).toBe('sig');
    // The head continues the uncompacted history.
    expect(log.chain.head.seq).toBe(9);
    expect(log.chain.head.hash.equals(expected([...payloads, tail]))).toBe(true);
    await log.close();
    // A kept record removed below the cut: the kept hash no longer matches.
    const copy = path.join(root, `c${n++}`);
    fs.cpSync(dir, copy, { recursive: true });
    // The compacted segment (it starts at seq 2, the first kept record), not the active one.
    const segs = fs.readdirSync(copy).filter((f) => f.endsWith('.seg'));
    const first = path.join(copy, segs.find((f) => fs.readFileSync(path.join(copy, f)).readUInt32LE(20) === 2)!);
    const b = fs.readFileSync(first);
    const headerLen = b.readUInt32LE(12);
    const cutAt = headerLen + FRAME_HEADER + frameLen(b, headerLen);
    fs.writeFileSync(first, Buffer.concat([b.subarray(0, headerLen), b.subarray(cutAt)]));
    log = await openLog({ dir: copy, chainId, genesisHash });
    expect(log.chain.problem?.message).toMatch(/not the ones compaction kept/);
    await log.close();
  });

  it('a compaction of some segments leaves the others in place, every record in them kept, and its certificate covers them', async () => {
    const dir = path.join(root, `c${n++}`);
    // Small segments: ~4 records each.
    let log = await openLog({ dir, chainId, genesisHash, segmentSize: 700 });
    const payloads = Array.from({ length: 16 }, () => randomBytes(150));
    for (const p of payloads) await log.append(p, 'durable');
    const before = log.segmentList!();
    expect(before.length).toBeGreaterThanOrEqual(4);
    expect(before.map((s) => s.active)).toEqual([...before.slice(1).map(() => false), true]);
    // Keep segments 2 and 4 of the list as they are; compact the others to their even seqs.
    const retained = new Set([before[1]!.id, before[3]!.id]);
    const inRetained = (seq: number) => before.some((s) => retained.has(s.id) && seq >= s.firstSeq && seq <= s.lastSeq);
    const asked: number[] = [];
    const res = await log.compact((r) => { asked.push(r.seq); return r.seq % 2 === 0; }, {
      retain: (s) => retained.has(s.id),
      certify: async () => ({ sig: Buffer.from('sig'), signer: Buffer.from('me') }),
    });
    // keep() is never asked about a retained record; they keep their positions.
    expect(asked.filter(inRetained)).toEqual([]);
    for (const s of before.filter((x) => retained.has(x.id))) {
      for (let q = s.firstSeq; q <= s.lastSeq; q++) expect(res.positions.get(q)?.segment).toBe(s.id);
    }
    const after = log.segmentList!();
    for (const id of retained) expect(after.some((s) => s.id === id)).toBe(true);
    for (const s of before.filter((x) => !retained.has(x.id) && !x.active)) expect(fs.existsSync(path.join(dir, segmentName(s.id)))).toBe(false);
    // Seq order across created and retained segments.
    const seqs = [...log.records()].map((r) => r.seq);
    const want = payloads.map((_, i) => i + 1).filter((q) => q % 2 === 0 || inRetained(q));
    expect(seqs).toEqual(want);
    for (let i = 1; i < after.length; i++) if (after[i]!.records && after[i - 1]!.records) expect(after[i]!.firstSeq).toBeGreaterThan(after[i - 1]!.lastSeq);
    await log.close();
    // Reopened: the certificate's kept hash covers the retained records too; the head continues.
    log = await openLog({ dir, chainId, genesisHash, segmentSize: 700 });
    expect(log.chain.problem).toBeNull();
    expect(log.chain.cut!.seq).toBe(16);
    expect(log.chain.head.hash.equals(expected(payloads))).toBe(true);
    expect([...log.records()].map((r) => r.seq)).toEqual(want);
    for (const r of log.records()) expect(Buffer.from(r.payload).equals(payloads[r.seq - 1]!)).toBe(true);
    await log.close();
  });

  it('a compaction of some segments interrupted at any step leaves the old log or the new one', async () => {
    const steps = ['after-write-new', 'after-fsync-new', 'after-manifest-tmp', 'after-rename', 'after-dir-fsync', 'after-delete-old'] as const;
    for (const failAt of steps) {
      const dir = path.join(root, `c${n++}`);
      let log = await openLog({ dir, chainId, genesisHash, segmentSize: 700 });
      const payloads = Array.from({ length: 16 }, () => randomBytes(150));
      for (const p of payloads) await log.append(p, 'durable');
      const list = log.segmentList!();
      const retained = new Set([list[1]!.id, list[3]!.id]);
      const inRetained = (seq: number) => list.some((s) => retained.has(s.id) && seq >= s.firstSeq && seq <= s.lastSeq);
      const all = payloads.map((_, i) => i + 1);
      const compacted = all.filter((q) => q % 2 === 0 || inRetained(q));
      await expect(log.compact((r) => r.seq % 2 === 0, { retain: (s) => retained.has(s.id), failAt })).rejects.toThrow(/injected crash/);
      await log.close().catch(() => undefined);
      log = await openLog({ dir, chainId, genesisHash, segmentSize: 700 });
      const seqs = [...log.records()].map((r) => r.seq);
      const switched = failAt === 'after-rename' || failAt === 'after-dir-fsync' || failAt === 'after-delete-old';
      expect(seqs, failAt).toEqual(switched ? compacted : all);
      expect(log.chain.problem, failAt).toBeNull();
      expect(log.chain.head.hash.equals(expected(payloads)), failAt).toBe(true);
      for (const r of log.records()) expect(Buffer.from(r.payload).equals(payloads[r.seq - 1]!)).toBe(true);
      await log.close();
    }
  });

  it('a read-only follower sees a compaction of segments it has not read yet as a compaction', async () => {
    const dir = path.join(root, `c${n++}`);
    const w = await openLog({ dir, chainId, genesisHash, segmentSize: 700 });
    const payloads = Array.from({ length: 20 }, () => randomBytes(150));
    for (const p of payloads.slice(0, 4)) await w.append(p, 'durable');
    const r = await openLog({ dir, chainId, genesisHash, readOnly: true });
    const ac = new AbortController();
    const seen: number[] = [];
    let want = 4;
    let reached: () => void = () => undefined;
    const following = (async () => {
      for await (const rec of r.follow({ seq: 1 }, ac.signal)) {
        seen.push(rec.seq);
        if (rec.seq >= want) reached();
      }
    })();
    const until = (seq: number) => new Promise<void>((res) => { want = seq; reached = res; if (seen.some((q) => q >= seq)) res(); });
    await until(4);
    // Segments the follower has not read: written, sealed and compacted (some of them) at once.
    for (const p of payloads.slice(4, 16)) await w.append(p, 'durable');
    const known = new Set(w.segmentList!().filter((s) => s.firstSeq && s.firstSeq <= 4).map((s) => s.id));
    await w.compact((rec) => rec.seq % 2 === 0, { retain: (s) => known.has(s.id) });
    for (const p of payloads.slice(16)) await w.append(p, 'durable');
    await until(20);
    ac.abort();
    await following;
    // Its head is the writer's: the records compaction dropped were not chained as if never there.
    expect(r.chain.problem).toBeNull();
    expect(r.chain.head.seq).toBe(20);
    expect(r.chain.head.hash.equals(expected(payloads))).toBe(true);
    expect(r.chain.head.hash.equals(w.chain.head.hash)).toBe(true);
    await r.close();
    await w.close();
  });

  it('acceptHistory certifies a gap so the next open accepts it', async () => {
    const { dir } = await build(5);
    dropFrames(dir, [2]);
    let log = await openLog({ dir, chainId, genesisHash });
    expect(log.chain.problem).not.toBeNull();
    const head = log.chain.head;
    await log.acceptHistory();
    await log.close();
    log = await openLog({ dir, chainId, genesisHash });
    expect(log.chain.problem).toBeNull();
    expect(log.chain.head.hash.equals(head.hash)).toBe(true);
    await log.close();
  });

  it('onDurable reports only durable records', async () => {
    const dir = path.join(root, `c${n++}`);
    const log = await openLog({ dir, chainId, genesisHash });
    const seen: number[] = [];
    log.onDurable((h) => seen.push(h.seq));
    await log.append(randomBytes(10), 'none');
    await log.append(randomBytes(10), 'local');
    expect(seen).toEqual([]);
    await log.append(randomBytes(10), 'durable');
    expect(seen).toEqual([3]);
    await log.append(randomBytes(10), 'none');
    await log.flush('durable');
    expect(seen).toEqual([3, 4]);
    await log.close();
  });
});

describe('recordHash of commit records', () => {
  it('is the commit hash, whole or in pieces (appendParts), for small and bulk commits', async () => {
    const { makeWorld } = await import('./chain-fixtures.js');
    const { encodeCommitParts } = await import('../../src/chain/codec.js');
    const { recordHashOfParts } = await import('../../src/log/chain-hash.js');
    const w = await makeWorld();
    expect(recordHash(w.genesis.bytes).equals(w.genesis.hash)).toBe(true);
    for (const size of [0, 10, 300_000]) {
      const c = await w.commit((b) => { b.put(size ? { payload: randomBytes(size) } : {}); });
      expect(recordHash(c.bytes).equals(c.hash), `payload ${size}`).toBe(true);
      const { parts } = encodeCommitParts(c.hash, c.headerBytes, c.events, c.signatures);
      expect(recordHashOfParts(parts).equals(c.hash), `parts ${size}`).toBe(true);
    }
  });
});
