// One worker thread answering numbered requests, for the crypto pools (signatures, bulk data).
// The worker is unref'd while idle and ref'd while it owes a reply, so a pool never keeps a
// process alive but a pending request still completes at top level; a worker that dies fails
// everything it owed and tells its pool (which starts another on the next request).
import { Worker } from 'node:worker_threads';
import { CryptoError } from './errors.js';

/** What a worker posts back: the request's id, and `error` when it failed. */
export interface WorkerReplyBase { id: number; error?: string }

interface Pending<R> { resolve: (r: R) => void; reject: (e: Error) => void }

export class WorkerChannel<R extends WorkerReplyBase> {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending<R>>();
  /** Bytes handed over and not answered yet (least-loaded dispatch). */
  load = 0;
  dead = false;

  /** `label` names the worker in errors ("crypto worker", "bulk crypto worker"). */
  constructor(source: string, label: string, onDead: (w: WorkerChannel<R>) => void, workerData?: unknown) {
    this.worker = new Worker(source, { eval: true, ...(workerData !== undefined ? { workerData } : {}) });
    this.worker.on('message', (m: R) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if (m.error !== undefined) p.reject(new CryptoError(`${label}: ${m.error}`));
      else p.resolve(m);
    });
    const fail = (err: Error) => {
      if (this.dead) return;
      this.dead = true;
      onDead(this);
      this.rejectAll(err);
    };
    this.worker.on('error', (e) => fail(new CryptoError(`${label} failed: ${e.message}`)));
    this.worker.on('exit', (code) => fail(new CryptoError(`${label} exited (code ${code})`)));
    // After the listeners: adding a 'message' listener re-refs the worker's port.
    this.worker.unref();
  }

  /** Posts `msg` (its `id` numbers the reply); `bytes` counts towards `load` until answered. */
  request(msg: { id: number; op: string } & Record<string, unknown>, transfer: ArrayBuffer[] = [], bytes = 0): Promise<R> {
    this.load += bytes;
    return new Promise<R>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(msg.id, {
        resolve: (r) => { this.load -= bytes; resolve(r); },
        reject: (e) => { this.load -= bytes; reject(e); },
      });
      this.worker.postMessage(msg, transfer);
    });
  }

  /** Fails every request still owed (pool closing, worker gone). */
  rejectAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
