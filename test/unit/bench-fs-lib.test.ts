import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrace } from '../../scripts/bench/lib/fuse-trace.js';
import { flatten, diffCounters, commitCounters, spaceOf } from '../../scripts/bench/lib/stats-file.js';
import { DURABILITY_WORKLOADS, percentile, logBound, spaceVerdict, rewriteDiscriminates, durabilityCtx, durabilityMethod, sqliteScript, MiB, type SpacePoint } from '../../scripts/bench/lib/fs-durability.js';
import { durabilityGoals, pickPoints, spaceSection } from '../../scripts/bench/lib/fs-durability-report.js';
import { prepareTree } from '../../scripts/bench/lib/tree.js';
import { ratioTable, figuresTable, commitSection, requestsSection, median, cell, gocryptfsFor, type Results } from '../../scripts/bench/lib/fs-report.js';
import { WORKLOADS } from '../../scripts/bench/lib/fs-workloads.js';
import type { Target } from '../../scripts/bench/lib/fs-targets.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'bench-fs-')); dirs.push(d); return d; };

describe('parseTrace', () => {
  const text = [
    '# tracer: nop',
    '# entries-in-buffer/entries-written: 7/7   #P:2',
    '#',
    '           mkdir-7358    [000] ...1.   578.076446: fuse_request_send: connection 39 req 16 opcode 1 (FUSE_LOOKUP) len 42 ',
    '       gocryptfs-7345    [001] .....   578.076671: fuse_request_end: connection 39 req 16 len 16 error -2',
    '           mkdir-7358    [000] ...1.   578.076744: fuse_request_send: connection 39 req 18 opcode 9 (FUSE_MKDIR) len 50 ',
    '       gocryptfs-7342    [001] .....   578.076906: fuse_request_end: connection 39 req 18 len 144 error 0',
    '            bash-7321    [001] ...1.   578.077301: fuse_request_send: connection 39 req 20 opcode 1 (FUSE_LOOKUP) len 43 ',
    '       gocryptfs-7345    [001] .....   578.077353: fuse_request_end: connection 39 req 20 len 16 error -2',
    '            bash-7321    [000] ...1.   578.077409: fuse_request_send: connection 39 req 22 opcode 2 (FUSE_FORGET) len 59 ',
  ].join('\n');

  it('counts requests per opcode and pairs replies by request id', () => {
    const r = parseTrace(text);
    expect(r.total).toBe(4);
    expect(r.ops.get('LOOKUP')).toEqual({ count: 2, inFlightUs: 225 + 52, matched: 2 });
    expect(r.ops.get('MKDIR')?.count).toBe(1);
    expect(r.ops.get('FORGET')).toEqual({ count: 1, inFlightUs: 0, matched: 0 }); // FORGET has no reply
    expect(r.meanUs).toBeCloseTo((225 + 162 + 52) / 3, 5);
    expect(r.lost).toBe(false);
  });

  it('flags a trace whose ring buffer overflowed', () => {
    expect(parseTrace(text.replace('7/7', '5/7')).lost).toBe(true);
  });
});

describe('daemon counters', () => {
  it('flattens nested numeric leaves and diffs two snapshots', () => {
    const a = flatten({ getattr: 3, nested: { write: 1 }, name: 'x', list: [1, 2] });
    expect([...a.entries()]).toEqual([['getattr', 3], ['nested.write', 1]]);
    const b = flatten({ getattr: 10, nested: { write: 1 }, read: 4 });
    expect([...diffCounters(a, b)!.entries()]).toEqual([['getattr', 7], ['read', 4]]);
    expect(diffCounters(undefined, b)).toBeUndefined();
  });
});

describe('benchmark tree', () => {
  it('is the same tree, byte for byte, for the same seed, and another for another seed', async () => {
    const [a, b, c] = [tmp(), tmp(), tmp()];
    const ta = await prepareTree(a, { files: 300, seed: 7 });
    const tb = await prepareTree(b, { files: 300, seed: 7 });
    const tc = await prepareTree(c, { files: 300, seed: 8 });
    expect(ta.tarSha256).toBe(tb.tarSha256);
    expect(ta.md5).toBe(tb.md5);
    expect(tc.tarSha256).not.toBe(ta.tarSha256);
    expect(existsSync(ta.tar)).toBe(true);
    // Every regular file is listed once per name (hard links included).
    expect(ta.md5.trim().split('\n')).toHaveLength(ta.files + ta.hardlinks);
    expect(ta.symlinks).toBeGreaterThan(0);
    expect(ta.bytes).toBeGreaterThan(300 * 1024);
    // Cached: a second call reads the metadata instead of regenerating.
    const again = await prepareTree(a, { files: 300, seed: 7 });
    expect(again).toEqual(ta);
    expect(readFileSync(ta.tar).length).toBeGreaterThan(ta.bytes);
  });
});

