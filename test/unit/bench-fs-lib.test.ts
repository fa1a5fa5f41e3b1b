import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrace } from '../../scripts/bench/lib/fuse-trace.js';
import { flatten, diffCounters, commitCounters } from '../../scripts/bench/lib/stats-file.js';
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
