// One TCP connection of the protocol, either side: plaintext handshake records first (pulled by
// the handshake code), then encrypted frames decoded into messages and emitted. Any protocol
// error — oversize length, failed tag, undecodable or unknown message — closes the connection;
// nothing is skipped or resynchronised.
import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { HandshakeError, ProtocolError } from './errors.js';
import { DEFAULT_MAX_FRAME, FrameCipher, FrameReader, HANDSHAKE_MAX_FRAME, type ReceiveBudget, plainFrame } from './frames.js';
import { type Message, type Outgoing, decodeMessage, encodeMessage } from './messages.js';

export interface ConnectionEvents {
  message: [Message];
  close: [Error | null];
}

/** Plaintext sealed per turn of the event loop for a large message (sendInSteps). */
const SEAL_STEP_BYTES = 4 << 20;

/**
 * AES-256-GCM of a frame's plaintext pieces on another thread (BulkCryptoPool.sealStream): each
 * step's ciphertext to `onStep` in order, then the tag.
 */
export type GcmOffload = (key: Uint8Array, iv: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], step: number, onStep: (ciphertext: Buffer) => void) => Promise<Buffer>;

export class Connection extends EventEmitter<ConnectionEvents> {
  private readonly reader: FrameReader;
  private tx: FrameCipher | null = null;
  private rx: FrameCipher | null = null;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private closedWith: Error | null | undefined = undefined;
  maxFrame = DEFAULT_MAX_FRAME;
  /** Frames and bytes received and sent (for status and tests). */
  readonly stats = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, framesOffloaded: 0 };
  /** Large frames are encrypted here, a step per turn of the event loop, unless this is set. */
  gcmOffload: GcmOffload | null = null;

  constructor(readonly socket: net.Socket, budget: ReceiveBudget | null = null) {
    super();
    this.reader = new FrameReader(HANDSHAKE_MAX_FRAME, budget);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.stats.bytesIn += chunk.length;
      try {
        this.reader.push(chunk);
      } catch (e) {
        this.close(e as Error);
        return;
      }
      this.pump();
    });
    socket.on('error', (e) => this.close(e));
    socket.on('close', () => this.close(null));
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  get encrypted(): boolean {
    return this.tx !== null;
  }

  /** Bytes queued in the socket, not yet handed to the kernel (the back-pressure signal). */
  get writableLength(): number {
    return this.socket.writableLength;
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  /** Next plaintext handshake record. */
  nextPlain(): Promise<Buffer> {
    if (this.closed) return Promise.reject(this.closedWith ?? new HandshakeError('connection closed during the handshake'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.pump();
    });
  }

  sendPlain(body: Buffer): void {
    if (this.closed) return;
    const bufs = plainFrame(body);
    this.write(bufs);
  }

  /** Switches both directions to the record layer (call before sending the first encrypted frame). */
  startEncryption(txKey: Buffer, rxKey: Buffer): void {
    this.tx = new FrameCipher(txKey);
    this.rx = new FrameCipher(rxKey);
    this.reader.maxFrame = this.maxFrame;
    this.pump();
  }

  /** false when the connection is closed (the message is dropped). */
  send(m: Outgoing): boolean {
    if (this.closed || !this.tx) return false;
    if (this.stepping) {
      this.stepping.push(() => this.send(m));
      return true;
    }
    let bufs: Buffer[];
    try {
      bufs = this.tx.seal(encodeMessage(m), this.maxFrame);
    } catch (e) {
      this.close(e as Error);
      return false;
    }
    this.write(bufs);
    return true;
  }

  /** A message already encoded as pieces (encodeAppendParts); false when the connection is closed. */
  sendEncoded(parts: readonly Uint8Array[]): boolean {
    if (this.closed || !this.tx) return false;
    let n = 0;
    for (const p of parts) n += p.length;
    if (n >= SEAL_STEP_BYTES || this.stepping) {
      this.sendInSteps(parts);
      return true;
    }
    let bufs: Buffer[];
    try {
      bufs = this.tx.sealParts(parts, this.maxFrame);
    } catch (e) {
      this.close(e as Error);
      return false;
    }
    this.write(bufs);
    return true;
  }

  /** Messages waiting for a frame sealed in steps to be written whole (sendInSteps). */
  private stepping: Array<() => void> | null = null;

  /**
   * A large message (a commit of tens of MiB) is encrypted and written a few MiB per turn of the
   * event loop: sealed at once it held the thread that also serves the mount for tens of ms (the
   * FLUSH of the close after an fsync waited behind the upload of what that fsync staged).
   * Messages sent meanwhile are sealed and written after it, in order.
   */
  private sendInSteps(parts: readonly Uint8Array[]): void {
    if (this.stepping) {
      this.stepping.push(() => this.sendEncoded(parts));
      return;
    }
    if (this.gcmOffload) {
      this.sendOffloaded(parts, this.gcmOffload);
      return;
    }
    let steps: Generator<Buffer[], void, void>;
    try {
      steps = this.tx!.sealPartsInSteps(parts, this.maxFrame, SEAL_STEP_BYTES);
    } catch (e) {
      this.close(e as Error);
      return;
    }
    this.stepping = [];
    this.stats.framesOut++;
    const next = (): void => {
      if (this.closed) { this.stepping = null; return; }
      let r: IteratorResult<Buffer[], void>;
      try {
        r = steps.next();
      } catch (e) {
        this.stepping = null;
        this.close(e as Error);
        return;
      }
      if (!r.done) {
        this.writeStep(r.value);
        setImmediate(next);
        return;
      }
      this.endStepping();
    };
    next();
  }

  /**
   * sendInSteps with the encryption on another thread (gcmOffload): this thread copies each step's
   * plaintext and writes the ciphertext as it comes back. The frame's nonce is taken now; messages
   * sent meanwhile wait in `stepping` as for sealing here.
   */
  private sendOffloaded(parts: readonly Uint8Array[], offload: GcmOffload): void {
    let n = 0;
    for (const p of parts) n += p.length;
    let frame: { header: Buffer; key: Buffer; iv: Buffer };
    try {
      frame = this.tx!.nextFrame(n, this.maxFrame);
    } catch (e) {
      this.close(e as Error);
      return;
    }
    this.stepping = [];
    this.stats.framesOut++;
    this.stats.framesOffloaded++;
    this.writeStep([frame.header]);
    offload(frame.key, frame.iv, frame.header, parts, SEAL_STEP_BYTES, (ct) => {
      if (!this.closed) this.writeStep([ct]);
    }).then((tag) => {
      if (this.closed) { this.stepping = null; return; }
      this.writeStep([tag]);
      this.endStepping();
    }, (e: unknown) => {
      this.stepping = null;
      // Half a frame is on the wire: the connection cannot go on (the client reconnects and resends).
      this.close(e instanceof Error ? e : new Error(String(e)));
    });
  }

  /** A stepped frame is written whole: the messages sent meanwhile go now, in order. */
  private endStepping(): void {
    const queued = this.stepping ?? [];
    this.stepping = null;
    for (let i = 0; i < queued.length; i++) {
      queued[i]!();
      // A queued large message started its own steps: the rest waits behind it, in order.
      if (this.stepping) { (this.stepping as Array<() => void>).push(...queued.slice(i + 1)); return; }
    }
  }

  private writeStep(bufs: Buffer[]): void {
    for (const b of bufs) this.stats.bytesOut += b.length;
    this.socket.cork();
    for (const b of bufs) this.socket.write(b);
    process.nextTick(() => this.socket.uncork());
  }

  private write(bufs: Buffer[]): void {
    this.stats.framesOut++;
    for (const b of bufs) this.stats.bytesOut += b.length;
    // One syscall per frame when the socket is drained (cork/uncork batches the pieces).
    this.socket.cork();
    for (const b of bufs) this.socket.write(b);
    process.nextTick(() => this.socket.uncork());
  }

  private pump(): void {
    try {
      while (!this.closed) {
        if (!this.rx) {
          if (!this.waiter) return;
          const f = this.reader.next();
          if (!f) return;
          this.stats.framesIn++;
          const w = this.waiter;
          this.waiter = null;
          w.resolve(f.body);
          continue;
        }
        const f = this.reader.next();
        if (!f) return;
        this.stats.framesIn++;
        const m = decodeMessage(this.rx.open(f.header, f.body));
        this.emit('message', m);
      }
    } catch (e) {
      this.close(e instanceof ProtocolError ? e : new ProtocolError((e as Error).message));
    }
  }

  /** Closes the connection; `err` null for an orderly close. Idempotent. */
  close(err: Error | null = null, opts: { flush?: boolean } = {}): void {
    if (this.closed) return;
    this.closedWith = err;
    this.reader.release();
    if (this.waiter) {
      this.waiter.reject(err ?? new HandshakeError('connection closed during the handshake'));
      this.waiter = null;
    }
    // An error closes at once (queued output may be hostile or useless); an orderly close, or a
    // refusal the peer must read, flushes first.
    if (err && !opts.flush) this.socket.destroy();
    else this.socket.end();
    // A peer that never reads must not keep the socket (and its queued bytes) alive.
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.emit('close', err);
  }
}
