// A replication client's requests on its current connection that are not commits: lease requests
// (answered in arrival order with everything else the server sends), pings, and the keepalive
// that closes a connection whose server stopped answering. All of them belong to one connection:
// a new one starts afresh, and what was waiting on the old one fails with Disconnected.
import { Disconnected } from './errors.js';
import type { ClientSession } from './handshake.js';
import type { Message } from './messages.js';

export type LeaseReply = Extract<Message, { t: 'leased' }>;
export type LeaseOp = 'acquire' | 'renew' | 'release' | 'get';

interface LeaseWaiter {
  session: ClientSession;
  resolve: (m: LeaseReply) => void;
  reject: (e: Error) => void;
}

export class SessionRequests {
  private readonly leases = new Map<number, LeaseWaiter>();
  private keepalive: NodeJS.Timeout | null = null;
  private pingOutstanding = false;

  /** `nextId` hands out request ids shared with the client's other requests (appends, subscriptions). */
  constructor(private readonly nextId: () => number) {}

  /**
   * Pings `s` every `intervalMs`; a ping still unanswered at the next tick closes the connection,
   * so a half-open one (a frozen server, a dropped route) holds nothing for longer than two intervals.
   */
  startKeepalive(s: ClientSession, intervalMs: number, current: () => boolean): void {
    this.pingOutstanding = false;
    this.stopKeepalive();
    this.keepalive = setInterval(() => {
      if (!current()) return;
      if (this.pingOutstanding) {
        s.conn.close(new Disconnected('the server did not answer a keepalive ping'));
        return;
      }
      this.pingOutstanding = true;
      s.conn.send({ t: 'ping', id: 0, time: Date.now() });
    }, intervalMs);
    this.keepalive.unref?.();
  }

  stopKeepalive(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
  }

  /** A pong arrived (a keepalive's or a ping()'s): the server is alive. */
  onPong(): void {
    this.pingOutstanding = false;
  }

  /** Round trip on `s`, in ms. */
  async ping(s: ClientSession): Promise<number> {
    const id = this.nextId();
    const t0 = Date.now();
    await new Promise<void>((resolve, reject) => {
      const onClose = () => { s.conn.off('message', on); reject(new Disconnected('connection closed')); };
      const on = (m: Message) => {
        if (m.t === 'pong' && m.id === id) {
          s.conn.off('message', on);
          s.conn.off('close', onClose);
          resolve();
        }
      };
      s.conn.on('message', on);
      s.conn.once('close', onClose);
      s.conn.send({ t: 'ping', id, time: t0 });
    });
    return Date.now() - t0;
  }

  /** A lease request on `s` (leases are held by the connection and dropped when it closes). */
  lease(s: ClientSession, chain: string, op: LeaseOp, key: string, ttlMs: number, timeoutMs: number): Promise<LeaseReply> {
    const id = this.nextId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.leases.delete(id);
        reject(new Disconnected(`no answer to a lease ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.leases.set(id, {
        session: s,
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      s.conn.send({ t: 'lease', id, op, chain, key, ttl: Math.max(0, Math.round(ttlMs)) });
    });
  }

  /** The server's answer to a lease request made on `s` (an answer from an older connection is stale). */
  onLeased(s: ClientSession, m: LeaseReply): void {
    const w = this.leases.get(m.id);
    if (w?.session !== s) return;
    this.leases.delete(m.id);
    w.resolve(m);
  }

  /** The connection is gone (or the client closed): every lease request waiting fails with `e`. */
  failAll(e: Error): void {
    for (const w of this.leases.values()) w.reject(e);
    this.leases.clear();
  }
}
