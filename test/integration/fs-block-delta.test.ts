import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Filesystem } from '../../fs/core/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';
import type { OpenLocalChainOptions } from '../../fs/chain-store/open-local.js';
import { DELTAS, blockKey, deltaKey, inodeKey, recentDeltaKey } from '../../fs/chain-store/keys.js';
import {
  BlockDeltaMalformed, DELTA_PAGE, applyDelta, changedPages, changedPagesOver, decodeDelta, encodeDelta, sameAsLevels,
} from '../../fs/chain-store/block-delta.js';
import { batchOfEvents } from '../../fs/remote/remote-batch.js';
import type { EventMeta } from '../../src/chain/index.js';
import { BS, ROOT, b, createSynced, deltaPages, mountIn, pagesOf, readAll, unmount, writeSync, type Mounted } from './fs-delta-helpers.js';

/**
 * Page deltas (fs/chain-store/block-delta.ts): a committed 64 KiB block rewritten in a few 4 KiB
 * pages is committed as those pages. Every check reads back through a fresh Filesystem (no page
 * cache of the writer) and after a reopen from disk, against a model buffer.
 */

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-delta-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

const mount = (name: string, extra: OpenLocalChainOptions = {}): Promise<Mounted> => mountIn(base, name, extra);

describe('block delta format', () => {
  it('encodes, decodes and applies pages, the last one clipped by the length', () => {
    const block = randomBytes(BS - 1000);
    const d = decodeDelta(encodeDelta(block, [0, 3, 15]));
    expect(d.length).toBe(BS - 1000);
    expect(d.pages).toEqual([0, 3, 15]);
    expect(d.body.length).toBe(2 * DELTA_PAGE + (BS - 1000 - 15 * DELTA_PAGE));
    const base0 = Buffer.alloc(BS, 7);
    const out = applyDelta(base0, d);
    expect(out.length).toBe(BS - 1000);
    for (const p of [0, 3, 15]) expect(out.subarray(p * DELTA_PAGE, (p + 1) * DELTA_PAGE).equals(block.subarray(p * DELTA_PAGE, (p + 1) * DELTA_PAGE))).toBe(true);
    expect(out.subarray(DELTA_PAGE, 3 * DELTA_PAGE).every((x) => x === 7)).toBe(true);
    // A shorter base reads as zero-padded up to the delta's length.
    const grown = applyDelta(Buffer.alloc(100, 9), decodeDelta(encodeDelta(Buffer.alloc(3 * DELTA_PAGE, 1), [2])));
    expect(grown.length).toBe(3 * DELTA_PAGE);
    expect(grown.subarray(0, 100).every((x) => x === 9)).toBe(true);
    expect(grown.subarray(100, 2 * DELTA_PAGE).every((x) => x === 0)).toBe(true);
    expect(grown.subarray(2 * DELTA_PAGE).every((x) => x === 1)).toBe(true);
  });

  it('refuses malformed deltas', () => {
    const good = encodeDelta(randomBytes(3 * DELTA_PAGE), [1, 2]);
    expect(() => decodeDelta(Buffer.concat([good, Buffer.alloc(1)]))).toThrow(BlockDeltaMalformed);
    const bad = Buffer.from(good); bad[0] = 9;
    expect(() => decodeDelta(bad)).toThrow(BlockDeltaMalformed);
    const unordered = Buffer.from(good); unordered.writeUInt16LE(2, 7); unordered.writeUInt16LE(1, 9);
    expect(() => decodeDelta(unordered)).toThrow(BlockDeltaMalformed);
    const past = encodeDelta(randomBytes(3 * DELTA_PAGE), [2]); past.writeUInt32LE(2 * DELTA_PAGE, 1);
    expect(() => decodeDelta(past)).toThrow(BlockDeltaMalformed);
  });

  it('finds changed pages, reading the shorter buffer as zero-padded, and stops past a limit', () => {
    const a = randomBytes(BS);
    const c = Buffer.from(a);
    c[5 * DELTA_PAGE + 17] ^= 1;
    c[BS - 1] ^= 1;
    expect(changedPages(a, c)).toEqual([5, 15]);
    expect(changedPages(a, c, 1)).toBeNull();
    const short = Buffer.alloc(DELTA_PAGE + 10, 0); short[3] = 1;
    const long = Buffer.alloc(3 * DELTA_PAGE); long[3] = 1;
    expect(changedPages(short, long)).toEqual([]);
    long[2 * DELTA_PAGE + 1] = 4;
    expect(changedPages(short, long)).toEqual([2]);
    expect(changedPages(long, short)).toEqual([]);
  });

  it('applyDelta zero-pads past a shorter base even over a reused (unclean) allocation', () => {
    // allocUnsafe may hand back pooled memory: the bytes past the base must still read as zeros.
    for (let i = 0; i < 50; i++) Buffer.allocUnsafe(BS).fill(0xee);
    const out = applyDelta(Buffer.alloc(10, 5), decodeDelta(encodeDelta(Buffer.alloc(3 * DELTA_PAGE, 1), [2])));
    expect(out.subarray(0, 10).every((x) => x === 5)).toBe(true);
    expect(out.subarray(10, 2 * DELTA_PAGE).every((x) => x === 0)).toBe(true);
  });

  it('changedPagesOver and sameAsLevels compare with the block the levels make, as building it does', () => {
    // Lengths around page edges, levels shorter and longer than the ones below, pages that differ
    // only in the base, in a level, past a level's length or past the block's.
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return (seed >>> 12) % n; };
    const lengths = [BS, BS - 1000, 3 * DELTA_PAGE + 5, 2 * DELTA_PAGE, 100];
    const level = () => {
      const len = lengths[rnd(lengths.length)]!;
      const n = Math.ceil(len / DELTA_PAGE);
      return decodeDelta(encodeDelta(randomBytes(len), [...new Set([rnd(n), rnd(n), rnd(n)])].sort((x, y) => x - y)));
    };
    let same = 0;
    let differs = 0;
    let cut = 0;
    for (let i = 0; i < 600; i++) {
      const base = randomBytes(lengths[rnd(lengths.length)]!);
      const levels = [level(), level()].slice(0, rnd(3));
      const block = levels.reduce<Buffer>((b, l) => applyDelta(b, l), base);
      let data = Buffer.from(block);
      const kind = rnd(5);
      if (kind === 1 && data.length > 0) data[rnd(data.length)] ^= 1 + rnd(255);
      if (kind === 2) data = Buffer.concat([data, Buffer.alloc(1 + rnd(5000))]); // zero-padded: same pages
      if (kind === 3 && data.length > 1) data = data.subarray(0, rnd(data.length));
      if (kind === 4) data = randomBytes(lengths[rnd(lengths.length)]!);
      const stop = [0, 1, 2, Number.POSITIVE_INFINITY][rnd(4)]!;
      expect(changedPagesOver(base, levels, data, stop)).toEqual(changedPages(block, data, stop));
      const want = data.length === block.length && data.equals(block);
      expect(sameAsLevels(data, base, levels)).toBe(want);
      if (want) same++; else differs++;
      if (changedPages(block, data, stop) === null) cut++;
    }
    expect(same).toBeGreaterThan(50);
    expect(differs).toBeGreaterThan(50);
    expect(cut).toBeGreaterThan(20);
  });
});

