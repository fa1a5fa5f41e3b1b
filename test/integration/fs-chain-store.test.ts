import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import { IoTrace } from '../log-io-trace.js';

const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
const b = (s: string) => Buffer.from(s);
const MARKER = 'PlainMarker_7f3a9c';

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-chainstore-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

async function open(name: string, extra: { readOnly?: boolean; trustChain?: boolean } = {}): Promise<{ chain: LocalChain; fs: Filesystem }> {
  const chain = await openLocalChain({ chainDir: join(base, name), configDir: join(base, 'config'), ...extra });
  const fs = await Filesystem.open(chain.store, { readOnly: !!extra.readOnly });
  return { chain, fs };
}

async function close(x: { chain: LocalChain; fs: Filesystem }): Promise<void> {
  await x.fs.destroy();
  await x.chain.close();
}

function put(fs: Filesystem, parent: number, name: string, data: Buffer, mode = 0o644): number {
  const { entry, open: o } = fs.create(ROOT, parent, b(name), mode, 2);
  if (data.length) fs.write(ROOT, entry.ino, o.fh, 0, data);
  fs.release(entry.ino, o.fh);
  return entry.ino;
}

function get(fs: Filesystem, ino: number): Buffer {
  const { fh } = fs.open(ROOT, ino, 0);
  const out = Buffer.from(fs.read(ROOT, ino, fh, 0, fs.getattr(ROOT, ino).size + 10));
  fs.release(ino, fh);
  return out;
}

/** Everything visible about a tree: names, types, modes, owners, times, sizes, links, xattrs, content hashes. */
function snapshot(fs: Filesystem, ino = 1, prefix = ''): string[] {
  const out: string[] = [];
  const { fh } = fs.opendir(ROOT, ino, 0);
  const entries = fs.readdir(ROOT, ino, fh, 0, 100000);
  fs.releasedir(ino, fh);
  entries.sort((p, q) => Buffer.compare(p.name, q.name));
  for (const e of entries) {
    const n = e.name.toString();
    if (n === '.' || n === '..') continue;
    const en = fs.lookup(ROOT, ino, e.name);
    const a = en.attr;
    const xs = fs.listxattr(ROOT, a.ino).sort().map((x) => `${x}=${fs.getxattr(ROOT, a.ino, x).toString('hex')}`);
    let extra = '';
    const type = a.mode & 0o170000;
    if (type === 0o100000) extra = createHash('sha256').update(get(fs, a.ino)).digest('hex');
    if (type === 0o120000) extra = fs.readlink(ROOT, a.ino).toString();
    out.push(`${prefix}${n} ino=${a.ino} mode=${a.mode.toString(8)} uid=${a.uid} gid=${a.gid} size=${a.size} nlink=${a.nlink} blocks=${a.blocks} mtime=${a.mtime.sec}.${a.mtime.nsec} ctime=${a.ctime.sec}.${a.ctime.nsec} ${xs.join(',')} ${extra}`);
    if (type === 0o040000) out.push(...snapshot(fs, a.ino, `${prefix}${n}/`));
  }
  return out;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p)); else out.push(p);
  }
  return out;
}

