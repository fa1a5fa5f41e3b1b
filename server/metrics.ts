// `atedb solo --metrics HOST:PORT`: GET /metrics in the Prometheus text exposition format, the
// same figures as the panel. prom-client renders them: counters and gauges are collected from
// server/stats.ts on each scrape (nothing extra per append); the latency histogram is the one
// figure observed as it happens (prom-client has no way to set bucket counts), with the bounds
// of stats.ts's own histogram.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LATENCY_BOUNDS_MS, type ServerStats } from './stats.js';

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

/** A registry of the server's figures. Create it before the first append (the histogram counts
 *  from then on; everything else is read from `stats` when scraped). */
export function metricsRegistry(stats: ServerStats): Registry {
  const registers = [new Registry()];
  const counter = (name: string, help: string, read: () => number) => new Counter({
    name, help, registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
  const gauge = (name: string, help: string, read: () => number) => new Gauge({
    name, help, registers,
    collect() {
      this.set(read());
    },
  });
  gauge('atedb_connections_open', 'Client connections open (handshaking included).', () => stats.live?.connectionsOpen() ?? 0);
  counter('atedb_connections_total', 'Client connections accepted since start.', () => stats.connectionsTotal);
  gauge('atedb_chains_open', 'Chains open on this server.', () => stats.live?.chainsOpen() ?? 0);
  counter('atedb_appends_total', 'Commits stored durably and confirmed.', () => stats.appends);
  counter('atedb_events_total', 'Events in the commits stored.', () => stats.events);
  counter('atedb_received_bytes_total', 'Bytes received on client connections (wire, encrypted).', () => stats.closedBytesIn + (stats.live?.openBytes().bytesIn ?? 0));
  counter('atedb_sent_bytes_total', 'Bytes sent on client connections (wire, encrypted).', () => stats.closedBytesOut + (stats.live?.openBytes().bytesOut ?? 0));
  new Counter({
    name: 'atedb_rejected_total', help: 'Appends rejected, by reason.', labelNames: ['reason'] as const, registers,
    collect() {
      this.reset();
      for (const [reason, n] of stats.rejected) this.inc({ reason }, n);
    },
  });
  const fsync = new Histogram({
    name: 'atedb_fsync_seconds', help: 'Durable append latency: log append to fdatasync done.', registers,
    buckets: LATENCY_BOUNDS_MS.map((ms) => ms / 1000),
  });
  stats.onStored = (ms) => fsync.observe(ms / 1000);
  return registers[0]!;
}

export interface MetricsServer {
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics on host:port until closed. */
export async function serveMetrics(host: string, port: number, registry: Registry): Promise<MetricsServer> {
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
    registry.metrics().then((body) => {
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    }, (e: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
    });
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
