import { Box, Text, render } from 'ink';
import { useEffect, useState } from 'react';
import { type ProgressState, progressDetail } from '../progress.js';

/** A progress bar: what the phase does, the bar, its percentage, then amounts, rate and ETA. */
export function ProgressBar({ p, width = 30 }: { p: ProgressState; width?: number }) {
  const full = Math.round((p.percent / 100) * width);
  return (
    <Box flexDirection="column">
      <Text>{p.label}</Text>
      <Box>
        <Text color="cyan">{'█'.repeat(full)}</Text>
        <Text dimColor>{'░'.repeat(width - full)}</Text>
        <Text> {String(p.percent).padStart(3)}%  </Text>
        <Text dimColor>{progressDetail(p)}</Text>
      </Box>
    </Box>
  );
}

/** Redraws the phase `read` returns (nothing while it returns undefined) every `intervalMs`. */
export function LoadingProgress({ read, title, intervalMs = 100 }: { read: () => ProgressState | undefined; title: string; intervalMs?: number }) {
  const [p, setP] = useState(read);
  useEffect(() => {
    const t = setInterval(() => setP(read()), intervalMs);
    return () => clearInterval(t);
  }, [read, intervalMs]);
  if (!p) return null;
  return (
    <Box flexDirection="column" paddingX={1}>
      <Text bold>{title}</Text>
      <ProgressBar p={p} />
    </Box>
  );
}

/** The mount's loading bar in a terminal until stop() (then the status panel takes over). */
export function showProgress(read: () => ProgressState | undefined, title: string): { stop(): void } {
  const app = render(<LoadingProgress read={read} title={title} />, { exitOnCtrlC: false, patchConsole: false });
  return { stop: () => { app.clear(); app.unmount(); } };
}