describe('fs core on a local chain (ChainStore over the view, log and LMDB index on disk)', () => {
  const big = randomBytes(300_000);
  let before: string[];

  it('builds a tree, commits it, and a reopen shows exactly the same tree', async () => {
    const x = await open('a');
    const d = x.fs.mkdir(ROOT, 1, b(`dir_${MARKER}`), 0o2750).ino;
    const f = put(x.fs, d, `file_${MARKER}.txt`, b(`content ${MARKER}`));
    x.fs.link(ROOT, f, 1, b('hardlink'));
    x.fs.symlink(ROOT, 1, b('sym'), b(`target_${MARKER}`));
    x.fs.setxattr(ROOT, f, 'user.note', b(`xattr_${MARKER}`), 0);
    put(x.fs, 1, 'big.bin', big, 0o600);
    const sp = put(x.fs, 1, 'sparse', Buffer.alloc(0));
    x.fs.setattr(ROOT, sp, { size: 5 * 1024 * 1024 });
    const { fh } = x.fs.open(ROOT, sp, 2);
    x.fs.write(ROOT, sp, fh, 4 * 1024 * 1024, b('tail'));
    x.fs.release(sp, fh);
    x.fs.mknod(ROOT, 1, b('fifo'), 0o010644, 0);
    const gone = put(x.fs, 1, 'gone', randomBytes(200_000));
    x.fs.unlink(ROOT, 1, b('gone'));
    x.fs.forget(gone, 1);
    before = snapshot(x.fs);
    expect(before.length).toBeGreaterThan(5);
    await close(x);

    const y = await open('a');
    expect(y.chain.created).toBe(false);
    expect(snapshot(y.fs)).toEqual(before);
    expect(get(y.fs, y.fs.lookup(ROOT, 1, b('big.bin')).ino).equals(big)).toBe(true);
    await close(y);
  });

  it('stores no name, content, symlink target or xattr value in plaintext', () => {
    const files = filesUnder(join(base, 'a'));
    expect(files.length).toBeGreaterThan(0);
    for (const p of files) {
      if (statSync(p).size === 0) continue;
      expect(readFileSync(p).includes(MARKER), p).toBe(false);
    }
  });

  it('rebuilds a deleted index from the log and shows the same tree', async () => {
    rmSync(join(base, 'a', 'index'), { recursive: true, force: true });
    const z = await open('a');
    // No index: the view replays the whole log ('fresh' or 'rebuild', never a tail replay).
    expect(z.chain.view.openReport.mode).not.toBe('tail');
    expect(z.chain.view.openReport.tailRecords).toBeGreaterThan(1);
    expect(snapshot(z.fs)).toEqual(before);
    await close(z);
  });

  it('a read-only open refuses writes with EROFS and shows the tree', async () => {
    const r = await open('a', { readOnly: true });
    expect(snapshot(r.fs)).toEqual(before);
    expect(() => r.fs.mkdir(ROOT, 1, b('nope'), 0o755)).toThrow(expect.objectContaining({ code: 'EROFS' }));
    await close(r);
  });

  it('refuses a chain swapped on disk for another one (pinned genesis)', async () => {
    const other = await open('b');
    await close(other);
    // Put chain b's files where chain a is expected: the pin of a must refuse them.
    rmSync(join(base, 'a'), { recursive: true, force: true });
    const { cpSync } = await import('node:fs');
    cpSync(join(base, 'b'), join(base, 'a'), { recursive: true });
    await expect(openLocalChain({ chainDir: join(base, 'a'), configDir: join(base, 'config') })).rejects.toThrow(/genesis|header|mismatch/i);
  });

  it('fsync is durable: it resolves only after an fdatasync covering every log byte written, and a copy of the log files taken then holds the data', async () => {
    // The log's writes and fdatasyncs are traced through its I/O seam, in one order with the
    // fsync's call and resolution; a slow disk makes an early resolution visible.
    const trace = new IoTrace();
    trace.syncDelayMs = 20;
    const uninstall = trace.install();
    const logDir = join(base, 'c', 'log');
    try {
      const x = await open('c');
      const content = randomBytes(150_000);
      const ino = put(x.fs, 1, 'f', content);
      const { fh } = x.fs.open(ROOT, ino, 1);
      trace.mark('fsync called');
      await x.fs.fsync(ino, fh, false);
      trace.mark('fsync resolved');
      x.fs.release(ino, fh);
      const called = trace.events.findIndex((e) => e.kind === 'mark' && e.label === 'fsync called');
      const resolved = trace.events.findIndex((e) => e.kind === 'mark' && e.label === 'fsync resolved');
      // Every byte written to the log before the fsync resolved is covered by a completed fdatasync
      // of its file, and at least one of those ran on behalf of this fsync.
      const ends = new Map<string, number>();
      for (const e of trace.events.slice(0, resolved)) if (e.kind === 'write' && e.file.startsWith(logDir)) ends.set(e.file, Math.max(ends.get(e.file) ?? 0, e.end));
      expect(ends.size).toBeGreaterThan(0);
      for (const [file, end] of ends) {
        const covering = trace.firstSyncCovering(file, end);
        expect(covering, `no fdatasync of ${file} up to ${end}`).toBeGreaterThanOrEqual(0);
        expect(covering, `fsync resolved before the fdatasync of ${file} returned`).toBeLessThan(resolved);
      }
      expect(trace.events.slice(called, resolved).some((e) => e.kind === 'sync-end' && e.file.startsWith(logDir))).toBe(true);

      // A crash now leaves the files as they are: copy them without closing anything (no lock,
      // no index: the copy is replayed from its log) and find the fsynced content in the copy.
      const { cpSync } = await import('node:fs');
      cpSync(logDir, join(base, 'c-copy', 'log'), { recursive: true, filter: (p) => !p.endsWith('LOCK') });
      const y = await open('c-copy', { trustChain: true }); // a copy is a new place: not pinned
      expect(get(y.fs, y.fs.lookup(ROOT, 1, b('f')).ino).equals(content)).toBe(true);
      await close(y);
      await close(x);
    } finally {
      uninstall();
    }
  });
});

