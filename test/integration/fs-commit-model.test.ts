// Model-based random test of the commit path (issue 11), on real local chains (log + LMDB index in
// a temp dir, real signatures and encryption): random sequences of namespace and content operations
// with random commit points — many operations per batch, directories created and removed inside
// one window included — run against the fs core over the chain store and against a small reference
// filesystem (test/model/fs-model.ts). Checked:
//  - every operation succeeds or fails exactly as the model says (same errno);
//  - after every commit (sync or fsync) the tree equals the model's, and no commit failed;
//  - 'crash': a copy of the log taken at that moment (no close, no index: replayed from the log
//    alone) holds exactly the model's state at the last commit point;
//  - 'crash-mid': a crash between two commits of one batch (cut by a small commit budget) leaves
//    a whole tree (no entry naming a missing inode) with only names of the state before or after;
//  - 'reopen': destroy + close + open again (index kept) gives the model's current state;
//  - 'compact': a compaction of the log in the middle changes nothing visible, and the compacted
//    log verifies (verifyChain, what `atefs verify` runs);
//  - at the end: the tree after a final reopen.
// ATEFS_PROPERTY_RUNS sets the number of runs (default 1,500: ~6 min on 2 cores, ~56,000 operations),
// ATEFS_PROPERTY_SHRINK=0 reports the first failure without shrinking it, ATEFS_PROPERTY_SEED and
// ATEFS_PROPERTY_PATH replay the seed and path fast-check printed (for either run), ATEFS_PROPERTY_PAGE_DELTAS=1|0
// writes with page deltas on or off (fs/chain-store/block-delta.ts; default: the mount's default),
// ATEFS_PROPERTY_DELTA_RUNS sets the runs of the page deltas' own property (default 150).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cpSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem, type Ino } from '../../fs/core/index.js';
import { FsError } from '../../fs/core/errors.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import { blockHasDelta } from '../../fs/chain-store/block-delta.js';
import { verifyChain } from '../../src/chain/index.js';
import { defaultPool } from '../../src/crypto/index.js';
import { writePin } from '../../src/session/index.js';
import { FsModel, concretize, describeOp, writeData, type Errno, type Op } from '../model/fs-model.js';
import { contentOpArb, opArb } from '../model/arbitraries.js';
import { PathFs, ROOT_CTX } from './fs-path-ops.js';

const RUNS = Number(process.env.ATEFS_PROPERTY_RUNS ?? 1500);
const DELTA_RUNS = Number(process.env.ATEFS_PROPERTY_DELTA_RUNS ?? 150);
const SHRINK = process.env.ATEFS_PROPERTY_SHRINK !== '0';
const SEED = process.env.ATEFS_PROPERTY_SEED !== undefined ? Number(process.env.ATEFS_PROPERTY_SEED) : undefined;
const PATH = process.env.ATEFS_PROPERTY_PATH;
const PAGE_DELTAS = process.env.ATEFS_PROPERTY_PAGE_DELTAS;

const O_RDWR = 2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

let base: string;
let runNo = 0;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-model-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

/**
 * Driver steps besides the model's operations. 'crash-mid': the next commit point's batch, when it
 * is cut into several commits, is also crashed between two of them (`at` picks which).
 */
type Step = Op | { op: 'crash' } | { op: 'crash-mid'; at: number } | { op: 'reopen' } | { op: 'compact' };

/** `pageDeltas`: the page deltas' own run writes with them whatever the mount's default (ATEFS_PROPERTY_PAGE_DELTAS still wins). */
interface Params { blockSize: number; commitBudget: number | undefined; pageDeltas?: boolean }

const describeStep = (s: Step): string => (s.op === 'crash-mid' ? `crash-mid ${s.at}` : s.op === 'crash' || s.op === 'reopen' || s.op === 'compact' ? s.op : describeOp(s));

// Crash images between two commits of ONE batch cut in several (namespace-order.ts). Once a failure
// was reported here ("mv a/a c; create a/a": inode records before names) that 5,200 later cases and
// the targeted test above did not reproduce; they run by default (ATEFS_PROPERTY_CRASH_MID=0: off).
const CRASH_MID = process.env.ATEFS_PROPERTY_CRASH_MID !== '0';
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 60, arbitrary: opArb({ maxOffset: 5 * 4096, maxLength: 2 * 4096 + 100, maxSize: 4 * 4096 }) },
  { weight: 1, arbitrary: fc.constant({ op: 'crash' as const }) },
  ...(CRASH_MID ? [{ weight: 2, arbitrary: fc.record({ op: fc.constant('crash-mid' as const), at: fc.nat(1000) }) }] : []),
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'compact' as const }) },
);

