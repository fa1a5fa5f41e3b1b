// Public entry point of the redo-log storage engine.
//
// Decisions (measured with `npm run bench:log`; see the closing note of issue 3):
// - No preallocation. A raw group commit into a zero-filled file measured 0.97x-1.51x of appending
//   (noisy, shared disk), before counting the cost of writing the zeros (every byte twice), and
//   zeros ahead of the tail would make "end of log" and "torn write into preallocated space"
//   indistinguishable by length alone. Appending keeps the tail rule simple: the file ends at the
//   last good frame.
// - fdatasync runs on the threadpool (fs.fdatasync) by default: with 64 appenders it measured on par
//   with an inline fdatasyncSync, and it keeps the event loop free to take appends, reads and FUSE
//   requests while the disk syncs (an inline sync would block it ~100% of the time under load).
// - Lock: an O_EXCL lock file holding "<pid> <process start time>" (Node has no flock); stale when
//   the process is gone or the PID was reused. Two processes taking over the same stale lock at
//   the same instant could both win (documented limitation of lock files without flock).
// - Recovery trusts only what verifies: damage followed by any verifiable frame is corruption, not
//   a torn tail. After a power loss (not a process crash), the kernel may have persisted later pages
//   of an unacknowledged write but not earlier ones; such a log stops with LogCorruptError and
//   repairLog() cuts it (no acknowledged record is lost: unacknowledged data only follows the last
//   fdatasync).
// - appendBatch is one write (one writev, one fdatasync) but not atomic: a crash can keep a prefix of
//   a batch, and so can DiskFull when the batch needs a new segment. One commit = one record.
// - Default durability of append/appendBatch/flush is 'durable'. On DiskFull the whole queued write
//   (including earlier 'none' appends that were not written yet) is dropped and seq rolls back.
import { LogEngine } from './engine.js';
import type { OpenLogOptions, RedoLog } from './types.js';

export type {
  Certify,
  CompactionStep,
  CompactOptions,
  CompactResult,
  Durability,
  LogPosition,
  LogRecord,
  OpenLogOptions,
  RecoveryReport,
  RedoLog,
  SegmentInfo,
} from './types.js';
export {
  DiskFull,
  InjectedCrash,
  LogClosedError,
  LogCorruptError,
  LogError,
  LogHeaderMismatch,
  LogLockedError,
  RecordTooLarge,
} from './errors.js';
export { type RepairResult, cutLog, repairLog } from './repair.js';
export {
  type ChainState, type CutCertificate, HASH_LEN, ZERO_HASH, chainStep, cutMessage, recordHash,
} from './chain-hash.js';
export { makeChainDirPrivate, makeDirPrivate, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './private-files.js';
export { DEFAULT_MAX_RECORD, DEFAULT_SEGMENT_SIZE } from './engine.js';

/** Opens (creating when needed) the log of one chain; recovers a torn tail; takes the writer lock. */
export function openLog(opts: OpenLogOptions): Promise<RedoLog> {
  return LogEngine.open(opts);
}
