import { performance } from 'node:perf_hooks';
import type { CryptoPool } from '../../src/crypto/index.js';

/**
 * Where a chain store's commits spend their time, for the mount's stats file and bench:fs
 * ("signing under 10% of untar time", issue 6). All times are wall-clock milliseconds, summed.
 *  - buildMs: main thread, applying a batch's records to DIOs (lookups, name keys, copies);
 *  - commitMs: from dio.commit() to its resolution: sealing and hashing (main thread), signing
 *    (pool worker), validation, the log append and the index update;
 *  - signMs: from pool.sign() to its result: the signature on a worker plus the hand-offs (the
 *    worker's reply waits for the event loop, which a busy request loop may hold for a slice).
 *    Signing does not occupy the serving thread; this is what it adds to a commit's latency.
 */
export interface CommitTimings {
  /** DIO commits (a batch over the commit budget becomes several). */
  commits: number;
  /** Records (events) in those commits. */
  events: number;
  buildMs: number;
  commitMs: number;
  signs: number;
  signMs: number;
}

export function emptyTimings(): CommitTimings {
  return { commits: 0, events: 0, buildMs: 0, commitMs: 0, signs: 0, signMs: 0 };
}

/**
 * The same pool with sign() timed into `t`. A Proxy whose methods run on the pool itself (never
 * an Object.create copy: the pool's counters and worker list must stay one), so verification and
 * the pool's lifecycle are untouched.
 */
export function timedSigningPool(pool: CryptoPool, t: CommitTimings): CryptoPool {
  const sign = async (secretKey: Uint8Array, message: Uint8Array): Promise<Buffer> => {
    const t0 = performance.now();
    try {
      return await pool.sign(secretKey, message);
    } finally {
      t.signs++;
      t.signMs += performance.now() - t0;
    }
  };
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'sign') return sign;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