/**
 * The page deltas' own run (block-delta.ts): 64 KiB blocks, two files of up to three of them,
 * writes mostly of a few bytes up to a page (contentOpArb), so rewrites of committed blocks in a
 * page or two (deltas), truncates into them and regrowth are common; the main run's small files
 * and namespace-heavy mix rarely make a delta.
 */
const deltaStepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 60, arbitrary: contentOpArb({ maxOffset: 3 * 65536, maxLength: 65536, maxSize: 3 * 65536 }) },
  { weight: 1, arbitrary: fc.constant({ op: 'crash' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('crash-mid' as const), at: fc.nat(1000) }) },
  { weight: 2, arbitrary: fc.constant({ op: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'compact' as const }) },
);
const deltaParamsArb: fc.Arbitrary<Params> = fc.record({
  blockSize: fc.constant(65536),
  pageDeltas: fc.constant(true),
  commitBudget: fc.constantFrom(undefined, undefined, 65536, 8192),
});

const paramsArb: fc.Arbitrary<Params> = fc.record({
  // Small blocks: a few KiB of writes cross block boundaries, holes and the inline limit.
  blockSize: fc.constantFrom(4096, 65536),
  // A small budget cuts one batch into several commits.
  commitBudget: fc.constantFrom(undefined, undefined, 8192, 1024),
});

let imageCount = 0;

class Harness {
  chain!: LocalChain;
  fs!: Filesystem;
  p!: PathFs;
  /** Open handles by slot: a lookup is held on each, as the kernel holds one for an open file. */
  readonly handles = new Map<number, { ino: Ino; fh: number }>();
  constructor(readonly dir: string, readonly params: Params) {}

  async open(dir = this.dir): Promise<void> {
    // No automatic compaction (runs are deterministic; 'compact' steps compact on purpose), no
    // background commit (60 s): only the steps commit.
    this.chain = await openLocalChain({
      chainDir: dir, configDir: join(base, 'config'), compactMode: 'never',
      ...(this.params.commitBudget !== undefined ? { commitBudget: this.params.commitBudget } : {}),
      ...(PAGE_DELTAS !== undefined ? { pageDeltas: PAGE_DELTAS === '1' } : this.params.pageDeltas !== undefined ? { pageDeltas: this.params.pageDeltas } : {}),
    });
    this.fs = await Filesystem.open(this.chain.store, { commitDelayMs: 60_000, blockSize: this.params.blockSize, inlineMax: Math.min(1024, this.params.blockSize) });
    this.p = new PathFs(this.fs);
  }

  async close(): Promise<void> {
    for (const slot of [...this.handles.keys()]) this.closeSlot(slot);
    await this.fs.destroy();
    await this.chain.close();
  }

  /**
   * Resolves the parent of `path` the way the kernel's path walk does: lookups, and the parent
   * must be a directory (ENOTDIR) before anything else is looked at.
   */
  private parent(path: string): { dir: Ino; name: Buffer } {
    const parts = path.split('/');
    const name = Buffer.from(parts.pop()!);
    const dir = this.p.ino(parts.join('/'));
    if ((this.fs.getattr(ROOT_CTX, dir).mode & S_IFMT) !== S_IFDIR) throw new FsError('ENOTDIR');
    return { dir, name };
  }

  closeSlot(slot: number): void {
    const h = this.handles.get(slot);
    if (!h) return;
    this.handles.delete(slot);
    this.fs.release(h.ino, h.fh);
    this.fs.forget(h.ino, 1);
  }

  /** The whole content of the file open in `slot`, read through its handle. */
  readSlot(slot: number): Buffer {
    const h = this.handles.get(slot)!;
    return Buffer.from(this.fs.read(ROOT_CTX, h.ino, h.fh, 0, this.fs.getattr(ROOT_CTX, h.ino).size + 1));
  }

