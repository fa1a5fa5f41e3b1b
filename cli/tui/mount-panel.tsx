import { Box, Text, render } from 'ink';
import { useEffect, useRef, useState } from 'react';

/** What the mount daemon shows while it runs (TTY only; plain lines otherwise). */
export interface MountPanelStatus {
  mountpoint: string;
  transport: string;
  chain: string;
  mode: string;
  readOnly: boolean;
  startedAt: number;
  /** Requests served by the transport, all opcodes. */
  requests: number;
  commits?: number;
  dirtyBytes?: number;
  logBytes?: number;
  /** Live data (what df shows as used); the log also keeps deleted data until compaction. */
  liveBytes?: number;
  connection?: string;
  lastError?: string;
  state: 'mounted' | 'unmounting';
}

function bytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function Row({ label, value, color }: { label: string; value: string; color?: string }) {
  return (
    <Box>
      <Box width={14}><Text dimColor>{label}</Text></Box>
      <Text {...(color ? { color } : {})}>{value}</Text>
    </Box>
  );
}

function Panel({ read }: { read: () => MountPanelStatus }) {
  const [s, setS] = useState(read);
  const [rates, setRates] = useState({ commits: 0, requests: 0 });
  const prev = useRef({ t: Date.now(), commits: s.commits ?? 0, requests: s.requests });
  useEffect(() => {
    const timer = setInterval(() => {
      const next = read();
      const now = Date.now();
      const dt = Math.max(0.001, (now - prev.current.t) / 1000);
      setRates({
        commits: ((next.commits ?? 0) - prev.current.commits) / dt,
        requests: (next.requests - prev.current.requests) / dt,
      });
      prev.current = { t: now, commits: next.commits ?? 0, requests: next.requests };
      setS(next);
    }, 1000);
    return () => clearInterval(timer);
  }, [read]);
  const up = Math.floor((Date.now() - s.startedAt) / 1000);
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>atefs  <Text color={s.state === 'mounted' ? 'green' : 'yellow'}>{s.state}</Text>  {s.mountpoint}</Text>
      <Row label="chain" value={s.chain} />
      <Row label="mode" value={`${s.mode}${s.readOnly ? ', read-only' : ''} · ${s.transport}`} />
      {s.connection ? <Row label="connection" value={s.connection} /> : null}
      <Row label="log size" value={`${bytes(s.logBytes)}${s.liveBytes !== undefined ? ` (live data ${bytes(s.liveBytes)})` : ''}`} />
      <Row label="commits" value={`${s.commits ?? 0} (${rates.commits.toFixed(1)}/s)`} />
      <Row label="dirty" value={bytes(s.dirtyBytes)} />
      <Row label="requests" value={`${s.requests} (${Math.round(rates.requests)}/s)`} />
      <Row label="uptime" value={`${up}s`} />
      <Row label="last error" value={s.lastError ?? 'none'} {...(s.lastError ? { color: 'red' } : {})} />
      <Text dimColor>Ctrl-C unmounts (commits first)</Text>
    </Box>
  );
}

export function showMountPanel(read: () => MountPanelStatus): { stop(): void } {
  // No useInput: stdin stays cooked, so Ctrl-C reaches the daemon as SIGINT.
  const app = render(<Panel read={read} />, { exitOnCtrlC: false, patchConsole: false });
  return { stop: () => app.unmount() };
}
