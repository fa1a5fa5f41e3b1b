// Typed errors of the redo log. Everything src/log throws on purpose is a LogError subclass;
// the fs layer maps them to errno in one place (DiskFull -> ENOSPC, LogCorruptError -> EIO, ...).

export class LogError extends Error {
  override name = 'LogError';
}

/** A frame or header whose bytes do not verify, at a place that cannot be a torn tail. */
export class LogCorruptError extends LogError {
  override name = 'LogCorruptError';
  constructor(
    readonly segment: number,
    readonly offset: number,
    readonly file: string,
    detail: string,
  ) {
    super(`redo log corrupt in segment ${segment} (${file}) at offset ${offset}: ${detail}`);
  }
}

/** Another writer (this process or another one) holds the chain directory. */
export class LogLockedError extends LogError {
  override name = 'LogLockedError';
}

/** ENOSPC / EFBIG while writing. Nothing of the failed write stays in the log. */
export class DiskFull extends LogError {
  override name = 'DiskFull';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export class RecordTooLarge extends LogError {
  override name = 'RecordTooLarge';
}

/** The directory belongs to another chain (chain id or genesis hash differ). */
export class LogHeaderMismatch extends LogError {
  override name = 'LogHeaderMismatch';
}

/** Operation on a closed log, or on one that failed (fsync error, injected crash). */
export class LogClosedError extends LogError {
  override name = 'LogClosedError';
}

/** Thrown by compact() at an injected failure point (tests). */
export class InjectedCrash extends LogError {
  override name = 'InjectedCrash';
}

export function isDiskFullCode(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EFBIG' || code === 'EDQUOT';
}