describe('report', () => {
  const t = (name: string, kind: Target['kind'], transport?: Target['transport']): Target =>
    ({ name, kind, transport, note: '', mount: () => Promise.reject(new Error('not mounted')) });
  const targets = [t('gocryptfs', 'gocryptfs'), t('floor-fn', 'floor', 'fuse-native'), t('atefs-fn', 'atefs', 'fuse-native')];
  const write = WORKLOADS.find((w) => w.id === 'write')!;
  const untar = WORKLOADS.find((w) => w.id === 'untar')!;
  const results: Results = new Map();
  const put = (target: string, wl: string, ...values: number[]) => {
    for (const v of values) cell(results, target, wl).samples.push({ value: v, seconds: v });
  };
  put('gocryptfs', 'write', 400); put('floor-fn', 'write', 500); put('atefs-fn', 'write', 300, 310, 900);
  put('gocryptfs', 'untar', 4); put('floor-fn', 'untar', 5); put('atefs-fn', 'untar', 7);

  it('uses medians', () => {
    expect(median([900, 300, 310])).toBe(310);
    expect(median([1, 2, 3, 4])).toBe(2.5);
    expect(median([])).toBeUndefined();
    // Several runs: the median and the spread, never only the best run.
    expect(figuresTable(targets, [write], results, 3)[1]).toMatch(/ 400 +500 +310 \[300-900\]$/);
    expect(figuresTable(targets, [write], results, 3)[0]).toMatch(/^median \[min-max\] of 3/);
  });

  it('a workload whose check failed gets no ratio and no "ok", only its marked figure', () => {
    const r: Results = new Map();
    cell(r, 'floor-fn', 'untar').samples.push({ value: 5, seconds: 5 });
    cell(r, 'gocryptfs', 'untar').samples.push({ value: 4, seconds: 4 });
    const c = cell(r, 'atefs-fn', 'untar');
    c.samples.push({ value: 1, seconds: 1 });
    c.errors.push('3 files missing');
    expect(figuresTable(targets, [untar], r, 1)[1]).toMatch(/ 1\.00!$/);
    const lines = ratioTable(targets, [untar], r).join('\n');
    expect(lines).toMatch(/untar\s+n\/a \(check failed\)\s+n\/a \(check failed\)$/m);
    expect(lines).not.toMatch(/ ok/);
    // A reference whose check failed gives no ratio either.
    const r2: Results = new Map();
    cell(r2, 'floor-fn', 'untar').samples.push({ value: 5, seconds: 5 });
    cell(r2, 'floor-fn', 'untar').errors.push('wrong bytes');
    cell(r2, 'atefs-fn', 'untar').samples.push({ value: 3, seconds: 3 });
    expect(ratioTable(targets, [untar], r2).join('\n')).toMatch(/untar\s+n\/a \(check failed\)/);
  });

  it('compares atefs with the gocryptfs on the same kind of store, and names it', () => {
    const ts = [
      { ...t('gocryptfs-shm', 'gocryptfs'), backing: 'tmpfs' as const }, { ...t('gocryptfs-disk', 'gocryptfs'), backing: 'disk' as const },
      t('floor-fn', 'floor', 'fuse-native'),
      { ...t('atefs-fn-disk', 'atefs', 'fuse-native'), backing: 'disk' as const }, { ...t('atefs-fn-shm', 'atefs', 'fuse-native'), backing: 'tmpfs' as const },
      { ...t('atefs-fn', 'atefs', 'fuse-native'), backing: 'memory' as const },
    ];
    expect(gocryptfsFor(ts, ts[3]!)!.name).toBe('gocryptfs-disk');
    expect(gocryptfsFor(ts, ts[4]!)!.name).toBe('gocryptfs-shm');
    expect(gocryptfsFor(ts, ts[5]!)!.name).toBe('gocryptfs-shm');
    const r: Results = new Map();
    for (const [n, v] of [['gocryptfs-shm', 2], ['gocryptfs-disk', 8], ['floor-fn', 1], ['atefs-fn-disk', 4], ['atefs-fn-shm', 4], ['atefs-fn', 4]] as const) {
      cell(r, n, 'untar').samples.push({ value: v, seconds: v });
    }
    const lines = ratioTable(ts, [untar], r).join('\n');
    expect(lines).toMatch(/atefs-fn-disk\s+vs floor-fn\s+vs gocryptfs-disk\n\s+untar\s+0\.25 \S+ \(1\.3x\) MISS\s+2\.00$/m);
    expect(lines).toMatch(/atefs-fn-shm\s+vs floor-fn\s+vs gocryptfs-shm\n\s+untar\s+0\.25 \S+ \(1\.3x\) MISS\s+0\.50$/m);
  });

  it('untar and rm -rf are timed until the data is durable; the cold read remounts nobody', () => {
    const m = { dir: '/mnt/x', syncPaths: ['/mnt/x', '/store/log'], unmount: () => Promise.resolve() };
    const ctx = { seqFile: '/s', seqBytes: 1, scratch: '/tmp', tree: { tar: '/t.tar' } } as unknown as Parameters<typeof untar.script>[1];
    // fsync of the root (atefs commits), then syncfs of the mount and its backing store.
    const end = /&& sync '?\/mnt\/x'? && sync -f '?\/mnt\/x'? '?\/store\/log'?$/;
    expect(untar.script(m, ctx)).toMatch(end);
    expect(WORKLOADS.find((w) => w.id === 'rm')!.script(m, ctx)).toMatch(end);
    expect(WORKLOADS.find((w) => w.id === 'read')!.before).toBeUndefined();
  });

  it('turns MB/s and seconds into speed ratios and checks them against the goals', () => {
    const lines = ratioTable(targets, [write, untar], results).join('\n');
    // write: 310/500 = 0.62 vs floor (goal 0.77: MISS), 310/400 = 0.78 vs gocryptfs (goal 0.8: MISS)
    expect(lines).toMatch(/seq write\+fsync\s+0\.62 >=0\.77 \(1\.3x\) MISS\s+0\.78 >=0\.8 MISS/);
    // untar: 5/7 = 0.71 vs floor (MISS); vs gocryptfs 4/7 = 0.57, no goal on fuse-native
    expect(lines).toMatch(/untar\s+0\.71 >=0\.77 \(1\.3x\) MISS\s+0\.57$/m);
  });

  it('reports a killed workload as a bound, and its ratio as an upper bound', () => {
    const r: Results = new Map();
    cell(r, 'floor-fn', 'untar').samples.push({ value: 5, seconds: 5 });
    cell(r, 'gocryptfs', 'untar').samples.push({ value: 4, seconds: 4 });
    const c = cell(r, 'atefs-fn', 'untar');
    c.errors.push('killed');
    c.bounds = [50];
    expect(figuresTable(targets, [untar], r, 1)[1]).toMatch(/ 4\.00 +5\.00 +>50\.0$/);
    expect(ratioTable(targets, [untar], r).join('\n')).toMatch(/untar\s+<0\.10 >=0\.77 \(1\.3x\) MISS\s+<0\.08$/m);
  });

  it('applies the kernel-transport goals to kernel targets', () => {
    const k = [t('gocryptfs', 'gocryptfs'), t('floor-k', 'floor', 'kernel'), t('atefs-k', 'atefs', 'kernel')];
    const r: Results = new Map();
    cell(r, 'gocryptfs', 'untar').samples.push({ value: 4, seconds: 4 });
    cell(r, 'floor-k', 'untar').samples.push({ value: 3, seconds: 3 });
    cell(r, 'atefs-k', 'untar').samples.push({ value: 3.5, seconds: 3.5 });
    expect(ratioTable(k, [untar], r).join('\n')).toMatch(/untar\s+0\.86 >=0\.77 \(1\.3x\) ok\s+1\.14 >=1\.0 ok/);
  });

  it('prints the signing share of each atefs workload against the 10% goal, and keeps commit.* out of the op counters', () => {
    const k = [t('gocryptfs', 'gocryptfs'), t('atefs-k', 'atefs', 'kernel')];
    const r: Results = new Map();
    const body = { counters: { UNLINK: 8200, requests: 9000 }, commit: { batches: 3, batchMs: 900, signs: 4, signMs: 400, commits: 4, events: 20000, buildMs: 200, commitMs: 700, unsettled: 0 } };
    const all = flatten(body.counters);
    flatten(body.commit, 'commit', all);
    const commit = commitCounters(all);
    expect(commit?.get('signMs')).toBe(400);
    cell(r, 'atefs-k', 'untar').samples.push({ value: 5, seconds: 5, commit, counters: all });
    cell(r, 'gocryptfs', 'untar').samples.push({ value: 4, seconds: 4 });
    const lines = commitSection(k, [untar], r).join('\n');
    // 0.4 s of signing in a 5 s untar: 8%.
    expect(lines).toMatch(/atefs-k\s+untar\s+signing 8\.0% of 5\.00 s wall \(goal <10%: ok\); 4 signatures 0\.40 s, 3 batches 0\.90 s \(4 DIO commits, 20\.0k events: build 0\.20 s, commit 0\.70 s\)/);
    expect(commitSection([t('gocryptfs', 'gocryptfs')], [untar], r)).toEqual([]);
    const req = requestsSection(k, [untar], r, 'x').join('\n');
    expect(req).toMatch(/daemon: requests 9000 UNLINK 8200$/m);
    expect(req).not.toMatch(/signMs/);
  });
});

