// Issue 17, fast fsync: a local mount's commits are durable and MAC-authenticated at once and
// signed off in the background (src/chain/deferred.ts, src/view/deferred-signer.ts). What must
// hold: a stranger (no key of the writer) verifies the log once it is signed off, and refuses a
// deferred commit no sign-off covers; the writer's next open accepts its MAC'd tail, signs it off
// and serves it, whichever step of the sign-off a SIGKILL interrupted; a tail whose MAC fails is
// refused like any tampering; the server never accepts a deferred commit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Filesystem } from '../../fs/core/index.js';
import { LOCAL_CHAIN_ID, openLocalChain } from '../../fs/chain-store/index.js';
import {
  type ChainReport, ChainValidator, CommitRejected, MemoryAuthorityState, decodeCommit, hasDeferredSignature, isDeferredSignature, verifyChain,
} from '../../src/chain/index.js';
import { defaultPool } from '../../src/crypto/index.js';
import { openLog, type RedoLog } from '../../src/log/index.js';
import { FRAME_HEADER, decodeHeader, encodeFrame, frameLen, frameSeq } from '../../src/log/format.js';
import { PathFs } from './fs-path-ops.js';
import { ensureBuilt } from '../e2e/harness.js';

const repo = resolve(__dirname, '../..');
const child = join(repo, 'test/fixtures/chain/deferred-child.mjs');
let base: string;
beforeAll(async () => {
  // The child imports dist/: built once, never rewritten while other files' daemons load it.
  await ensureBuilt();
  base = mkdtempSync(join(tmpdir(), 'atefs-deferred-'));
}, 300_000);
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

async function withLog<T>(chainDir: string, fn: (log: RedoLog) => Promise<T>): Promise<T> {
  const log = await openLog({ dir: join(chainDir, 'log'), chainId: LOCAL_CHAIN_ID, readOnly: true, maxRecordSize: 64 << 20 });
  try { return await fn(log); } finally { await log.close(); }
}

/** Verification by someone who holds none of the writer's keys: only sign-offs vouch for deferred slots. */
const strangerVerify = (chainDir: string): Promise<ChainReport> => withLog(chainDir, (log) => verifyChain(log, { pinnedGenesis: null, pool: defaultPool() }));

function records(chainDir: string): Promise<Array<{ seq: number; payload: Buffer }>> {
  return withLog(chainDir, async (log) => [...log.records()].map((r) => ({ seq: r.seq, payload: Buffer.from(r.payload) })));
}

/** Runs the child to its kill point; resolves with the files it acked and the unsigned count it printed. */
function runChild(chainDir: string, configDir: string, files: number, step: string): Promise<{ acked: number; unsigned: number | null }> {
  return new Promise((done, fail) => {
    const c = spawn(process.execPath, [child, chainDir, configDir, String(files), step], { stdio: ['ignore', 'pipe', 'pipe'] });
    let acked = 0;
    let unsigned: number | null = null;
    let err = '';
    const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        if (/^ack \d+$/.test(line)) acked++;
        const m = /^unsigned (\d+)$/.exec(line);
        if (m) unsigned = Number(m[1]);
      }
    });
    c.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') done({ acked, unsigned });
      else fail(new Error(`child exited ${code}: ${err}`));
    });
  });
}

/** Reopens as the writer: the files are there and the tail gets signed off. */
async function reopenAndCheck(chainDir: string, configDir: string, files: number): Promise<void> {
  const chain = await openLocalChain({ chainDir, configDir, deferCompaction: false, compactMode: 'never' });
  try {
    const fs = await Filesystem.open(chain.store, {});
    const p = new PathFs(fs);
    for (let n = 0; n < files; n++) expect(p.read(`f${n}`).toString()).toBe(`content ${n}`);
    await chain.view.signOff();
    expect(chain.view.stats().unsigned).toBe(0);
    await fs.destroy();
  } finally {
    await chain.close();
  }
}

