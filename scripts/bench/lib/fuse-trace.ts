/**
 * Counts FUSE requests per opcode as the kernel sends them, for any FUSE filesystem (gocryptfs,
 * fuse-native, our kernel transport alike), using the fuse_request_send / fuse_request_end
 * tracepoints in a private tracefs instance filtered on one connection. Matching send/end by
 * request id also gives the time each request spent in flight (queued + served + replied).
 *
 * The trace is read after the workload, not streamed during it, so the only cost inside the
 * measurement is the tracepoint itself (well under a microsecond per event).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export interface OpStat { count: number; inFlightUs: number; matched: number }
export interface TraceResult {
  ops: Map<string, OpStat>;
  total: number;
  /** Mean in-flight time per replied request, in µs. */
  meanUs: number;
  lost: boolean;
}

const ROOT = '/sys/kernel/tracing';

export class FuseTrace {
  private constructor(private readonly dir: string) {}

  /** Returns a tracer, or a string saying why request counting is unavailable. */
  static open(bufferKbPerCpu = 65536): FuseTrace | string {
    try {
      if (!existsSync(`${ROOT}/events`)) spawnSync('mount', ['-t', 'tracefs', 'nodev', ROOT]);
      if (!existsSync(`${ROOT}/events/fuse/fuse_request_send`)) return 'kernel has no fuse_request_* tracepoints (or tracefs is not mountable)';
      const dir = `${ROOT}/instances/atefs-bench-${process.pid}`;
      if (!existsSync(dir)) mkdirSync(dir);
      const t = new FuseTrace(dir);
      writeFileSync(`${dir}/buffer_size_kb`, String(bufferKbPerCpu));
      try { writeFileSync(`${dir}/trace_clock`, 'mono'); } catch { /* keep the default clock */ }
      t.enable(false);
      return t;
    } catch (e) {
      return `tracefs unavailable: ${(e as Error).message}`;
    }
  }

  private enable(on: boolean): void {
    for (const ev of ['fuse_request_send', 'fuse_request_end']) writeFileSync(`${this.dir}/events/fuse/${ev}/enable`, on ? '1' : '0');
  }

  start(conn: number): void {
    this.enable(false);
    for (const ev of ['fuse_request_send', 'fuse_request_end']) writeFileSync(`${this.dir}/events/fuse/${ev}/filter`, `connection == ${conn}`);
    writeFileSync(`${this.dir}/trace`, '');
    this.enable(true);
  }

  stop(): TraceResult {
    this.enable(false);
    const text = readFileSync(`${this.dir}/trace`, 'utf8');
    writeFileSync(`${this.dir}/trace`, '');
    return parseTrace(text);
  }

  close(): void {
    try { this.enable(false); } catch { /* gone */ }
    try { rmdirSync(this.dir); } catch { /* busy or gone */ }
  }
}

const LINE = /\s(\d+)\.(\d+): fuse_request_(send|end): connection \d+ req (\d+)(?: opcode \d+ \((\w+)\))?/;

export function parseTrace(text: string): TraceResult {
  const ops = new Map<string, OpStat>();
  const pending = new Map<string, { op: OpStat; t: number }>();
  let total = 0;
  let lost = false;
  let inFlight = 0;
  let matched = 0;
  const head = /entries-in-buffer\/entries-written: (\d+)\/(\d+)/.exec(text.slice(0, 2000));
  if (head && head[1] !== head[2]) lost = true;
  for (const line of text.split('\n')) {
    if (line.charCodeAt(0) === 35 /* # */ || line.length === 0) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const t = Number(m[1]) * 1e6 + Number(m[2]!.padEnd(6, '0').slice(0, 6));
    if (m[3] === 'send') {
      const name = (m[5] ?? 'UNKNOWN').replace(/^FUSE_/, '');
      let s = ops.get(name);
      if (!s) ops.set(name, (s = { count: 0, inFlightUs: 0, matched: 0 }));
      s.count++;
      total++;
      pending.set(m[4]!, { op: s, t });
    } else {
      const p = pending.get(m[4]!);
      if (!p) continue;
      pending.delete(m[4]!);
      const us = t - p.t;
      p.op.inFlightUs += us;
      p.op.matched++;
      inFlight += us;
      matched++;
    }
  }
  return { ops, total, meanUs: matched ? inFlight / matched : 0, lost };
}
