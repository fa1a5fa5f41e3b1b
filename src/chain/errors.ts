// Typed errors of the chain layer. The fs maps them to errno in one place:
// NoReadKey -> EACCES, CommitRejected('authority') -> EACCES/EPERM, 'conflict' -> retry, others -> EIO.

export type RejectReason =
  /** Does not decode, wrong shape, over a size limit, duplicate DAO key in one commit. */
  | 'malformed'
  /** The stored commit hash does not match the recomputed one (corruption / tampering). */
  | 'hash'
  /** A signature does not verify, or there is none. */
  | 'signature'
  /** No valid signature by a key the previous effective write ACL admits; missing parent; cycle. */
  | 'authority'
  /** Timestamp beyond the future tolerance. */
  | 'future'
  /** Timestamp earlier than the newest commit before it in log order (timestamps never go backwards). */
  | 'backwards'
  /** A commit with this hash was already applied. */
  | 'replay'
  /** A DAO version that is not exactly previous + 1 (a stale write or a lost race). */
  | 'conflict'
  /** Commit of another chain, a second genesis, a genesis not matching the pinned hash. */
  | 'genesis'
  /** Data key grants / payload key ids inconsistent with the state. */
  | 'confidentiality';

export class ChainError extends Error {
  override name = 'ChainError';
}

export class CommitRejected extends ChainError {
  override name = 'CommitRejected';
  constructor(
    readonly reason: RejectReason,
    detail: string,
    /** Hex commit hash when known. */
    readonly commitHash: string | null = null,
    /** Index of the offending event in the commit, when there is one. */
    readonly eventIndex: number | null = null,
  ) {
    super(`commit ${commitHash ? commitHash.slice(0, 16) : '?'} rejected (${reason}): ${detail}`);
  }
}

/** Loading a log stopped at a record that failed validation. */
export class ChainLoadError extends ChainError {
  override name = 'ChainLoadError';
  constructor(
    readonly seq: number,
    readonly pos: unknown,
    readonly rejection: CommitRejected,
  ) {
    super(`chain load stopped at record seq ${seq} (pos ${formatPos(pos)}): ${rejection.message}`, { cause: rejection });
  }
  get reason(): RejectReason {
    return this.rejection.reason;
  }
}

/** The log's genesis does not hash to the pinned genesis hash (or the log has no genesis). */
export class GenesisMismatch extends ChainError {
  override name = 'GenesisMismatch';
}

/** The session holds no key that opens the data key a payload is sealed under. Maps to EACCES. */
export class NoReadKey extends ChainError {
  override name = 'NoReadKey';
  constructor(
    readonly dataKeyId: string,
    detail = 'no key in the session opens this data key',
  ) {
    super(`no read key for data key ${dataKeyId}: ${detail}`);
  }
}

/** The session holds no signing key that the write ACL admits (raised when building, not validating). */
export class NotAuthorized extends ChainError {
  override name = 'NotAuthorized';
}

export function formatPos(pos: unknown): string {
  if (pos === null || pos === undefined) return '?';
  if (typeof pos === 'object') {
    try {
      return JSON.stringify(pos);
    } catch {
      return String(pos);
    }
  }
  return String(pos);
}
