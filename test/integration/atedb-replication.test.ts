// The replication client against real `atedb solo` processes: convergence, offline work in each
// recovery mode, crashes of the server and of clients, lying servers and wrong server keys.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RecoveryMode, RemoteChain } from '../../src/net/index.js';
import { SNAPSHOT_FILE, saveSnapshot, snapshotKey } from '../../src/net/replica-snapshot.js';
import { FRAME_HEADER, segmentName } from '../../src/log/format.js';
import { crc32 } from 'node:zlib';
import { Session, createIdentity } from '../../src/session/index.js';
import { type Solo, RawClient, sleep, startSolo, tempDir } from './atedb/harness.js';
import type { CompactionStep } from '../../src/log/index.js';
import { decodeCommit } from '../../src/chain/index.js';
import { IoTrace } from '../log-io-trace.js';

const open: RemoteChain[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close().catch(() => undefined);
});

const alice = createIdentity('alice');
const bob = createIdentity('bob');

async function client(solo: { port: number }, name: string, o: {
  who?: typeof alice; dir?: string | null; mode?: RecoveryMode; create?: boolean; genesis?: Buffer; kh?: string; confirmTimeoutMs?: number;
  onDownload?: (done: number, total: number) => void; stagingCompaction?: { failAt?: CompactionStep; onStep?: (s: CompactionStep) => void };
} = {}): Promise<RemoteChain> {
  const who = o.who ?? alice;
  const session = who === alice ? Session.of(alice, bob) : Session.of(who, alice);
  const c = await RemoteChain.open({
    url: `tcp://127.0.0.1:${solo.port}/${name}`, session, dir: o.dir === undefined ? await tempDir('atedb-replica-') : o.dir,
    mode: o.mode ?? 'async', create: o.create ? { openRoot: true, readers: Session.of(bob).chainReaders() } : false,
    ...(o.genesis ? { genesisHash: o.genesis } : {}), knownHosts: o.kh ?? join(await tempDir('kh-'), 'known_hosts'),
    backoff: { minMs: 50, maxMs: 400 }, confirmTimeoutMs: o.confirmTimeoutMs ?? 3000,
    ...(o.onDownload ? { onDownload: o.onDownload } : {}), ...(o.stagingCompaction ? { stagingCompaction: o.stagingCompaction } : {}),
  });
  open.push(c);
  return c;
}

