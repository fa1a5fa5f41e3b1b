import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Filesystem } from '../../fs/core/index.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import type { OpenLocalChainOptions } from '../../fs/chain-store/open-local.js';
import { SUPERBLOCK_KEY, blockKey, recentDeltaKey } from '../../fs/chain-store/keys.js';
import { FsFeatureUnknown, decodeSuperblock, encodeSuperblock, type FsFeature } from '../../fs/chain-store/codec.js';
import { DELTA_PAGE } from '../../fs/chain-store/block-delta.js';
import { BS, ROOT, b, createSynced, deltaPages, mountIn, readAll, unmount, writeSync, type Mounted } from './fs-delta-helpers.js';

/**
 * The chain's feature mark (fs/chain-store/codec.ts FS_FEATURES): a chain with page deltas says
 * so in its superblock, in a format every atefs from before deltas refuses, and a reader refuses
 * a feature it does not know, rather than read the chain without it.
 */

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-features-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

const mount = (name: string, extra: OpenLocalChainOptions = {}): Promise<Mounted> => mountIn(base, name, extra);

describe('the chain is marked before its first page delta', () => {
  const superblockBytes = (chain: LocalChain) => chain.view.tryGet(SUPERBLOCK_KEY)!.data!;

  it('a chain written without deltas keeps the old superblock format; the first batch with deltas on marks it (format 2) in its first commit, and the mark stays when a mount without deltas writes again', async () => {
    let m = await mount('mark', { pageDeltas: false });
    const model = randomBytes(2 * BS);
    const ino = await createSynced(m.fs, 'm', model);
    expect(superblockBytes(m.chain)[0]).toBe(1);
    expect(decodeSuperblock(superblockBytes(m.chain)).features).toBeUndefined();
    expect(m.chain.store.chainFeatures()).toEqual([]);
    await unmount(m);

    m = await mount('mark');
    // A commit small enough that the batch is cut: the mark must come in the first one.
    const page = randomBytes(DELTA_PAGE); page.copy(model, BS + DELTA_PAGE);
    await writeSync(m.fs, ino, BS + DELTA_PAGE, page);
    expect(deltaPages(m.chain, ino, 1)).toEqual([1]);
    expect(superblockBytes(m.chain)[0]).toBe(2);
    expect(decodeSuperblock(superblockBytes(m.chain)).features).toEqual(['pageDeltas']);
    // In the commit of the delta or before (the log seq of the commit holding each).
    const markedAt = m.chain.view.entry(SUPERBLOCK_KEY)!.seq;
    expect(markedAt).toBeLessThanOrEqual(m.chain.view.entry(recentDeltaKey(ino, 1))!.seq);
    // Marked once: the next delta does not write the superblock again.
    const page2 = randomBytes(DELTA_PAGE); page2.copy(model, BS + 2 * DELTA_PAGE);
    await writeSync(m.fs, ino, BS + 2 * DELTA_PAGE, page2);
    expect(deltaPages(m.chain, ino, 1)).toEqual([1, 2]);
    expect(m.chain.view.entry(SUPERBLOCK_KEY)!.seq).toBe(markedAt);
    await unmount(m);

    // A mount without deltas that allocates inodes rewrites the superblock: the mark stays.
    m = await mount('mark', { pageDeltas: false });
    expect(m.chain.store.chainFeatures()).toEqual(['pageDeltas']);
    const other = m.fs.create(ROOT, 1, b('n'), 0o644, 2);
    await m.fs.fsync(other.entry.ino, other.open.fh, false);
    m.fs.release(other.entry.ino, other.open.fh);
    expect(m.chain.view.entry(SUPERBLOCK_KEY)!.seq).toBeGreaterThan(markedAt);
    expect(decodeSuperblock(superblockBytes(m.chain)).features).toEqual(['pageDeltas']);
    expect(readAll(m.fs, ino).equals(model)).toBe(true);
    await unmount(m);
  });

  it('a batch cut into several commits carries the mark in its first one', async () => {
    const m = await mount('mark-cut', { commitBudget: 4096 });
    const { entry, open: o } = m.fs.create(ROOT, 1, b('c'), 0o644, 2);
    await m.fs.fsync(entry.ino, o.fh, false);
    const commitsBefore = m.chain.store.timings.commits;
    m.fs.write(ROOT, entry.ino, o.fh, 0, randomBytes(4 * BS));
    await m.fs.fsync(entry.ino, o.fh, false);
    m.fs.release(entry.ino, o.fh);
    expect(m.chain.store.timings.commits - commitsBefore).toBeGreaterThan(1);
    // The mark is in the batch's first commit: before every block of it.
    const markedAt = m.chain.view.entry(SUPERBLOCK_KEY)!.seq;
    for (let i = 0; i < 4; i++) expect(markedAt).toBeLessThan(m.chain.view.entry(blockKey(entry.ino, i))!.seq);
    expect(m.chain.store.chainFeatures()).toEqual(['pageDeltas']);
    await unmount(m);
  });

  it('a chain marked with a feature this version does not know is refused at open (FsFeatureUnknown), and the refusal releases the log and the index', async () => {
    let m = await mount('mark-unknown', { pageDeltas: false });
    const { entry, open: o } = m.fs.create(ROOT, 1, b('u'), 0o644, 2);
    await m.fs.fsync(entry.ino, o.fh, false);
    m.fs.release(entry.ino, o.fh);
    const { nextIno } = decodeSuperblock(superblockBytes(m.chain));
    const mark = async (features: string[]) => {
      const dio = m.chain.view.begin('durable');
      dio.store(encodeSuperblock({ nextIno, features: features as FsFeature[] }), { key: SUPERBLOCK_KEY, parent: null, type: 'superblock' });
      await dio.commit();
    };
    await mark(['pageDeltas', 'fromTheFuture']);
    await unmount(m);
    const err = await mount('mark-unknown').then(async (x) => { await unmount(x); return null; }, (e: unknown) => e);
    expect(err).toBeInstanceOf(FsFeatureUnknown);
    expect((err as FsFeatureUnknown).features).toEqual(['fromTheFuture']);
    expect((err as Error).message).toMatch(/newer atefs/);
    // The refused open released the log and the index: opening again gets the same refusal, not a lock error.
    const raw = await openLocalChain({ chainDir: join(base, 'mark-unknown'), configDir: join(base, 'config'), deferCompaction: false, readOnly: true }).then(() => null, (e: unknown) => e);
    expect(raw).toBeInstanceOf(FsFeatureUnknown);
    await expect(mount('mark-unknown')).rejects.toBeInstanceOf(FsFeatureUnknown);
  });

  it('atefs mount refuses such a chain in one line, for the chain and for a point of its history (--at)', async () => {
    const { openPersistentLocalStore, openHistoricStore } = await import('../../cli/mount-store.js');
    const { toMountArgs } = await import('../../cli/mount-args.js');
    // The default identity and pins (this test file's own XDG directories), as the CLI uses them.
    const dir = join(base, 'mark-cli');
    const chain = await openLocalChain({ chainDir: dir, deferCompaction: false });
    const fs = await Filesystem.open(chain.store);
    const { entry, open: o } = fs.create(ROOT, 1, b('x'), 0o644, 2);
    fs.write(ROOT, entry.ino, o.fh, 0, randomBytes(BS));
    await fs.fsync(entry.ino, o.fh, false);
    fs.release(entry.ino, o.fh);
    await fs.destroy();
    const dio = chain.view.begin('durable');
    dio.store(encodeSuperblock({ nextIno: decodeSuperblock(chain.view.tryGet(SUPERBLOCK_KEY)!.data!).nextIno, features: ['fromTheFuture' as FsFeature] }), { key: SUPERBLOCK_KEY, parent: null, type: 'superblock' });
    await dio.commit();
    const seq = chain.log.nextSeq - 1;
    await chain.close();
    const refused = openPersistentLocalStore(toMountArgs({ dir: join(base, 'mnt'), logPath: dir, transport: 'kernel' }));
    await expect(refused).rejects.toThrow(/^refusing the chain: this chain uses file system features this version of atefs does not know \(fromTheFuture\): mount it with a newer atefs$/);
    await expect(refused).rejects.toHaveProperty('name', 'UserError');
    const history = openHistoricStore(toMountArgs({ dir: join(base, 'mnt'), logPath: dir, at: String(seq), transport: 'kernel' }));
    await expect(history).rejects.toThrow(/^refusing the chain: .*fromTheFuture/);
    await expect(history).rejects.toHaveProperty('name', 'UserError');
    // `atefs log --path` reads the chain's newest state to find the file: the same one line.
    const { runLog } = await import('../../cli/history.js');
    const log = runLog({ logPath: dir, path: 'x', json: true });
    await expect(log).rejects.toThrow(/^refusing the chain: .*fromTheFuture/);
    await expect(log).rejects.toHaveProperty('name', 'UserError');
    // All released the log: the chain opens again (and is refused again, not locked).
    await expect(openLocalChain({ chainDir: dir, deferCompaction: false })).rejects.toBeInstanceOf(FsFeatureUnknown);
  });
});
