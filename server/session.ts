// The protocol side of one client connection: subscriptions (history in batches, end of history,
// then live commits), appends (confirmed or rejected with a typed reason), leases and pings. Chain
// hosting lives in chain-host.ts / hosted-chain.ts; this file only speaks the protocol.
//
// A subscriber that stops reading has at most `maxBuffer` bytes queued in its socket; past that it
// is disconnected (it resumes from its last seq on reconnect) instead of growing server memory.
import { decodeCommit } from '../src/chain/index.js';
import { type Connection, type Message, ProtocolError, type ServerSession, type SignedHead } from '../src/net/index.js';
import { AppendRejected, HistoryCompacted } from './hosted-chain.js';
import type { AppendOrigin, ChainListener, ChainStore, ServedChain } from './store/chain-store.js';
import type { LeaseService } from './store/jetstream-leases.js';

const HISTORY_BATCH_BYTES = 1 << 20;
/** Room in a history message's frame for its envelope (chain name, seqs, per-commit headers). */
const HISTORY_ENVELOPE_BYTES = 64 << 10;
/** Kept records listed per 'cut' message (~10 KiB: under any frame maximum). */
const CUT_PART = 256;
const HISTORY_HIGH_WATER = 4 << 20;

interface Sub {
  chain: ServedChain;
  live: boolean;
  /** Next seq this subscriber is owed. */
  next: number;
  /** Sent a 'cut': its history goes with explicit seqs up to the cut. */
  sparse?: boolean;
}

class Origin implements AppendOrigin {
  constructor(readonly handler: ClientHandler, readonly id: number) {}
  confirmed(chain: ServedChain, seq: number): void {
    this.handler.confirmed(chain, seq, this.id);
  }
}

export interface HandlerContext {
  host: ChainStore;
  leases: LeaseService;
  maxBuffer: number;
  /** false once shutdown began: new appends are refused, in-flight ones finish. */
  accepting: () => boolean;
  log: (line: string) => void;
  /** Told the reason of every rejected append (server/stats.ts). */
  rejected?: (reason: string) => void;
  /** The user/group/token service (server/auth), when this server runs it. */
  auth?: { connect(session: ServerSession, conn: Connection): { handle(m: Extract<Message, { t: 'areq' }>): void } };
}

let nextConnId = 1;

export class ClientHandler implements ChainListener {
  readonly id = nextConnId++;
  readonly conn: Connection;
  private readonly subs = new Map<string, Sub>();
  private readonly joined = new Set<ServedChain>();
  readonly owner: string;
  inflight = 0;
  private authEndpoint: { handle(m: Extract<Message, { t: 'areq' }>): void } | null = null;

  constructor(readonly session: ServerSession, private readonly ctx: HandlerContext) {
    this.conn = session.conn;
    this.owner = session.clientIdentity ?? `anonymous#${this.id}`;
    this.conn.on('message', (m) => this.onMessage(m));
    this.conn.on('close', () => this.cleanup());
  }

  /** Sends; past `maxBuffer` queued bytes the client is disconnected. History batches are not
   *  counted here: the history loop waits for the socket to drain instead (one batch at most). */
  private send(m: Parameters<Connection['send']>[0], bounded = true): void {
    this.conn.send(m);
    if (bounded && this.conn.writableLength > this.ctx.maxBuffer) {
      this.conn.close(new ProtocolError(`client does not read: over ${this.ctx.maxBuffer} bytes queued`));
    }
  }

  private onMessage(m: Message): void {
    switch (m.t) {
      case 'sub': void this.subscribe(m.id, m.chain, m.genesis, m.from, m.cuts === true); return;
      case 'unsub': this.unsubscribe(m.chain); return;
      case 'append': void this.append(m.id, m.chain, m.commit); return;
      case 'lease': {
        // The file store's table answers at once; the cluster's (a KV bucket) asynchronously.
        const r = this.ctx.leases.request(m.op, m.chain, m.key, m.ttl, this.owner, this);
        if (!(r instanceof Promise)) {
          this.send({ t: 'leased', id: m.id, ...r });
          return;
        }
        r.then(
          (x) => { if (!this.conn.closed) this.send({ t: 'leased', id: m.id, ...x }); },
          // JetStream unavailable (an election): not granted, which is safe; the client asks again.
          (e: Error) => {
            this.ctx.log(`lease ${m.op} on '${m.chain}': ${e.message}`);
            if (!this.conn.closed) this.send({ t: 'leased', id: m.id, ok: false, holder: null, expires: 0 });
          },
        );
        return;
      }
      case 'ping': this.send({ t: 'pong', id: m.id, time: Date.now() }); return;
      case 'areq':
        if (!this.ctx.auth) {
          this.send({ t: 'err', id: m.id, code: 'no-auth', detail: 'this server runs no auth service' });
          return;
        }
        (this.authEndpoint ??= this.ctx.auth.connect(this.session, this.conn)).handle(m);
        return;
      default:
        // Server-to-client messages (or a second auth) from a client break the protocol.
        this.conn.close(new ProtocolError(`unexpected message '${m.t}' from a client`));
    }
  }

