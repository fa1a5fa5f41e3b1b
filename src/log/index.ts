// Public entry point of the redo-log storage engine.
import { LogEngine } from './engine.js';
import type { OpenLogOptions, RedoLog } from './types.js';

export type {
  CompactionStep,
  CompactOptions,
  CompactResult,
  Durability,
  LogPosition,
  LogRecord,
  OpenLogOptions,
  RecoveryReport,
  RedoLog,
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
export { repairLog } from './repair.js';
export { DEFAULT_MAX_RECORD, DEFAULT_SEGMENT_SIZE } from './engine.js';

/** Opens (creating when needed) the log of one chain; recovers a torn tail; takes the writer lock. */
export function openLog(opts: OpenLogOptions): Promise<RedoLog> {
  return LogEngine.open(opts);
}