describe('page deltas on a local chain', () => {
  it('a few rewritten pages append a delta, not the block; reads, a reopen and a compaction give the written bytes', async () => {
    let m = await mount('basic');
    const model = randomBytes(16 * BS);
    const ino = await createSynced(m.fs, 'db', model);
    const before = m.chain.log.sizeBytes();
    // One page in each of 16 blocks.
    const h = m.fs.open(ROOT, ino, 2);
    for (let i = 0; i < 16; i++) {
      const page = randomBytes(DELTA_PAGE);
      const off = i * BS + ((i * 5) % 16) * DELTA_PAGE;
      page.copy(model, off);
      m.fs.write(ROOT, ino, h.fh, off, page);
    }
    await m.fs.fsync(ino, h.fh, false);
    m.fs.release(ino, h.fh);
    const grew = m.chain.log.sizeBytes() - before;
    // 16 pages of 4 KiB and their events: far below the 1 MiB of 16 whole blocks.
    expect(grew).toBeLessThan(160 * 1024);
    for (let i = 0; i < 16; i++) expect(deltaPages(m.chain, ino, i)).toEqual([(i * 5) % 16]);
    // The committed content from the store, not the writer's cache.
    expect(m.chain.store.getBlock(ino, 3)!.equals(model.subarray(3 * BS, 4 * BS))).toBe(true);
    expect(m.chain.store.blockSources(ino, [3])[0]).toBeNull();
    expect(readAll(m.fs, ino).equals(model)).toBe(true);
    await unmount(m);

    m = await mount('basic');
    expect(readAll(m.fs, ino).equals(model)).toBe(true);
    // Sequential read path (fetchBlocks on workers) leaves delta blocks to getBlock.
    const fetched = await m.chain.store.fetchBlocks(ino, [0, 1, 2, 3]);
    for (let i = 0; i < 4; i++) if (fetched[i] !== undefined) expect(fetched[i]!.equals(model.subarray(i * BS, (i + 1) * BS))).toBe(true);
    await m.chain.view.compact('test');
    expect(readAll(m.fs, ino).equals(model)).toBe(true);
    await unmount(m);
    m = await mount('basic');
    expect(readAll(m.fs, ino).equals(model)).toBe(true);
    await unmount(m);
  });

  it('pages gather in the recent delta, merge into the delta past an eighth of the block, and once the delta would pass three eighths the whole block is written again and both emptied; identical rewrites append nothing', async () => {
    const m = await mount('fold');
    const model = randomBytes(2 * BS);
    const ino = await createSynced(m.fs, 'f', model);
    const v0 = m.chain.view.entry(blockKey(ino, 0))!.node.version;
    const rewrite = async (p: number) => {
      const page = randomBytes(DELTA_PAGE); page.copy(model, p * DELTA_PAGE);
      await writeSync(m.fs, ino, p * DELTA_PAGE, page);
    };
    await rewrite(1);
    await rewrite(4);
    expect(pagesOf(m.chain, recentDeltaKey(ino, 0))).toEqual([1, 4]);
    expect(pagesOf(m.chain, deltaKey(ino, 0))).toBeNull();
    await rewrite(9); // a third page: past 8 KiB of 64 KiB, merged
    expect(pagesOf(m.chain, deltaKey(ino, 0))).toEqual([1, 4, 9]);
    expect(pagesOf(m.chain, recentDeltaKey(ino, 0))).toBeNull();
    await rewrite(4); // again: the recent delta holds it over the delta's older copy
    expect(pagesOf(m.chain, recentDeltaKey(ino, 0))).toEqual([4]);
    expect(m.chain.store.getBlock(ino, 0)!.equals(model.subarray(0, BS))).toBe(true);
    for (const p of [12, 2, 6]) await rewrite(p);
    expect(deltaPages(m.chain, ino, 0)).toEqual([1, 2, 4, 6, 9, 12]);
    expect(m.chain.view.entry(blockKey(ino, 0))!.node.version).toBe(v0);
    expect(m.chain.store.getBlock(ino, 0)!.equals(model.subarray(0, BS))).toBe(true);
    // (the recent delta took 12, then 2 merged it into the delta: [1, 2, 4, 9, 12]; 6 is recent)
    expect(pagesOf(m.chain, deltaKey(ino, 0))).toEqual([1, 2, 4, 9, 12]);
    await rewrite(7); // recent: [6, 7]
    expect(m.chain.view.entry(blockKey(ino, 0))!.node.version).toBe(v0);
    // Merging [3, 6, 7] would make the delta 8 pages: past 24 KiB of 64 KiB, so the whole block.
    await rewrite(3);
    expect(m.chain.view.entry(blockKey(ino, 0))!.node.version).toBeGreaterThan(v0);
    expect(deltaPages(m.chain, ino, 0)).toBeNull();
    // Emptied, not tombstones.
    expect(m.chain.view.exists(deltaKey(ino, 0))).toBe(true);
    expect(m.chain.view.exists(recentDeltaKey(ino, 0))).toBe(true);
    expect(m.chain.store.getBlock(ino, 0)!.equals(model.subarray(0, BS))).toBe(true);
    // The same bytes again: nothing to commit for the block.
    const before = m.chain.view.entry(blockKey(ino, 1))!.node.version;
    await writeSync(m.fs, ino, BS + 100, model.subarray(BS + 100, BS + 5000));
    expect(m.chain.view.entry(blockKey(ino, 1))!.node.version).toBe(before);
    expect(deltaPages(m.chain, ino, 1)).toBeNull();
    expect(readAll(m.fs, ino).equals(model)).toBe(true);
    await unmount(m);
  });

  it('random writes, truncates, holes and reopens keep reading as the model', async () => {
    let m = await mount('random');
    let seed = 777;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    let model = randomBytes(5 * BS + 3000);
    const ino = await createSynced(m.fs, 'r', model);
    let deltasSeen = 0;
    for (let round = 0; round < 60; round++) {
      const h = m.fs.open(ROOT, ino, 2);
      const op = rand(10);
      if (op < 7) {
        // Small writes: 1-3 pieces of up to a page, anywhere up to a bit past the end.
        for (let k = 1 + rand(3); k > 0; k--) {
          const off = rand(model.length + 2000);
          const data = randomBytes(1 + rand(DELTA_PAGE));
          m.fs.write(ROOT, ino, h.fh, off, data);
          const end = off + data.length;
          if (end > model.length) { const g = Buffer.alloc(end); model.copy(g); model = g; }
          data.copy(model, off);
        }
      } else if (op === 7) {
        const size = 4097 + rand(6 * BS);
        m.fs.setattr(ROOT, ino, { size });
        const g = Buffer.alloc(size); model.copy(g, 0, 0, Math.min(size, model.length)); model = g;
      } else if (op === 8) {
        // Punch a hole (fallocate PUNCH_HOLE | KEEP_SIZE).
        const off = rand(model.length), len = 1 + rand(2 * BS);
        m.fs.fallocate(ROOT, ino, h.fh, 3, off, len);
        model.fill(0, off, Math.min(model.length, off + len));
      } else {
        const off = rand(model.length);
        const data = randomBytes(BS + rand(BS));
        m.fs.write(ROOT, ino, h.fh, off, data);
        const end = off + data.length;
        if (end > model.length) { const g = Buffer.alloc(end); model.copy(g); model = g; }
        data.copy(model, off);
      }
      await m.fs.fsync(ino, h.fh, false);
      m.fs.release(ino, h.fh);
      for (let i = 0; i * BS < model.length; i++) if (deltaPages(m.chain, ino, i)) deltasSeen++;
      // The store's own content, block by block.
      for (let i = 0; i * BS < model.length; i++) {
        const want = model.subarray(i * BS, Math.min(model.length, (i + 1) * BS));
        const got = m.chain.store.getBlock(ino, i) ?? Buffer.alloc(0);
        const padded = Buffer.alloc(want.length); got.copy(padded, 0, 0, Math.min(got.length, want.length));
        expect(padded.equals(want), `round ${round} block ${i}`).toBe(true);
      }
      if (round % 15 === 14) {
        await unmount(m);
        m = await mount('random');
      }
      expect(readAll(m.fs, ino).equals(model), `round ${round}`).toBe(true);
    }
    expect(deltasSeen).toBeGreaterThan(10);
    // Unlinked: no block and no delta of it stays live.
    m.fs.unlink(ROOT, 1, b('r'));
    const h2 = m.fs.create(ROOT, 1, b('other'), 0o644, 2);
    await m.fs.fsync(h2.entry.ino, h2.open.fh, false);
    m.fs.release(h2.entry.ino, h2.open.fh);
    for (let i = 0; i < 8; i++) {
      expect(m.chain.view.exists(blockKey(ino, i))).toBe(false);
      expect(m.chain.view.exists(deltaKey(ino, i))).toBe(false);
      expect(m.chain.view.exists(recentDeltaKey(ino, i))).toBe(false);
    }
    await unmount(m);
  }, 120_000);

  it('a page rewritten in the batch that makes the file private is written with the whole block (no delta over a base under the old key)', async () => {
    const m = await mount('private-batch');
    const model = randomBytes(2 * BS);
    const { entry, open: o } = m.fs.create(ROOT, 1, b('q'), 0o644, 2);
    const ino = entry.ino;
    m.fs.write(ROOT, ino, o.fh, 0, model);
    await m.fs.fsync(ino, o.fh, false);
    const v0 = m.chain.view.entry(blockKey(ino, 0))!.node.version;
    const page = randomBytes(DELTA_PAGE); page.copy(model, DELTA_PAGE);
    m.fs.write(ROOT, ino, o.fh, DELTA_PAGE, page);
    m.fs.setattr(ROOT, ino, { mode: 0o600 });
    await m.fs.fsync(ino, o.fh, false);
    m.fs.release(ino, o.fh);
    expect(m.chain.view.entry(blockKey(ino, 0))!.node.version).toBeGreaterThan(v0);
    expect(deltaPages(m.chain, ino, 0)).toBeNull();
    expect(m.chain.store.getBlock(ino, 0)!.equals(model.subarray(0, BS))).toBe(true);
    await unmount(m);
  });

  it('chmod re-seals a block with a delta as a whole block (the other reader reads the last bytes)', async () => {
    const { createIdentity, createGroupRole, Session, readersOfPrincipal } = await import('../../src/session/index.js');
    const owner = createIdentity('owner');
    const mate = createIdentity('mate');
    const team = createGroupRole('team', 'observer', { write: false });
    const dir = join(base, 'reseal');
    const a = await openLocalChain({
      chainDir: dir, configDir: join(base, 'cfg-owner'), session: Session.of(owner, team), deferCompaction: false, pageDeltas: true,
      extraReaders: readersOfPrincipal(team, { sym: true, kem: false }),
    });
    const fa = await Filesystem.open(a.store);
    const model = randomBytes(3 * BS);
    const { entry, open: o } = fa.create(ROOT, 1, b('p'), 0o600, 2);
    const ino = entry.ino;
    fa.write(ROOT, ino, o.fh, 0, model);
    await fa.fsync(ino, o.fh, false);
    const page = randomBytes(DELTA_PAGE); page.copy(model, BS + 2 * DELTA_PAGE);
    fa.write(ROOT, ino, o.fh, BS + 2 * DELTA_PAGE, page);
    await fa.fsync(ino, o.fh, false);
    fa.release(ino, o.fh);
    expect(deltaPages(a, ino, 1)).toEqual([2]);
    fa.setattr(ROOT, ino, { mode: 0o644 });
    await fa.destroy();
    await a.close();

    const mm = await openLocalChain({ chainDir: dir, configDir: join(base, 'cfg-mate'), session: Session.of(mate, team), readOnly: true, trustChain: true });
    const fm = await Filesystem.open(mm.store, { readOnly: true });
    expect(readAll(fm, ino).equals(model)).toBe(true);
    await fm.destroy();
    await mm.close();
  });
});

