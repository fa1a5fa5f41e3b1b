// The signed head of a served chain, for both stores (hosted-chain.ts, jetstream-chain.ts). One
// signature covers every commit confirmed while the previous one was being made: a hybrid
// signature per commit would cap a chain at ~200 commits/s. After commits, heads are signed at
// most once per `minIntervalMs` (a trailing signature covers the rest): back to back, signing
// took a whole core of a busy server (~5 ms of ML-DSA each), which its clients' commits needed.
// A subscriber that asks for the head (end of history) is answered at once, never throttled.
import type { CryptoPool } from '../../src/crypto/index.js';
import { type SignedHead, signHead } from '../../src/net/index.js';

export interface HeadSignerOptions {
  signingKey: Buffer;
  pool: CryptoPool | null;
  /** The chain's genesis hash (a JetStream chain learns it from its first message). */
  genesisHash(): Buffer;
  /** Newest confirmed seq. */
  confirmedSeq(): number;
  /** The chain hash at `seq`. */
  chainHashAt(seq: number): Buffer;
  /** A head newer than every one before it was signed. */
  onSigned(head: SignedHead): void;
  /** Least time between two signatures started by committed() (default 200 ms). */
  minIntervalMs?: number;
}

export const DEFAULT_HEAD_INTERVAL_MS = 200;

export class HeadSigner {
  private signed: SignedHead | null = null;
  private signing: Promise<SignedHead> | null = null;
  private lastStarted = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(private readonly o: HeadSignerOptions) {}

  /** Commits were confirmed: their head is signed now, or after the interval since the last one. */
  committed(): void {
    if (this.timer || this.stopped) return;
    const wait = this.lastStarted + (this.o.minIntervalMs ?? DEFAULT_HEAD_INTERVAL_MS) - performance.now();
    // A failed signature (the pool closing at shutdown) only delays the head; the next commit re-signs.
    if (wait <= 0) {
      this.signLatest().catch(() => undefined);
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.signLatest().catch(() => undefined);
    }, wait);
    this.timer.unref?.();
  }

  /** The signed head at the newest confirmed seq (signing it if needed). */
  async head(): Promise<SignedHead> {
    for (;;) {
      const seq = this.o.confirmedSeq();
      if (this.signed && this.signed.seq === seq) return this.signed;
      await this.signLatest();
      if (this.signed && this.signed.seq >= seq) return this.signed;
    }
  }

  /** Signs the newest confirmed seq after the signature in progress, if any. */
  signLatest(): Promise<SignedHead> {
    if (this.signing) return this.signing.then(() => this.signLatest());
    const seq = this.o.confirmedSeq();
    if (this.signed?.seq === seq) return Promise.resolve(this.signed);
    this.lastStarted = performance.now();
    this.signing = signHead(this.o.signingKey, this.o.genesisHash(), seq, this.o.chainHashAt(seq), this.o.pool).then((h) => {
      this.signing = null;
      if (!this.signed || h.seq > this.signed.seq) {
        this.signed = h;
        this.o.onSigned(h);
      }
      return h;
    }, (e: Error) => {
      this.signing = null;
      throw e;
    });
    return this.signing;
  }

  /** Resolves once the signature in progress (if any) is done, failed or not; no throttled
   *  signature starts afterwards (the chain is closing and signs its last head itself). */
  settled(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    return this.signing ? this.signing.then(() => undefined, () => undefined) : Promise.resolve();
  }
}
