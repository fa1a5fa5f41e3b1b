import { Box, Text, render } from 'ink';
import { useEffect, useRef, useState } from 'react';
import { type StatsSnapshot, bucketsSince, quantileMs } from '../../server/stats.js';
import { Row, bytes, sparkline } from './mount-panel.js';

/** What `atedb solo` shows in a terminal (TTY only; --json stats lines otherwise). */
export interface AtedbPanelInfo {
  listening: string;
  fingerprint: string;
  dataDir: string;
  policy: string;
  /** Where /metrics is served, if it is. */
  metrics?: string;
}


function ms(v: number | null): string {
  return v === null ? '-' : `≤${v} ms`;
}


interface Rates { appends: number; events: number; bytesIn: number; bytesOut: number; p50: number | null; p99: number | null }
const HISTORY = 30;

export function AtedbPanel({ info, read, intervalMs = 1000, footer }: { info: AtedbPanelInfo; read: () => StatsSnapshot; intervalMs?: number; footer?: string }) {
  const [s, setS] = useState(read);
  const [rates, setRates] = useState<Rates>({ appends: 0, events: 0, bytesIn: 0, bytesOut: 0, p50: null, p99: null });
  const [history, setHistory] = useState<number[]>([]);
  const prev = useRef(s);
  useEffect(() => {
    const timer = setInterval(() => {
      const next = read();
      const p = prev.current;
      const dt = Math.max(0.001, (next.at - p.at) / 1000);
      const rate = (a: number, b: number) => Math.max(0, (a - b) / dt);
      // Latency quantiles of the last interval (the lifetime ones hide what happens now).
      const recent = bucketsSince(p, next);
      const r: Rates = {
        appends: rate(next.appends, p.appends), events: rate(next.events, p.events),
        bytesIn: rate(next.bytesIn, p.bytesIn), bytesOut: rate(next.bytesOut, p.bytesOut),
        p50: quantileMs(recent, 0.5), p99: quantileMs(recent, 0.99),
      };
      prev.current = next;
      setRates(r);
      setHistory((h) => [...h, r.appends].slice(-HISTORY));
      setS(next);
    }, intervalMs);
    return () => clearInterval(timer);
  }, [read, intervalMs]);
  const up = Math.floor((s.at - s.startedAt) / 1000);
  const rejected = Object.entries(s.rejected);
  const rejectedTotal = rejected.reduce((a, [, n]) => a + n, 0);
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>atedb solo  <Text color="green">listening</Text>  {info.listening}</Text>
      <Row label="fingerprint" value={info.fingerprint} />
      <Row label="data" value={`${info.dataDir} · policy ${info.policy}`} />
      {info.metrics ? <Row label="metrics" value={`http://${info.metrics}/metrics`} /> : null}
      <Row label="connections" value={`${s.connections.open} open, ${s.connections.total} since start`} />
      <Row label="chains open" value={String(s.chainsOpen)} />
      <Row label="appends" value={`${s.appends} (${rates.appends.toFixed(1)}/s) ${sparkline(history)}`} />
      <Row label="events" value={`${s.events} (${Math.round(rates.events)}/s)`} />
      <Row label="bytes in" value={`${bytes(s.bytesIn)} (${bytes(Math.round(rates.bytesIn))}/s)`} />
      <Row label="bytes out" value={`${bytes(s.bytesOut)} (${bytes(Math.round(rates.bytesOut))}/s)`} />
      <Row label="fsync" value={`p50 ${ms(rates.p50 ?? s.fsync.p50Ms)} · p99 ${ms(rates.p99 ?? s.fsync.p99Ms)}${rates.p99 === null ? ' (since start)' : ''}`} />
      <Row
        label="rejected"
        value={rejectedTotal === 0 ? 'none' : `${rejectedTotal}: ${rejected.map(([r, n]) => `${r} ${n}`).join(', ')}`}
        {...(rejectedTotal ? { color: 'yellow' } : {})}
      />
      <Row label="uptime" value={`${up}s`} />
      <Text dimColor>{footer ?? 'Ctrl-C stops the server (in-flight appends finish first)'}</Text>
    </Box>
  );
}

export function showAtedbPanel(info: AtedbPanelInfo, read: () => StatsSnapshot): { stop(): void } {
  // No useInput: stdin stays cooked, so Ctrl-C reaches the server as SIGINT.
  const app = render(<AtedbPanel info={info} read={read} />, { exitOnCtrlC: false, patchConsole: false });
  return { stop: () => app.unmount() };
}