describe('deferred signatures', () => {
  it('a mount defers: commits carry MACs, far fewer sign-offs than commits, and a stranger verifies the closed log', async () => {
    const chainDir = join(base, 'plain');
    const configDir = join(base, 'config-plain');
    const chain = await openLocalChain({ chainDir, configDir, deferCompaction: false, compactMode: 'never' });
    const fs = await Filesystem.open(chain.store, {});
    const p = new PathFs(fs);
    // 40 fsyncs in a burst: each a durable commit; sign-offs coalesce behind them.
    await Promise.all(Array.from({ length: 40 }, async (_, n) => {
      p.writeFile(`f${n}`, Buffer.from(`content ${n}`));
      await fs.sync();
    }));
    await fs.destroy();
    await chain.close();
    const recs = await records(chainDir);
    const commits = recs.map((r) => decodeCommit(r.payload));
    const deferred = commits.filter(hasDeferredSignature);
    const signoffs = commits.filter((c) => c.header.signs);
    expect(deferred.length).toBeGreaterThanOrEqual(2);
    expect(signoffs.length).toBeGreaterThanOrEqual(1);
    expect(signoffs.length).toBeLessThan(deferred.length);
    // Every deferred commit is listed by a later sign-off.
    const listed = new Map<string, number>();
    recs.forEach((r, i) => { for (const h of commits[i]!.header.signs ?? []) listed.set(h.toString('hex'), r.seq); });
    recs.forEach((r, i) => {
      if (hasDeferredSignature(commits[i]!)) expect(listed.get(commits[i]!.hash.toString('hex'))).toBeGreaterThan(r.seq);
    });
    const report = await strangerVerify(chainDir);
    expect(report.problems).toEqual([]);
    expect(report.accepted).toBe(recs.length);
    await reopenAndCheck(chainDir, configDir, 40);
  }, 120_000);

  it('--sign-each-commit (deferSignatures false) signs every commit itself', async () => {
    const chainDir = join(base, 'signed');
    const chain = await openLocalChain({ chainDir, configDir: join(base, 'config-signed'), deferSignatures: false, deferCompaction: false, compactMode: 'never' });
    const fs = await Filesystem.open(chain.store, {});
    new PathFs(fs).writeFile('a', Buffer.from('a'));
    await fs.sync();
    await fs.destroy();
    await chain.close();
    const commits = (await records(chainDir)).map((r) => decodeCommit(r.payload));
    expect(commits.filter(hasDeferredSignature)).toEqual([]);
    expect(commits.filter((c) => c.header.signs)).toEqual([]);
  });

  for (const step of ['before-signoff', 'signoff-appended', 'after-signoff']) {
    it(`SIGKILL ${step}: the next open accepts the MAC'd tail, signs it off and serves it`, async () => {
      const chainDir = join(base, `kill-${step}`);
      const configDir = join(base, `config-${step}`);
      const { acked, unsigned } = await runChild(chainDir, configDir, 5, step);
      expect(acked).toBe(5);
      const before = await strangerVerify(chainDir);
      if (step === 'before-signoff') {
        expect(unsigned).toBeGreaterThan(0);
        // To a stranger the unsigned tail is unverifiable: refused, named as deferred.
        expect(before.problems.length).toBeGreaterThan(0);
        expect(before.problems.every((x) => x.reason === 'signature' && /deferred signature/.test(x.message))).toBe(true);
      } else {
        // The sign-off is in the log (applied or not): the stranger needs nothing else.
        expect(before.problems).toEqual([]);
      }
      await reopenAndCheck(chainDir, configDir, 5);
      const after = await strangerVerify(chainDir);
      expect(after.problems).toEqual([]);
      expect(after.accepted).toBe(after.records);
    }, 120_000);
  }

  it('a deferred tail whose MAC was changed is refused on open like any tampering', async () => {
    const src = join(base, 'kill-tamper-src');
    const configDir = join(base, 'config-tamper');
    await runChild(src, configDir, 3, 'before-signoff');
    const dir = join(base, 'kill-tamper');
    cpSync(src, dir, { recursive: true, filter: (p) => !p.endsWith('LOCK') });
    // The last record is a deferred commit: its MAC is the record's last 32 bytes.
    let tampered = -1;
    const segs = readdirSync(join(dir, 'log')).filter((f) => f.endsWith('.seg')).sort();
    const lastSeg = join(dir, 'log', segs[segs.length - 1]!);
    const seg = readFileSync(lastSeg);
    const h = decodeHeader(seg);
    if (typeof h === 'string') throw new Error(h);
    let lastOff = -1;
    for (let off = h.headerLen; off + FRAME_HEADER <= seg.length;) {
      const len = frameLen(seg, off);
      if (len === 0) break;
      lastOff = off;
      off += FRAME_HEADER + len;
    }
    const len = frameLen(seg, lastOff);
    const payload = Buffer.from(seg.subarray(lastOff + FRAME_HEADER, lastOff + FRAME_HEADER + len));
    const c = decodeCommit(payload);
    expect(c.signatures.every((s) => isDeferredSignature(s.signature))).toBe(true);
    payload[payload.length - 1]! ^= 0x01;
    tampered = frameSeq(seg, lastOff);
    encodeFrame(tampered, payload).copy(seg, lastOff);
    writeFileSync(lastSeg, seg);
    // The index would vouch for what it applied before: the tampered record is in the replayed tail
    // only once the index is gone (as after a crash that lost it; the index seal catches the rest).
    rmSync(join(dir, 'index'), { recursive: true, force: true });
    await expect(openLocalChain({ chainDir: dir, configDir, trustChain: true, deferCompaction: false, compactMode: 'never' }))
      .rejects.toThrow(new RegExp(`record seq ${tampered} .*\\(signature\\): a deferred signature that no sign-off covers`));
    // The untampered copy opens and signs off.
    await reopenAndCheck(src, configDir, 3);
  }, 120_000);

  it('no other validator accepts a deferred commit (what the server runs)', async () => {
    const recs = await records(join(base, 'kill-before-signoff'));
    const genesis = decodeCommit(recs[0]!.payload);
    const firstDeferred = recs.map((r) => decodeCommit(r.payload)).find((c) => hasDeferredSignature(c));
    // kill-before-signoff was signed off by its reopen: the record itself still carries only its MAC.
    expect(firstDeferred).toBeDefined();
    const v = new ChainValidator(new MemoryAuthorityState(), { pool: defaultPool() });
    await v.accept(genesis);
    await expect(v.accept(firstDeferred!)).rejects.toBeInstanceOf(CommitRejected);
    await expect(v.accept(firstDeferred!)).rejects.toMatchObject({ reason: 'signature' });
  });
});
