// Public API of the materialized view: open a View over a chain's log, run DIO transactions.
export {
  View,
  type OpenViewOptions,
  type CommitScope,
  type DaoRecord,
  type ChangeEvent,
  type OpenReport,
  type ViewStats,
  type CompactionOptions,
  type CompactionReport,
  type RemoteSubmit,
} from './view.js';
export { type ViewProgress, type ViewPhase, type ProgressUnit } from './progress.js';
export { Dio, type StoreOptions, type ParentRef, type CommitResult } from './dio.js';
export type { AppliedChange } from './lmdb-state.js';
export { Leases, type Lease, type LeaseKey } from './leases.js';
export {
  CompactionPolicy,
  COMPACT_MODES,
  DEFAULT_COMPACT_POLICY,
  parseCompactMode,
  type CompactMode,
  type CompactPolicyOptions,
  type CompactReason,
} from './compaction-policy.js';
export {
  ViewError,
  NotFound,
  NoWriteAuthority,
  Conflict,
  CommitRejected,
  TransactionClosed,
  ViewClosed,
  ReadOnlyView,
  LeaseHeld,
  LeaseNotOwner,
  IndexMismatch,
  IndexFailed,
  RecordUnreadable,
  CompactionFailed,
} from './errors.js';
export { NoReadKey } from '../chain/index.js';
export type { DaoEntry, Watermark } from './index-store.js';
