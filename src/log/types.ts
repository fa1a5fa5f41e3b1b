import type { ChainState, CutCertificate } from './chain-hash.js';
// The redo-log contract other layers code against (chain, view, fs, server).

/** none: buffered in memory; local: written to the OS; durable: fdatasync before resolving. */
export type Durability = 'none' | 'local' | 'durable';

/** Stable address of a record: segment number and offset of its frame in that segment. */
export interface LogPosition {
  segment: number;
  offset: number;
}

export interface LogRecord {
  seq: number;
  pos: LogPosition;
  payload: Buffer;
}

export interface OpenLogOptions {
  /** Chain directory (required unless memory). */
  dir?: string;
  /**
   * Keep a runway of written zeros past the active segment's last frame, so a durable append's
   * fdatasync need not grow the file (src/log/runway.ts). Default true for logs in files.
   */
  zeroRunway?: boolean;
  /** In-memory mode, same API. With `dir`, the name keys a process-wide memory directory (reopenable). */
  memory?: boolean;
  /** Written in every segment header, checked on open. */
  chainId: string;
  /** 32 bytes, written in the header, checked on open when given. */
  genesisHash?: Uint8Array;
  /** Rotation threshold in bytes (default 64 MiB). */
  segmentSize?: number;
  /** Default 16 MiB; larger appends reject with RecordTooLarge. */
  maxRecordSize?: number;
  /** No write lock, no truncation (a torn tail is reported, not repaired); follow() polls. */
  readOnly?: boolean;
  /** Remember the chain hash at this seq during the open scan (RedoLog.chain.probe): a stored head is compared with it. */
  chainHashAt?: number;
}

/** Signs a compaction cut (chain-hash.ts cutMessage): the signature and the signer's public key. */
export type Certify = (message: Buffer) => Promise<{ sig: Buffer; signer: Buffer }>;

export interface RecoveryReport {
  truncatedBytes: number;
  truncatedAt?: LogPosition;
  /** File in the log directory the cut bytes were copied to (when they were). */
  keptAside?: string;
  records: number;
}

export type CompactionStep =
  | 'after-write-new'
  | 'after-fsync-new'
  | 'after-manifest-tmp'
  | 'after-rename'
  | 'after-dir-fsync'
  | 'after-delete-old';

export interface CompactOptions {
  /** Tests: throw InjectedCrash at this step; the instance then behaves as crashed. */
  failAt?: CompactionStep;
  /** Tests: called when each step is reached (e.g. to SIGKILL the process there). */
  onStep?: (step: CompactionStep) => void;
  /** Called synchronously once the new segment set is live, before compact() yields again (old
   *  segments are deleted afterwards, between yields): callers that resolve records by position
   *  switch to `positions` here. */
  onSwitched?: (positions: Map<number, LogPosition>) => void;
  /** Signs the cut certificate the compaction leaves in the MANIFEST (unsigned without it). */
  certify?: Certify;
  /**
   * Segments kept as they are: not copied, every record in them kept (`keep` is not asked about
   * them). A compaction of only some segments adds to the disk only the copy of those, instead of
   * the copy of the whole log beside the old one until the switch (the space bound).
   */
  retain?: (seg: SegmentInfo) => boolean;
  /**
   * Records with a seq below this are dropped without being read (`keep` is not asked about
   * them), and a segment holding only such records is not opened at all: a caller that knows a
   * prefix of the log is dead (e.g. every staged commit was confirmed) drops it at the cost of the
   * switch alone, not a read-back and checksum of every byte it drops.
   */
  dropBefore?: number;
}

/** One segment of the log as the log lists them (oldest first). */
export interface SegmentInfo {
  id: number;
  /** Seq of its first and last record (0 when it holds none). */
  firstSeq: number;
  lastSeq: number;
  /** Bytes in the file up to its last frame, header included. */
  bytes: number;
  records: number;
  /** The segment appends go to. */
  active: boolean;
}

export interface CompactResult {
  /** New position of every record in the log after compaction (kept ones and those appended meanwhile). */
  positions: Map<number, LogPosition>;
  bytesBefore: number;
  bytesAfter: number;
}

export interface RedoLog {
  readonly chainId: string;
  readonly recovery: RecoveryReport;
  /** The history binding (chain-hash.ts): head (seq, chain hash), compaction cut, what the open scan found. */
  readonly chain: ChainState;
  /** Listens for (seq, chain hash) of the newest record known durable; returns the unsubscribe. */
  onDurable(cb: (head: { seq: number; hash: Buffer }) => void): () => void;
  /** Certifies a cut at the last record: the gaps below it are accepted from now on (--accept-rollback). */
  acceptHistory(certify?: Certify): Promise<void>;
  /**
   * A copy of a history compacted elsewhere (a replica of a server-compacted chain): records `cut`
   * (signed by whoever compacted it, checked above the log) and lets the next append take seq
   * `nextSeq` (past the last record, at most cut.seq + 1).
   */
  adoptCut?(cut: CutCertificate, nextSeq: number): Promise<void>;
  /** Seq the next append gets; seqs start at 1 (0 = none). */
  readonly nextSeq: number;
  /** Position of the last record. */
  readonly lastPos: LogPosition | null;
  /**
   * Default durability: 'durable'. Large payloads are written without being copied: they must not
   * change until the returned promise resolves.
   */
  /** Resolves with the record's seq, position and chain hash. */
  append(payload: Uint8Array, durability?: Durability): Promise<{ seq: number; pos: LogPosition; chainHash?: Buffer }>;
  appendBatch(payloads: Uint8Array[], durability?: Durability): Promise<Array<{ seq: number; pos: LogPosition; chainHash?: Buffer }>>;
  /**
   * One record whose payload is the concatenation of `parts`, written without joining them (a
   * commit of file blocks: the payloads are its pieces). Same rules as append.
   */
  appendParts?(parts: readonly Uint8Array[], durability?: Durability): Promise<{ seq: number; pos: LogPosition }>;
  /** Default 'durable'. */
  flush(durability?: Durability): Promise<void>;
  /** Synchronous pread; throws LogCorruptError on a bad frame. */
  read(pos: LogPosition): LogRecord;
  /** Bytes [start, start + length) of the payload of the record at `pos`, without reading or
   *  verifying the whole record (the frame length is checked, the CRC is not: the caller verifies
   *  the bytes, e.g. by hash). For loading one block out of a large commit record. */
  readSlice(pos: LogPosition, start: number, length: number): Buffer;
  /**
   * Where bytes [start, start + length) of the payload of the record at `pos` lie on disk, for a
   * reader on another thread (the view's bulk reads): file path and offset. Nothing is read or
   * checked (the reader verifies the bytes, e.g. by AEAD). null for an in-memory log, an unknown
   * segment or a range past what has been written.
   */
  fileRange?(pos: LogPosition, start: number, length: number): { path: string; offset: number } | null;
  /** Synchronous forward iteration (fast bulk load). */
  records(from?: { seq?: number; pos?: LogPosition }): Iterable<LogRecord>;
  /** Tail-follow: yields existing records from `from`, then new ones as they are written. */
  follow(from: { seq?: number; pos?: LogPosition }, signal?: AbortSignal): AsyncIterable<LogRecord>;
  /** Replace the log by a selection of its records. Records keep their seq; positions change.
   *  Appends that arrive during compaction are kept. Returns the new position of every kept seq. */
  compact(keep: (rec: LogRecord) => boolean, opts?: CompactOptions): Promise<CompactResult>;
  /** The segments, oldest first (the last one is the active one). */
  segmentList?(): SegmentInfo[];
  sizeBytes(): number;
  close(): Promise<void>;
}
