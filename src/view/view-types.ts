// The view's public types: how a view is opened, what a load returns, what subscribers, stats and
// compaction report (src/view/view.ts is the view itself).
import type { Commit, DaoKey, DataKeyCache, Keyring, NodeRecord } from '../chain/index.js';
import type { BulkCryptoPool, CryptoPool } from '../crypto/index.js';
import type { RedoLog } from '../log/index.js';
import type { CompactPolicyOptions } from './compaction-policy.js';
import type { AppliedChange } from './lmdb-state.js';
import type { ViewProgress } from './progress.js';

/** Commit scopes: 'remote' (server-confirmed) arrives with replication and is 'durable' until then. */
export type CommitScope = 'none' | 'local' | 'durable' | 'remote';

export interface CompactionOptions extends CompactPolicyOptions {
  /** Tombstones younger than this are kept (clients offline that long still see deletions). Default 7 days. */
  tombstoneRetentionMs?: number;
  /** Run the policy automatically after commits and on its timer (default true unless mode 'never'). */
  auto?: boolean;
}

/**
 * A replicated view's own commits go to the server first (src/net RemoteChain); they are applied
 * here, in server order, once confirmed. Resolves with the seq and the changes applied.
 */
export interface RemoteSubmit {
  submit(commit: Commit, scope: CommitScope): Promise<{ seq: number; changes: AppliedChange[] }>;
}

export interface OpenViewOptions {
  log: RedoLog;
  /** The session's keys (signing, read, KEM). */
  keyring: Keyring;
  /** Pinned genesis hash; null = trust on first use (the caller pins what `genesisHash` returns). */
  pinnedGenesis: Uint8Array | string | null;
  /** Written to the log when it is empty (a new chain). */
  genesis?: Commit;
  /** LMDB directory of the index; omitted = a private temporary index, deleted on close. */
  indexPath?: string;
  pool?: CryptoPool | null;
  /**
   * Worker threads for bulk payloads: sealing and hashing file blocks on commit, reading and
   * opening them for fetchAsync. Without one everything runs on the calling thread.
   */
  bulkPool?: BulkCryptoPool | null;
  /** Unwrapped data keys (share with createGenesis so the creator writes at once). */
  keys?: DataKeyCache;
  /** 'auto' (default): a missing / stale / mismatched index is rebuilt; 'never': IndexMismatch. */
  rebuild?: 'auto' | 'never';
  /**
   * 'full' (default): re-hash the log behind the watermark on open (sequential read + SHA-256, no
   * decoding): a tampered log behind an intact index is detected. 'watermark': check only the
   * record at the watermark (open in time proportional to the tail only).
   */
  verify?: 'full' | 'watermark';
  onProgress?: (p: ViewProgress) => void;
  compaction?: CompactionOptions;
  /** Bytes of raw commit records cached for loads (default 64 MiB). */
  cacheBytes?: number;
  /**
   * Loads from commits larger than this read only the event's bytes (log.readSlice) instead of
   * the whole record, which is then not cached (default 256 KiB).
   */
  sliceThreshold?: number;
  /** Bytes of decrypted current versions cached for loads (default 32 MiB; 0 disables). */
  valueCacheBytes?: number;
  now?: () => number;
  /**
   * See ValidationOptions.backwardsToleranceMs: 0 by default (a local chain's timestamps never go
   * backwards); Infinity for the view of a server-ordered replicated chain (api/open-remote.ts).
   */
  backwardsToleranceMs?: number;
  readOnly?: boolean;
  /**
   * Commit with deferred signatures (src/chain/deferred.ts): a commit is durable and
   * MAC-authenticated at once and signed off in the background (deferred-signer.ts), so fsync does
   * not wait for a hybrid signature. Only for a log this session alone writes and never uploads
   * (a local mount): no other validator accepts a deferred commit before its sign-off.
   */
  deferSignatures?: boolean;
  /**
   * Replay stops after this seq: the chain as it was then (history mounts). Only with readOnly and
   * a private index (no indexPath): such a view never describes the log's present.
   */
  untilSeq?: number;
}

/** A loaded DAO: its plaintext payload and what the index knows about its version. */
export interface DaoRecord {
  key: DaoKey;
  version: number;
  parent: { key: DaoKey; collection: number } | null;
  type: string | null;
  /** Plaintext payload (null when the version has none). */
  data: Buffer | null;
  /** Commit timestamp of this version. */
  updatedAt: number;
  /** Log seq of the commit holding this version. */
  seq: number;
  node: NodeRecord;
}

/** What a subscriber is told after a commit is applied. */
export interface ChangeEvent {
  seq: number;
  commitHash: string;
  timestamp: number;
  /** Applied by this process (a DIO commit) rather than received. */
  local: boolean;
  changes: AppliedChange[];
}

export interface OpenReport {
  mode: 'fresh' | 'tail' | 'rebuild';
  reason: string | null;
  tailRecords: number;
  tailEvents: number;
  ms: number;
  /** The log was verified up to the index's watermark while the index seal was checked on a worker. */
  overlapped?: boolean;
}

export interface ViewStats {
  logBytes: number;
  /** Payload bytes of the live DAOs' current versions (the log also holds what was superseded or deleted). */
  liveBytes: number;
  records: number;
  watermarkSeq: number;
  daoCount: number;
  compacting: boolean;
  lastCompaction: CompactionReport | null;
  lastCompactionError: string | null;
  /** LMDB failures under a commit that the view recovered from by reopening or rebuilding the index. */
  indexRecoveries: number;
  /** Commits with deferred signatures not yet signed off; sign-offs appended by this view. */
  unsigned: number;
  signoffs: number;
}

export interface CompactionReport {
  reason: string;
  bytesBefore: number;
  bytesAfter: number;
  recordsBefore: number;
  recordsKept: number;
  ms: number;
  /** Longest time a commit waited on compaction work (ms). */
  maxWriterStallMs: number;
  /**
   * Why an automatic compaction left the log untouched (too little to reclaim), else null. A
   * skipped run moves the policy's baseline like a real one (no retry on every commit).
   */
  skipped: string | null;
}
