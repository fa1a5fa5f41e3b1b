// Worker-thread pool for hybrid signatures: an ML-DSA-65 signature costs ~5 ms, which must never
// block the main thread (FUSE and the network are served there); batches of verifications are
// spread over all workers. Workers are unref'd while idle and ref'd while they owe a reply, so the
// pool never keeps a process alive but a pending sign() still completes at top level.
import { createRequire } from 'node:module';
import * as os from 'node:os';
import { pathToFileURL } from 'node:url';
import { WorkerChannel } from './worker-channel.js';
import { CryptoError } from './errors.js';
import { WORKER_SOURCE } from './pool-worker-source.js';
import {
  componentSeeds,
  decodeSignature,
  decodeSigningPublicKey,
  decodeSigningSecretKey,
  encodeSignature,
  SIGN_PREFIX,
} from './signatures.js';
import { ED25519_SIGNATURE_LEN } from './ed25519.js';

type PoolWorker = WorkerChannel<WorkerReply>;

interface WorkerReply {
  id: number;
  sig?: Uint8Array;
  results?: Uint8Array;
  error?: string;
}

interface WorkerUrls {
  mlDsa: string;
  crystals: string;
  utils: string;
  sha3: string;
}
let urlsCache: WorkerUrls | undefined;
function workerUrls(): WorkerUrls {
  // Resolved from this module's location so the worker imports the project's own copies.
  if (!urlsCache) {
    const req = createRequire(import.meta.url);
    const url = (spec: string) => pathToFileURL(req.resolve(spec)).href;
    urlsCache = {
      mlDsa: url('@noble/post-quantum/ml-dsa.js'),
      crystals: url('@noble/post-quantum/_crystals.js'),
      utils: url('@noble/post-quantum/utils.js'),
      sha3: url('@noble/hashes/sha3.js'),
    };
  }
  return urlsCache;
}

interface VerifyItem {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

export class CryptoPool {
  readonly size: number;
  private workers: PoolWorker[] = [];
  private nextId = 1;
  private closed = false;

  constructor(opts?: { size?: number }) {
    const size = opts?.size ?? os.availableParallelism();
    if (!Number.isInteger(size) || size < 1) throw new CryptoError(`invalid pool size ${size}`);
    this.size = size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private ensureWorkers(): PoolWorker[] {
    if (this.closed) throw new CryptoError('crypto pool is closed');
    while (this.workers.length < this.size) {
      this.workers.push(
        new WorkerChannel<WorkerReply>(WORKER_SOURCE, 'crypto worker', (w) => {
          this.workers = this.workers.filter((x) => x !== w);
        }, { urls: workerUrls() }),
      );
    }
    return this.workers;
  }

  private leastBusy(): PoolWorker {
    let best: PoolWorker | undefined;
    for (const w of this.ensureWorkers()) if (!best || w.pending.size < best.pending.size) best = w;
    return best!;
  }

  async sign(secretKey: Uint8Array, message: Uint8Array): Promise<Buffer> {
    const seeds = componentSeeds(decodeSigningSecretKey(secretKey));
    // A fresh (non-pooled) ArrayBuffer, so transferring it detaches nothing else.
    const buf = new Uint8Array(64 + SIGN_PREFIX.length + message.length);
    buf.set(seeds.edSeed, 0);
    buf.set(seeds.mlSeed, 32);
    buf.set(SIGN_PREFIX, 64);
    buf.set(message, 64 + SIGN_PREFIX.length);
    seeds.edSeed.fill(0);
    seeds.mlSeed.fill(0);
    const id = this.nextId++;
    const reply = await this.leastBusy().request({ id, op: 'sign', buf: buf.buffer }, [buf.buffer]);
    const sig = reply.sig!;
    return encodeSignature(sig.subarray(0, ED25519_SIGNATURE_LEN), sig.subarray(ED25519_SIGNATURE_LEN));
  }

  /** One boolean per item; malformed items are false without reaching a worker. Never rejects for bad input. */
  async verifyMany(items: VerifyItem[]): Promise<boolean[]> {
    const results: boolean[] = new Array<boolean>(items.length).fill(false);
    const valid: Array<{ index: number; edPk: Uint8Array; mlPk: Uint8Array; edSig: Uint8Array; mlSig: Uint8Array; message: Uint8Array }> = [];
    items.forEach((it, index) => {
      try {
        const pk = decodeSigningPublicKey(it.publicKey);
        const sig = decodeSignature(it.signature);
        if (!(it.message instanceof Uint8Array)) return;
        valid.push({ index, edPk: pk.ed, mlPk: pk.ml, edSig: sig.ed, mlSig: sig.ml, message: it.message });
      } catch {
        // malformed -> false
      }
    });
    if (valid.length === 0) return results;
    const workers = this.ensureWorkers();
    const chunks = Math.min(workers.length, Math.ceil(valid.length / 2));
    const per = Math.ceil(valid.length / chunks);
    const jobs: Promise<void>[] = [];
    for (let c = 0; c < chunks; c++) {
      const part = valid.slice(c * per, (c + 1) * per);
      if (part.length === 0) continue;
      let total = 0;
      for (const v of part) {
        total += v.edPk.length + v.mlPk.length + SIGN_PREFIX.length + v.message.length + v.edSig.length + v.mlSig.length;
      }
      const buf = new Uint8Array(total);
      const offsets = new Uint32Array(part.length * 10);
      let o = 0;
      let k = 0;
      const put = (b: Uint8Array) => {
        offsets[k++] = o;
        buf.set(b, o);
        o += b.length;
        offsets[k++] = o;
      };
      for (const v of part) {
        put(v.edPk);
        put(v.mlPk);
        // message field = SIGN_PREFIX || message, written contiguously
        offsets[k++] = o;
        buf.set(SIGN_PREFIX, o);
        o += SIGN_PREFIX.length;
        buf.set(v.message, o);
        o += v.message.length;
        offsets[k++] = o;
        put(v.edSig);
        put(v.mlSig);
      }
      const id = this.nextId++;
      const w = this.leastBusy();
      jobs.push(
        w.request({ id, op: 'verify', buf: buf.buffer, offsets }, [buf.buffer, offsets.buffer]).then((reply) => {
          const r = reply.results!;
          part.forEach((v, i) => {
            results[v.index] = r[i] === 1;
          });
        }),
      );
    }
    await Promise.all(jobs);
    return results;
  }

  /**
   * Poly1305 tag (16 bytes) of the file at `path`, as ChaCha20-Poly1305 with the file as associated
   * data under (key, nonce): a whole-file MAC computed off the main thread (the index seal).
   */
  async polyTagOfFile(path: string, key: Uint8Array, nonce: Uint8Array): Promise<Buffer> {
    const id = this.nextId++;
    const reply = await this.leastBusy().request({ id, op: 'polyFile', path, key: Uint8Array.from(key), nonce: Uint8Array.from(nonce) }, []);
    return Buffer.from(reply.sig!);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ws = this.workers;
    this.workers = [];
    for (const w of ws) {
      w.dead = true;
      w.rejectAll(new CryptoError('crypto pool closed'));
    }
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

let shared: CryptoPool | undefined;

/** Lazily created, shared pool (workers start on first use and are unref'd while idle). */
export function defaultPool(): CryptoPool {
  if (!shared || shared.isClosed) shared = new CryptoPool();
  return shared;
}
