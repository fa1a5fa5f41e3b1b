// The mount panel as Ink renders it (ink-testing-library: the real renderer, a fake terminal).
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import { Panel, sparkline, type MountPanelStatus } from '../../cli/tui/mount-panel.js';
import { statusLines } from '../../cli/status.js';

const base: MountPanelStatus = {
  mountpoint: '/mnt/vault', transport: 'kernel', chain: '/data/atefs/local', mode: 'local', readOnly: false,
  startedAt: Date.now(), requests: 10, commits: 1, events: 5, dirtyBytes: 4096, logBytes: 3 << 20, state: 'mounted',
  seq: 7, bytesWritten: 0, bytesRead: 0,
};

const tick = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

describe('mount status panel', () => {
  it('shows the chain, mode, seq, sizes and the last error', () => {
    const { lastFrame, unmount } = render(<Panel read={() => ({ ...base, lastError: 'commit: disk full', compaction: '12.0 MiB -> 3.0 MiB in 80 ms (factor)' })} />);
    const f = lastFrame()!;
    unmount();
    expect(f).toContain('/mnt/vault');
    expect(f).toMatch(/chain\s+\/data\/atefs\/local/);
    expect(f).toMatch(/mode\s+local · kernel/);
    expect(f).toMatch(/seq\s+7/);
    expect(f).toMatch(/log size\s+3\.0 MiB/);
    expect(f).toMatch(/dirty\s+4\.0 KiB/);
    expect(f).toMatch(/compaction\s+12\.0 MiB -> 3\.0 MiB/);
    expect(f).toMatch(/last error\s+commit: disk full/);
  });

  it('computes rates from successive reads and draws a sparkline of commits/s', async () => {
    // Every read sees more work done (on a loaded machine a tick may come late; the counters still
    // grow between any two reads, so every rate the panel computes is above zero).
    let s = { ...base };
    let reads = 0;
    const read = () => {
      reads++;
      s = { ...s, commits: (s.commits ?? 0) + reads * 2, events: (s.events ?? 0) + 100, bytesWritten: (s.bytesWritten ?? 0) + (16 << 20) };
      return s;
    };
    const { lastFrame, unmount } = render(<Panel read={read} intervalMs={50} />);
    for (let i = 0; i < 100 && reads < 8; i++) await tick(50);
    const f = lastFrame()!;
    unmount();
    expect(f).toMatch(/written\s+\d+(\.\d)? MiB \(\d+(\.\d)? MiB\/s\)/);
    expect(f).toMatch(/commits\s+\d+ \(\d+\.\d\/s\) [▁▂▃▄▅▆▇█]{3,}/);
    expect(f).not.toMatch(/commits\s+1 \(/);
  });

  it('sparkline scales to the largest value', () => {
    expect(sparkline([0, 1, 2, 4, 8])).toBe('▁▁▂▄█');
    expect(sparkline([0, 0])).toBe('▁▁');
    expect(sparkline([])).toBe('');
  });

  it('plain lines (off a terminal) carry the same figures', () => {
    const out = statusLines({ ...base, bytesWritten: 123 });
    expect(out).toContain('mount: /mnt/vault\n');
    expect(out).toContain('seq: 7\n');
    expect(out).toContain('bytes written: 123\n');
    expect(out).toContain('last error: none\n');
  });
});
