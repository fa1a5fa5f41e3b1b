// `atedb solo --metrics HOST:PORT`: GET /metrics in the Prometheus text exposition format
// (version 0.0.4), the same figures as the panel, read from server/stats.ts on each scrape.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LATENCY_BOUNDS_MS, type StatsSnapshot } from './stats.js';

export class MetricsAddressError extends Error {
  override name = 'MetricsAddressError';
}

/** Parses HOST:PORT ([v6]:PORT too); port 0 = any free port. */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = s.match(/^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new MetricsAddressError(`'${s}' is not HOST:PORT`);
  return { host: (m[1] ?? m[2])!, port };
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** The text exposition of one snapshot. */
export function metricsText(s: StatsSnapshot): string {
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  };
  metric('atedb_connections_open', 'gauge', 'Client connections open (handshaking included).', s.connections.open);
  metric('atedb_connections_total', 'counter', 'Client connections accepted since start.', s.connections.total);
  metric('atedb_chains_open', 'gauge', 'Chains open on this server.', s.chainsOpen);
  metric('atedb_appends_total', 'counter', 'Commits stored durably and confirmed.', s.appends);
  metric('atedb_events_total', 'counter', 'Events in the commits stored.', s.events);
  metric('atedb_received_bytes_total', 'counter', 'Bytes received on client connections (wire, encrypted).', s.bytesIn);
  metric('atedb_sent_bytes_total', 'counter', 'Bytes sent on client connections (wire, encrypted).', s.bytesOut);
  out.push('# HELP atedb_rejected_total Appends rejected, by reason.', '# TYPE atedb_rejected_total counter');
  for (const [reason, n] of Object.entries(s.rejected)) out.push(`atedb_rejected_total{reason="${escapeLabel(reason)}"} ${n}`);
  out.push('# HELP atedb_fsync_seconds Durable append latency: log append to fdatasync done.', '# TYPE atedb_fsync_seconds histogram');
  let cum = 0;
  LATENCY_BOUNDS_MS.forEach((ms, i) => {
    cum += s.fsync.buckets[i] ?? 0;
    out.push(`atedb_fsync_seconds_bucket{le="${ms / 1000}"} ${cum}`);
  });
  out.push(`atedb_fsync_seconds_bucket{le="+Inf"} ${s.fsync.count}`);
  out.push(`atedb_fsync_seconds_sum ${s.fsync.sumMs / 1000}`, `atedb_fsync_seconds_count ${s.fsync.count}`);
  return `${out.join('\n')}\n`;
}

export interface MetricsServer {
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics on host:port until closed. */
export async function serveMetrics(host: string, port: number, snapshot: () => StatsSnapshot): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const body = metricsText(snapshot());
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    address: a.address, port: a.port,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