describe('mode bits map to keys (a chain shared with a second reader)', () => {
  it('a 0600 file is sealed for its owner only: the other chain reader gets EACCES, and chmod re-seals', async () => {
    const { createIdentity, createGroupRole, Session, readersOfPrincipal } = await import('../../src/session/index.js');
    const { toErrno, errnoOf } = await import('../../fs/core/errors.js');
    const owner = createIdentity('owner');
    const mate = createIdentity('mate');
    // The team's observer role: both hold its read key, so it is a chain-wide reader for both.
    const team = createGroupRole('team', 'observer', { write: false });
    const dir = join(base, 'shared');
    const a = await openLocalChain({
      chainDir: dir, configDir: join(base, 'cfg-owner'), session: Session.of(owner, team),
      extraReaders: readersOfPrincipal(team, { sym: true, kem: false }),
    });
    const fa = await Filesystem.open(a.store);
    put(fa, 1, 'public.txt', b('for everyone'), 0o644);
    put(fa, 1, 'secret.txt', b(`private ${MARKER}`), 0o600);
    const laterBytes = randomBytes(200_000);
    const later = put(fa, 1, 'later.txt', laterBytes, 0o600);
    const h = fa.open(ROOT, later, 0);
    await fa.fsync(later, h.fh, false); // committed while private: sealed for the owner only
    fa.release(later, h.fh);
    fa.setattr(ROOT, later, { mode: 0o644 });
    await fa.destroy();
    await a.close();

    const m = await openLocalChain({ chainDir: dir, configDir: join(base, 'cfg-mate'), session: Session.of(mate, team), readOnly: true, trustChain: true });
    const fm = await Filesystem.open(m.store, { readOnly: true });
    expect(get(fm, fm.lookup(ROOT, 1, b('public.txt')).ino).toString()).toBe('for everyone');
    let code = 0;
    try { fm.lookup(ROOT, 1, b('secret.txt')); } catch (e) { code = toErrno(e); }
    expect(code).toBe(errnoOf('EACCES'));
    // Made public after its content was written: the content was re-sealed for the chain's readers.
    expect(get(fm, fm.lookup(ROOT, 1, b('later.txt')).ino).equals(laterBytes)).toBe(true);
    await fm.destroy();
    await m.close();
  });
});