  /** Runs `o` on the fs core; the errno it fails with, or null. */
  async apply(o: Op): Promise<Errno | null> {
    const fs = this.fs;
    const ctx = ROOT_CTX;
    try {
      switch (o.op) {
        case 'create': {
          const { dir, name } = this.parent(o.path);
          const { entry, open } = fs.create(ctx, dir, name, o.mode, O_RDWR | O_CREAT | O_EXCL);
          fs.release(entry.ino, open.fh);
          fs.forget(entry.ino, 1);
          break;
        }
        case 'mkdir': this.p.mkdir(o.path, o.mode); break;
        case 'rename': {
          const a = this.parent(o.from);
          const b = this.parent(o.to);
          fs.rename(ctx, a.dir, a.name, b.dir, b.name, 0);
          break;
        }
        case 'link': {
          const ino = this.p.ino(o.from);
          const { dir, name } = this.parent(o.to);
          fs.forget(fs.link(ctx, ino, dir, name).ino, 1);
          break;
        }
        case 'unlink': this.p.unlink(o.path); break;
        case 'rmdir': this.p.rmdir(o.path); break;
        case 'write': {
          const ino = this.p.ino(o.path);
          const { fh } = fs.open(ctx, ino, 1);
          try {
            expect(fs.write(ctx, ino, fh, o.offset, writeData(o.length, o.seed))).toBe(o.length);
          } finally {
            fs.release(ino, fh);
          }
          break;
        }
        case 'truncate': this.p.truncate(o.path, o.size); break;
        case 'chmod': this.p.chmod(o.path, o.mode); break;
        case 'setxattr': this.p.setxattr(o.path, o.name, Buffer.from(o.value, 'hex')); break;
        case 'removexattr': this.p.removexattr(o.path, o.name); break;
        case 'fsync': {
          const ino = this.p.ino(o.path);
          if ((fs.getattr(ctx, ino).mode & S_IFMT) === S_IFDIR) {
            const { fh } = fs.opendir(ctx, ino, 0);
            try { await fs.fsyncdir(ino, fh, false); } finally { fs.releasedir(ino, fh); }
          } else {
            await this.p.fsync(o.path);
          }
          break;
        }
        case 'open': {
          const { dir, name } = this.parent(o.path);
          const e = fs.lookup(ctx, dir, name);
          let fh: number;
          try {
            fh = fs.open(ctx, e.ino, O_RDWR).fh;
          } catch (err) {
            fs.forget(e.ino, 1);
            throw err;
          }
          this.closeSlot(o.slot);
          this.handles.set(o.slot, { ino: e.ino, fh });
          break;
        }
        case 'close': this.closeSlot(o.slot); break;
        case 'hwrite': {
          const h = this.handles.get(o.slot);
          if (h) expect(fs.write(ctx, h.ino, h.fh, o.offset, writeData(o.length, o.seed))).toBe(o.length);
          break;
        }
        case 'hread': break; // compared by the caller
        case 'commit': await fs.sync(); break;
      }
      return null;
    } catch (e) {
      if (e instanceof FsError) return e.code as Errno;
      throw e;
    }
  }

  /** A copy of the log as it is on disk now, without closing anything (a crash at this moment). */
  copyLog(name: string): string {
    // A path of its own per image: the user's freshness head for a path outlives the image (opening
    // one may commit), and a later, shorter image at the same path would rightly be a rollback.
    const copy = `${this.dir}-${name}-${++imageCount}`;
    cpSync(join(this.dir, 'log'), join(copy, 'log'), { recursive: true, filter: (p) => !p.endsWith('LOCK') });
    return copy;
  }

  /** The tree of a copied log, opened as the chain is after a crash (no index: replayed from the log). */
  async imageTree(copy: string): Promise<string[]> {
    // The same chain, found elsewhere: pinned to its genesis (an unpinned chain is refused).
    await writePin(join(base, 'config'), realpathSync(copy), this.chain.genesisHash);
    const h = new Harness(copy, this.params);
    try {
      await h.open();
      return h.p.tree();
    } finally {
      await h.close().catch(() => undefined);
      rmSync(copy, { recursive: true, force: true });
    }
  }

  /** A crash image: the log as it is on disk now. */
  crashImage(): Promise<string[]> {
    return this.imageTree(this.copyLog('crash'));
  }

  /**
   * Runs `fn` (a commit point) with a copy of the log taken after every commit record it appends;
   * returns the copies taken before the last one (crash images between the commits of one batch).
   */
  async withMidCopies(fn: () => Promise<void>): Promise<string[]> {
    const log = this.chain.view.log as unknown as Record<'append' | 'appendParts', ((...a: unknown[]) => Promise<unknown>) | undefined>;
    const saved = { append: log.append, appendParts: log.appendParts };
    const copies: string[] = [];
    for (const k of ['append', 'appendParts'] as const) {
      const orig = saved[k];
      if (!orig) continue;
      log[k] = async (...a: unknown[]) => {
        const r = await orig.apply(this.chain.view.log, a);
        copies.push(this.copyLog(`mid-${copies.length}`));
        return r;
      };
    }
    try {
      await fn();
    } finally {
      log.append = saved.append;
      log.appendParts = saved.appendParts;
    }
    const mids = copies.slice(0, -1);
    for (const c of copies.slice(-1)) rmSync(c, { recursive: true, force: true });
    return mids;
  }
}

