// `atefs verify` (verifyChain) on a compacted chain (issue 11): compaction keeps whole commits, so
// a kept commit may write version 5 of a DAO whose versions 2-4 are gone. Verify checked such a
// log as if nothing was missing and reported "rejected (conflict): DAO ... version N, expected M"
// for almost every commit of every compacted chain. It now checks a log with missing seqs the way
// the view loads it (src/chain/gaps.ts) — and still catches real damage after compaction: a commit
// appended again (replay), an old version appended after the newer one (rollback), a payload byte
// changed under a valid frame, a dropped genesis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../../fs/core/index.js';
import { LOCAL_CHAIN_ID, openLocalChain } from '../../fs/chain-store/index.js';
import { decodeCommit, hasDeferredSignature, macCheck, verifyChain, type ChainReport } from '../../src/chain/index.js';
import { loadOrCreateLocalIdentity } from '../../src/session/local.js';
import { defaultPool } from '../../src/crypto/index.js';
import { openLog, type RedoLog } from '../../src/log/index.js';
import { FRAME_HEADER, decodeHeader, encodeFrame, frameLen, frameSeq } from '../../src/log/format.js';
import { PathFs } from './fs-path-ops.js';

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-verify-compacted-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

const chainDir = () => join(base, 'chain');
let genesis = '';
/** Every record of the chain before compaction: seq -> payload. */
const before = new Map<number, Buffer>();

async function withLog<T>(dir: string, fn: (log: RedoLog) => Promise<T>, readOnly = true): Promise<T> {
  const log = await openLog({ dir: join(dir, 'log'), chainId: LOCAL_CHAIN_ID, readOnly, maxRecordSize: 64 << 20 });
  try { return await fn(log); } finally { await log.close(); }
}

/**
 * As `atefs verify` runs for the chain's owner: deferred signatures (src/chain/deferred.ts) are
 * vouched for by the owner's MAC as well as by the log's sign-offs. `asStranger`: sign-offs only.
 */
const verify = async (dir: string, asStranger = false): Promise<ChainReport> => {
  const deferred = asStranger ? undefined : macCheck((await loadOrCreateLocalIdentity(join(base, 'config'))).session.signingKeys());
  return withLog(dir, (log) => verifyChain(log, { pinnedGenesis: genesis, pool: defaultPool(), ...(deferred ? { deferred } : {}) }));
};

/** A copy of the compacted chain to damage. */
function copy(name: string): string {
  const dir = join(base, name);
  cpSync(join(chainDir(), 'log'), join(dir, 'log'), { recursive: true, filter: (p) => !p.endsWith('LOCK') });
  return dir;
}

