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
  ASYNC: 0,
  BLOCKING: 1,
  STOP: 2,
} as const;

export const WAKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const { shared, path, idleMs } = workerData;
const STATE = ${WakeState.STATE}, BEAT = ${WakeState.BEAT};
const BLOCKING = ${WakeState.BLOCKING}, STOP = ${WakeState.STOP};
for (;;) {
  const st = Atomics.load(shared, STATE);
  if (st === STOP) break;
  if (st !== BLOCKING) { Atomics.wait(shared, STATE, st); continue; }
  const beat = Atomics.load(shared, BEAT);
  Atomics.wait(shared, STATE, BLOCKING, idleMs);
  if (Atomics.load(shared, STATE) !== BLOCKING || Atomics.load(shared, BEAT) !== beat) continue;
  try { statSync(path); } catch {}
  // If the reader did not park (it was busy after all), do not spin.
  if (Atomics.load(shared, STATE) === BLOCKING) Atomics.wait(shared, STATE, BLOCKING, idleMs);
}
`;