/** Outcomes over all cases (printed: a run where nearly everything is refused tests little). */
const outcomes = new Map<string, number>();
const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);

/** Batches crashed in the middle (cut into several commits) over all cases. */
let midCrashes = 0;
const countMidCrash = (n: number) => { if (n > 0) midCrashes++; };

/** Runs one case; throws (with the steps so far) on the first difference from the model. */
async function runCase(params: Params, steps: Step[]): Promise<void> {
  const dir = join(base, `run-${runNo++}`);
  const h = new Harness(dir, params);
  await h.open();
  const model = new FsModel();
  let committed = model.clone();
  /** An armed 'crash-mid' (its `at`), for the next commit point. */
  let midAt: number | null = null;
  const done: string[] = [];
  const where = () => `after ${done.length} steps (${JSON.stringify(params)}):\n  ${done.join('\n  ')}`;
  const compare = (tree: string[], want: FsModel, what: string) => {
    expect(tree, `${what} ${where()}`).toEqual(want.tree());
  };
  const checkCommits = () => {
    expect(h.fs.commitStats.failures, `failed commits (${String(h.fs.commitStats.lastError)}) ${where()}`).toBe(0);
  };
  try {
    for (const s of steps) {
      done.push(describeStep(s));
      if (s.op === 'crash' || s.op === 'crash-mid' || s.op === 'reopen' || s.op === 'compact') count(s.op);
      if (s.op === 'crash-mid') {
        midAt = s.at;
      } else if (s.op === 'crash') {
        compare(await h.crashImage(), committed, 'crash image (the log now) != the model at the last commit');
      } else if (s.op === 'reopen') {
        model.closeAll();
        await h.close();
        await h.open();
        committed = model.clone();
        compare(h.p.tree(), model, 'after a reopen');
      } else if (s.op === 'compact') {
        await h.chain.view.compact('model test');
        compare(h.p.tree(), model, 'after a compaction');
        // What compaction kept verifies as a whole (atefs verify's check, gap mode and all).
        const r = await verifyChain(h.chain.log, { pinnedGenesis: h.chain.genesisHash, pool: defaultPool() });
        expect(r.problems, `verify after a compaction ${where()}`).toEqual([]);
      } else {
        const op = concretize(s, model);
        done[done.length - 1] = describeOp(op);
        const idle = (op.op === 'close' || op.op === 'hwrite' || op.op === 'hread') && !model.isOpen(op.slot);
        // The state the batch starts from: the last commit point's.
        const before = midAt !== null && (op.op === 'commit' || op.op === 'fsync') ? committed : null;
        const want = model.apply(op);
        let got: Errno | null = null;
        let mids: string[] = [];
        if (before) mids = await h.withMidCopies(async () => { got = await h.apply(op); });
        else got = await h.apply(op);
        done[done.length - 1] += ` -> ${got ?? 'ok'}`;
        count(`${s.op} ${idle ? 'no-op (empty slot)' : (got ?? 'ok')}`);
        expect(got, `errno of '${describeOp(op)}' ${where()}`).toBe(want);
        if (op.op === 'hread' && model.isOpen(op.slot)) {
          expect(h.readSlot(op.slot).equals(model.handleContent(op.slot)!), `content read through #${op.slot} ${where()}`).toBe(true);
        }
        if (s.op === 'commit' || (s.op === 'fsync' && got === null)) {
          checkCommits();
          committed = model.clone();
          compare(h.p.tree(), model, 'after a commit');
          // How much content the page deltas carry (the counts show they are exercised).
          for (const f of model.files()) {
            const ino = h.p.ino(f);
            for (const i of h.chain.store.blockIndexes(ino)) if (blockHasDelta(h.chain.view, ino, i)) count('commit: a block read through a page delta');
          }
        }
        if (before) {
          countMidCrash(mids.length);
          if (mids.length > 0) {
            // A crash between two commits of one batch: whatever prefix landed, the tree is whole
            // (every name leads to a readable inode), holds only names of the state before or
            // after the batch, and loses nothing both states have (chain-store.ts orders the
            // commits so; content may have holes).
            // Up to 4 of them (from `at` on, spread over the batch); each is opened on its own.
            const n = Math.min(4, mids.length);
            const picks = new Set(Array.from({ length: n }, (_, i) => mids[(midAt! + Math.floor((i * mids.length) / n)) % mids.length]!));
            for (const c of mids) if (!picks.has(c)) rmSync(c, { recursive: true, force: true });
            const paths = (t: string[]) => t.map((l) => l.slice(0, l.indexOf(' ')));
            const allowed = new Set([...paths(before.tree()), ...paths(model.tree())]);
            for (const pick of picks) {
              let tree: string[];
              try {
                tree = await h.imageTree(pick);
              } catch (e) {
                for (const c of picks) rmSync(c, { recursive: true, force: true });
                throw new Error(`a crash between the commits of one batch left a broken tree: ${(e as Error).message} ${where()}`, { cause: e });
              }
              expect(paths(tree).filter((p) => !allowed.has(p)), `names in a crash image between the commits of one batch that neither the state before nor after it has ${where()}`).toEqual([]);
              // Nothing that exists before and after the batch is lost in between: it is there
              // under one of its names of either state (a rename's two entries commit together).
              const shown = new Set(paths(tree));
              const after = model.pathsById();
              const lost = [...before.pathsById()].filter(([id, names]) => after.has(id) && ![...names, ...after.get(id)!].some((p) => shown.has(p)));
              expect(lost.map(([, names]) => names.join(' = ')), `lost in a crash image between the commits of one batch ${where()}`).toEqual([]);
            }
          }
          midAt = null;
        }
      }
    }
    // Handles still open read what the model says, then close (an unlinked file goes with them).
    for (const slot of model.openSlots()) {
      expect(h.readSlot(slot).equals(model.handleContent(slot)!), `content read through #${slot} at the end ${where()}`).toBe(true);
      h.closeSlot(slot);
    }
    model.closeAll();
    await h.fs.sync();
    checkCommits();
    compare(h.p.tree(), model, 'at the end');
    done.push('final reopen');
    await h.close();
    await h.open();
    compare(h.p.tree(), model, 'after the final reopen');
    if (h.chain.store.chainFeatures().includes('pageDeltas')) count('final: chain marked pageDeltas');
    // Every file read back whole, byte for byte (tree() compares hashes; this names the first byte).
    for (const f of model.files()) {
      const got = h.p.read(f);
      const want = model.content(f)!;
      if (!got.equals(want)) {
        let i = 0;
        while (i < got.length && i < want.length && got[i] === want[i]) i++;
        throw new Error(`${f}: content differs at byte ${i} (size ${got.length}, want ${want.length}) ${where()}`);
      }
    }
  } catch (e) {
    // Errors from the store (a failed commit, a reopen that fails) get the steps too.
    if ((e as Error).message.includes(' steps (')) throw e;
    throw new Error(`${(e as Error).message} ${where()}`, { cause: e });
  } finally {
    await h.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('a batch cut into several commits, crashed between them (real chain)', () => {
  it('a renamed file or directory is under its old or its new name in every crash image, never under neither', async () => {
    const dir = join(base, `renames-${runNo++}`);
    const h = new Harness(dir, { blockSize: 4096, commitBudget: 1024 });
    await h.open();
    try {
      h.p.mkdir('d');
      h.p.writeFile('a', Buffer.from('kept\n'));
      h.p.mkdir('x');
      await h.fs.sync();
      h.p.rename('a', 'd/b');
      h.p.rename('d', 'e');
      h.p.rename('x', 'e/x');
      const mids = await h.withMidCopies(() => h.fs.sync());
      // One event per commit at this budget: every step between the renames' entries is crashed.
      expect(mids.length).toBeGreaterThan(3);
      for (const [i, copy] of mids.entries()) {
        const names = (await h.imageTree(copy)).map((l) => l.slice(0, l.indexOf(' ')));
        const where = `crash after commit ${i + 1} of ${mids.length + 1}: ${names.join(', ')}`;
        expect(['a', 'd/b', 'e/b'].some((n) => names.includes(n)), where).toBe(true);
        expect(['d', 'e'].some((n) => names.includes(n)), where).toBe(true);
        expect(['x', 'd/x', 'e/x'].some((n) => names.includes(n)), where).toBe(true);
      }
      expect(h.p.tree().map((l) => l.slice(0, l.indexOf(' ')))).toEqual(['e', 'e/b', 'e/x']);
    } finally {
      await h.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('a rename and a new inode under the old name, crashed between the commits of the batch', () => {
  for (const kind of ['file', 'directory'] as const) {
    it(`mv a/a c; create a/a (a ${kind}): every crash image is whole and shows the state before or after`, async () => {
      const dir = join(base, `replace-${runNo++}`);
      const h = new Harness(dir, { blockSize: 4096, commitBudget: 1024 });
      await h.open();
      try {
        h.p.mkdir('a');
        if (kind === 'file') h.p.writeFile('a/a', Buffer.from('old\n'));
        else h.p.mkdir('a/a');
        await h.fs.sync();
        const before = h.p.tree();
        h.p.rename('a/a', 'c');
        if (kind === 'file') h.p.writeFile('a/a', Buffer.from('new\n'));
        else h.p.mkdir('a/a');
        const after = h.p.tree();
        const mids = await h.withMidCopies(() => h.fs.sync());
        expect(mids.length).toBeGreaterThan(0);
        const names = (t: string[]) => t.map((l) => l.slice(0, l.indexOf(' ')));
        for (const [i, copy] of mids.entries()) {
          const tree = await h.imageTree(copy);
          const where = `crash after commit ${i + 1} of ${mids.length + 1}:\n${tree.join('\n')}\nbefore:\n${before.join('\n')}\nafter:\n${after.join('\n')}`;
          expect(names(tree).filter((n) => !names(before).includes(n) && !names(after).includes(n)), where).toEqual([]);
          // The old a/a is under a/a or c: never lost.
          expect(names(tree).includes('c') || tree.some((l) => before.includes(l) && l.startsWith('a/a ')), where).toBe(true);
        }
      } finally {
        await h.close().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      }
    }, 120_000);
  }
});

/** fast-check's options of both properties: `numRuns` cases, the seed and path asked for. */
function runOptions(numRuns: number) {
  return {
    numRuns,
    endOnFailure: !SHRINK,
    ...(SEED !== undefined ? { seed: SEED } : {}),
    ...(PATH !== undefined ? { path: PATH } : {}),
    // Shrinking a failure may run hundreds of cases: give up shrinking (reporting the smallest
    // case found so far) rather than hit the test's timeout.
    interruptAfterTimeLimit: 1_100_000,
    markInterruptAsFailure: true,
  };
}

describe('model-based: the fs core over a real chain against a reference filesystem', () => {
  it('random operations, commit points, crash images, reopens and compactions', async () => {
    const started = Date.now();
    let cases = 0;
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(paramsArb, fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'medium' }), async (params, list) => {
        cases++;
        steps += list.length;
        await runCase(params, list);
      }),
      runOptions(RUNS),
    );
    console.log(`fs-commit-model: ${cases} cases, ${steps} steps, ${midCrashes} batches crashed between their commits, in ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
      [...outcomes].sort().map(([k, v]) => `  ${k}: ${v}`).join('\n'));
  }, 1_300_000);

  it('page deltas: rewrites in a page or two of 64 KiB blocks, truncates into them and regrowth, with commit points, crash images, reopens and compactions', async () => {
    const started = Date.now();
    outcomes.clear();
    let cases = 0;
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(deltaParamsArb, fc.array(deltaStepArb, { minLength: 1, maxLength: 80, size: 'medium' }), async (params, list) => {
        cases++;
        steps += list.length;
        // Both files exist and are open from the start: the steps write, cut and regrow them.
        const start: Step[] = [
          { op: 'create', path: 'a', mode: 0o644 }, { op: 'create', path: 'b', mode: 0o644 },
          { op: 'open', path: 'a', slot: 0 }, { op: 'open', path: 'b', slot: 1 },
        ];
        await runCase(params, [...start, ...list]);
      }),
      runOptions(DELTA_RUNS),
    );
    console.log(`fs-commit-model (page deltas): ${cases} cases, ${steps} steps, in ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
      [...outcomes].sort().filter(([k]) => /delta|crash|reopen|compact|write|truncate|commit/.test(k)).map(([k, v]) => `  ${k}: ${v}`).join('\n'));
    // A run where no block was ever read through a delta would test nothing of them.
    if (PAGE_DELTAS !== '0') expect(outcomes.get('commit: a block read through a page delta') ?? 0).toBeGreaterThan(DELTA_RUNS * 2);
  }, 1_300_000);
});
