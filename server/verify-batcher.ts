// Signature checks of concurrent appends, batched: every commit that arrives in the same turn of
// the event loop (across connections and chains) goes to the worker pool in one verifyMany call,
// spread over all workers, instead of one pool round trip per commit.
import { type Commit, type CommitRejected, verifySignatures } from '../src/chain/index.js';
import type { CryptoPool } from '../src/crypto/index.js';

type Result = ReadonlySet<string> | CommitRejected;

export class VerifyBatcher {
  private queue: Array<{ commit: Commit; resolve: (r: Result) => void; reject: (e: Error) => void }> = [];
  private scheduled = false;

  constructor(private readonly pool: CryptoPool | null, private readonly maxBatch = 256) {}

  verify(commit: Commit): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.queue.push({ commit, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    verifySignatures(batch.map((b) => b.commit), this.pool).then(
      (rs) => rs.forEach((r, i) => batch[i]!.resolve(r!)),
      (e: Error) => batch.forEach((b) => b.reject(e)),
    );
  }
}
