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

  it('a remote mount shows its connection, server, seq and lag, staged uploads and conflicts', () => {
    const remote: MountPanelStatus = {
      ...base, chain: 'tcp://127.0.0.1:5000/team/docs', mode: 'replicated (async)', connection: 'offline', server: '0123456789abcdef',
      seq: 41, lag: 3, stagedUploads: 5, stagedBytes: 3 << 20, conflicts: 2,
      lastConflict: "'doc.txt' was changed here and elsewhere: the other version keeps the name, this one is 'doc.conflict-beta-20261207T020000Z.txt'",
    };
    const { lastFrame, unmount } = render(<Panel read={() => remote} />);
    const f = lastFrame()!;
    unmount();
    expect(f).toMatch(/connection\s+offline/);
    expect(f).toMatch(/server\s+0123456789abcdef/);
    expect(f).toMatch(/seq\s+41 \(lag 3\)/);
    expect(f).toMatch(/staged\s+5 uploads, 3\.0 MiB/);
    expect(f).toMatch(/conflicts\s+2 \(last: 'doc\.txt' was changed/);
    expect(f).toMatch(/dirty\s+4\.0 KiB/);
    // Drained, nothing in conflict: the rows stay, with zeros.
    const idle = render(<Panel read={() => ({ ...remote, connection: 'online', lag: 0, stagedUploads: 1, stagedBytes: 700, conflicts: 0, lastConflict: undefined })} />);
    const g = idle.lastFrame()!;
    idle.unmount();
    expect(g).toMatch(/seq\s+41 \(lag 0\)/);
    expect(g).toMatch(/staged\s+1 upload, 700 B/);
    expect(g).toMatch(/conflicts\s+0\s/);
    expect(g).not.toContain('last:');
  });

  it('a local mount shows no remote rows', () => {
    const { lastFrame, unmount } = render(<Panel read={() => base} />);
    const f = lastFrame()!;
    unmount();
    expect(f).not.toMatch(/staged|conflicts|connection|lag/);
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
    expect(out).not.toMatch(/staged|conflicts|lag/);
  });

  it('plain lines of a remote mount carry lag, staged uploads and bytes, conflicts and the last one', () => {
    const out = statusLines({ ...base, connection: 'online', server: 'abcd', lag: 2, stagedUploads: 4, stagedBytes: 8192, conflicts: 1, lastConflict: "'a' kept as 'b'" });
    expect(out).toContain('connection: online\nserver: abcd\nseq: 7\nlag: 2\nstaged uploads: 4\nstaged bytes: 8192\nconflicts: 1\n');
    expect(out).toContain("last conflict: 'a' kept as 'b'\n");
    expect(out).toContain('dirty bytes: 4096\n');
  });
});