/**
 * Issue #17: a committed block cut short by a truncate, written into, then grown again (truncate
 * up, or a write past the end) read back the bytes the truncate had cut off: the delta was
 * computed against the block as committed (short, read as zero-padded) while a read applied it
 * over the base, which still held the old bytes past the cut. Each case is one file of a shared
 * chain; the base is committed first, then the steps run with or without commits between them.
 */
describe('page deltas: truncate, write, extend (issue #17)', () => {
  type Step = { t: 'truncate'; size: number } | { t: 'write'; off: number; len: number } | { t: 'commit' };
  interface Case { name: string; initial: number; steps: Step[] }

  const cuts: Array<[string, number]> = [
    ['to 0', 0],
    ['to a page boundary of block 0', 5 * DELTA_PAGE],
    ['mid-page in block 0', 5 * DELTA_PAGE + 1234],
    ['to a page boundary of block 1', BS + 3 * DELTA_PAGE],
    ['mid-page in block 1', BS + 3 * DELTA_PAGE + 100],
    ['just into block 1', BS + 10],
  ];
  const extends_: Array<[string, (cut: number) => Step]> = [
    ['truncate up', () => ({ t: 'truncate', size: 2 * BS + 500 })],
    ['a write past the end', (cut) => ({ t: 'write', off: Math.max(cut, BS) + 9000, len: 300 })],
  ];
  const commits: Array<[string, (s: Step[]) => Step[]]> = [
    ['a commit after each step', (s) => s.flatMap((x) => [x, { t: 'commit' } as Step])],
    ['no commit between the steps', (s) => s],
    ['a commit after the truncate only', (s) => [s[0]!, { t: 'commit' }, ...s.slice(1)]],
  ];
  const cases: Case[] = [];
  for (const [cn, cut] of cuts) {
    for (const [en, ext] of extends_) {
      for (const [mn, arrange] of commits) {
        // The write lands in the block the cut is in, below the cut (at its start for a cut on it).
        const blockStart = Math.floor(Math.max(0, cut - 1) / BS) * BS;
        const wlen = Math.max(1, Math.min(700, cut - blockStart - 7));
        const write: Step = { t: 'write', off: cut > blockStart + 7 ? blockStart + 7 : blockStart, len: wlen };
        cases.push({ name: `cut ${cn}, write, extend by ${en}, ${mn}`, initial: 2 * BS + 3000, steps: arrange([{ t: 'truncate', size: cut }, write, ext(cut)]) });
      }
    }
  }
  // The model test's case (seed -134108736): a 19,476-byte file cut to 5,791, written at 3, grown to 10,952.
  cases.push({ name: 'the model test case', initial: 19476, steps: [{ t: 'truncate', size: 5791 }, { t: 'commit' }, { t: 'write', off: 3, len: 3168 }, { t: 'truncate', size: 10952 }] });
  // Cut twice before growing, and grown in two steps.
  cases.push({ name: 'cut twice, grown twice', initial: BS + 20000, steps: [
    { t: 'truncate', size: BS + 15000 }, { t: 'commit' }, { t: 'truncate', size: BS + 6000 }, { t: 'commit' },
    { t: 'write', off: BS + 100, len: 50 }, { t: 'commit' }, { t: 'truncate', size: BS + 12000 }, { t: 'commit' },
    { t: 'write', off: BS + 30000, len: 10 },
  ] });

  it('every cut, extension and commit arrangement reads back as written, after a reopen, by a mount writing whole blocks, and after a compaction', async () => {
    let m = await mount('truncate-extend');
    let seed = 4242;
    const files: Array<{ ino: number; model: Buffer; name: string }> = [];
    const deltasSeen = new Set<string>();
    for (const [k, c] of cases.entries()) {
      let model = randomBytes(c.initial);
      const { entry, open: o } = m.fs.create(ROOT, 1, b(`f${k}`), 0o644, 2);
      const ino = entry.ino;
      m.fs.write(ROOT, ino, o.fh, 0, model);
      await m.fs.fsync(ino, o.fh, false);
      for (const st of c.steps) {
        if (st.t === 'commit') {
          await m.fs.fsync(ino, o.fh, false);
          for (let i = 0; i * BS < model.length; i++) if (deltaPages(m.chain, ino, i) || m.chain.store.blockSources(ino, [i])[0] === null) deltasSeen.add(c.name);
        } else if (st.t === 'truncate') {
          m.fs.setattr(ROOT, ino, { size: st.size });
          const g = Buffer.alloc(st.size); model.copy(g, 0, 0, Math.min(st.size, model.length)); model = g;
        } else {
          seed = (seed * 1103515245 + 12345) & 0x7fffffff;
          const data = Buffer.alloc(st.len, 1 + (seed % 255));
          m.fs.write(ROOT, ino, o.fh, st.off, data);
          const end = st.off + st.len;
          if (end > model.length) { const g = Buffer.alloc(end); model.copy(g); model = g; }
          data.copy(model, st.off);
        }
      }
      await m.fs.fsync(ino, o.fh, false);
      m.fs.release(ino, o.fh);
      // The store's committed content, block by block (not the writer's page cache).
      for (let i = 0; i * BS < model.length; i++) {
        const want = model.subarray(i * BS, Math.min(model.length, (i + 1) * BS));
        const got = m.chain.store.getBlock(ino, i) ?? Buffer.alloc(0);
        const padded = Buffer.alloc(want.length); got.copy(padded, 0, 0, Math.min(got.length, want.length));
        expect(padded.equals(want), `${c.name}: block ${i} as committed`).toBe(true);
      }
      files.push({ ino, model, name: c.name });
    }
    // Deltas were written (the cases test them, not whole blocks).
    expect(deltasSeen.size).toBeGreaterThan(cases.length / 2);
    const check = (fs: Filesystem, when: string) => {
      for (const f of files) expect(readAll(fs, f.ino).equals(f.model), `${f.name}: ${when}`).toBe(true);
    };
    check(m.fs, 'before the reopen');
    await unmount(m);
    m = await mount('truncate-extend');
    check(m.fs, 'after a reopen');
    await unmount(m);
    // A mount that writes whole blocks still reads the deltas.
    m = await mount('truncate-extend', { pageDeltas: false });
    check(m.fs, 'by a mount with pageDeltas off');
    await m.chain.view.compact('test');
    check(m.fs, 'after a compaction');
    await unmount(m);
    m = await mount('truncate-extend');
    check(m.fs, 'after a compaction and a reopen');
    await unmount(m);
  }, 120_000);

  it('random truncates down and up, small writes and commits on a 3-block file read back as the model after every commit', async () => {
    let m = await mount('truncate-fuzz');
    let seed = 99;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    let model = randomBytes(3 * BS);
    const ino = await createSynced(m.fs, 'z', model);
    let h = m.fs.open(ROOT, ino, 2);
    let commits = 0;
    let withDelta = 0;
    for (let step = 0; step < 400; step++) {
      const op = rand(10);
      if (op < 3) {
        // Anywhere up to 3 blocks, on a page boundary a third of the time.
        const size = rand(3) === 0 ? rand(3 * (BS / DELTA_PAGE) + 1) * DELTA_PAGE : rand(3 * BS + 1);
        m.fs.setattr(ROOT, ino, { size });
        const g = Buffer.alloc(size); model.copy(g, 0, 0, Math.min(size, model.length)); model = g;
      } else if (op < 7) {
        const off = rand(Math.min(3 * BS, model.length + 3 * DELTA_PAGE));
        const data = randomBytes(1 + rand(rand(4) === 0 ? DELTA_PAGE * 3 : 200));
        m.fs.write(ROOT, ino, h.fh, off, data);
        const end = off + data.length;
        if (end > model.length) { const g = Buffer.alloc(end); model.copy(g); model = g; }
        data.copy(model, off);
      } else {
        await m.fs.fsync(ino, h.fh, false);
        commits++;
        for (let i = 0; i * BS < model.length; i++) {
          const want = model.subarray(i * BS, Math.min(model.length, (i + 1) * BS));
          const got = m.chain.store.getBlock(ino, i) ?? Buffer.alloc(0);
          const padded = Buffer.alloc(want.length); got.copy(padded, 0, 0, Math.min(got.length, want.length));
          expect(padded.equals(want), `step ${step}: block ${i} as committed`).toBe(true);
          if (deltaPages(m.chain, ino, i) || m.chain.store.blockSources(ino, [i])[0] === null) withDelta++;
        }
        if (commits % 40 === 0) {
          m.fs.release(ino, h.fh);
          await unmount(m);
          m = await mount('truncate-fuzz');
          expect(readAll(m.fs, ino).equals(model), `step ${step}: after a reopen`).toBe(true);
          h = m.fs.open(ROOT, ino, 2);
        }
      }
    }
    await m.fs.fsync(ino, h.fh, false);
    m.fs.release(ino, h.fh);
    await unmount(m);
    m = await mount('truncate-fuzz');
    expect(readAll(m.fs, ino).equals(model), 'at the end, after a reopen').toBe(true);
    // Blocks with deltas were checked (the cuts are in the deltas, not in whole blocks).
    expect(withDelta).toBeGreaterThan(50);
    await unmount(m);
  }, 120_000);
});

