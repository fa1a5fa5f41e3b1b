// Issue 13 (core): rollback, dropped commits and diverging histories are refused on open. The
// newest head (seq, chain hash) this user has seen is kept in the config directory (chain-heads.json,
// HMAC'd); the log's running chain hash binds the order; compaction leaves a signed cut. Attacks
// are made on the chain's storage only, as someone without the user's keys could.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../../fs/core/index.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import { ChainHistoryBroken, ChainRolledBack, HEADS_FILE, Session, createIdentity } from '../../src/session/index.js';
import { FRAME_HEADER, MANIFEST, decodeManifest, encodeManifest, frameLen, segmentName } from '../../src/log/format.js';
import { PathFs } from './fs-path-ops.js';

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-fresh-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

const session = Session.of(createIdentity('alice'));

interface Setup { config: string; dir: string; pristine: string; files: string[] }

async function open(s: Setup, o: { acceptRollback?: boolean; warnings?: string[] } = {}): Promise<{ chain: LocalChain; fs: Filesystem; p: PathFs }> {
  const chain = await openLocalChain({
    chainDir: s.dir, configDir: s.config, session, deferCompaction: false, compactMode: 'never',
    ...(o.acceptRollback ? { acceptRollback: true } : {}), onWarning: (m) => o.warnings?.push(m),
  });
  const fs = await Filesystem.open(chain.store, {});
  return { chain, fs, p: new PathFs(fs) };
}

async function close(c: { chain: LocalChain; fs: Filesystem }): Promise<void> {
  await c.fs.destroy();
  await c.chain.close();
}

/** A chain of a few durable commits (one file each), and a pristine copy of its directory. */
async function setup(name: string, commits = 4): Promise<Setup> {
  const s: Setup = { config: join(base, `${name}-config`), dir: join(base, name), pristine: join(base, `${name}-pristine`), files: [] };
  const c = await open(s);
  for (let i = 0; i < commits; i++) {
    c.p.writeFile(`/f${i}`, Buffer.from(`content ${i}`));
    await c.fs.sync();
    s.files.push(`/f${i}`);
  }
  await close(c);
  cpSync(s.dir, s.pristine, { recursive: true });
  return s;
}

function restore(s: Setup): void {
  rmSync(s.dir, { recursive: true, force: true });
  cpSync(s.pristine, s.dir, { recursive: true });
}

const segPath = (s: Setup) => join(s.dir, 'log', segmentName(1));

/** Frame boundaries (offsets where a frame starts, and the end) of segment 1. */
function boundaries(file: string): { seq: number; start: number; end: number }[] {
  const b = readFileSync(file);
  const out = [];
  for (let off = b.readUInt32LE(12); off < b.length;) {
    const end = off + FRAME_HEADER + frameLen(b, off);
    out.push({ seq: b.readUInt32LE(off + 8), start: off, end });
    off = end;
  }
  return out;
}

const storedHead = (s: Setup): { seq: number } => Object.values(JSON.parse(readFileSync(join(s.config, HEADS_FILE), 'utf8')) as Record<string, { seq: number }>)[0]!;

