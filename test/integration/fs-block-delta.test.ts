import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import type { OpenLocalChainOptions } from '../../fs/chain-store/open-local.js';
import { blockKey, deltaKey, recentDeltaKey } from '../../fs/chain-store/keys.js';
import {
  BlockDeltaMalformed, DELTA_PAGE, applyDelta, changedPages, decodeDelta, encodeDelta,
} from '../../fs/chain-store/block-delta.js';
import { batchOfEvents } from '../../fs/remote/remote-batch.js';
import type { EventMeta } from '../../src/chain/index.js';

/**
 * Page deltas (fs/chain-store/block-delta.ts): a committed 64 KiB block rewritten in a few 4 KiB
 * pages is committed as those pages. Every check reads back through a fresh Filesystem (no page
 * cache of the writer) and after a reopen from disk, against a model buffer.
 */

const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
const BS = 64 * 1024;
const b = (s: string) => Buffer.from(s);

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-delta-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

interface Mounted { chain: LocalChain; fs: Filesystem }

async function mount(name: string, extra: OpenLocalChainOptions = {}): Promise<Mounted> {
  const chain = await openLocalChain({ chainDir: join(base, name), configDir: join(base, 'config'), deferCompaction: false, pageDeltas: true, ...extra });
  const fs = await Filesystem.open(chain.store);
  return { chain, fs };
}

async function unmount(m: Mounted): Promise<void> {
  await m.fs.destroy();
  await m.chain.close();
}

function readAll(fs: Filesystem, ino: number): Buffer {
  const { fh } = fs.open(ROOT, ino, 0);
  const out = Buffer.from(fs.read(ROOT, ino, fh, 0, fs.getattr(ROOT, ino).size + 10));
  fs.release(ino, fh);
  return out;
}

async function writeSync(fs: Filesystem, ino: number, offset: number, data: Buffer): Promise<void> {
  const { fh } = fs.open(ROOT, ino, 2);
  fs.write(ROOT, ino, fh, offset, data);
  await fs.fsync(ino, fh, false);
  fs.release(ino, fh);
}

/** Pages of one delta DAO in the chain (null: none or emptied). */
function pagesOf(chain: LocalChain, key: string): number[] | null {
  const d = chain.view.tryGet(key)?.data;
  return d ? decodeDelta(d).pages : null;
}

/** Pages of a block held by its deltas, both levels (null: none). */
function deltaPages(chain: LocalChain, ino: number, index: number): number[] | null {
  const all = [...(pagesOf(chain, deltaKey(ino, index)) ?? []), ...(pagesOf(chain, recentDeltaKey(ino, index)) ?? [])];
  return all.length ? [...new Set(all)].sort((x, y) => x - y) : null;
}

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
});

describe('page deltas on a local chain', () => {
  it('a few rewritten pages append a delta, not the block; reads, a reopen and a compaction give the written bytes', async () => {
    let m = await mount('basic');
    const model = randomBytes(16 * BS);
    const { entry, open: o } = m.fs.create(ROOT, 1, b('db'), 0o644, 2);
    const ino = entry.ino;
    m.fs.write(ROOT, ino, o.fh, 0, model);
    await m.fs.fsync(ino, o.fh, false);
    m.fs.release(ino, o.fh);
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
    const { entry, open: o } = m.fs.create(ROOT, 1, b('f'), 0o644, 2);
    const ino = entry.ino;
    m.fs.write(ROOT, ino, o.fh, 0, model);
    await m.fs.fsync(ino, o.fh, false);
    m.fs.release(ino, o.fh);
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
    const { entry, open: o } = m.fs.create(ROOT, 1, b('r'), 0o644, 2);
    const ino = entry.ino;
    m.fs.write(ROOT, ino, o.fh, 0, model);
    await m.fs.fsync(ino, o.fh, false);
    m.fs.release(ino, o.fh);
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

describe('page deltas seen by a remote mount', () => {
  it('a delta event is a change of its block (the core drops its copy); a delta tombstone deletes nothing', () => {
    const meta = (key: string, tombstone: boolean) => ({ key, type: 'blockdelta', tombstone, version: 2 }) as unknown as EventMeta;
    const b1 = batchOfEvents([meta(deltaKey(5, 3), false), meta(recentDeltaKey(5, 4), false)], () => null, new Map(), () => undefined);
    expect(b1.blocks.map((x) => [x.ino, x.index, x.data === null])).toEqual([[5, 4, false], [5, 3, false]]);
    const b2 = batchOfEvents([meta(deltaKey(5, 3), true)], () => null, new Map(), () => undefined);
    expect(b2.blocks).toEqual([]);
  });
});