  private join(chain: ServedChain): void {
    if (this.joined.has(chain)) return;
    this.joined.add(chain);
    chain.listeners.add(this);
  }

  private async subscribe(id: number, name: string, genesis: Buffer | null, from: number, cuts: boolean): Promise<void> {
    try {
      let chain = await this.ctx.host.get(name);
      if (chain?.closing) chain = await this.ctx.host.get(name);
      if (!chain) {
        this.send({ t: 'err', id, code: 'unknown-chain', detail: `no chain '${name}' on this server` });
        return;
      }
      if (genesis && !genesis.equals(chain.genesisHash)) {
        this.send({ t: 'err', id, code: 'wrong-genesis', detail: `chain '${name}' has genesis ${chain.genesisHash.toString('hex')}, not ${genesis.toString('hex')}` });
        return;
      }
      if (this.conn.closed) return;
      // No compaction switches records while this subscriber is sent history (chain-compactor.ts).
      const release = chain.beginHistory ? await chain.beginHistory() : null;
      try {
        if (this.conn.closed) return;
        const cut = chain.compactedFrom?.(Math.max(1, from)) ?? null;
        // A client that follows cuts gets one whenever it starts at or below it (even where no
        // record is missing from its seq on: it may hold kept records before a gap already, and
        // continues from the head signed at the cut).
        const below = (chain.cutSeq?.() ?? 0) >= Math.max(1, from);
        const offer = below && cuts && chain.readSparse ? await chain.cutOffer?.() ?? null : null;
        if (cut !== null && !offer) {
          // Nothing sent: a client that did not say it follows compacted histories (an older
          // one) cannot take one with gaps; it is told why instead.
          this.send({ t: 'err', id, code: 'compacted', detail: new HistoryCompacted(Math.max(1, from), cut).message });
          return;
        }
        if (this.conn.closed) return;
        if (offer) {
          const c = offer.cut;
          const total = offer.seqs.length;
          for (let at = 0; at < total; at += CUT_PART) {
            const end = Math.min(total, at + CUT_PART);
            this.send({
              t: 'cut', chain: name, genesis: offer.genesis, seq: c.seq, hash: c.hash, kept: c.kept, sig: c.sig, signer: c.signer,
              seqs: offer.seqs.slice(at, end), hashes: offer.hashes.subarray(at * 32, end * 32), head: offer.head, at, total,
            }, false);
          }
        }
        const sub: Sub = { chain, live: false, next: Math.max(1, from), sparse: offer !== null };
        this.subs.set(name, sub);
        this.join(chain);
        await this.streamHistory(name, sub);
      } finally {
        release?.();
      }
    } catch (e) {
      // As for appends: a store that fails to read (JetStream electing, a timeout) is unavailable
      // for now, and the client retries; only a typed refusal carries its own reason.
      this.send({ t: 'err', id, code: e instanceof AppendRejected ? e.reason : 'unavailable', detail: (e as Error).message });
    }
  }

  /**
   * A history batch's commit bytes: 1 MiB, or less on a connection whose frames are smaller
   * (`--max-commit-bytes` sets them to a commit + 64 KiB): a batch travels as one message, and a
   * commit alone always fits. The 64 KiB left over carry the message's envelope.
   */
  private historyBatchBytes(): number {
    return Math.min(HISTORY_BATCH_BYTES, this.conn.maxFrame - HISTORY_ENVELOPE_BYTES);
  }