async function until(pred: () => boolean, ms = 30_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A fresh atedb with chain `name` created by a client whose replica lives in a directory of its own,
 * `n` commits (one DAO each, `value(i)`) confirmed and the server's signed head at the last of them.
 */
async function chainWithHistory(name: string, n: number, value: (i: number) => string) {
  const solo = await startSolo();
  const dir = await tempDir('atedb-replica-');
  const kh = join(await tempDir('kh-'), 'known_hosts');
  const a = await client(solo, name, { create: true, dir, kh });
  const keys: string[] = [];
  for (let i = 0; i < n; i++) keys.push((await a.commit(put(value(i)), { wait: 'confirmed' })).commit.events[0]!.meta.key);
  await until(() => a.head?.seq === n + 1, 10_000, `signed head ${n + 1}`);
  return { solo, dir, kh, a, keys, genesis: a.genesisHash! };
}

/** The confirmed state of the replica in `dir` as a snapshot would hold it (a replayed open). */
async function reopenState(solo: { port: number }, dir: string, kh: string, genesis: Buffer) {
  const c = await client(solo, 'team/snap', { dir, kh, genesis });
  const seq = c.lastSeq;
  const r = { seq, chainHash: c.head!.chainHash, state: c.confirmed };
  expect(c.head!.seq).toBe(seq);
  await c.close();
  return r;
}
const decodeCommitHex = (b: Uint8Array) => decodeCommit(Buffer.from(b)).hash.toString('hex');
const hashes = (c: RemoteChain) => [...c.commits()].map((x) => x.commit.hash.toString('hex'));
const put = (v: string) => (b: import('../../src/chain/index.js').CommitBuilder) => { b.put({ payload: Buffer.from(v) }); };

describe('replication client', () => {
  it('two clients on one chain see the same commits in the same order', async () => {
    const solo = await startSolo();
    const a = await client(solo, 'team/one', { create: true });
    const b = await client(solo, 'team/one', { who: bob, genesis: a.genesisHash! });
    const seen: number[] = [];
    b.on('commit', (e) => { if (!e.own) seen.push(e.seq); });
    const t0 = Date.now();
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => a.commit(put(`a${i}`), { wait: 'confirmed' })),
      ...Array.from({ length: 10 }, (_, i) => b.commit(put(`b${i}`), { wait: 'confirmed' })),
    ]);
    await until(() => a.lastSeq === 21 && b.lastSeq === 21, 30_000, 'both at seq 21');
    expect(hashes(a)).toEqual(hashes(b));
    // The signed head follows the confirmations (one signature per batch); both clients reach it.
    await until(() => a.head?.seq === 21 && b.head?.seq === 21, 10_000, 'signed head 21');
    expect(seen.length).toBeGreaterThan(0);
    // live relay latency, one commit
    const t1 = Date.now();
    const arrived = new Promise<number>((r) => b.once('commit', () => r(Date.now() - t1)));
    await a.commit(put('latency'));
    console.log(`two clients: 20 commits in ${Date.now() - t0} ms; relay latency ${await arrived} ms`);
    await solo.kill('SIGTERM');
  });

  it('uploads held for an fsync wait until it is released or the hold runs out; sync mode holds nothing', async () => {
    const solo = await startSolo();
    const a = await client(solo, 'team/hold', { create: true });
    const release = a.holdUploads();
    await a.commit(put('held'));
    await sleep(400);
    expect(a.pendingCount).toBe(1);
    release();
    await until(() => a.pendingCount === 0, 10_000, 'the upload after the release');
    // A hold nobody releases ends by itself.
    a.holdUploads(300);
    await a.commit(put('held too'));
    await until(() => a.pendingCount === 0, 10_000, 'the upload after the hold ran out');
    // sync: the fsync waits for the server's confirmation, so its commits are never held.
    const s = await client(solo, 'team/hold', { who: bob, genesis: a.genesisHash!, mode: 'sync' });
    s.holdUploads();
    const r = await s.commit(put('sync'));
    expect(r.seq).toBeGreaterThan(1);
  });

  it('a first open reports the history download (seqs held of the server\'s newest) until done === total', async () => {
    const solo = await startSolo();
    const a = await client(solo, 'team/download', { create: true });
    // ~3 MiB of history: several 1 MiB history batches.
    for (let i = 0; i < 30; i++) await a.commit((b) => { b.put({ payload: Buffer.alloc(100_000, i) }); }, { wait: 'confirmed' });
    const reports: Array<[number, number]> = [];
    const b = await client(solo, 'team/download', { who: bob, genesis: a.genesisHash!, onDownload: (done, total) => reports.push([done, total]) });
    expect(b.lastSeq).toBe(31);
    expect(reports.length).toBeGreaterThanOrEqual(3);
    expect(reports[reports.length - 1]).toEqual([31, 31]);
    for (let i = 0; i < reports.length; i++) {
      const [done, total] = reports[i]!;
      expect(done).toBeLessThanOrEqual(total);
      expect(total).toBe(31); // nothing was appended meanwhile: every batch names the same newest seq
      if (i > 0) expect(done).toBeGreaterThanOrEqual(reports[i - 1]![0]);
    }
    expect(reports[0]![0]).toBeLessThan(31);
    await solo.kill('SIGTERM');
  });

  it('the staging log empties once everything staged is confirmed and the writer paused, reading none of it back; a reopen finds nothing pending', async () => {
    const solo = await startSolo();
    const dir = await tempDir('atedb-replica-');
    // Every read of the logs goes through the traced I/O seam: the compaction must read nothing back.
    const trace = new IoTrace();
    const uninstall = trace.install();
    let a: RemoteChain;
    let readByCompaction: number;
    try {
      a = await client(solo, 'team/staging', { create: true, dir });
      for (let i = 0; i < 3; i++) await a.commit((b) => { for (let k = 0; k < 3; k++) b.put({ payload: Buffer.alloc(900 << 10, i * 3 + k + 1) }); }, { wait: 'confirmed' });
      expect(a.pendingCount).toBe(0);
      expect(a.staging.sizeBytes()).toBeGreaterThan(7 << 20);
      const readBefore = trace.bytesReadUnder(join(dir, 'staging'));
      // Over the compaction threshold (4 MiB) until then; emptied about a second after the last commit.
      const t0 = Date.now();
      await until(() => a.staging.sizeBytes() < 1 << 20, 10_000, 'the staging log compacted');
      readByCompaction = trace.bytesReadUnder(join(dir, 'staging')) - readBefore;
      console.log(`staging compacted after ${Date.now() - t0} ms, ${readByCompaction} bytes read back`);
    } finally {
      uninstall();
    }
    // It was all confirmed: nothing to read back (it read and checksummed all ~8 MiB before).
    expect(readByCompaction).toBeLessThan(64 << 10);
    // A commit staged after the compaction is kept until confirmed, and the log still opens.
    await a.commit(put('after the compaction'), { wait: 'confirmed' });
    await a.close();
    const again = await client(solo, 'team/staging', { dir });
    expect(again.pendingCount).toBe(0);
    expect(again.lastSeq).toBe(5);
    await solo.kill('SIGTERM');
  });

  it('a crash at any step of the staging compaction leaves a client that opens, holds every confirmed commit, stores nothing twice and keeps staging', async () => {
    const solo = await startSolo();
    const steps: CompactionStep[] = ['after-write-new', 'after-fsync-new', 'after-manifest-tmp', 'after-rename', 'after-dir-fsync', 'after-delete-old'];
    for (const [i, step] of steps.entries()) {
      const name = `team/staging-crash-${i}`;
      const dir = await tempDir('atedb-replica-');
      let reached = false;
      const a = await client(solo, name, { create: true, dir, stagingCompaction: { failAt: step, onStep: (s) => { if (s === step) reached = true; } } });
      for (let k = 0; k < 2; k++) await a.commit((b) => { for (let j = 0; j < 3; j++) b.put({ payload: Buffer.alloc(900 << 10, k * 3 + j + 1) }); }, { wait: 'confirmed' });
      const confirmed = hashes(a);
      expect(confirmed, step).toHaveLength(3);
      await until(() => reached, 10_000, `the staging compaction reaching ${step}`);
      // The injected crash stops the staging log as a crash would: the client stages nothing more.
      await expect(a.commit(put('refused'), { wait: 'staged' }), step).rejects.toThrow();
      await a.close().catch(() => undefined);
      // Reopened from what the crash left on disk (the old staging log or the empty one).
      const again = await client(solo, name, { dir });
      expect(again.pendingCount, step).toBe(0);
      expect(hashes(again), step).toEqual(confirmed);
      const after = await again.commit(put(`after ${step}`), { wait: 'confirmed' });
      expect(after.seq, step).toBe(4);
      await again.close();
      // The server holds each commit once.
      const fresh = await client(solo, name, { who: bob, genesis: Buffer.from(confirmed[0]!, 'hex') });
      const onServer = hashes(fresh);
      expect(onServer, step).toEqual([...confirmed, after.commit.hash.toString('hex')]);
      await fresh.close();
    }
    await solo.kill('SIGTERM');
  });

  it('a staged commit that loses a race is handed back with the current versions, not dropped', async () => {
    const solo = await startSolo();
    const a = await client(solo, 'team/race', { create: true });
    const b = await client(solo, 'team/race', { who: bob, genesis: a.genesisHash! });
    const { commit } = await a.commit((x) => { x.put({ payload: Buffer.from('v1') }); }, { wait: 'confirmed' });
    const key = commit.events[0]!.meta.key;
    await until(() => b.lastSeq === 2, 10_000, 'b sees v1');
    const handed: Array<{ version: number; reason: string }> = [];
    const onRej = (e: { error: { reason: string }; current: Map<string, number> }) => handed.push({ version: e.current.get(key)!, reason: e.error.reason });
    a.on('rejected', onRej);
    b.on('rejected', onRej);
    // Both write version 2 of the same DAO: b while cut off (so it cannot have seen a's), a online.
    b.disconnect();
    await b.commit((x) => { x.put({ key, payload: Buffer.from('from b') }); });
    await a.commit((x) => { x.put({ key, payload: Buffer.from('from a') }); });
    await until(() => a.pendingCount === 0 && b.pendingCount === 0, 10_000, 'both settled');
    expect(handed).toEqual([{ version: 2, reason: 'conflict' }]);
    await until(() => a.lastSeq === 3 && b.lastSeq === 3, 10_000, 'one winner everywhere');
    expect(hashes(a)).toEqual(hashes(b));
    await solo.kill('SIGTERM');
  });

  it('dropping a refused commit from the staging log keeps a commit staged meanwhile (not pending yet), across a reopen', async () => {
    const solo = await startSolo();
    // Slow fdatasyncs: the prune's compaction syncs the log before it cuts, and a commit staged in
    // that window is in the log but not in `pending` yet (its own durable append is still syncing).
    const trace = new IoTrace();
    trace.syncDelayMs = 300;
    const uninstall = trace.install();
    try {
      const dirA = await tempDir('atedb-replica-');
      const dirB = await tempDir('atedb-replica-');
      const a = await client(solo, 'team/prune', { create: true, dir: dirA });
      const b = await client(solo, 'team/prune', { who: bob, genesis: a.genesisHash!, dir: dirB });
      const { commit } = await a.commit((x) => { x.put({ payload: Buffer.from('v1') }); }, { wait: 'confirmed' });
      const key = commit.events[0]!.meta.key;
      await until(() => b.lastSeq === 2, 10_000, 'b sees v1');
      // Both write version 2 of the same DAO (b cut off, so it cannot have seen a's): one loses.
      let loser: { c: RemoteChain; dir: string; who: typeof alice; refused: string; meanwhile: Promise<{ commit: import('../../src/chain/index.js').Commit }> } | null = null;
      for (const [c, dir, who] of [[a, dirA, alice], [b, dirB, bob]] as const) {
        c.once('rejected', (e) => {
          if (loser) return;
          // Held: it stays pending (staged, not confirmed) whatever the timing.
          c.holdUploads(60_000);
          loser = { c, dir, who, refused: e.commit.hash.toString('hex'), meanwhile: c.commit(put('staged while the refused one is dropped'), { wait: 'staged' }) };
        });
      }
      b.disconnect();
      await Promise.all([
        b.commit((x) => { x.put({ key, payload: Buffer.from('from b') }); }),
        a.commit((x) => { x.put({ key, payload: Buffer.from('from a') }); }),
      ]);
      await until(() => loser !== null, 10_000, 'the refusal');
      const l = loser!;
      const staged = (await l.meanwhile).commit.hash.toString('hex');
      await sleep(1500); // the prune's compaction has run
      const inLog = () => [...l.c.staging.records()].map((r) => decodeCommitHex(r.payload));
      expect(inLog()).toContain(staged);
      expect(inLog()).not.toContain(l.refused);
      const genesis = a.genesisHash!;
      await l.c.close();
      const again = await client(solo, 'team/prune', { who: l.who, genesis, dir: l.dir });
      expect(again.stagedCommits().map((c) => c.hash.toString('hex'))).toEqual([staged]);
    } finally {
      uninstall();
    }
    await solo.kill('SIGTERM');
  });

  it('a reopened replica is not re-verified up to the head its pinned server signed; with a head not pinned, or none, it is', async () => {
    const { solo, dir, kh, a, genesis } = await chainWithHistory('team/trust', 5, (i) => `v${i}`);
    const want = hashes(a);
    await a.close();
    const b = await client(solo, 'team/trust', { dir, kh, genesis });
    expect(b.loadReport).toMatchObject({ records: 6, signaturesTrusted: 6, why: null });
    expect(hashes(b)).toEqual(want);
    await b.close();
    // Another known_hosts: the head in head.json names a key this user never pinned for the server.
    const c = await client(solo, 'team/trust', { dir, kh: join(await tempDir('kh-'), 'known_hosts'), genesis });
    expect(c.loadReport?.signaturesTrusted).toBe(0);
    expect(c.loadReport?.why).toMatch(/not a key pinned for this server/);
    expect(hashes(c)).toEqual(want);
    await c.close();
    await fsp.rm(join(dir, 'head.json'));
    const d = await client(solo, 'team/trust', { dir, kh, genesis });
    expect(d.loadReport).toMatchObject({ signaturesTrusted: 0, why: 'no stored head' });
    expect(hashes(d)).toEqual(want);
    await solo.kill('SIGTERM');
  });

  it('a reopened replica resumes from the state saved at close and applies only the tail; a forged, foreign or mismatched snapshot is replayed in full', async () => {
    const { solo, dir, kh, a, keys, genesis } = await chainWithHistory('team/snap', 4, (i) => `v${i}`);
    await a.close();
    const snapFile = join(dir, SNAPSHOT_FILE);
    expect((await fsp.stat(snapFile)).mode & 0o777).toBe(0o600);
    // Someone else appends meanwhile: the reopen applies those after the snapshot.
    const other = await client(solo, 'team/snap', { who: bob, genesis, dir: null });
    await other.commit((x) => { x.put({ key: keys[0]!, payload: Buffer.from('bob was here') }); }, { wait: 'confirmed' });
    await other.close();
    const b = await client(solo, 'team/snap', { dir, kh, genesis });
    expect(b.loadReport).toMatchObject({ records: 5, fromSnapshot: 5, snapshotWhy: null });
    await until(() => b.lastSeq === 6, 10_000, 'the new commit');
    // The restored state validates and builds like a replayed one: a new version of a DAO written
    // before the snapshot and after it.
    await b.commit((x) => { x.put({ key: keys[0]!, payload: Buffer.from('v3 of key 0') }); x.put({ key: keys[1]!, payload: Buffer.from('v2 of key 1') }); }, { wait: 'confirmed' });
    const want = hashes(b);
    const full = await client(solo, 'team/snap', { genesis, dir: null });
    await until(() => full.lastSeq === 7, 10_000, 'a full replica');
    expect(hashes(full)).toEqual(want);
    for (const k of keys) expect(b.confirmed.getNode(k)).toEqual(full.confirmed.getNode(k));
    expect(b.confirmed.applied).toBe(full.confirmed.applied);
    await full.close();
    await b.close();

    const reopen = async () => {
      const c = await client(solo, 'team/snap', { dir, kh, genesis });
      const r = c.loadReport;
      expect(hashes(c)).toEqual(want);
      await c.close();
      return r!;
    };
    const good = await fsp.readFile(snapFile);
    const flipped = Buffer.from(good);
    flipped[Math.floor(flipped.length / 2)]! ^= 1;
    await fsp.writeFile(snapFile, flipped);
    expect(await reopen()).toMatchObject({ fromSnapshot: 0, snapshotWhy: 'snapshot does not authenticate' });
    // Under another user's key (bob's session on alice's replica directory would derive another key).
    const mallory = snapshotKey(Session.of(createIdentity('mallory')), 'team/snap')!;
    const state = (await reopenState(solo, dir, kh, genesis));
    await saveSnapshot(snapFile, mallory, 'team/snap', state);
    expect(await reopen()).toMatchObject({ fromSnapshot: 0, snapshotWhy: 'snapshot does not authenticate' });
    // Authentic but not of this replica (another chain hash at its seq).
    const own = snapshotKey(Session.of(alice, bob), 'team/snap')!;
    await saveSnapshot(snapFile, own, 'team/snap', { ...state, chainHash: Buffer.alloc(32, 7) });
    expect(await reopen()).toMatchObject({ fromSnapshot: 0, snapshotWhy: 'snapshot does not match the replica' });
    await saveSnapshot(snapFile, own, 'team/other', state);
    expect(await reopen()).toMatchObject({ fromSnapshot: 0 });
    // Each of those closes saved a good one again.
    expect(await reopen()).toMatchObject({ fromSnapshot: 7, snapshotWhy: null });
    await solo.kill('SIGTERM');
  });

  it('a replica record changed under its own hash (frame checksum fixed) is not re-hashed on a trusted resume, and is refused where it is read', async () => {
    const { solo, dir, kh, a, genesis } = await chainWithHistory('team/forged', 4, (i) => `value ${i} `.repeat(20));
    const victim = [...a.replica.records({ seq: 3 })][0]!;
    await a.close();
    // The attacker flips a byte of record 3's payload (not its hash) and recomputes the frame CRC.
    const file = join(dir, 'replica', segmentName(victim.pos.segment));
    const bytes = await fsp.readFile(file);
    const off = victim.pos.offset;
    const len = bytes.readUInt32LE(off + 4);
    bytes[off + FRAME_HEADER + 60]! ^= 0x55; // in the header, past the hash (signatures fill the second half)
    bytes.writeUInt32LE(crc32(bytes.subarray(off + 4, off + FRAME_HEADER + len)), off);
    await fsp.writeFile(file, bytes);
    const b = await client(solo, 'team/forged', { dir, kh, genesis });
    expect(b.loadReport).toMatchObject({ signaturesTrusted: 5, fromSnapshot: 5 });
    expect(() => [...b.commits()]).toThrow(/hash|does not match|differs/i);
    await b.close();
    // Without the snapshot the replay itself refuses it, naming the record.
    await fsp.rm(join(dir, SNAPSHOT_FILE));
    await expect(client(solo, 'team/forged', { dir, kh, genesis })).rejects.toThrow(/seq 3|record 3/);
    await solo.kill('SIGTERM');
  });

  it('offline: async commits are staged and uploaded when the server is back; readonly refuses', async () => {
    const dataDir = await tempDir('atedb-offline-');
    const solo = await startSolo({ dataDir });
    const a = await client(solo, 'team/offline', { create: true });
    const ro = await client(solo, 'team/offline', { who: bob, genesis: a.genesisHash!, mode: 'readonly' });
    await a.commit(put('online'), { wait: 'confirmed' });
    expect((await solo.kill('SIGTERM')).code).toBe(0);
    await until(() => a.status !== 'online' && ro.status !== 'online', 5000, 'offline');
    for (let i = 0; i < 3; i++) await a.commit(put(`offline ${i}`));
    expect(a.pendingCount).toBe(3);
    await expect(ro.commit(put('nope'))).rejects.toThrow(/readonly/);
    const back = await startSolo({ dataDir, port: solo.port });
    await until(() => a.pendingCount === 0 && a.lastSeq === 5, 20_000, 'upload');
    // Back online means the history sync ended too: seq 5 can arrive while it is still syncing.
    await until(() => ro.lastSeq === 5 && ro.status === 'online', 20_000, 'relay to the readonly client');
    expect(hashes(ro)).toEqual(hashes(a));
    await ro.commit(put('online again'), { wait: 'confirmed' });
    await back.kill('SIGTERM');
  });

  it('sync mode waits for the confirmation; a commit in flight when the server stalls fails, never hangs, and is uploaded later', async () => {
    const solo = await startSolo();
    const a = await client(solo, 'team/sync', { create: true, mode: 'sync', confirmTimeoutMs: 1500 });
    const r = await a.commit(put('x'));
    expect(r.seq).toBe(2);
    process.kill(solo.pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      await expect(a.commit(put('stalled'))).rejects.toThrow(/not confirmed within 1500 ms.*stays staged/);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(a.pendingCount).toBe(1);
    } finally {
      process.kill(solo.pid, 'SIGCONT');
    }
    await until(() => a.pendingCount === 0 && a.lastSeq === 3, 10_000, 'upload after the stall');
    // A client that never synced cannot open against a dead server: it fails, it does not hang.
    await solo.kill('SIGKILL');
    const t1 = Date.now();
    await expect(RemoteChain.open({ url: `tcp://127.0.0.1:${solo.port}/team/sync`, session: Session.of(alice, bob), dir: null, mode: 'sync', knownHosts: join(await tempDir('kh-'), 'k') }))
      .rejects.toThrow(/ECONNREFUSED|reach/);
    expect(Date.now() - t1).toBeLessThan(5000);
  });

  it('a client whose clock trails by 10 minutes works on the server\'s clock: it accepts others\' commits and its own are accepted', async () => {
    const solo = await startSolo();
    const a = await client(solo, 'team/skew', { create: true });
    const skewed = await RemoteChain.open({
      url: `tcp://127.0.0.1:${solo.port}/team/skew`, session: Session.of(bob, alice), dir: null, genesisHash: a.genesisHash!,
      knownHosts: join(await tempDir('kh-'), 'known_hosts'), now: () => Date.now() - 600_000,
    });
    open.push(skewed);
    expect(skewed.clockOffsetMs).toBeGreaterThan(590_000);
    await a.commit(put('from a, on time'), { wait: 'confirmed' });
    await until(() => skewed.lastSeq === 2, 10_000, 'relay to the skewed client');
    expect(skewed.status).toBe('online');
    const r = await skewed.commit(put('from the skewed client'), { wait: 'confirmed' });
    expect(r.seq).toBe(3);
    expect(Math.abs(r.commit.header.timestamp - Date.now())).toBeLessThan(60_000);
    await solo.kill('SIGTERM');
  });

  it('a frozen server is noticed by the keepalive; the client reconnects when it thaws', async () => {
    const solo = await startSolo();
    const a = await RemoteChain.open({
      url: `tcp://127.0.0.1:${solo.port}/team/frozen`, session: Session.of(alice, bob), dir: null, create: true,
      knownHosts: join(await tempDir('kh-'), 'known_hosts'), backoff: { minMs: 50, maxMs: 300 }, pingIntervalMs: 300,
    });
    open.push(a);
    expect(a.status).toBe('online');
    process.kill(solo.pid, 'SIGSTOP');
    try {
      await until(() => a.status !== 'online', 3000, 'keepalive notices');
      await a.commit(put('while frozen'));
    } finally {
      process.kill(solo.pid, 'SIGCONT');
    }
    await until(() => a.status === 'online' && a.pendingCount === 0, 15_000, 'reconnect and upload');
    expect(a.lastSeq).toBe(2);
    await solo.kill('SIGTERM');
  });

  it('SIGKILL of the server during appends from 4 clients: every confirmed commit survives, clients converge', async () => {
    const dataDir = await tempDir('atedb-crash-');
    const solo = await startSolo({ dataDir });
    const first = await client(solo, 'team/crash', { create: true });
    const clients = [first, ...(await Promise.all([1, 2, 3].map((i) => client(solo, 'team/crash', { who: i % 2 ? bob : alice, genesis: first.genesisHash! }))))];
    const confirmed = new Map<string, number>();
    let stop = false;
    const writers = clients.map(async (c, k) => {
      for (let i = 0; !stop; i++) {
        try {
          const r = await c.commit(put(`c${k} ${i}`), { wait: 'confirmed' });
          confirmed.set(r.commit.hash.toString('hex'), r.seq!);
        } catch {
          return;
        }
      }
    });
    await until(() => confirmed.size >= 30, 30_000, '30 confirmed');
    await solo.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    const back = await startSolo({ dataDir, port: solo.port });
    const fresh = await client(back, 'team/crash', { genesis: first.genesisHash! });
    const at = new Map(hashes(fresh).map((h, i) => [h, i + 1]));
    for (const [h, seq] of confirmed) expect(at.get(h)).toBe(seq);
    // The writers' staged commits are uploaded; all converge on one history without duplicates.
    await until(() => clients.every((c) => c.pendingCount === 0), 30_000, 'uploads');
    await until(() => new Set(clients.map((c) => c.lastSeq)).size === 1 && clients[0]!.lastSeq >= fresh.lastSeq, 30_000, 'convergence');
    const h0 = hashes(clients[0]!);
    for (const c of clients) expect(hashes(c)).toEqual(h0);
    expect(new Set(h0).size).toBe(h0.length);
    await back.kill('SIGTERM');
  });

  it('a wrong server key is refused', async () => {
    const solo = await startSolo();
    const kh = join(await tempDir('kh-'), 'known_hosts');
    await fsp.writeFile(kh, `127.0.0.1:${solo.port} SHA256:somebodyElse\n`);
    await expect(client(solo, 'team/key', { create: true, kh })).rejects.toThrow(/HOST KEY CHANGED/);
    await solo.kill('SIGTERM');
  });

  it('a server that rolls the chain back, or shows another commit at a seen seq, is refused', async () => {
    const dataDir = await tempDir('atedb-liar-');
    const solo = await startSolo({ dataDir });
    const kh = join(await tempDir('kh-'), 'known_hosts');
    const dir = await tempDir('atedb-replica-');
    const a = await client(solo, 'team/liar', { create: true, dir, kh });
    await a.commit(put('1'), { wait: 'confirmed' });
    await solo.kill('SIGTERM');
    const snapshot = await tempDir('atedb-snap-');
    await fsp.cp(dataDir, snapshot, { recursive: true });
    const s2 = await startSolo({ dataDir, port: solo.port });
    await until(() => a.status === 'online', 10_000, 'reconnect');
    await a.commit(put('2'), { wait: 'confirmed' });
    await a.commit(put('3'), { wait: 'confirmed' });
    expect(a.lastSeq).toBe(4);
    await until(() => a.head?.seq === 4, 5000, 'head 4');
    await a.close();
    await s2.kill('SIGTERM');
    // Rollback: the same server key serves the older copy of the chain.
    const liar = await startSolo({ dataDir: snapshot, port: solo.port });
    const again = await RemoteChain.open({ url: `tcp://127.0.0.1:${solo.port}/team/liar`, session: Session.of(alice, bob), dir, knownHosts: kh, backoff: { minMs: 50, maxMs: 200 } });
    open.push(again);
    const refused = new Promise<Error>((r) => again.once('refused', r));
    expect((await refused).message).toMatch(/shorter history|rollback/);
    expect(again.status).toBe('refused');
    await again.close();
    // Fork: the old copy grows a different commit at seq 3 and 4.
    const other = await client(liar, 'team/liar', { kh });
    await other.commit(put('other 2'), { wait: 'confirmed' });
    await other.commit(put('other 3'), { wait: 'confirmed' });
    const third = await RemoteChain.open({ url: `tcp://127.0.0.1:${solo.port}/team/liar`, session: Session.of(alice, bob), dir, knownHosts: kh, backoff: { minMs: 50, maxMs: 200 } });
    open.push(third);
    const r2 = await new Promise<Error>((r) => third.once('refused', r));
    expect(r2.message).toMatch(/does not match the history|different commit|another commit/);
    // Nothing of the fork was applied.
    expect(third.lastSeq).toBe(4);
    await liar.kill('SIGTERM');
  });
});