describe('verify of a compacted chain', () => {
  beforeAll(async () => {
    const chain = await openLocalChain({ chainDir: chainDir(), configDir: join(base, 'config'), compactMode: 'never' });
    genesis = chain.genesisHash;
    const fs = await Filesystem.open(chain.store, { commitDelayMs: 60_000 });
    const p = new PathFs(fs);
    // Rewrites (each its own commit: versions that compaction drops), deletes, renames, a tree.
    p.mkdir('d');
    for (const n of ['a', 'b', 'c', 'd/x']) p.writeFile(n, Buffer.alloc(20_000, n.charCodeAt(0)));
    await fs.sync();
    for (let i = 0; i < 6; i++) {
      p.write('a', i * 1000, Buffer.alloc(70_000, i));
      p.setxattr('c', 'user.round', Buffer.from(String(i)));
      await fs.sync();
    }
    p.unlink('b');
    await fs.sync();
    p.rename('c', 'd/c');
    p.mkdir('d/e');
    p.writeFile('d/e/y', Buffer.from('y'));
    await fs.sync();
    p.unlink('d/e/y');
    p.rmdir('d/e');
    p.truncate('a', 5000);
    await fs.sync();
    const tree = p.tree();
    await fs.destroy();
    await chain.close();

    await withLog(chainDir(), async (log) => { for (const r of log.records()) before.set(r.seq, Buffer.from(r.payload)); });
    const intact = await verify(chainDir());
    expect(intact.problems).toEqual([]);
    expect(intact.compacted).toBe(false);

    const again = await openLocalChain({ chainDir: chainDir(), configDir: join(base, 'config'), compactMode: 'never' });
    const report = await again.view.compact('test');
    expect(report.skipped).toBeNull();
    await again.close();
    // The compacted chain mounts with the same tree.
    const third = await openLocalChain({ chainDir: chainDir(), configDir: join(base, 'config'), compactMode: 'never' });
    const fs3 = await Filesystem.open(third.store);
    expect(new PathFs(fs3).tree()).toEqual(tree);
    await fs3.destroy();
    await third.close();
  }, 120_000);

  it('exits clean: every kept commit verifies (versions in between are bridged, as the view loads them)', async () => {
    const r = await verify(chainDir());
    expect(r.problems).toEqual([]);
    expect(r.compacted).toBe(true);
    expect(r.records).toBeLessThan(before.size);
    expect(r.accepted).toBe(r.records);
  });

  it('verifies for a stranger too: compaction dropped the sign-offs, the mount signed the kept commits off again', async () => {
    const deferred = [...before.values()].filter((p) => hasDeferredSignature(decodeCommit(p))).length;
    expect(deferred).toBeGreaterThan(0);
    const r = await verify(chainDir(), true);
    expect(r.problems).toEqual([]);
    expect(r.accepted).toBe(r.records);
  });

  it('a kept commit appended again is a replay', async () => {
    const dir = copy('replay');
    // The newest kept record that was there before compaction (after it come the new sign-offs).
    const seqs = await withLog(dir, async (log) => [...log.records()].map((r) => r.seq).filter((s) => before.has(s)));
    const last = seqs[seqs.length - 1]!;
    const appended = await withLog(dir, async (log) => (await log.append(before.get(last)!)).seq, false);
    const r = await verify(dir);
    expect(r.problems.map((x) => [x.seq, x.reason])).toEqual([[appended, 'replay']]);
  });

  it('an old version that compaction dropped, appended after the newer one, is a conflict: gaps bridge forwards only', async () => {
    const dir = copy('rollback');
    const kept = new Set(await withLog(dir, async (log) => [...log.records()].map((r) => r.seq)));
    // A dropped commit (a superseded rewrite of 'a'): its DAOs are at later versions now.
    const dropped = [...before.keys()].filter((s) => !kept.has(s) && s > 1);
    expect(dropped.length).toBeGreaterThan(0);
    const old = dropped[0]!;
    expect(decodeCommit(before.get(old)!).events.length).toBeGreaterThan(0);
    const appended = await withLog(dir, async (log) => (await log.append(before.get(old)!)).seq, false);
    const r = await verify(dir);
    expect(r.problems.map((x) => [x.seq, x.reason])).toEqual([[appended, 'conflict']]);
    expect(r.problems[0]!.message).toMatch(/version \d+, expected \d+/);
  });

  it('a changed payload byte under a valid frame checksum is caught', async () => {
    const dir = copy('tampered');
    const segs = readdirSync(join(dir, 'log')).filter((f) => f.endsWith('.seg')).sort();
    let tampered = -1;
    for (const name of segs) {
      const path = join(dir, 'log', name);
      const seg = readFileSync(path);
      const h = decodeHeader(seg);
      if (typeof h === 'string') throw new Error(h);
      for (let off = h.headerLen; off + FRAME_HEADER <= seg.length;) {
        const len = frameLen(seg, off);
        const seq = frameSeq(seg, off);
        if (tampered < 0 && seq > 1) {
          const payload = Buffer.from(seg.subarray(off + FRAME_HEADER, off + FRAME_HEADER + len));
          payload[Math.floor(len / 2)]! ^= 0x01;
          encodeFrame(seq, payload).copy(seg, off);
          writeFileSync(path, seg);
          tampered = seq;
        }
        off += FRAME_HEADER + len;
      }
    }
    expect(tampered).toBeGreaterThan(1);
    const r = await verify(dir);
    expect(r.problems.map((x) => x.seq)).toContain(tampered);
    expect(r.problems.find((x) => x.seq === tampered)!.reason).not.toBe('conflict');
  });

  it('a compacted log without its genesis is refused', async () => {
    const dir = copy('no-genesis');
    await withLog(dir, (log) => log.compact((rec) => rec.seq !== 1), false);
    const r = await verify(dir);
    expect(r.problems.length).toBeGreaterThan(0);
    expect(r.accepted).toBe(0);
  });
});
