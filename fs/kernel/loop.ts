/**
 * Reads requests from /dev/fuse and hands them to the session.
 *
 * Two designs, chosen by measurement (see README / report):
 * - 'blocking' (default): the serving thread reads with readSync, handles, writes, reads again —
 *   no thread hand-off per request. It yields to the event loop every `sliceMs`, and it switches to
 *   threadpool reads whenever a reply waits on a Promise (fsync, lock waits, destroy). A blocked
 *   readSync cannot be interrupted from JS, so when the mount goes quiet a small waker thread
 *   (waker.ts) sends one LOOKUP of a reserved name to the root; the loop answers it and parks on a
 *   threadpool read, which leaves the event loop free (timers, signals, sockets) while idle.
 * - 'threadpool': every read runs on the libuv threadpool (two in flight); the event loop is never
 *   blocked, at the cost of a thread hand-off per request.
 */
import { read as readAsync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Session } from './session.js';
import { WAKER_SOURCE, WakeState } from './waker.js';

export type LoopMode = 'blocking' | 'threadpool';

/** How long (ms) the blocking loop waits for a pending reply before parking on a threadpool read. */
const PARK_MS = 2;

export interface LoopOptions {
  mode: LoopMode;
  bufferSize: number;
  /** Longest stretch (ms) the blocking loop serves before letting the event loop run. */
  sliceMs: number;
  /** Quiet time (ms) after which the waker unblocks the reader. */
  idleMs: number;
  /** Path the waker stats to produce the wake LOOKUP (mountpoint + reserved name). */
  wakePath: string;
  debug: boolean;
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

export class RequestLoop {
  private readonly bufs: Buffer[];
  private stopped = false;
  private wakeRequested = false;
  /** Blocking reads only while the waker runs: nothing else could unblock an idle reader. */
  private noBlock = true;
  private readsInFlight = 0;
  private readonly shared = new Int32Array(new SharedArrayBuffer(16));
  private waker: Worker | null = null;
  private endResolve!: (err: Error | null) => void;
  /** Resolves when the kernel ends the connection (ENODEV after unmount) or the loop fails. */
  readonly ended: Promise<Error | null>;

  constructor(private readonly fd: number, private readonly session: Session, private readonly opts: LoopOptions) {
    this.bufs = [Buffer.allocUnsafe(opts.bufferSize)];
    if (opts.mode === 'threadpool') this.bufs.push(Buffer.allocUnsafe(opts.bufferSize));
    this.ended = new Promise((r) => { this.endResolve = r; });
  }

  /** Starts serving. The first read is always a threadpool read: INIT arrives while mount(8) runs. */
  start(): void {
    if (this.opts.mode === 'threadpool') {
      this.readAsync(0);
      this.readAsync(1);
    } else {
      this.readAsync(0);
    }
  }

  /** Called by the session when it answered the waker's LOOKUP. */
  wake(): void { this.wakeRequested = true; }

  /** Starts the waker once the mount is up (it stats a path inside the mount). */
  startWaker(): void {
    if (this.opts.mode !== 'blocking' || this.waker) return;
    const w = new Worker(WAKER_SOURCE, {
      eval: true,
      workerData: { shared: this.shared, path: this.opts.wakePath, idleMs: this.opts.idleMs },
    });
    w.unref();
    this.noBlock = false;
    w.on('error', (e) => { if (this.opts.debug) process.stderr.write(`kernel: waker failed: ${e.message}\n`); });
    this.waker = w;
  }

  /** Before unmounting: no more blocking reads (nothing would wake them) and no more wake stats. */
  stopWaker(): void {
    this.noBlock = true;
    Atomics.store(this.shared, WakeState.STATE, WakeState.STOP);
    Atomics.notify(this.shared, WakeState.STATE);
    if (this.waker) { void this.waker.terminate(); this.waker = null; }
  }

