/**
 * The waker: a tiny worker thread that unblocks the blocking reader when the mount goes quiet.
 *
 * The serving thread sits in readSync on /dev/fuse and cannot be interrupted from JavaScript. While
 * it is in that state (STATE = BLOCKING) and the request counter (BEAT) has not moved for `idleMs`,
 * the waker stats a reserved name in the mount root. The kernel turns that into a LOOKUP, the
 * session answers ENOENT (never cached) and the loop parks on a threadpool read, so the event loop
 * runs again (timers, signals, sockets) while the mount is idle. One extra request per quiet spell.
 *
 * The source is evaluated as a string so it works the same from dist/ and from the TS sources.
 */
export const WakeState = {
  /** Index of the state word in the shared Int32Array. */
  STATE: 0,
  /** Index of the request counter. */
  BEAT: 1,
  /**
   * Index of the waker's "waiting for the reader to block" flag: the reader notifies only then. A
   * notify on every switch to blocking woke the waker thread once per request cycle (an fsync per
   * write: a thread wake-up each, on 2 cores), to find it had nothing to do.
   */
  SLEEPING: 2,
  ASYNC: 0,
  BLOCKING: 1,
  STOP: 2,
} as const;

export const WAKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const { shared, path, idleMs } = workerData;
const STATE = ${WakeState.STATE}, BEAT = ${WakeState.BEAT}, SLEEPING = ${WakeState.SLEEPING};
const BLOCKING = ${WakeState.BLOCKING}, STOP = ${WakeState.STOP};
for (;;) {
  const st = Atomics.load(shared, STATE);
  if (st === STOP) break;
  if (st !== BLOCKING) {
    // Flag first, then wait on the state read above: a reader that blocks after the flag notifies,
    // one that blocked before it changed the state, and the wait returns at once.
    Atomics.store(shared, SLEEPING, 1);
    Atomics.wait(shared, STATE, st);
    Atomics.store(shared, SLEEPING, 0);
    continue;
  }
  const beat = Atomics.load(shared, BEAT);
  Atomics.wait(shared, STATE, BLOCKING, idleMs);
  if (Atomics.load(shared, STATE) !== BLOCKING || Atomics.load(shared, BEAT) !== beat) continue;
  try { statSync(path); } catch {}
  // If the reader did not park (it was busy after all), do not spin.
  if (Atomics.load(shared, STATE) === BLOCKING) Atomics.wait(shared, STATE, BLOCKING, idleMs);
}
`;
