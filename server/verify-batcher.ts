// Signature checks of concurrent appends, batched: every commit that arrives in the same turn of
// the event loop (across connections and chains) goes to the worker pool together, instead of one
// pool round trip per commit. The batch is handed over in small groups, each answered on its own:
// with one verifyMany for all of it, each worker answered its whole half at once, so the first
// commits of a batch waited for the last ones, their confirmations went out in one burst, and the
// workers then sat idle until the clients' next commits arrived. Answered group by group, early
// commits are sequenced, stored and confirmed (and their clients send again) while the workers
// still verify the rest.
import { type Commit, type CommitRejected, verifySignatures } from '../src/chain/index.js';
import type { CryptoPool } from '../src/crypto/index.js';

type Result = ReadonlySet<string> | CommitRejected;

/** Commits per group: enough that a postMessage is small beside the ~1 ms per verification. */
export const VERIFY_GROUP = 4;

export class VerifyBatcher {
  private queue: Array<{ commit: Commit; resolve: (r: Result) => void; reject: (e: Error) => void }> = [];
  private scheduled = false;

  constructor(private readonly pool: CryptoPool | null, private readonly maxBatch = 256, private readonly group = VERIFY_GROUP) {}

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
    // Queued in arrival order: the pool hands each group to its least busy worker, and a worker
    // answers its groups in the order they came, so the earliest commits are answered first.
    for (let i = 0; i < batch.length; i += this.group) {
      const part = batch.slice(i, i + this.group);
      verifySignatures(part.map((b) => b.commit), this.pool).then(
        (rs) => rs.forEach((r, k) => part[k]!.resolve(r!)),
        (e: Error) => part.forEach((b) => b.reject(e)),
      );
    }
  }
}
