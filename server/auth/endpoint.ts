// The auth service on one connection: decodes 'areq' bodies, runs the operation with what the
// connection knows (its session id, the key the client proved, its address, its login challenge),
// answers 'ares'. A refusal is { code, message }; anything else that goes wrong is 'internal'
// (logged, never a stack trace to the client).
import type { Connection, Message, ServerSession } from '../../src/net/index.js';
import { packBody, unpackBody } from '../../src/net/auth-protocol.js';
import { AuthFailure, type AuthService, type CallerContext } from './service.js';

export class AuthEndpoint {
  private readonly ctx: CallerContext;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly service: AuthService, private readonly conn: Connection, session: ServerSession, private readonly log: (l: string) => void) {
    this.ctx = { sessionId: session.sessionId, clientKey: session.clientKey, address: conn.socket.remoteAddress ?? '?', challenge: null };
  }

  /** Requests of one connection run in order (a login follows its salt). */
  handle(m: Extract<Message, { t: 'areq' }>): void {
    this.chain = this.chain.then(() => this.run(m));
  }

  private async run(m: Extract<Message, { t: 'areq' }>): Promise<void> {
    try {
      const body = unpackBody(m.body);
      const out = await this.service.handle(m.op, body, this.ctx);
      this.conn.send({ t: 'ares', id: m.id, ok: true, body: packBody(out) });
    } catch (e) {
      const f = e instanceof AuthFailure ? e : null;
      if (!f) this.log(`auth ${m.op}: ${(e as Error).stack ?? (e as Error).message}`);
      this.conn.send({ t: 'ares', id: m.id, ok: false, body: packBody({ code: f?.code ?? 'internal', message: f?.message ?? `auth service error: ${(e as Error).message}` }) });
    }
  }
}