describe('page deltas seen by a remote mount', () => {
  it('a block whose delta another commit changed is rewritten against the chain, not against the levels this store last committed', async () => {
    const m = await mount('committed-levels');
    let ino = 0;
    let d = Buffer.alloc(0);
    try {
      const a = randomBytes(BS);
      ino = await createSynced(m.fs, 'f', a);
      const p1 = randomBytes(DELTA_PAGE);
      await writeSync(m.fs, ino, 0, p1); // a recent delta: the store keeps base a, a + p1 as committed
      expect(pagesOf(m.chain, recentDeltaKey(ino, 0))).toEqual([0]);
      // Another writer's commit (as a replicated one would be) puts page 5 in the delta.
      const other = Buffer.from(a);
      randomBytes(DELTA_PAGE).copy(other, 5 * DELTA_PAGE);
      const dio = m.chain.view.begin();
      dio.store(encodeDelta(other, [5]), { key: deltaKey(ino, 0), parent: { key: inodeKey(ino), collection: DELTAS }, type: 'blockdelta' });
      await dio.commit('durable');
      // The store is handed the block as this writer has it: a with pages 0 and 2 rewritten.
      d = Buffer.from(a);
      p1.copy(d, 0);
      randomBytes(DELTA_PAGE).copy(d, 2 * DELTA_PAGE);
      await m.chain.store.commit({ inodes: [], deletedInodes: [], dentries: [], blocks: [{ ino, index: 0, data: d }] }, 'durable');
      // Page 5 must be back to a's: three pages differ from the chain's base with its delta, too
      // many for the recent delta, so the delta is written again over the base (pages 0 and 2).
      // Against the levels kept from before the other commit (base a, no delta) it would have been
      // a recent delta of pages 0 and 2 over the other writer's page 5.
      expect(pagesOf(m.chain, deltaKey(ino, 0))).toEqual([0, 2]);
      expect(pagesOf(m.chain, recentDeltaKey(ino, 0))).toBeNull();
      expect(m.chain.store.getBlock(ino, 0)!.equals(d)).toBe(true);
    } finally {
      await unmount(m);
    }
    // Read from the chain alone (no levels kept by a store that committed them).
    const again = await mount('committed-levels');
    try {
      expect(again.chain.store.getBlock(ino, 0)!.equals(d)).toBe(true);
      expect(readAll(again.fs, ino).equals(d)).toBe(true);
    } finally {
      await unmount(again);
    }
  });

  it('a delta event is a change of its block (the core drops its copy); a delta tombstone deletes nothing', () => {
    const meta = (key: string, tombstone: boolean) => ({ key, type: 'blockdelta', tombstone, version: 2 }) as unknown as EventMeta;
    const b1 = batchOfEvents([meta(deltaKey(5, 3), false), meta(recentDeltaKey(5, 4), false)], () => null, new Map(), () => undefined);
    expect(b1.blocks.map((x) => [x.ino, x.index, x.data === null])).toEqual([[5, 4, false], [5, 3, false]]);
    const b2 = batchOfEvents([meta(deltaKey(5, 3), true)], () => null, new Map(), () => undefined);
    expect(b2.blocks).toEqual([]);
  });
});
