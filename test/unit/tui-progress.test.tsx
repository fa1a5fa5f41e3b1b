// Loading / compaction progress: the tracker (threshold, rate, ETA), the plain lines, and the Ink
// bar as Ink renders it (ink-testing-library: the real renderer, a fake terminal).
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import { ProgressLines, ProgressTracker, progressAfterMs, progressLine, stateOf } from '../../cli/progress.js';
import { LoadingProgress, ProgressBar } from '../../cli/tui/progress.js';
import { Panel, type MountPanelStatus } from '../../cli/tui/mount-panel.js';
import { statusLines } from '../../cli/status.js';
import type { ViewProgress } from '../../src/view/index.js';

const MiB = 1 << 20;
const rebuild = (done: number, total = 40 * MiB): ViewProgress => ({ phase: 'rebuild', done, total, unit: 'bytes' });
const tick = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

describe('progress tracker', () => {
  it('stays quiet until a phase has run ATEFS_PROGRESS_AFTER_MS, then shows percent, rate and ETA', () => {
    let now = 1000;
    const t = new ProgressTracker({ afterMs: 300, now: () => now });
    expect(t.report(rebuild(0))).toBeNull();
    now += 200;
    expect(t.report(rebuild(4 * MiB))).toBeNull();
    expect(t.current()).toBeUndefined();
    now += 800; // 1 s into the phase, 10 MiB done of 40
    const s = t.report(rebuild(10 * MiB))!;
    expect(s).toMatchObject({ phase: 'rebuild', label: 'rebuilding the index', percent: 25, finished: false, elapsedMs: 1000 });
    expect(s.rate).toBeCloseTo(10 * MiB);
    expect(s.etaMs).toBeCloseTo(3000);
    expect(progressLine(s)).toBe('rebuilding the index: 25% (10.0 MiB of 40.0 MiB, 10.0 MiB/s, ETA 3s)');
    expect(t.current()).toEqual(s);
    // The end of the phase: 100 %, and nothing under way any more.
    now += 3000;
    const end = t.report(rebuild(40 * MiB))!;
    expect(end).toMatchObject({ percent: 100, finished: true, etaMs: 0 });
    expect(progressLine(end)).toBe('rebuilding the index: 100% (40.0 MiB in 4.0 s, 10.0 MiB/s)');
    expect(t.current()).toBeUndefined();
  });

  it('a fast phase is never shown; a new phase (or one that starts over) restarts the clock', () => {
    let now = 0;
    const t = new ProgressTracker({ afterMs: 300, now: () => now });
    t.report({ phase: 'verify', done: 0, total: 100, unit: 'bytes' });
    now += 100;
    expect(t.report({ phase: 'verify', done: 100, total: 100, unit: 'bytes' })).toBeNull();
    now += 400;
    expect(t.report({ phase: 'compact-check', done: 0, total: 1000, unit: 'bytes' })).toBeNull();
    now += 400;
    expect(t.report({ phase: 'compact-check', done: 500, total: 1000, unit: 'bytes' })?.percent).toBe(50);
    // A second round of the check starts from 0 again.
    expect(t.report({ phase: 'compact-check', done: 10, total: 1000, unit: 'bytes' })).toBeNull();
  });

  it('never shows 100 % before the end, even when an estimate runs short', () => {
    expect(stateOf(rebuild(999, 1000), 10).percent).toBe(99);
    expect(stateOf(rebuild(1200, 1000), 10)).toMatchObject({ percent: 100, total: 1200, finished: true });
    expect(stateOf({ phase: 'compact-index', done: 2048, total: 4096, unit: 'records' }, 1000).label).toBe('compaction: updating the index');
  });

  it('ATEFS_PROGRESS_AFTER_MS: a whole number of ms, else the default', () => {
    expect(progressAfterMs({})).toBe(300);
    expect(progressAfterMs({ ATEFS_PROGRESS_AFTER_MS: '0' })).toBe(0);
    expect(progressAfterMs({ ATEFS_PROGRESS_AFTER_MS: '1500' })).toBe(1500);
    expect(progressAfterMs({ ATEFS_PROGRESS_AFTER_MS: 'soon' })).toBe(300);
  });

  it('plain lines: a shown phase starts at once, then one line a second at most, always its 100 % line', () => {
    let now = 0;
    const out: string[] = [];
    const t = new ProgressTracker({ afterMs: 0, now: () => now });
    const lines = new ProgressLines(t, (l) => out.push(l), { now: () => now });
    lines.report(rebuild(0));
    for (let i = 1; i < 40; i++) {
      now += 100;
      lines.report(rebuild(i * MiB));
    }
    lines.report(rebuild(40 * MiB));
    lines.report({ phase: 'compact-copy', done: 0, total: 1 << 20, unit: 'bytes' });
    expect(out[0]).toBe('rebuilding the index: 0% (0 B of 40.0 MiB, 0 B/s, ETA -)');
    expect(out.filter((l) => l.startsWith('rebuilding')).length).toBe(1 + 3 + 1); // start, each second, end
    expect(out.at(-2)).toMatch(/^rebuilding the index: 100% \(40\.0 MiB in 3\.9 s/);
    expect(out.at(-1)).toMatch(/^compaction: writing the new log: 0%/);
    const pct = out.filter((l) => l.startsWith('rebuilding')).map((l) => Number(/: (\d+)%/.exec(l)![1]));
    expect(pct).toEqual([...pct].sort((a, b) => a - b));
  });
});

describe('progress bar (Ink)', () => {
  it('draws the phase, a bar filled to its percentage, amounts, rate and ETA', () => {
    const s = stateOf(rebuild(10 * MiB), 1000);
    const { lastFrame, unmount } = render(<ProgressBar p={s} width={20} />);
    const f = lastFrame()!;
    unmount();
    expect(f).toContain('rebuilding the index');
    expect(f).toContain(`${'█'.repeat(5)}${'░'.repeat(15)}  25%`);
    expect(f).toContain('10.0 MiB of 40.0 MiB, 10.0 MiB/s, ETA 3s');
  });

  it('the loading view shows nothing until a phase is shown, then follows it', async () => {
    let cur: ReturnType<typeof stateOf> | undefined;
    const { lastFrame, unmount } = render(<LoadingProgress read={() => cur} title="atefs: opening /data/chain" intervalMs={20} />);
    expect(lastFrame()).toBe('');
    cur = stateOf(rebuild(20 * MiB), 2000);
    await tick(80);
    expect(lastFrame()).toContain('atefs: opening /data/chain');
    expect(lastFrame()).toMatch(/rebuilding the index\n\s*█+░+\s+50%/);
    cur = stateOf(rebuild(40 * MiB), 4000);
    await tick(80);
    const f = lastFrame()!;
    unmount();
    expect(f).toMatch(/█{30} 100%/);
  });

  it('the status panel and the plain status lines show a phase under way', () => {
    const base: MountPanelStatus = {
      mountpoint: '/mnt/vault', transport: 'kernel', chain: '/data/atefs/local', mode: 'local', readOnly: false,
      startedAt: Date.now(), requests: 0, state: 'mounted',
    };
    const progress = stateOf({ phase: 'compact-check', done: 3 * MiB, total: 12 * MiB, unit: 'bytes' }, 1500);
    const { lastFrame, unmount } = render(<Panel read={() => ({ ...base, progress })} />);
    const f = lastFrame()!;
    unmount();
    expect(f).toContain('compaction: checking the new log');
    expect(f).toMatch(/█+░+\s+25%/);
    expect(statusLines({ ...base, state: 'loading', progress })).toContain('state: loading\nprogress: compaction: checking the new log: 25% (3.0 MiB of 12.0 MiB, 2.0 MiB/s, ETA 5s)\n');
    expect(statusLines(base)).not.toContain('progress:');
  });
});
