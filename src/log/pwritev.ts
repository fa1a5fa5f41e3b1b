// pwritev of whole buffer lists: IOV_MAX-sized calls, short writes finished, inline or on the threadpool.
import type { LogIo } from './io.js';

const MAX_IOV = 1024;

/**
 * What is left of `chunk` after a short write of `written` bytes (whole buffers dropped, the first
 * remaining one sliced).
 */
function afterShortWrite(chunk: Buffer[], written: number): Buffer[] {
  let skip = written;
  while (skip >= chunk[0]!.length) skip -= chunk.shift()!.length;
  return skip > 0 ? [chunk[0]!.subarray(skip), ...chunk.slice(1)] : chunk;
}

/** Splits `bufs` into IOV_MAX-sized calls of `write`, finishing short writes; returns bytes written. */
function* pwritevPlan(bufs: Buffer[], pos: number): Generator<{ chunk: Buffer[]; at: number }, number, number> {
  const start = pos;
  for (let i = 0; i < bufs.length; i += MAX_IOV) {
    let chunk = bufs.slice(i, i + MAX_IOV);
    let want = 0;
    for (const b of chunk) want += b.length;
    while (want > 0) {
      const w: number = yield { chunk, at: pos };
      if (w === 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
      pos += w;
      want -= w;
      if (want > 0) chunk = afterShortWrite(chunk, w);
    }
  }
  return pos - start;
}

/** pwritevAll on the threadpool. */
export async function pwritevAllAsync(io: LogIo, fd: number, bufs: Buffer[], pos: number): Promise<void> {
  const plan = pwritevPlan(bufs, pos);
  for (let step = plan.next(); !step.done;) {
    const { chunk, at } = step.value;
    const w = await new Promise<number>((resolve, reject) => io.pwritevAsync(fd, chunk, at, (err, n) => (err ? reject(err) : resolve(n))));
    step = plan.next(w);
  }
}

/** pwritev of all of `bufs` at `pos`, in IOV_MAX-sized calls, finishing short writes. */
export function pwritevAll(io: LogIo, fd: number, bufs: Buffer[], pos: number): number {
  const plan = pwritevPlan(bufs, pos);
  let step = plan.next();
  while (!step.done) step = plan.next(io.pwritev(fd, step.value.chunk, step.value.at));
  return step.value;
}
