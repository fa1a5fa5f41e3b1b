// Worker threads for bulk data crypto: sealing file blocks (AES-256-GCM + the event hash over the
// sealed bytes) on the write path and reading + opening sealed ranges of log files on the read
// path. One 1 MiB FUSE write or read is 16 blocks of 64 KiB; sealing, hashing and opening them on
// the main thread cost more than serving the FUSE request itself, and the main thread is the one
// that serves FUSE. The signature pool (pool.ts) stays separate: a 5-10 ms ML-DSA signature must
// never sit in front of a block a reader waits for.
//
// The worker is a self-contained CommonJS string (like pool-worker-source.ts: vitest runs the .ts
// sources, where no .js file exists to point a Worker at) using only node:crypto and node:fs. It
// produces exactly the layouts of aes-gcm.ts ([alg, version] | nonce | ciphertext | tag, header
// authenticated first) and hash.ts's domainHash framing; tests check both against the main-thread
// implementations byte for byte.
import * as os from 'node:os';
import { WorkerChannel } from './worker-channel.js';
import { Alg, HEADER_LEN, VERSION_1 } from './algorithms.js';
import { AES_GCM_OVERHEAD } from './aes-gcm.js';
import { CryptoError, DecryptError } from './errors.js';
import { rememberCrc } from './known-crc.js';