describe('a client process killed with staged commits', () => {
  it('uploads them exactly once after restart (server down while staging, and server up)', async () => {
    const { spawn } = await import('node:child_process');
    const script = join(import.meta.dirname, 'atedb', 'client-proc.mjs');
    const dataDir = await tempDir('atedb-kill-client-');
    let solo: Solo = await startSolo({ dataDir });
    const url = `tcp://127.0.0.1:${solo.port}/team/killed`;
    const dir = await tempDir('atedb-kill-replica-');
    const config = await tempDir('atedb-kill-config-');
    const runProc = (count: number, wait: string) => {
      const p = spawn(process.execPath, [script, url, dir, config, String(count), wait], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      const exit = new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
      return { p, out: () => out, err: () => err, exit };
    };
    // 1: create the chain and one confirmed commit.
    const first = runProc(1, 'sync-all');
    expect(await first.exit).toBe(0);
    expect(first.out()).toMatch(/done 2/);
    // 2: server up, the client stages 6 commits and is killed right after staging the last one
    //    (some may be confirmed without the client hearing of it).
    const second = runProc(6, 'wait');
    await until(() => /waiting/.test(second.out()), 30_000, 'staging');
    second.p.kill('SIGKILL');
    await second.exit;
    // 3: server down, the client stages 4 more and is killed.
    await solo.kill('SIGTERM');
    const third = runProc(4, 'wait');
    await until(() => /waiting/.test(third.out()), 30_000, 'offline staging');
    third.p.kill('SIGKILL');
    await third.exit;
    // 4: server back, the client restarts and uploads what is pending.
    solo = await startSolo({ dataDir, port: solo.port });
    const fourth = runProc(0, 'sync-all');
    expect(await fourth.exit).toBe(0);
    const staged = [...second.out().matchAll(/staged (\w+)/g), ...third.out().matchAll(/staged (\w+)/g)].map((m) => m[1]!);
    expect(staged).toHaveLength(10);
    const raw = await RawClient.connect(solo.port, join(config, 'known_hosts'));
    const { commits } = await raw.subscribe('team/killed', null);
    const { decodeCommit } = await import('../../src/chain/index.js');
    const onServer = commits.map((c) => decodeCommit(c).hash.toString('hex'));
    expect(onServer).toHaveLength(12); // genesis + 1 + 10, no duplicate
    for (const h of staged) expect(onServer.filter((x) => x === h)).toHaveLength(1);
    expect(fourth.out()).toMatch(/done 12/);
    // The restarted client found at least the 4 offline commits still pending and uploaded them.
    expect(Number(/open \d+ pending (\d+)/.exec(fourth.out())![1])).toBeGreaterThanOrEqual(4);
    raw.close();
    await solo.kill('SIGTERM');
  });
});