describe('large batches', () => {
  it('a batch over the commit budget and the event limit is cut into several valid commits, all applied', async () => {
    const { ChainStore } = await import('../../fs/chain-store/index.js');
    const chain = await openLocalChain({ chainDir: join(base, 'large'), configDir: join(base, 'config') });
    // A small budget forces the cut; 5,000 files make 10,000 events (over the chain's 8,192 per commit).
    const store = new ChainStore(chain.view, { commitBudget: 1 << 20 });
    const fs = await Filesystem.open(store, { commitDelayMs: 60_000, maxDirtyBytes: 1 << 30 });
    const seqBefore = chain.log.nextSeq;
    const big = randomBytes(3 << 20);
    put(fs, 1, 'big', big);
    const dir = fs.mkdir(ROOT, 1, b('many'), 0o755).ino;
    for (let i = 0; i < 5000; i++) put(fs, dir, `f${i}`, b(`file ${i}`));
    await fs.destroy();
    expect(chain.log.nextSeq - seqBefore).toBeGreaterThan(3);
    await chain.close();

    const again = await openLocalChain({ chainDir: join(base, 'large'), configDir: join(base, 'config') });
    const fs2 = await Filesystem.open(again.store);
    expect(get(fs2, fs2.lookup(ROOT, 1, b('big')).ino).equals(big)).toBe(true);
    const d = fs2.lookup(ROOT, 1, b('many')).ino;
    expect(get(fs2, fs2.lookup(ROOT, d, b('f4999')).ino).toString()).toBe('file 4999');
    const { fh } = fs2.opendir(ROOT, d, 0);
    expect(fs2.readdir(ROOT, d, fh, 0, 100000).length).toBe(5002);
    await fs2.destroy();
    await again.close();
  });
});

describe('durability of an empty batch', () => {
  it("an empty 'durable' commit flushes the log durably (fsync after a timer commit)", async () => {
    const chain = await openLocalChain({ chainDir: join(base, 'empty-durable'), configDir: join(base, 'config') });
    const flushes: string[] = [];
    const log = chain.log as { flush: (d?: string) => Promise<void> };
    const real = log.flush.bind(log);
    log.flush = (d?: string) => { flushes.push(String(d)); return real(d as never); };
    const empty = { inodes: [], deletedInodes: [], dentries: [], blocks: [] };
    await chain.store.commit(empty, 'local');
    expect(flushes).toEqual([]);
    await chain.store.commit(empty, 'durable');
    expect(flushes).toEqual(['durable']);
    await chain.close();
  });
});

describe('commit timings', () => {
  it('counts DIO commits, events and signatures and sums their times; the timed pool signs and verifies like the pool', async () => {
    const chainDir = join(base, 'timings');
    // Each commit signed as it is made (deferred signatures are tested in deferred-signatures.test.ts).
    const chain = await openLocalChain({ chainDir, configDir: join(base, 'config'), deferSignatures: false });
    const fs = await Filesystem.open(chain.store, { commitDelayMs: 60_000 });
    const t0 = { ...chain.store.timings };
    const d = fs.mkdir(ROOT, 1, b('t'), 0o755).ino;
    for (let i = 0; i < 20; i++) put(fs, d, `f${i}`, b(`content ${i}`));
    await fs.sync();
    const t = chain.store.timings;
    expect(t.commits - t0.commits).toBeGreaterThanOrEqual(1);
    expect(t.signs - t0.signs).toBe(t.commits - t0.commits); // one signing key: one signature per commit
    // 20 inodes + 20 dentries + the new directory + the root.
    expect(t.events - t0.events).toBeGreaterThanOrEqual(42);
    expect(t.signMs).toBeGreaterThan(t0.signMs);
    expect(t.commitMs).toBeGreaterThanOrEqual(t.signMs - t0.signMs + t0.commitMs);
    expect(fs.commitStats.commits).toBeGreaterThanOrEqual(1);
    expect(fs.commitStats.commitMs).toBeGreaterThan(0);
    await new Promise((r) => setImmediate(r)); // the committer's loop ends after it resolved the sync
    expect(fs.commitUnsettled).toBe(false);
    put(fs, d, 'late', b('late'));
    expect(fs.commitUnsettled).toBe(true);
    await fs.destroy();
    await chain.close();
    // Replay verifies every signature through the (proxied) pool: the chain made with it is sound.
    const again = await openLocalChain({ chainDir, configDir: join(base, 'config') });
    const fs2 = await Filesystem.open(again.store);
    expect(get(fs2, fs2.lookup(ROOT, fs2.lookup(ROOT, 1, b('t')).ino, b('late')).ino).toString()).toBe('late');
    await fs2.destroy();
    await again.close();
  });

  it('a name created and removed between two commits commits nothing for it (the deletion of a DAO that never existed)', async () => {
    const chain = await openLocalChain({ chainDir: join(base, 'created-removed'), configDir: join(base, 'config') });
    const fs = await Filesystem.open(chain.store, { commitDelayMs: 60_000 });
    const ino = put(fs, 1, 'keep', b('k'));
    await fs.sync();
    put(fs, 1, 'gone', b('g'));
    fs.unlink(ROOT, 1, b('gone'));
    fs.unlink(ROOT, 1, b('keep'));
    fs.forget(ino, 1);
    await fs.sync();
    expect(chain.store.lookupDentry(1, b('gone'))).toBeUndefined();
    expect(chain.store.lookupDentry(1, b('keep'))).toBeUndefined();
    expect(chain.store.getInode(ino)).toBeUndefined();
    await fs.destroy();
    await chain.close();
  });
});