const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const zlib = require('node:zlib');
const ALG = ${Alg.AES_256_GCM}, VER = ${VERSION_1}, HDR = ${HEADER_LEN}, NONCE = 12, TAG = 16;
const OPTS = { authTagLength: TAG };
const fds = new Map();
function fdOf(path) {
  let fd = fds.get(path);
  if (fd === undefined) {
    if (fds.size >= 64) { for (const [p, f] of fds) { try { fs.closeSync(f); } catch {} fds.delete(p); break; } }
    fd = fs.openSync(path, 'r');
    fds.set(path, fd);
  }
  return fd;
}
function u32(n) { const b = Buffer.allocUnsafe(4); b.writeUInt32BE(n, 0); return b; }
// Items as packItems packs them: paths[], pos = Float64Array [offset, length, aadLen]*,
// keys = key(32) | aad per item.
function unpackItems(m) {
  const kb = Buffer.from(m.keys.buffer, m.keys.byteOffset, m.keys.byteLength);
  const its = [];
  let ko = 0;
  for (let i = 0; i < m.paths.length; i++) {
    const al = m.pos[i * 3 + 2];
    its.push({ path: m.paths[i], offset: m.pos[i * 3], length: m.pos[i * 3 + 1], key: kb.subarray(ko, ko + 32), aad: kb.subarray(ko + 32, ko + 32 + al) });
    ko += 32 + al;
  }
  return its;
}
let scratch = Buffer.allocUnsafe(65536 + 64);
const streams = new Map();
// Reads the sealed range of one item and opens it; throws on I/O, format or authentication.
function openItem(it) {
  const len = it.length;
  if (len - HDR - NONCE - TAG < 0) throw new Error('sealed range too short');
  if (scratch.length < len) scratch = Buffer.allocUnsafe(len);
  const s = scratch.subarray(0, len);
  const fd = fdOf(it.path);
  for (let got = 0; got < len;) {
    const k = fs.readSync(fd, s, got, len - got, it.offset + got);
    if (k === 0) throw new Error('short read');
    got += k;
  }
  if (s[0] !== ALG || s[1] !== VER) throw new Error('not AES-256-GCM v1');
  const d = crypto.createDecipheriv('aes-256-gcm', it.key, s.subarray(HDR, HDR + NONCE), OPTS);
  d.setAuthTag(s.subarray(len - TAG));
  d.setAAD(s.subarray(0, HDR));
  if (it.aad.length) d.setAAD(it.aad);
  const pt = d.update(s.subarray(HDR + NONCE, len - TAG));
  d.final();
  return pt;
}
parentPort.on('message', (m) => {
  try {
    if (m.op === 'seal') {
      // in: m.in (a SharedArrayBuffer the caller reuses), m.len bytes of
      //     [key(32) | aadLen u32 | aad | metaLen u32 | meta | ptLen u32 | pt]*
      const b = Buffer.from(m.in, 0, m.len);
      const n = m.count;
      const items = [];
      let o = 0, total = 0;
      for (let i = 0; i < n; i++) {
        const key = b.subarray(o, o + 32); o += 32;
        const al = b.readUInt32BE(o); o += 4; const aad = b.subarray(o, o + al); o += al;
        const ml = b.readUInt32BE(o); o += 4; const meta = b.subarray(o, o + ml); o += ml;
        const pl = b.readUInt32BE(o); o += 4; const pt = b.subarray(o, o + pl); o += pl;
        items.push({ key, aad, meta, pt });
        total += HDR + NONCE + pl + TAG + 32;
      }
      const out = Buffer.allocUnsafeSlow(total);
      const nonces = crypto.randomBytes(NONCE * n);
      const prefix = Buffer.from(m.hashPrefix.buffer, m.hashPrefix.byteOffset, m.hashPrefix.byteLength);
      // Each sealed payload's CRC-32, for the logs that write it (known-crc.ts): computed here,
      // not on the serving thread, once per payload however many logs write it.
      const crcs = new Uint32Array(n);
      let w = 0;
      for (let i = 0; i < n; i++) {
        const it = items[i];
        const start = w;
        out[w] = ALG; out[w + 1] = VER;
        nonces.copy(out, w + HDR, i * NONCE, (i + 1) * NONCE);
        const c = crypto.createCipheriv('aes-256-gcm', it.key, out.subarray(w + HDR, w + HDR + NONCE), OPTS);
        c.setAAD(out.subarray(w, w + HDR));
        if (it.aad.length) c.setAAD(it.aad);
        w += HDR + NONCE;
        const ct = c.update(it.pt);
        ct.copy(out, w); w += ct.length;
        const fin = c.final(); if (fin.length) { fin.copy(out, w); w += fin.length; }
        c.getAuthTag().copy(out, w); w += TAG;
        const sealed = out.subarray(start, w);
        crcs[i] = zlib.crc32(sealed);
        const h = crypto.createHash('sha256');
        h.update(prefix); h.update(u32(it.meta.length)); h.update(it.meta); h.update(u32(sealed.length)); h.update(sealed);
        h.digest().copy(out, w); w += 32;
      }
      parentPort.postMessage({ id: m.id, buf: out.buffer, crcs }, [out.buffer, crcs.buffer]);
      return;
    }
    if (m.op === 'open') {
      // out: buf = plaintexts back to back, status per item
      const its = unpackItems(m);
      let total = 0;
      for (const it of its) total += Math.max(0, it.length - HDR - NONCE - TAG);
      const out = Buffer.allocUnsafeSlow(total);
      const status = new Int32Array(its.length);
      const errors = [];
      let w = 0;
      for (let i = 0; i < its.length; i++) {
        const it = its[i];
        try {
          openItem(it).copy(out, w);
          status[i] = 1;
        } catch (e) {
          status[i] = 0;
          errors[i] = String(e && e.message || e);
        }
        w += Math.max(0, it.length - HDR - NONCE - TAG);
      }
      parentPort.postMessage({ id: m.id, buf: out.buffer, status, errors }, [out.buffer, status.buffer]);
      return;
    }
    if (m.op === 'toFd') {
      // Blocks [m.lo, m.hi) of a request: open each, copy the part of its plaintext that falls in
      // [from, from + length) of the blocks' concatenation into out (a SharedArrayBuffer that
      // starts with the reply header). The last part to finish writes the whole reply to the fd.
      const its = unpackItems(m);
      const out = Buffer.from(m.out, 0, m.outLen);
      const ctl = new Int32Array(m.ctl);
      let failed = null;
      for (let i = m.lo; i < m.hi && failed === null; i++) {
        try {
          const pt = openItem(its[i]);
          // This block covers [i * bs - from, i * bs - from + pt.length) of the reply's data.
          const start = i * m.bs - m.from;
          const a = Math.max(0, start), b = Math.min(m.length, start + m.bs);
          if (b > a) {
            if (start + pt.length < b) throw new Error('block shorter than the read');
            pt.copy(out, m.headerLen + a, a - start, b - start);
          }
        } catch (e) {
          failed = String(e && e.message || e);
        }
      }
      if (failed !== null) Atomics.store(ctl, 1, 1);
      let wrote = false;
      if (Atomics.sub(ctl, 0, 1) === 1 && Atomics.load(ctl, 1) === 0) {
        try { fs.writeSync(m.fd, out, 0, m.outLen); wrote = true; } catch (e) { failed = 'reply: ' + String(e && e.message || e); }
      }
      parentPort.postMessage({ id: m.id, wrote, failed });
      return;
    }
    if (m.op === 'gcm-open') {
      // One AES-256-GCM message sealed over several requests (BulkCryptoPool.sealStream): the
      // cipher stays here between them, under the caller's stream id.
      const c = crypto.createCipheriv('aes-256-gcm', Buffer.from(m.key), Buffer.from(m.iv), OPTS);
      c.setAAD(Buffer.from(m.aad));
      streams.set(m.sid, c);
      parentPort.postMessage({ id: m.id });
      return;
    }
    if (m.op === 'gcm-update') {
      const c = streams.get(m.sid);
      if (!c) throw new Error('unknown GCM stream');
      const ct = c.update(Buffer.from(m.in, 0, m.len));
      // Transfer a buffer of its own (never a slice of a shared pool: transferring detaches it).
      let own = ct;
      if (ct.byteOffset !== 0 || ct.byteLength !== ct.buffer.byteLength) { own = Buffer.allocUnsafeSlow(ct.length); ct.copy(own); }
      parentPort.postMessage({ id: m.id, buf: own.buffer }, [own.buffer]);
      return;
    }
    if (m.op === 'gcm-final') {
      const c = streams.get(m.sid);
      streams.delete(m.sid);
      if (!c) throw new Error('unknown GCM stream');
      c.final();
      const tag = new Uint8Array(TAG);
      tag.set(c.getAuthTag());
      parentPort.postMessage({ id: m.id, buf: tag.buffer }, [tag.buffer]);
      return;
    }
    if (m.op === 'gcm-drop') {
      streams.delete(m.sid);
      parentPort.postMessage({ id: m.id });
      return;
    }
    if (m.op === 'closeFiles') {
      for (const fd of fds.values()) { try { fs.closeSync(fd); } catch {} }
      fds.clear();
      parentPort.postMessage({ id: m.id });
      return;
    }
    parentPort.postMessage({ id: m.id, error: 'unknown op ' + m.op });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.stack || e) });
  }
});
`;

/** Size of a reused seal input buffer (a ~1 MiB batch of blocks and their metadata). */
const INPUT_BYTES = (1 << 20) + (64 << 10);
/** Seal batches handed to the workers at once (each holds an input buffer); enough for 2-4 workers. */
const MAX_SEALS_IN_FLIGHT = 8;

interface Reply { id: number; buf?: ArrayBuffer; crcs?: Uint32Array; status?: Int32Array; errors?: string[]; error?: string; wrote?: boolean; failed?: string | null }
type BulkWorker = WorkerChannel<Reply>;

/**
 * One block to seal: plaintext under `key` with associated data `aad`; `meta` is hashed before it.
 * The buffers must not change until sealAndHash settles (a batch may wait for a free slot first).
 */
export interface SealItem { key: Uint8Array; aad: Uint8Array; meta: Uint8Array; plaintext: Uint8Array }
/** The sealed payload (aes-gcm.ts layout) and domainHash(domain, meta, sealed). */
export interface SealedItem { sealed: Buffer; hash: Buffer }

/** A sealed range of a file to read and open. */
export interface OpenItem { path: string; offset: number; length: number; key: Uint8Array; aad: Uint8Array }

/**
 * Items packed for a worker message (unpackItems in the worker reads them): paths, offsets and
 * lengths, and every key and associated data back to back in one small array of its own — posting
 * Buffers from Node's 8 KiB pool would structured-clone each one's whole slab.
 */
function packItems(items: OpenItem[], shared: boolean): { paths: string[]; pos: Float64Array<ArrayBuffer>; keys: Uint8Array } {
  let kl = 0;
  for (const it of items) {
    if (it.key.length !== 32) throw new CryptoError('AES-256-GCM key must be 32 bytes');
    kl += 32 + it.aad.length;
  }
  const pos = new Float64Array(items.length * 3);
  const keys = new Uint8Array(shared ? new SharedArrayBuffer(kl) : new ArrayBuffer(kl));
  let ko = 0;
  items.forEach((it, i) => {
    pos[i * 3] = it.offset;
    pos[i * 3 + 1] = it.length;
    pos[i * 3 + 2] = it.aad.length;
    keys.set(it.key, ko);
    keys.set(it.aad, ko + 32);
    ko += 32 + it.aad.length;
  });
  return { paths: items.map((it) => it.path), pos, keys };
}

export class BulkCryptoPool {
  readonly size: number;
  private workers: BulkWorker[] = [];
  private nextId = 1;
  private closed = false;
  /** Input buffers of finished seal batches, for the next ones. */
  private inputs: SharedArrayBuffer[] = [];
  private sealsInFlight = 0;
  private sealWaiters: Array<() => void> = [];

  constructor(opts?: { size?: number }) {
    const size = opts?.size ?? Math.max(1, Math.min(4, os.availableParallelism()));
    if (!Number.isInteger(size) || size < 1) throw new CryptoError(`invalid pool size ${size}`);
    this.size = size;
  }

  get isClosed(): boolean { return this.closed; }

  private pick(): BulkWorker {
    if (this.closed) throw new CryptoError('bulk crypto pool is closed');
    while (this.workers.length < this.size) {
      this.workers.push(new WorkerChannel<Reply>(WORKER_SOURCE, 'bulk crypto worker', (w) => { this.workers = this.workers.filter((x) => x !== w); }));
    }
    let best = this.workers[0]!;
    for (const w of this.workers) if (w.load < best.load) best = w;
    return best;
  }

  private takeInput(n: number): SharedArrayBuffer {
    for (let i = this.inputs.length - 1; i >= 0; i--) {
      if (this.inputs[i]!.byteLength >= n) return this.inputs.splice(i, 1)[0]!;
    }
    return new SharedArrayBuffer(Math.max(n, INPUT_BYTES));
  }

  /**
   * Seals every item (AES-256-GCM, fresh random nonce) and hashes (domain, meta, sealed) with
   * domainHash's framing, on one worker. Callers split large batches into several calls (~1 MiB
   * each) so both workers run.
   */
  async sealAndHash(items: SealItem[], domain: string): Promise<SealedItem[]> {
    let total = 0;
    for (const it of items) {
      if (it.key.length !== 32) throw new CryptoError('AES-256-GCM key must be 32 bytes');
      total += 32 + 12 + it.aad.length + it.meta.length + it.plaintext.length;
    }
    // Into a reused shared buffer: a fresh 1 MiB buffer per batch cost more in page faults (on this
    // VM, ~1 ms per MiB on the serving thread) than the copy itself. At most MAX_SEALS_IN_FLIGHT
    // batches hold one; the others wait their turn (a commit hands over 64 MiB at once).
    if (this.sealsInFlight >= MAX_SEALS_IN_FLIGHT) await new Promise<void>((r) => this.sealWaiters.push(r));
    this.sealsInFlight++;
    const input = this.takeInput(total);
    const buf = Buffer.from(input, 0, total);
    let o = 0;
    for (const it of items) {
      buf.set(it.key, o); o += 32;
      buf.writeUInt32BE(it.aad.length, o); o += 4; buf.set(it.aad, o); o += it.aad.length;
      buf.writeUInt32BE(it.meta.length, o); o += 4; buf.set(it.meta, o); o += it.meta.length;
      buf.writeUInt32BE(it.plaintext.length, o); o += 4; buf.set(it.plaintext, o); o += it.plaintext.length;
    }
    // Never post a Buffer from Node's 8 KiB pool: structured cloning copies its whole slab.
    const d = Buffer.from(domain, 'utf8');
    const prefix = new Uint8Array(4 + d.length);
    Buffer.from(prefix.buffer).writeUInt32BE(d.length, 0);
    prefix.set(d, 4);
    const id = this.nextId++;
    let r: Reply;
    try {
      r = await this.pick().request({ id, op: 'seal', in: input, len: total, count: items.length, hashPrefix: prefix }, [], total);
    } finally {
      if (this.inputs.length < MAX_SEALS_IN_FLIGHT) this.inputs.push(input);
      this.sealsInFlight--;
      this.sealWaiters.shift()?.();
    }
    const out = Buffer.from(r.buf!);
    const res: SealedItem[] = new Array(items.length);
    let at = 0;
    for (let i = 0; i < items.length; i++) {
      const n = items[i]!.plaintext.length + AES_GCM_OVERHEAD;
      const sealed = out.subarray(at, at + n);
      if (r.crcs) rememberCrc(sealed, r.crcs[i]!);
      res[i] = { sealed, hash: out.subarray(at + n, at + n + 32) };
      at += n + 32;
    }
    return res;
  }

  /**
   * Reads and opens sealed ranges of files on one worker. Per item: the plaintext, or a
   * DecryptError (tampered, moved, wrong key) / CryptoError (I/O: missing file, short read).
   */
  async openFileRanges(items: OpenItem[]): Promise<Array<Buffer | Error>> {
    let total = 0;
    for (const it of items) total += it.length;
    const packed = packItems(items, false);
    const id = this.nextId++;
    const transfer: ArrayBuffer[] = [packed.pos.buffer];
    if (packed.keys.buffer instanceof ArrayBuffer) transfer.push(packed.keys.buffer);
    const r = await this.pick().request({ id, op: 'open', ...packed }, transfer, total);
    const out = Buffer.from(r.buf!);
    const res: Array<Buffer | Error> = new Array(items.length);
    let at = 0;
    for (let i = 0; i < items.length; i++) {
      const n = Math.max(0, items[i]!.length - AES_GCM_OVERHEAD);
      if (r.status![i] === 1) res[i] = out.subarray(at, at + n);
      else {
        const msg = r.errors?.[i] ?? 'failed';
        res[i] = /Unsupported state|authenticate|not AES/.test(msg) ? new DecryptError(`AES-256-GCM: ${msg}`) : new CryptoError(`bulk read: ${msg}`);
      }
      at += n;
    }
    return res;
  }

  /**
   * Serves a read without the calling thread touching its data: the workers read and open
   * `items` (consecutive blocks of `blockSize` bytes of plaintext, the last one possibly shorter),
   * copy bytes [from, from + length) of their concatenation into `out` after its first `headerLen`
   * bytes (a header the caller wrote), and the last one to finish writes out[0, headerLen + length)
   * to `fd` in one write. Split over the workers; `out` must be a SharedArrayBuffer the caller does
   * not touch until this settles. Resolves 'written', or 'failed' when any item could not be opened
   * (tampered, moved, I/O) or the write failed — then nothing was written and the caller serves
   * the request itself.
   */
  async openRangesToFd(
    fd: number,
    out: SharedArrayBuffer,
    headerLen: number,
    items: OpenItem[],
    blockSize: number,
    from: number,
    length: number,
  ): Promise<'written' | 'failed'> {
    if (this.closed) throw new CryptoError('bulk crypto pool is closed');
    if (headerLen + length > out.byteLength) throw new CryptoError('reply buffer too small');
    // Shared keys: every part's message refers to the same bytes instead of a copy each.
    const { paths, pos, keys } = packItems(items, true);
    this.pick(); // starts the workers
    const parts = Math.min(this.workers.length, items.length);
    const ctl = new SharedArrayBuffer(8);
    new Int32Array(ctl)[0] = parts;
    const per = Math.ceil(items.length / parts);
    const jobs: Promise<Reply>[] = [];
    for (let p = 0; p < parts; p++) {
      const lo = p * per;
      const hi = Math.min(items.length, lo + per);
      const w = this.pick();
      const id = this.nextId++;
      let bytes = 0;
      for (let i = lo; i < hi; i++) bytes += items[i]!.length;
      jobs.push(w.request({
        id, op: 'toFd', fd, out, outLen: headerLen + length, headerLen, ctl, paths, pos, keys, lo, hi, bs: blockSize, from, length,
      }, [], bytes));
    }
    const res = await Promise.all(jobs);
    return res.some((r) => r.wrote) ? 'written' : 'failed';
  }

  /**
   * Starts the workers now and resolves once each has answered: a mount calls it when it opens, so
   * that its first large write does not pay for starting them (threads, their code compiled while
   * the write waits).
   */
  async start(): Promise<void> {
    if (this.closed) return;
    this.pick();
    await Promise.all(this.workers.map((w) => w.request({ id: this.nextId++, op: 'closeFiles' }, [], 0).catch(() => undefined)));
  }

  /**
   * Closes the files the workers keep open for reads (they reopen by path on the next use). Call it
   * after files were deleted — a log compaction's old segments — so their space is freed now and
   * not when the descriptor cache happens to evict them.
   */
  async closeFiles(): Promise<void> {
    if (this.closed) return;
    await Promise.all(this.workers.map((w) => {
      const id = this.nextId++;
      return w.request({ id, op: 'closeFiles' }, [], 0).catch(() => undefined);
    }));
  }

  /**
   * AES-256-GCM (key, 12-byte iv, associated data `aad`) of the concatenation of `parts`, on one
   * worker, `step` bytes at a time: each step's plaintext is copied into a reused shared buffer
   * (the pieces stay where they are: they are not the worker's to read) and its ciphertext handed to
   * `onStep` in order; resolves with the 16-byte tag. The caller's thread only copies, so a wire
   * frame of tens of MiB is encrypted beside it instead of on it (src/net/connection.ts).
   */
  async sealStream(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], step: number, onStep: (ciphertext: Buffer) => void): Promise<Buffer> {
    if (key.length !== 32) throw new CryptoError('AES-256-GCM key must be 32 bytes');
    if (iv.length !== 12) throw new CryptoError('AES-256-GCM nonce must be 12 bytes');
    const w = this.pick();
    const sid = this.nextId++;
    // Small arrays of their own: posting a view of Node's 8 KiB pool would clone the whole slab.
    await w.request({ id: this.nextId++, op: 'gcm-open', sid, key: Uint8Array.from(key), iv: Uint8Array.from(iv), aad: Uint8Array.from(aad) }, [], 0);
    const input = this.takeInput(step);
    const buf = Buffer.from(input, 0, step);
    let done = false;
    try {
      let fill = 0;
      const flush = async () => {
        const r = await w.request({ id: this.nextId++, op: 'gcm-update', sid, in: input, len: fill }, [], fill);
        fill = 0;
        onStep(Buffer.from(r.buf!));
      };
      for (const p of parts) {
        for (let at = 0; at < p.length;) {
          const k = Math.min(p.length - at, step - fill);
          buf.set(k === p.length ? p : p.subarray(at, at + k), fill);
          fill += k;
          at += k;
          if (fill === step) await flush();
        }
      }
      if (fill > 0) await flush();
      const r = await w.request({ id: this.nextId++, op: 'gcm-final', sid }, [], 0);
      done = true;
      return Buffer.from(r.buf!);
    } finally {
      if (this.inputs.length < MAX_SEALS_IN_FLIGHT) this.inputs.push(input);
      if (!done) void w.request({ id: this.nextId++, op: 'gcm-drop', sid }, [], 0).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const ws = this.workers;
    this.workers = [];
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

let shared: BulkCryptoPool | undefined;
/** The process-wide bulk pool (workers start on first use and never keep the process alive). */
export function defaultBulkPool(): BulkCryptoPool {
  if (!shared || shared.isClosed) shared = new BulkCryptoPool();
  return shared;
}
