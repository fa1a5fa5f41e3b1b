// Progress of the view's long operations — opening (checking the index against the log, replaying
// its tail, rebuilding it) and compaction's steps — reported to OpenViewOptions.onProgress, so
// that a CLI can draw a bar and `atefs status` can show what a mount is busy with.

export type ViewPhase =
  | 'download' // a remote chain: history from the server (records)
  | 'verify' // re-hashing the log behind the index's watermark
  | 'replay' // validating and applying the log after the watermark
  | 'rebuild' // validating and applying the whole log into a new index
  | 'compact-scan' // compaction: the records that live DAOs still need
  | 'compact-check' // compaction: replaying the candidate log into a scratch index
  | 'compact-copy' // compaction: writing the new segments and switching
  | 'compact-index'; // compaction: moving the index to the new positions

export type ProgressUnit = 'bytes' | 'records' | 'entries';

export interface ViewProgress {
  phase: ViewPhase;
  /**
   * Work done and expected in this phase, in `unit`s. The first report of a phase has done 0 and
   * its last done === total; in between, total can be an estimate (log bytes from payload bytes).
   */
  done: number;
  total: number;
  unit: ProgressUnit;
  /** Opening phases: records and events applied so far. */
  records?: number;
  events?: number;
}

/**
 * Bytes a record takes in the log beyond its payload (the frame header of src/log/format.ts):
 * the view counts payload bytes, the log's size counts frames.
 */
const FRAME_OVERHEAD = 16;

/** Estimated log bytes of `records` records of `payloadBytes` payload in all. */
export function logBytesOf(payloadBytes: number, records: number): number {
  return payloadBytes + records * FRAME_OVERHEAD;
}
