import { Box, Text, render } from 'ink';
import { useEffect, useRef, useState } from 'react';
import type { ProgressState } from '../progress.js';
import { ProgressBar } from './progress.js';

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
  /** Remote mounts: 'online', 'offline', 'refused', ... and the server's key fingerprint (16 hex). */
  connection?: string;
  server?: string;
  /** Remote mounts: commits the server has (its newest signed head) that this mount has not applied. */
  lag?: number;
  /** Remote mounts: commits staged locally and not yet confirmed by the server, and their bytes. */
  stagedUploads?: number;
  stagedBytes?: number;
  /** Remote mounts: conflicts resolved since the mount (each kept a copy beside the name), the last one. */
  conflicts?: number;
  lastConflict?: string;
  lastError?: string;
  /** Set while commits fail: how (retrying / read-only) and what is not committed. */
  commitHealth?: string;
  /** 'loading': the daemon is still opening the chain (see progress). */
  state: 'loading' | 'mounted' | 'unmounting';
  /** A loading or compaction phase under way (once it ran longer than ATEFS_PROGRESS_AFTER_MS). */
  progress?: ProgressState;
  /** Bytes served by reads / taken by writes since the mount. */
  bytesRead?: number;
  bytesWritten?: number;
  /** Newest commit seq of the chain and events this mount committed. */
  seq?: number;
  events?: number;
  /** The last compaction (or 'running'). */
  compaction?: string;
  pid?: number;
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function Row({ label, value, color }: { label: string; value: string; color?: string }) {
  return (
    <Box>
      <Box width={14}><Text dimColor>{label}</Text></Box>
      <Text {...(color ? { color } : {})}>{value}</Text>
    </Box>
  );
}

const SPARK = '▁▂▃▄▅▆▇█';

/** A sparkline of the last values (scaled to their maximum). */
export function sparkline(values: readonly number[]): string {
  const max = Math.max(0, ...values);
  return values.map((v) => (max <= 0 ? SPARK[0] : SPARK[Math.min(7, Math.floor((v / max) * 7.999))])).join('');
}

interface Rates { commits: number; events: number; requests: number; written: number; read: number }
const HISTORY = 30;

export function Panel({ read, footer, intervalMs = 1000 }: { read: () => MountPanelStatus; footer?: string; intervalMs?: number }) {
  const [s, setS] = useState(read);
  const [rates, setRates] = useState<Rates>({ commits: 0, events: 0, requests: 0, written: 0, read: 0 });
  const [history, setHistory] = useState<number[]>([]);
  const prev = useRef({ t: Date.now(), s });
  useEffect(() => {
    const timer = setInterval(() => {
      const next = read();
      const now = Date.now();
      const p = prev.current;
      const dt = Math.max(0.001, (now - p.t) / 1000);
      const rate = (a: number | undefined, b: number | undefined) => Math.max(0, ((a ?? 0) - (b ?? 0)) / dt);
      const r: Rates = {
        commits: rate(next.commits, p.s.commits),
        events: rate(next.events, p.s.events),
        requests: rate(next.requests, p.s.requests),
        written: rate(next.bytesWritten, p.s.bytesWritten),
        read: rate(next.bytesRead, p.s.bytesRead),
      };
      prev.current = { t: now, s: next };
      setRates(r);
      setHistory((h) => [...h, r.commits].slice(-HISTORY));
      setS(next);
    }, intervalMs);
    return () => clearInterval(timer);
  }, [read, intervalMs]);
  const up = Math.floor((Date.now() - s.startedAt) / 1000);
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>atefs  <Text color={s.state === 'mounted' ? 'green' : 'yellow'}>{s.state}</Text>  {s.mountpoint}</Text>
      {s.progress ? <ProgressBar p={s.progress} /> : null}
      <Row label="chain" value={s.chain} />
      <Row label="mode" value={`${s.mode}${s.readOnly ? ', read-only' : ''} · ${s.transport}`} />
      {s.connection ? <Row label="connection" value={s.connection} {...(s.connection === 'online' ? {} : { color: 'yellow' })} /> : null}
      {s.server ? <Row label="server" value={s.server} /> : null}
      {s.seq !== undefined ? <Row label="seq" value={`${s.seq}${s.lag !== undefined ? ` (lag ${s.lag})` : ''}`} /> : null}
      {s.stagedUploads !== undefined ? <Row label="staged" value={`${s.stagedUploads} upload${s.stagedUploads === 1 ? '' : 's'}, ${bytes(s.stagedBytes ?? 0)}`} /> : null}
      {s.conflicts !== undefined ? <Row label="conflicts" value={`${s.conflicts}${s.lastConflict ? ` (last: ${s.lastConflict})` : ''}`} {...(s.conflicts > 0 ? { color: 'yellow' } : {})} /> : null}
      <Row label="commits" value={`${s.commits ?? 0} (${rates.commits.toFixed(1)}/s) ${sparkline(history)}`} />
      {s.events !== undefined ? <Row label="events" value={`${s.events} (${Math.round(rates.events)}/s)`} /> : null}
      {s.bytesWritten !== undefined ? <Row label="written" value={`${bytes(s.bytesWritten)} (${bytes(Math.round(rates.written))}/s)`} /> : null}
      {s.bytesRead !== undefined ? <Row label="read" value={`${bytes(s.bytesRead)} (${bytes(Math.round(rates.read))}/s)`} /> : null}
      <Row label="commit state" value={s.commitHealth ?? 'ok'} {...(s.commitHealth ? { color: 'red' } : {})} />
      <Row label="dirty" value={bytes(s.dirtyBytes)} />
      <Row label="log size" value={`${bytes(s.logBytes)}${s.liveBytes !== undefined ? ` (live data ${bytes(s.liveBytes)})` : ''}`} />
      {s.compaction ? <Row label="compaction" value={s.compaction} /> : null}
      <Row label="requests" value={`${s.requests} (${Math.round(rates.requests)}/s)`} />
      <Row label="uptime" value={`${up}s`} />
      <Row label="last error" value={s.lastError ?? 'none'} {...(s.lastError ? { color: 'red' } : {})} />
      <Text dimColor>{footer ?? 'Ctrl-C unmounts (commits first)'}</Text>
    </Box>
  );
}

export function showMountPanel(read: () => MountPanelStatus, o: { footer?: string } = {}): { stop(): void } {
  // No useInput: stdin stays cooked, so Ctrl-C reaches the daemon as SIGINT.
  const app = render(<Panel read={read} {...(o.footer ? { footer: o.footer } : {})} />, { exitOnCtrlC: false, patchConsole: false });
  return { stop: () => app.unmount() };
}
