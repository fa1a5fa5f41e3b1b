import type { Timespec } from './api.js';

/**
 * The wall clock with nanosecond resolution, for the times the filesystem sets itself (mtime and
 * ctime on write, create, rename...). Date.now() has milliseconds only: two changes in the same
 * millisecond got the same mtime, which make, rsync and backup tools read as "unchanged".
 *
 * process.hrtime.bigint() is monotonic with ns resolution but has no epoch: it is anchored to the
 * wall clock once, and re-anchored when the two drift apart by more than MAX_DRIFT_NS (the system
 * clock was set, or NTP slewed it over a long run), so times stay what `date` says.
 */

const MAX_DRIFT_NS = 100_000_000n; // 100 ms: well above Date.now()'s own 1 ms granularity
const NS_PER_MS = 1_000_000n;
const NS_PER_S = 1_000_000_000n;

let anchor = BigInt(Date.now()) * NS_PER_MS - process.hrtime.bigint();

/** Nanoseconds since the epoch. */
export function nowNs(): bigint {
  let t = anchor + process.hrtime.bigint();
  const wall = BigInt(Date.now()) * NS_PER_MS;
  const drift = t - wall;
  if (drift > MAX_DRIFT_NS || drift < -MAX_DRIFT_NS) {
    anchor = wall - process.hrtime.bigint();
    t = wall;
  }
  return t;
}

/** The current time as a Timespec (the filesystem's default clock). */
export function nowTimespec(): Timespec {
  const t = nowNs();
  return { sec: Number(t / NS_PER_S), nsec: Number(t % NS_PER_S) };
}