  private finish(err: Error | null): void {
    if (this.stopped) return;
    this.stopped = true;
    Atomics.store(this.shared, WakeState.STATE, WakeState.STOP);
    Atomics.notify(this.shared, WakeState.STATE);
    if (this.waker) { void this.waker.terminate(); this.waker = null; }
    this.endResolve(err);
  }

  /** Handles a read result; returns false when the loop must stop. */
  private onReadError(e: unknown): boolean {
    const code = errCode(e);
    // ENOENT: a request was interrupted before we read it; EINTR/EAGAIN: just retry.
    if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') return true;
    // ENODEV: unmounted (or the connection was aborted) — the normal end.
    this.finish(code === 'ENODEV' ? null : (e as Error));
    return false;
  }

  private readAsync(i: number): void {
    if (this.stopped) return;
    const buf = this.bufs[i]!;
    this.readsInFlight++;
    Atomics.store(this.shared, WakeState.STATE, WakeState.ASYNC);
    readAsync(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.readsInFlight--;
      if (this.stopped) return;
      if (err) {
        if (this.onReadError(err)) this.readAsync(i);
        return;
      }
      this.session.handle(buf, n);
      this.afterAsync(i);
    });
  }

  private afterAsync(i: number): void {
    if (this.opts.mode === 'threadpool' || this.noBlock || this.session.destroyed) {
      this.readAsync(i);
      return;
    }
    if (this.session.pending.size > 0) {
      this.awaitPending();
      return;
    }
    this.wakeRequested = false;
    this.runBlocking();
  }

  /**
   * A reply waits on a Promise (an fsync's commit, say): the event loop must run. A reply that
   * comes within PARK_MS sends the loop straight back to reading on this thread; parking on a
   * threadpool read at once cost every next request a thread hand-off (~0.1 ms on 2 cores: an
   * fsync-per-write workload paid it on each write). Past PARK_MS the loop parks as before, so a
   * long wait (a lock, a sync-mode upload) never holds other requests back for longer.
   */
  private awaitPending(): void {
    Atomics.store(this.shared, WakeState.STATE, WakeState.ASYNC);
    let waiting = true;
    const timer = setTimeout(() => {
      if (!waiting) return;
      waiting = false;
      this.session.onDrained = null;
      this.readAsync(0);
    }, PARK_MS);
    this.session.onDrained = () => {
      if (!waiting) return;
      waiting = false;
      this.session.onDrained = null;
      clearTimeout(timer);
      // After this callback's microtasks (the commit's own follow-ups), not inside them.
      // A wake the waker asked for meanwhile parks; the rest is afterAsync's choice.
      setImmediate(() => {
        if (this.stopped) return;
        if (this.wakeRequested) this.readAsync(0);
        else this.afterAsync(0);
      });
    };
  }

  private runBlocking(): void {
    if (this.noBlock) { this.readAsync(0); return; }
    const buf = this.bufs[0]!;
    const session = this.session;
    const shared = this.shared;
    const deadline = performance.now() + this.opts.sliceMs;
    Atomics.store(shared, WakeState.STATE, WakeState.BLOCKING);
    if (Atomics.load(shared, WakeState.SLEEPING) === 1) Atomics.notify(shared, WakeState.STATE);
    let served = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, buf, 0, buf.length, null);
      } catch (e) {
        if (this.onReadError(e)) continue;
        return;
      }
      Atomics.add(shared, WakeState.BEAT, 1);
      session.handle(buf, n);
      if (this.wakeRequested || session.destroyed) {
        // Park on a threadpool read: the event loop runs while we wait for the next request.
        this.readAsync(0);
        return;
      }
      if (session.pending.size > 0) {
        this.awaitPending();
        return;
      }
      if ((++served & 7) === 0 && performance.now() > deadline) {
        Atomics.store(shared, WakeState.STATE, WakeState.ASYNC);
        setImmediate(() => { if (!this.stopped) this.runBlocking(); });
        return;
      }
    }
  }

  stop(): void { this.finish(null); }
  get inFlight(): number { return this.readsInFlight; }
}
