import { createHash } from 'node:crypto';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { registryDir } from './registry.js';

/**
 * The mount daemon's control socket: `atefs status` asks a running mount what it is doing. A Unix
 * socket beside the mount records (mode 0600 in a 0700 directory: only the mounting user), one JSON
 * request line per connection — {"op":"status"} answers one JSON line, {"op":"watch","ms":N} a line
 * every N ms until the client goes.
 */

export function controlSocketPath(mountpoint: string): string {
  // Beside the mounts/ records, short enough for sun_path (108 bytes) under any runtime dir.
  return join(dirname(registryDir()), `${createHash('sha256').update(mountpoint).digest('hex').slice(0, 24)}.sock`);
}

export interface ControlServer {
  path: string;
  close(): Promise<void>;
}

const MAX_REQUEST = 4096;

export async function serveControl(path: string, status: () => unknown): Promise<ControlServer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await rm(path, { force: true }); // a dead daemon's socket: the registry already named it stale
  const clients = new Set<Socket>();
  const server: Server = createServer((sock) => {
    clients.add(sock);
    let buf = '';
    let timer: NodeJS.Timeout | null = null;
    const send = (): boolean => {
      try {
        return sock.write(`${JSON.stringify(status())}\n`);
      } catch (e) {
        return sock.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
      }
    };
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      if (timer) return;
      buf += d;
      if (buf.length > MAX_REQUEST) return void sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let req: { op?: string; ms?: number };
      try {
        req = JSON.parse(buf.slice(0, nl)) as typeof req;
      } catch {
        sock.end(`${JSON.stringify({ error: 'bad request: one JSON line, {"op":"status"} or {"op":"watch","ms":1000}' })}\n`);
        return;
      }
      if (req.op === 'watch') {
        send();
        // A reader that stops reading is dropped, not buffered for.
        timer = setInterval(() => { if (!send()) sock.destroy(); }, Math.max(100, Math.min(60_000, Number(req.ms) || 1000)));
      } else if (req.op === 'status') {
        send();
        sock.end();
      } else sock.end(`${JSON.stringify({ error: `unknown op ${String(req.op)}` })}\n`);
    });
    const done = () => { if (timer) clearInterval(timer); clients.delete(sock); };
    sock.on('close', done);
    sock.on('error', done);
  });
  await new Promise<void>((ok, no) => {
    server.once('error', no);
    server.listen(path, () => { server.off('error', no); ok(); });
  });
  await chmod(path, 0o600);
  server.unref();
  return {
    path,
    close: async () => {
      for (const c of clients) c.destroy();
      await new Promise<void>((ok) => server.close(() => ok()));
      await rm(path, { force: true });
    },
  };
}

/** One status answer from a daemon's socket (rejects after `timeoutMs`). */
export function queryControl<T>(path: string, timeoutMs = 3000): Promise<T> {
  return new Promise((ok, no) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); no(new Error(`no answer from ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('{"op":"status"}\n'));
    sock.on('data', (d: string) => { buf += d; });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        ok(JSON.parse(buf) as T);
      } catch {
        no(new Error(`bad answer from ${path}`));
      }
    });
    sock.on('error', (e) => { clearTimeout(timer); no(e); });
  });
}

/** Status lines every `ms` until the signal aborts; ends when the daemon goes. */
export async function* watchControl<T>(path: string, ms: number, signal?: AbortSignal): AsyncGenerator<T> {
  const sock = createConnection(path);
  signal?.addEventListener('abort', () => sock.destroy());
  sock.setEncoding('utf8');
  sock.on('connect', () => sock.write(`${JSON.stringify({ op: 'watch', ms })}\n`));
  let buf = '';
  try {
    for await (const chunk of sock as AsyncIterable<string>) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        yield JSON.parse(buf.slice(0, nl)) as T;
        buf = buf.slice(nl + 1);
      }
    }
  } catch (e) {
    if (!signal?.aborted) throw e;
  } finally {
    sock.destroy();
  }
}