  private async streamHistory(name: string, sub: Sub): Promise<void> {
    const { chain } = sub;
    for (;;) {
      if (this.conn.closed || this.subs.get(name) !== sub) return;
      if (sub.next > chain.confirmedSeq) {
        // The history still queued drains below the subscriber bound first: 'eoh' and the live
        // relays after it are bounded (a small --subscriber-buffer cut off clients that read).
        if (this.conn.writableLength > this.ctx.maxBuffer) {
          await this.drained();
          continue;
        }
        const head = await chain.head();
        if (this.conn.closed || this.subs.get(name) !== sub) return;
        if (sub.next <= chain.confirmedSeq) continue; // more arrived while the head was signed
        sub.live = true;
        this.send({ t: 'eoh', chain: name, head, genesis: chain.genesisHash });
        return;
      }
      if (sub.sparse && chain.readSparse) {
        const { seqs, commits } = await chain.readSparse(sub.next, chain.confirmedSeq, this.historyBatchBytes());
        if (this.conn.closed || this.subs.get(name) !== sub) return;
        if (seqs.length === 0) throw new Error(`chain '${name}': no record from seq ${sub.next}`);
        const dense = seqs[0] === sub.next && seqs[seqs.length - 1] === sub.next + seqs.length - 1;
        this.send({ t: 'hist', chain: name, from: seqs[0]!, commits, upTo: chain.confirmedSeq, ...(dense ? {} : { seqs }) }, false);
        sub.next = seqs[seqs.length - 1]! + 1;
      } else {
        const batch = await chain.readHistory(sub.next, chain.confirmedSeq, this.historyBatchBytes());
        if (this.conn.closed || this.subs.get(name) !== sub) return;
        if (batch.length === 0) throw new Error(`chain '${name}': no record at seq ${sub.next}`);
        this.send({ t: 'hist', chain: name, from: sub.next, commits: batch, upTo: chain.confirmedSeq }, false);
        sub.next += batch.length;
      }
      if (this.conn.writableLength > HISTORY_HIGH_WATER) await this.drained();
    }
  }

  /** Until the socket drained what was queued (or closed). */
  private drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.conn.socket.off('drain', done);
        this.conn.off('close', done);
        resolve();
      };
      this.conn.socket.on('drain', done);
      this.conn.once('close', done);
    });
  }

  private unsubscribe(name: string): void {
    const sub = this.subs.get(name);
    if (!sub) return;
    this.subs.delete(name);
    sub.chain.listeners.delete(this);
    this.joined.delete(sub.chain);
  }

  private async append(id: number, name: string, bytes: Buffer): Promise<void> {
    if (!this.ctx.accepting()) {
      this.ctx.rejected?.('unavailable');
      this.send({ t: 'rej', id, reason: 'unavailable', detail: 'the server is shutting down', seq: null });
      return;
    }
    this.inflight++;
    try {
      let chain = await this.ctx.host.get(name);
      // Evicted between the lookup and now: look it up again (it reopens).
      if (chain?.closing) chain = await this.ctx.host.get(name);
      if (!chain) {
        let isGenesis = false;
        try {
          isGenesis = !!decodeCommit(bytes).header.genesis;
        } catch {
          // reported below as unknown-chain
        }
        if (!isGenesis) throw new AppendRejected('unknown-chain', `no chain '${name}' on this server`);
        chain = await this.ctx.host.create(name, bytes, this.session.clientIdentity);
        this.send({ t: 'ok', id, chain: name, seq: 1 });
        return;
      }
      await chain.append(bytes, new Origin(this, id));
      // 'ok' was sent by onCommit, in seq order with the relays.
    } catch (e) {
      const r = e instanceof AppendRejected ? e : new AppendRejected('unavailable', (e as Error).message);
      this.ctx.rejected?.(r.reason);
      this.send({ t: 'rej', id, reason: r.reason, detail: r.message, seq: r.seq });
    } finally {
      this.inflight--;
    }
  }

  /** Our own append got its seq: 'ok', in seq order with what this connection is relayed. */
  confirmed(chain: ServedChain, seq: number, id: number): void {
    this.send({ t: 'ok', id, chain: chain.name, seq });
    const sub = this.subs.get(chain.name);
    if (sub?.live && sub.chain === chain && sub.next === seq) sub.next = seq + 1;
  }

  onCommit(chain: ServedChain, seq: number, bytes: Buffer, origin: AppendOrigin | null): void {
    if (origin instanceof Origin && origin.handler === this) return;
    const sub = this.subs.get(chain.name);
    if (!sub || !sub.live || sub.chain !== chain) return;
    if (seq !== sub.next) {
      this.conn.close(new ProtocolError(`internal: relay of seq ${seq}, subscriber owed ${sub.next}`));
      return;
    }
    sub.next = seq + 1;
    this.send({ t: 'live', chain: chain.name, seq, commit: bytes });
  }

  onHead(chain: ServedChain, head: SignedHead): void {
    const sub = this.subs.get(chain.name);
    if (sub?.live && sub.chain === chain) this.send({ t: 'head', chain: chain.name, head });
  }

  onClosed(chain: ServedChain, reason: Error): void {
    const sub = this.subs.get(chain.name);
    if (sub?.chain !== chain) return;
    // The client resumes from its seq on reconnect, against the chain reopened from its store.
    this.conn.close(new ProtocolError(`chain '${chain.name}' stopped on this server: ${reason.message}`));
  }

  private cleanup(): void {
    for (const c of this.joined) c.listeners.delete(this);
    this.joined.clear();
    this.subs.clear();
    void Promise.resolve(this.ctx.leases.releaseAll(this)).catch(() => undefined);
  }
}
