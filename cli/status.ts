// `atefs status`: every mount of this user (from the mount records), or one mount's live figures
// through its control socket — an Ink panel in a terminal, plain lines or JSON otherwise.
import { resolve } from 'node:path';
import { queryControl, watchControl } from '../fs/daemon/control-socket.js';
import { listMountRecords, processAlive, readMountRecordOf, type MountRecord } from '../fs/daemon/registry.js';
import { UserError } from './errors.js';
import { progressLine } from './progress.js';
import type { MountPanelStatus } from './tui/mount-panel.js';

export interface StatusArgs { dir?: string; json: boolean; watch: boolean; interval: number }

interface MountLine { dir: string; chain: string; transport: string; mode: string; state: string; pid: number; status?: MountPanelStatus; error?: string }

async function lineOf(rec: MountRecord): Promise<MountLine> {
  const base = { dir: rec.mountpoint, transport: rec.transport, pid: rec.pid, chain: rec.chain ?? '-', mode: '-' };
  if (!processAlive(rec.pid)) return { ...base, state: 'stale (daemon gone)' };
  if (!rec.control) return { ...base, state: 'running (no control socket)' };
  try {
    const s = await queryControl<MountPanelStatus>(rec.control);
    return { ...base, chain: s.chain, mode: s.mode + (s.readOnly ? ', read-only' : ''), state: s.lastError ? `${s.state}, error` : s.state, status: s };
  } catch (e) {
    return { ...base, state: 'not answering', error: (e as Error).message };
  }
}

function table(lines: MountLine[]): string {
  if (lines.length === 0) return 'no atefs mounts\n';
  const rows = [['DIR', 'CHAIN', 'TRANSPORT', 'MODE', 'STATE'], ...lines.map((l) => [l.dir, l.chain, l.transport, l.mode, l.state])];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')).join('\n') + '\n';
}

/** The plain-line form of one mount's status (off a TTY, CI=true). */
export function statusLines(s: MountPanelStatus): string {
  const kv: Array<[string, unknown]> = [
    ['mount', s.mountpoint], ['state', s.state], ['progress', s.progress ? progressLine(s.progress) : undefined], ['chain', s.chain], ['mode', `${s.mode}${s.readOnly ? ', read-only' : ''}`],
    ['transport', s.transport], ['connection', s.connection], ['server', s.server], ['seq', s.seq], ['lag', s.lag],
    ['staged uploads', s.stagedUploads], ['staged bytes', s.stagedUploads !== undefined ? s.stagedBytes ?? 0 : undefined],
    ['conflicts', s.conflicts], ['last conflict', s.lastConflict], ['commits', s.commits], ['events', s.events],
    ['bytes written', s.bytesWritten], ['bytes read', s.bytesRead], ['dirty bytes', s.dirtyBytes], ['log bytes', s.logBytes], ['live bytes', s.liveBytes],
    ['compaction', s.compaction], ['requests', s.requests], ['commit state', s.commitHealth ?? 'ok'], ['last error', s.lastError ?? 'none'],
  ];
  return kv.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';
}

export async function runStatus(a: StatusArgs): Promise<void> {
  if (!a.dir) {
    const show = async () => {
      const lines = await Promise.all((await listMountRecords()).map(lineOf));
      if (a.json) process.stdout.write(`${JSON.stringify({ mounts: lines })}\n`);
      else process.stdout.write(table(lines));
    };
    await show();
    while (a.watch) {
      await new Promise((ok) => setTimeout(ok, a.interval));
      await show();
    }
    return;
  }
  const abs = resolve(a.dir);
  const rec = await readMountRecordOf(abs);
  if (!rec || !processAlive(rec.pid)) throw new UserError(`${a.dir} is not an atefs mount of this user (see 'atefs status')`);
  if (!rec.control) throw new UserError(`the daemon of ${a.dir} (pid ${rec.pid}) has no control socket`);
  const control = rec.control;
  const tty = process.stdout.isTTY && process.env.CI !== 'true' && !a.json;
  if (tty) {
    let last = await queryControl<MountPanelStatus>(control);
    const stop = new AbortController();
    const { showMountPanel } = await import('./tui/mount-panel.js');
    const panel = showMountPanel(() => last, { footer: 'Ctrl-C leaves this view (the mount keeps running)' });
    process.once('SIGINT', () => stop.abort());
    try {
      for await (const s of watchControl<MountPanelStatus>(control, a.interval, stop.signal)) last = s;
    } finally {
      panel.stop();
    }
    return;
  }
  if (!a.watch) {
    const s = await queryControl<MountPanelStatus>(control);
    process.stdout.write(a.json ? `${JSON.stringify(s)}\n` : statusLines(s));
    return;
  }
  for await (const s of watchControl<MountPanelStatus>(control, a.interval)) {
    process.stdout.write(a.json ? `${JSON.stringify(s)}\n` : `${statusLines(s)}\n`);
  }
}