describe('compaction deferred to pauses in commits', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function dueChain(name: string, defer: { idleMs: number; maxDeferMs: number }) {
    const chain = await openLocalChain({ chainDir: join(base, name), configDir: join(base, 'config'), memory: true, deferCompaction: { ...defer, pollMs: 10 } });
    const fs = await Filesystem.open(chain.store, { commitDelayMs: 60_000 });
    // 3 MiB on a fresh chain: the default policy (factor 0.4 over >= 2 MiB) wants a compaction.
    put(fs, 1, 'big', randomBytes(3 << 20));
    await fs.sync();
    expect(chain.view.policy.check(chain.log.sizeBytes(), Date.now())).toBe('factor');
    return { chain, fs };
  }
  async function until(cond: () => boolean, ms = 20_000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await sleep(20);
    return cond();
  }

  it('waits while commits keep coming and runs once they pause', async () => {
    const { chain, fs } = await dueChain('defer-idle', { idleMs: 3000, maxDeferMs: 600_000 });
    for (let i = 0; i < 20; i++) {
      put(fs, 1, `s${i}`, b('x'));
      await fs.sync();
      await sleep(20);
      expect(chain.view.stats().compacting).toBe(false);
    }
    expect(chain.view.stats().lastCompaction).toBeNull();
    expect(await until(() => chain.view.stats().lastCompaction !== null)).toBe(true);
    expect(chain.view.policy.check(chain.log.sizeBytes(), Date.now())).toBeNull();
    await fs.destroy();
    await chain.close();
  });

  it('does not wait longer than maxDeferMs for a pause', async () => {
    const { chain, fs } = await dueChain('defer-max', { idleMs: 600_000, maxDeferMs: 100 });
    let i = 0;
    const ran = await until(() => {
      put(fs, 1, `s${i++}`, b('x'));
      fs.commitSoon();
      return chain.view.stats().lastCompaction !== null;
    });
    expect(ran).toBe(true);
    await fs.destroy();
    await chain.close();
  });

  it("the view's own automatic compaction stays off while the scheduler runs the policy", async () => {
    const { chain, fs } = await dueChain('defer-off', { idleMs: 600_000, maxDeferMs: 600_000 });
    for (let i = 0; i < 5; i++) { put(fs, 1, `s${i}`, b('x')); await fs.sync(); }
    expect(chain.view.stats().compacting).toBe(false);
    expect(chain.view.stats().lastCompaction).toBeNull();
    await fs.destroy();
    await chain.close();
  });
});