describe('freshness head', () => {
  let s: Setup;
  beforeAll(async () => { s = await setup('trunc'); });

  it('stores the newest durable head beside the pins, private', async () => {
    const frames = boundaries(segPath(s));
    expect(storedHead(s).seq).toBe(frames[frames.length - 1]!.seq);
    const st = (await import('node:fs')).statSync(join(s.config, HEADS_FILE));
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('a stored head edited without the key does not verify: reported, ignored, written anew', async () => {
    const file = join(s.config, HEADS_FILE);
    const good = readFileSync(file, 'utf8');
    const all = JSON.parse(good) as Record<string, { seq: number }>;
    for (const k of Object.keys(all)) all[k]!.seq = 1;
    writeFileSync(file, JSON.stringify(all));
    const warnings: string[] = [];
    await close(await open(s, { warnings }));
    expect(warnings.join('\n')).toMatch(/stored head of .* does not verify/);
    expect(storedHead(s).seq).toBe(JSON.parse(good)[Object.keys(all)[0]!].seq);
  });

  it('refuses the log cut back at every commit boundary (and inside the newest commit)', async () => {
    const frames = boundaries(segPath(s));
    expect(frames.length).toBeGreaterThanOrEqual(5); // genesis, root, 4 commits (some may share)
    const cuts = [...frames.slice(1).map((f) => f.start), frames[frames.length - 1]!.end - 3];
    for (const at of cuts) {
      restore(s);
      truncateSync(segPath(s), at);
      const err = await open(s).then(async (c) => { await close(c); return null; }, (e: Error) => e);
      expect(err, `cut at ${at}`).toBeInstanceOf(ChainRolledBack);
      expect(err!.message).toMatch(/cut back or an older copy was restored.*--accept-rollback/);
    }
    restore(s);
    await close(await open(s));
  });

  it('refuses an older copy of the whole chain; --accept-rollback mounts it and re-pins the head', async () => {
    const old = await setup('older', 2);
    const older = join(base, 'older-copy');
    cpSync(old.dir, older, { recursive: true });
    const c = await open(old);
    c.p.unlink('/f0');
    c.p.writeFile('/new', Buffer.from('newer'));
    await c.fs.sync();
    await close(c);
    const newest = storedHead(old).seq;
    rmSync(old.dir, { recursive: true });
    cpSync(older, old.dir, { recursive: true });
    await expect(open(old)).rejects.toBeInstanceOf(ChainRolledBack);
    const warnings: string[] = [];
    const a = await open(old, { acceptRollback: true, warnings });
    expect(warnings.join('\n')).toMatch(/Accepted \(--accept-rollback\)/);
    expect(a.p.exists('/f0')).toBe(true);
    expect(a.p.exists('/new')).toBe(false);
    await close(a);
    expect(storedHead(old).seq).toBeLessThan(newest);
    await close(await open(old));
  });

  it('refuses a log replaced by a diverging history of the same length or longer', async () => {
    const d = await setup('diverge', 2);
    const fork = join(base, 'diverge-fork');
    cpSync(d.dir, fork, { recursive: true });
    const headsBefore = readFileSync(join(d.config, HEADS_FILE));
    // Branch A: what the user sees last.
    let c = await open(d);
    c.p.writeFile('/a', Buffer.from('A'));
    await c.fs.sync();
    await close(c);
    const headsA = readFileSync(join(d.config, HEADS_FILE));
    // Branch B from the same point, by the same user (e.g. another machine's copy).
    rmSync(d.dir, { recursive: true });
    cpSync(fork, d.dir, { recursive: true });
    writeFileSync(join(d.config, HEADS_FILE), headsBefore);
    c = await open(d);
    c.p.writeFile('/b', Buffer.from('B'));
    c.p.writeFile('/b2', Buffer.from('B2'));
    await c.fs.sync();
    await close(c);
    writeFileSync(join(d.config, HEADS_FILE), headsA);
    const err = await open(d).then(async (x) => { await close(x); return null; }, (e: Error) => e);
    expect(err).toBeInstanceOf(ChainRolledBack);
    expect(err!.message).toMatch(/diverges from the history this user has seen/);
  });
});

describe('torn tail', () => {
  it('a flipped byte in the newest commit is refused (not dropped), and the cut bytes are kept aside', async () => {
    const s = await setup('flip', 3);
    const frames = boundaries(segPath(s));
    const last = frames[frames.length - 1]!;
    const b = readFileSync(segPath(s));
    b[last.end - 5]! ^= 0x40;
    writeFileSync(segPath(s), b);
    const err = await open(s).then(async (c) => { await close(c); return null; }, (e: Error) => e);
    expect(err).toBeInstanceOf(ChainRolledBack);
    const aside = readdirSync(join(s.dir, 'log')).filter((f) => f.includes('.torn-'));
    expect(aside).toEqual([`${segmentName(1)}.torn-${last.start}`]);
    expect(readFileSync(join(s.dir, 'log', aside[0]!)).equals(b.subarray(last.start))).toBe(true);
  });

  it('garbage past the newest durable commit is cut with a warning naming it', async () => {
    const s = await setup('garbage', 2);
    const b = readFileSync(segPath(s));
    writeFileSync(segPath(s), Buffer.concat([b, Buffer.from('half a frame')]));
    const warnings: string[] = [];
    const c = await open(s, { warnings });
    expect(c.p.read('/f1').toString()).toBe('content 1');
    await close(c);
    expect(warnings.join('\n')).toMatch(new RegExp(`recovered a torn tail: 12 byte\\(s\\) at the end of segment 1 \\(offset ${b.length}\\)`));
  });
});

describe('chain hash', () => {
  it('refuses frames removed from the middle (CRCs intact)', async () => {
    const s = await setup('middle', 5);
    const frames = boundaries(segPath(s));
    for (let i = 1; i < frames.length - 1; i++) {
      restore(s);
      const b = readFileSync(segPath(s));
      writeFileSync(segPath(s), Buffer.concat([b.subarray(0, frames[i]!.start), b.subarray(frames[i]!.end)]));
      const err = await open(s).then(async (c) => { await close(c); return null; }, (e: Error) => e);
      expect(err, `frame ${frames[i]!.seq} removed`).toBeInstanceOf(ChainHistoryBroken);
      expect(err!.message).toMatch(new RegExp(`commit\\(s\\) ${frames[i]!.seq}\\.\\.${frames[i]!.seq} are missing`));
    }
  });

  it('accepts the gaps compaction makes (signed cut), refuses an edited cut', async () => {
    const s = await setup('compacted', 4);
    let c = await open(s);
    c.p.unlink('/f1');
    c.p.writeFile('/f2', Buffer.from('rewritten'));
    await c.fs.sync();
    const r = await c.chain.view.compact('manual');
    expect(r.skipped).toBeFalsy();
    c.p.writeFile('/after', Buffer.from('after compaction'));
    await c.fs.sync();
    await close(c);
    c = await open(s);
    expect(c.p.read('/f2').toString()).toBe('rewritten');
    expect(c.p.exists('/f1')).toBe(false);
    expect(c.chain.log.chain.cut).not.toBeNull();
    await close(c);
    // The cut moved by whoever edits the MANIFEST (its CRC recomputed): the signature fails.
    const mf = join(s.dir, 'log', MANIFEST);
    const m = decodeManifest(readFileSync(mf));
    if (typeof m === 'string') throw new Error(m);
    writeFileSync(mf, encodeManifest({ ...m, cut: { ...m.cut!, seq: m.cut!.seq + 1 } }));
    await expect(open(s)).rejects.toBeInstanceOf(ChainHistoryBroken);
    // An unsigned cut likewise.
    writeFileSync(mf, encodeManifest({ ...m, cut: { ...m.cut!, sig: Buffer.alloc(0) } }));
    await expect(open(s)).rejects.toThrow(/not signed/);
    writeFileSync(mf, encodeManifest(m));
    await close(await open(s));
    expect(readdirSync(join(s.dir, 'log')).length).toBeGreaterThan(0);
  });
});
