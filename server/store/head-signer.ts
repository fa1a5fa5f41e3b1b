// The signed head of a served chain, for both stores (hosted-chain.ts, jetstream-chain.ts). One
// signature covers every commit confirmed while the previous one was being made: a hybrid
// signature per commit would cap a chain at ~200 commits/s.
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
}

export class HeadSigner {
  private signed: SignedHead | null = null;
  private signing: Promise<SignedHead> | null = null;

  constructor(private readonly o: HeadSignerOptions) {}

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

  /** Resolves once the signature in progress (if any) is done, failed or not. */
  settled(): Promise<void> {
    return this.signing ? this.signing.then(() => undefined, () => undefined) : Promise.resolve();
  }
}
