// The atedb solo panel as Ink renders it (ink-testing-library: the real renderer, a fake
// terminal), fed by a real ServerStats; and the stats' quantiles and the metrics text.
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import { AtedbPanel, type AtedbPanelInfo } from '../../cli/tui/atedb-panel.js';
import { metricsRegistry, parseHostPort } from '../../server/metrics.js';
import { LATENCY_BOUNDS_MS, ServerStats, quantileMs } from '../../server/stats.js';

const info: AtedbPanelInfo = { listening: '127.0.0.1:5000', fingerprint: 'SHA256:abc', dataDir: '/data/atedb', policy: 'open', metrics: '127.0.0.1:9100' };
const tick = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

function statsWith(open: number, chains: number): ServerStats {
  const s = new ServerStats();
  s.live = { connectionsOpen: () => open, chainsOpen: () => chains, openBytes: () => ({ bytesIn: 2048, bytesOut: 1 << 20 }) };
  return s;
}

describe('atedb solo panel', () => {
  it('shows connections, chains, appends, bytes, fsync quantiles and rejections by reason', () => {
    const s = statsWith(3, 2);
    s.connectionsTotal = 7;
    for (let i = 0; i < 99; i++) s.stored(1.5, 4);
    s.stored(300, 4);
    s.rejectedFor('replay');
    s.rejectedFor('replay');
    s.rejectedFor('bad-signature');
    const { lastFrame, unmount } = render(<AtedbPanel info={info} read={() => s.snapshot()} />);
    const f = lastFrame()!;
    unmount();
    expect(f).toContain('127.0.0.1:5000');
    expect(f).toMatch(/metrics\s+http:\/\/127\.0\.0\.1:9100\/metrics/);
    expect(f).toMatch(/connections\s+3 open, 7 since start/);
    expect(f).toMatch(/chains open\s+2/);
    expect(f).toMatch(/appends\s+100 \(/);
    expect(f).toMatch(/events\s+400 \(/);
    expect(f).toMatch(/bytes in\s+2\.0 KiB/);
    expect(f).toMatch(/bytes out\s+1\.0 MiB/);
    // 99 of 100 at 1.5 ms: p50 and p99 fall in the ≤2 ms bucket (the one at 300 ms is the p100).
    expect(f).toMatch(/fsync\s+p50 ≤2 ms · p99 ≤2 ms \(since start\)/);
    expect(f).toMatch(/rejected\s+3: bad-signature 1, replay 2/);
  });

  it('computes appends/s from successive reads, draws a sparkline, shows the last interval\'s p99', async () => {
    const s = statsWith(1, 1);
    let reads = 0;
    const read = () => {
      reads++;
      // every read sees more appends, the recent ones slow
      for (let i = 0; i < reads * 5; i++) s.stored(reads > 1 ? 50 : 1, 1);
      return s.snapshot();
    };
    const { lastFrame, unmount } = render(<AtedbPanel info={info} read={read} intervalMs={50} />);
    for (let i = 0; i < 100 && reads < 8; i++) await tick(50);
    const f = lastFrame()!;
    unmount();
    expect(f).toMatch(/appends\s+\d+ \(\d+\.\d\/s\) [▁▂▃▄▅▆▇█]{3,}/);
    expect(f).not.toMatch(/appends\s+\d+ \(0\.0\/s\)/);
    expect(f).toMatch(/fsync\s+p50 ≤64 ms · p99 ≤64 ms\s/);
    expect(f).not.toMatch(/fsync.*since start/);
    expect(f).toMatch(/rejected\s+none/);
  });

  it('quantiles come from the fixed buckets; none without samples', () => {
    const counts = new Array(LATENCY_BOUNDS_MS.length + 1).fill(0);
    expect(quantileMs(counts, 0.99)).toBeNull();
    counts[0] = 50; // ≤0.1 ms
    counts[5] = 49; // ≤4 ms
    counts[LATENCY_BOUNDS_MS.length] = 1; // beyond the last bound
    expect(quantileMs(counts, 0.5)).toBe(0.1);
    expect(quantileMs(counts, 0.99)).toBe(4);
    expect(quantileMs(counts, 1)).toBe(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]);
  });

  it('the metrics registry carries the counters, a line per rejection reason and a cumulative histogram', async () => {
    const s = statsWith(2, 1);
    const registry = metricsRegistry(s);
    s.connectionsTotal = 5;
    s.stored(0.3, 2);
    s.stored(3, 2);
    s.rejectedFor('wrong-genesis');
    const t = await registry.metrics();
    expect(registry.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(t).toContain('# TYPE atedb_appends_total counter\natedb_appends_total 2\n');
    expect(t).toContain('atedb_events_total 4\n');
    expect(t).toContain('atedb_connections_open 2\n');
    expect(t).toContain('atedb_connections_total 5\n');
    expect(t).toContain('atedb_rejected_total{reason="wrong-genesis"} 1\n');
    expect(t).toContain('atedb_fsync_seconds_bucket{le="0.00025"} 0\n');
    expect(t).toContain('atedb_fsync_seconds_bucket{le="0.0005"} 1\n');
    expect(t).toContain('atedb_fsync_seconds_bucket{le="0.004"} 2\n');
    expect(t).toContain('atedb_fsync_seconds_bucket{le="+Inf"} 2\n');
    expect(t).toContain('atedb_fsync_seconds_count 2\n');
    expect(t).toContain('atedb_received_bytes_total 2048\n');
    // counters follow the stats on the next scrape (collected, not double counted)
    s.stored(1, 1);
    s.rejectedFor('wrong-genesis');
    const t2 = await registry.metrics();
    expect(t2).toContain('atedb_appends_total 3\n');
    expect(t2).toContain('atedb_rejected_total{reason="wrong-genesis"} 2\n');
    expect(t2).toContain('atedb_fsync_seconds_count 3\n');
  });

  it('parses HOST:PORT and refuses the rest', () => {
    expect(parseHostPort('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseHostPort('[::1]:9100')).toEqual({ host: '::1', port: 9100 });
    expect(() => parseHostPort('9100')).toThrow(/HOST:PORT/);
    expect(() => parseHostPort('h:70000')).toThrow(/HOST:PORT/);
  });
});