describe('durability workloads (issue 17)', () => {
  const t = (name: string, kind: Target['kind'], transport?: Target['transport'], backing?: Target['backing']): Target =>
    ({ name, kind, transport, backing, note: '', mount: () => Promise.reject(new Error('not mounted')) });
  const gc = t('gocryptfs-disk', 'gocryptfs', undefined, 'disk');
  const gcShm = t('gocryptfs-shm', 'gocryptfs', undefined, 'tmpfs');
  const ak = t('atefs-k-disk', 'atefs', 'kernel', 'disk');
  const ku = t('atefs-ku-disk', 'atefs', 'kernel', 'disk');
  const floor = t('floor-k', 'floor', 'kernel');
  const targets = [gcShm, gc, floor, ak, ku];
  const wl = (id: string) => DURABILITY_WORKLOADS.find((w) => w.id === id)!;
  const put = (r: Results, target: string, id: string, value: number) => cell(r, target, id).samples.push({ value, seconds: 1 });
  const pt = (t: number, storeMiB: number, liveMiB: number): SpacePoint =>
    ({ t, written: 0, storeBytes: storeMiB * MiB, liveBytes: liveMiB * MiB, liveFrom: 'daemon' });

  it('takes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 200 }, (_, i) => 200 - i); // 1..200, unsorted
    expect(percentile(xs, 50)).toBe(100);
    expect(percentile(xs, 99)).toBe(198);
    expect(percentile(xs, 100)).toBe(200);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([3, 1, 2], 0)).toBe(1);
    expect(percentile([], 50)).toBeUndefined();
  });

  it('reads p50 and p99 of the fsync probe into two rows, and only runs on disk-backed targets', () => {
    const lat = Array.from({ length: 100 }, (_, i) => i + 1);
    const r = { code: 0, stdout: `noise\n${JSON.stringify({ latenciesMs: lat, sha256: 'x' })}\n`, stderr: '', seconds: 1 };
    expect(wl('fsync').measure!(r, {} as never)).toEqual({ fsync: 50, 'fsync-p99': 99 });
    expect(wl('fsync-p99').of).toBe('fsync');
    for (const w of DURABILITY_WORKLOADS) {
      expect(w.applies!(gc)).toBe(true);
      expect(w.applies!(gcShm)).toBe(false);
      expect(w.applies!(floor)).toBe(false);
    }
  });

  it('writes one INSERT per durable transaction', () => {
    const sql = sqliteScript(3);
    expect(sql.split('\n')[0]).toBe('PRAGMA synchronous=FULL;');
    expect(sql.match(/BEGIN; INSERT INTO t\(v\) VALUES \(randomblob\(200\)\); COMMIT;/g)).toHaveLength(3);
  });

  it('bounds the log at 2x live + 128 MiB at every sample, and says when the settings cannot tell', () => {
    expect(logBound(64 * MiB)).toBe(256 * MiB);
    const v = spaceVerdict([pt(2, 100, 10), pt(4, 149, 10), pt(6, 140, 64)]);
    expect(v.within).toBe(false); // 149 > 2 x 10 + 128
    expect(v.peak!.t).toBe(4);
    expect(v.end!.t).toBe(6);
    expect(spaceVerdict([pt(2, 148, 10), pt(4, 256, 64)]).within).toBe(true);
    const d = durabilityCtx(false, {}, '/p');
    expect(d.rewriteFileBytes).toBe(64 * MiB);
    expect(rewriteDiscriminates(d)).toBe(true);
    expect(rewriteDiscriminates(durabilityCtx(true, {}, '/p'))).toBe(true);
    expect(rewriteDiscriminates(durabilityCtx(false, { BENCH_REWRITE_X: '1' }, '/p'))).toBe(false);
    expect(durabilityMethod(durabilityCtx(false, { BENCH_REWRITE_X: '1' }, '/p')).join('\n')).toMatch(/NOT exceed \(the goal proves nothing/);
  });

  it('the rewrite reports MB/s and the store/live ratio at the end', () => {
    const r = { code: 0, stdout: JSON.stringify({ rewriteSeconds: 2, rewriteBytes: 4e6, fillSeconds: 1, sha256: 'x' }), stderr: '', seconds: 3 };
    expect(wl('rewrite').measure!(r, {} as never, [pt(2, 300, 64), pt(4, 128, 64)])).toEqual({ rewrite: 2, 'rewrite-space': 2 });
    expect(wl('rewrite').measure!(r, {} as never, [])).toEqual({ rewrite: 2 });
  });

  it('keeps the worst and the last sample when thinning the series', () => {
    const pts = Array.from({ length: 30 }, (_, i) => pt(i, i === 13 ? 900 : 100, 64));
    const picked = pickPoints(pts, 5);
    expect(picked.length).toBeLessThanOrEqual(5);
    expect(picked.map((p) => p.t)).toContain(13);
    expect(picked[picked.length - 1]!.t).toBe(29);
    expect(pickPoints(pts.slice(0, 3), 5)).toHaveLength(3);
  });

  it('prints the goal lines MET / NOT MET against the gocryptfs on the same store, none when a check failed', () => {
    const r: Results = new Map();
    put(r, 'gocryptfs-shm', 'fsync', 0.01); // never the comparison for a disk target
    put(r, 'gocryptfs-disk', 'fsync', 1.0); put(r, 'atefs-k-disk', 'fsync', 1.9); put(r, 'atefs-ku-disk', 'fsync', 15);
    put(r, 'gocryptfs-disk', 'sqlite-wal', 300); put(r, 'atefs-k-disk', 'sqlite-wal', 150); put(r, 'atefs-ku-disk', 'sqlite-wal', 250);
    cell(r, 'atefs-k-disk', 'rewrite').samples.push({ value: 5, seconds: 9, series: [pt(2, 100, 64), pt(4, 250, 64)] });
    cell(r, 'atefs-ku-disk', 'rewrite').samples.push({ value: 5, seconds: 9, series: [pt(2, 300, 64)] });
    const ws = ['fsync', 'sqlite-wal', 'rewrite'].map(wl);
    const lines = durabilityGoals(targets, ws, r).join('\n');
    expect(lines).toMatch(/fsync p50 <= 2x gocryptfs\s+atefs-k-disk\s+1\.90 ms vs gocryptfs-disk 1\.00 ms\s+1\.90x  MET$/m);
    expect(lines).toMatch(/fsync p50 <= 2x gocryptfs\s+atefs-ku-disk\s+15\.0 ms vs gocryptfs-disk 1\.00 ms\s+15\.00x  NOT MET$/m);
    // SQLite: time = inverse of tx/s: 300/150 = 2.0x (NOT MET), 300/250 = 1.2x (MET).
    expect(lines).toMatch(/SQLite WAL time <= 1\.5x gocryptfs\s+atefs-k-disk\s+150 tx\/s vs gocryptfs-disk 300 tx\/s\s+2\.00x  NOT MET$/m);
    expect(lines).toMatch(/SQLite WAL time <= 1\.5x gocryptfs\s+atefs-ku-disk .*1\.20x  MET$/m);
    expect(lines).toMatch(/log <= 2x live \+ 128 MiB\s+atefs-k-disk\s+worst: log 250 MiB, live 64 MiB \(bound 256\) at 4 s; 0 of 2 samples over\s+MET$/m);
    expect(lines).toMatch(/log <= 2x live \+ 128 MiB\s+atefs-ku-disk .*NOT MET$/m);
    // The speed ratios carry the same goals (>= 1/2 and >= 1/1.5 of gocryptfs's speed).
    const ratios = ratioTable(targets, ws, r).join('\n');
    expect(ratios).toMatch(/fsync 4K p50\s+-\s+0\.53 >=0\.5 \(2x\) ok$/m);
    expect(ratios).toMatch(/SQLite WAL\s+-\s+0\.50 >=0\.67 \(1\.5x\) MISS$/m);
    expect(ratios).not.toMatch(/store\/live/);
    // A check that failed: the figure is shown, no verdict.
    cell(r, 'atefs-k-disk', 'fsync').errors.push('read back differs');
    cell(r, 'atefs-k-disk', 'rewrite').errors.push('read back differs');
    const failed = durabilityGoals(targets, ws, r).join('\n');
    expect(failed).toMatch(/fsync p50 <= 2x gocryptfs\s+atefs-k-disk\s+1\.90! ms .*n\/a \(check failed\)$/m);
    expect(failed).toMatch(/log <= 2x live \+ 128 MiB\s+atefs-k-disk .*n\/a \(check failed\)$/m);
    expect(failed).not.toMatch(/^\s+(fsync p50|log) .*atefs-k-disk.*MET$/m);
  });

  it('shows a killed fsync run as a lower bound on its latency and p99 beside p50', () => {
    const r: Results = new Map();
    put(r, 'gocryptfs-disk', 'fsync', 0.5);
    put(r, 'gocryptfs-disk', 'fsync-p99', 2);
    const c = cell(r, 'atefs-k-disk', 'sqlite-journal');
    c.errors.push('killed');
    c.bounds = [2.5];
    const lines = figuresTable([gc, ak], [wl('fsync'), wl('fsync-p99'), wl('sqlite-journal')], r, 1);
    expect(lines[1]).toMatch(/^fsync 4K p50 ms\s+0\.50\s+n\/a$/);
    expect(lines[2]).toMatch(/^fsync 4K p99 ms\s+2\.00\s+n\/a$/);
    expect(lines[3]).toMatch(/^SQLite journal tx\/s\s+n\/a\s+<2\.5$/);
  });

  it('judges a killed rewrite by the samples taken until the kill: over the bound is NOT MET, within it proves nothing', () => {
    const r: Results = new Map();
    const over = cell(r, 'atefs-k-disk', 'rewrite');
    over.errors.push('killed after 300 s');
    over.partialSeries = [[pt(2, 100, 64), pt(300, 900, 64)]];
    const within = cell(r, 'atefs-ku-disk', 'rewrite');
    within.errors.push('killed after 300 s');
    within.partialSeries = [[pt(2, 100, 64)]];
    const lines = durabilityGoals(targets, [wl('rewrite')], r).join('\n');
    expect(lines).toMatch(/atefs-k-disk\s+worst: log 900 MiB, live 64 MiB \(bound 256\) at 300 s; 1 of 2 samples over\s+NOT MET \(before it was killed\)$/m);
    expect(lines).toMatch(/atefs-ku-disk .*n\/a \(killed before the end\)$/m);
    expect(spaceSection(targets, r).join('\n')).toMatch(/atefs-k-disk\s+live = daemon's count; KILLED: samples until then/);
  });

  it('the rewrite reports its longest write/fsync and fsync p99, lined up with the space samples', () => {
    const t0 = 1_000_000;
    const probe = { rewriteSeconds: 2, rewriteBytes: 4e6, fillSeconds: 1, sha256: 'x', longestWriteMs: 3, longestFsyncMs: 140,
      fsyncMs: Array.from({ length: 100 }, (_, i) => i + 1), startedAt: t0, slowest: [5, 140, 20, 7] };
    const r = { code: 0, stdout: JSON.stringify(probe), stderr: '', seconds: 3 };
    // One sample in the fill (before the rewrites), then at 1.5 s, 3.2 s and 3.9 s into them.
    // Then two after the writes ended (the settle): the first still covers second 3 (to the second), the next no call at all.
    const series = [0, 1500, 3200, 3900, 6000, 8000].map((dt, i) => ({ ...pt(i, 100, 64), at: t0 - 500 + (i === 0 ? 0 : dt + 500) }));
    const v = wl('rewrite').measure!(r, {} as never, series);
    expect(v['rewrite-stall']).toBe(140);
    expect(v['rewrite-fsync-p99']).toBe(99);
    expect(v['rewrite-fsync-p50']).toBe(50);
    expect(wl('rewrite-stall').of).toBe('rewrite');
    // Seconds 0-1, then 1-3 (the 140 ms call ended in second 1: counted in both, to the second), then 3.
    expect(series.map((p) => p.stallMs)).toEqual([undefined, 140, 140, 7, 7, undefined]);
    const lines = spaceSection(targets, (() => { const x: Results = new Map(); cell(x, 'atefs-k-disk', 'rewrite').samples.push({ value: 1, seconds: 1, series }); return x; })()).join('\n');
    expect(lines).toMatch(/stall ms$/m);
    expect(lines).toMatch(/\s256\s+7$/m);
    expect(lines).toMatch(/\s256\s+-$/m);
    expect(durabilityCtx(false, {}, '/p').settleMs).toBe(10_000);
    expect(durabilityCtx(false, { BENCH_SETTLE_S: '0' }, '/p').settleMs).toBe(0);
  });

  it('judges the writer stall (< 100 ms) and df against the live data', () => {
    const r: Results = new Map();
    const dfPt = (df: number, live: number): SpacePoint => ({ ...pt(1, 100, live), dfUsedBytes: df * MiB });
    cell(r, 'atefs-k-disk', 'rewrite').samples.push({ value: 5, seconds: 9, series: [dfPt(60, 62), dfPt(80, 80.5)] });
    put(r, 'atefs-k-disk', 'rewrite-stall', 140); put(r, 'atefs-k-disk', 'rewrite-fsync-p99', 90); put(r, 'atefs-k-disk', 'rewrite-fsync-p50', 20);
    cell(r, 'atefs-ku-disk', 'rewrite').samples.push({ value: 5, seconds: 9, series: [dfPt(10, 80)] });
    put(r, 'atefs-ku-disk', 'rewrite-stall', 40);
    put(r, 'gocryptfs-disk', 'rewrite-stall', 12);
    const lines = durabilityGoals(targets, [wl('rewrite')], r).join('\n');
    expect(lines).toMatch(/writer stall < 100 ms \(longest call\)\s+atefs-k-disk\s+140\.0 ms, fsync p50 20\.0 fsync p99 90\.0 ms \(gocryptfs-disk 12\.0 ms\)\s+NOT MET$/m);
    expect(lines).toMatch(/writer stall < 100 ms \(longest call\)\s+atefs-ku-disk\s+40\.0 ms \(gocryptfs-disk 12\.0 ms\)\s+MET$/m);
    expect(lines).toMatch(/df used = live data\s+atefs-k-disk\s+end: df 80 MiB, live 81 MiB; largest difference 2\.0 MiB\s+MET$/m);
    expect(lines).toMatch(/df used = live data\s+atefs-ku-disk\s+end: df 10 MiB, live 80 MiB; .*NOT MET$/m);
  });

  it('reads the daemon\'s live data and log size from its stats', () => {
    expect(spaceOf({ space: { liveBytes: 10, logBytes: 20 }, counters: {} })).toEqual({ liveBytes: 10, logBytes: 20 });
    expect(spaceOf({ counters: {} })).toBeUndefined();
    expect(spaceOf(undefined)).toBeUndefined();
  });

  it('prints the space series with the bound and marks samples over it', () => {
    const r: Results = new Map();
    cell(r, 'atefs-k-disk', 'rewrite').samples.push({ value: 5, seconds: 9, series: [pt(2, 100, 64), pt(4, 300, 64)] });
    const lines = spaceSection(targets, r).join('\n');
    expect(lines).toMatch(/atefs-k-disk\s+live = daemon's count/);
    expect(lines).toMatch(/atefs-k-disk\s+live = daemon's count; 2 samples$/m);
    expect(lines).toMatch(/\s4\.0\s+0\s+300\s+64\s+4\.69x\s+256 over\s+-$/m);
    expect(spaceSection(targets, new Map())).toEqual([]);
  });
});
