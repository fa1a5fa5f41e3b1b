// Change subscriptions as async iterators: every commit applied to the view (own or received)
// becomes one notice, in commit order. The buffer is bounded: a consumer that stops reading is
// ended with SubscriptionOverflow instead of holding every later commit in memory.
import type { DaoKey } from '../chain/index.js';
import type { ChangeEvent, View } from '../view/index.js';
import { SubscriptionOverflow } from './errors.js';

export interface ChangedDao {
  key: DaoKey;
  version: number;
  deleted: boolean;
  type: string | null;
  parent: { key: DaoKey; collection: number } | null;
}

export interface ChangeNotice {
  seq: number;
  commitHash: string;
  timestamp: number;
  /** Committed by this process (rather than received from elsewhere). */
  local: boolean;
  changes: ChangedDao[];
}

export interface SubscribeOpts {
  /** Only changes of DAOs with this type tag (the notice is skipped when none is left). */
  type?: string;
  /** Only children of this parent. */
  parent?: DaoKey;
  /** Commits buffered before the subscription is ended with SubscriptionOverflow (default 10,000). */
  buffer?: number;
  signal?: AbortSignal;
}

export function subscribe(view: View, opts: SubscribeOpts = {}): AsyncIterableIterator<ChangeNotice> {
  const limit = opts.buffer ?? 10_000;
  const queue: ChangeNotice[] = [];
  let waiting: ((r: IteratorResult<ChangeNotice>) => void) | null = null;
  let failed: ((e: Error) => void) | null = null;
  let error: Error | null = null;
  let done = false;

  const keep = (c: ChangeEvent['changes'][number]): boolean =>
    (opts.type === undefined || c.type === opts.type) && (opts.parent === undefined || c.after?.key === opts.parent);

  const finish = (): void => {
    if (done) return;
    done = true;
    unsubscribe();
    opts.signal?.removeEventListener('abort', finish);
    const ok = waiting;
    const no = failed;
    waiting = failed = null;
    if (error && no) {
      no(error);
      error = null;
    } else ok?.({ value: undefined, done: true });
  };

  const unsubscribe = view.subscribe((e) => {
    if (done) return;
    const changes = e.changes.filter(keep).map((c) => ({ key: c.key, version: c.version, deleted: c.deleted, type: c.type, parent: c.after }));
    if (changes.length === 0) return;
    const notice: ChangeNotice = { seq: e.seq, commitHash: e.commitHash, timestamp: e.timestamp, local: e.local, changes };
    if (waiting) {
      const w = waiting;
      waiting = failed = null;
      w({ value: notice, done: false });
      return;
    }
    if (queue.length >= limit) {
      error = new SubscriptionOverflow(limit);
      finish();
      return;
    }
    queue.push(notice);
  });
  opts.signal?.addEventListener('abort', finish);
  if (opts.signal?.aborted) finish();

  const it: AsyncIterableIterator<ChangeNotice> = {
    next(): Promise<IteratorResult<ChangeNotice>> {
      const n = queue.shift();
      if (n) return Promise.resolve({ value: n, done: false });
      if (error) {
        const e = error;
        error = null;
        return Promise.reject(e);
      }
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((ok, no) => {
        waiting = ok;
        failed = no;
      });
    },
    return(): Promise<IteratorResult<ChangeNotice>> {
      queue.length = 0;
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}
