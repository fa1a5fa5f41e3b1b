import { constants as osc } from 'node:os';

/** Errno names the core may throw. One table maps them to numbers, for every transport. */
export type ErrnoName =
  | 'EPERM' | 'ENOENT' | 'EIO' | 'EBADF' | 'EAGAIN' | 'ENOMEM' | 'EACCES' | 'EBUSY' | 'EEXIST' | 'EXDEV'
  | 'ENOTDIR' | 'EISDIR' | 'EINVAL' | 'EMFILE' | 'EFBIG' | 'ENOSPC' | 'ESPIPE' | 'EROFS' | 'EMLINK'
  | 'ERANGE' | 'ENAMETOOLONG' | 'ENOSYS' | 'ENOTEMPTY' | 'ELOOP' | 'ENODATA' | 'ENXIO' | 'EOPNOTSUPP'
  | 'EDEADLK' | 'EINTR' | 'E2BIG' | 'ENOTSUP' | 'ETIMEDOUT';

export class FsError extends Error {
  constructor(readonly code: ErrnoName, message?: string) {
    super(message ?? code);
    this.name = 'FsError';
  }
  /** Positive errno number (Linux). */
  get errno(): number { return errnoOf(this.code); }
}

const table = osc.errno as Record<string, number>;
export function errnoOf(code: ErrnoName): number {
  const n = table[code];
  if (n === undefined) throw new Error(`unknown errno ${code}`);
  return n;
}

/**
 * Maps anything thrown by the core or below to a positive errno, in one place.
 * Typed errors from lower layers (no read key -> EACCES, read-only -> EROFS, disk full -> ENOSPC)
 * are recognised by their `name` so fs/ does not import every layer's error classes.
 */
export function toErrno(err: unknown): number {
  if (err instanceof FsError) return err.errno;
  const e = err as { name?: string; code?: string } | undefined;
  switch (e?.name) {
    case 'NoReadKey': case 'NoWriteAuthority': return errnoOf('EACCES');
    case 'ReadOnlyView': return errnoOf('EROFS');
    case 'DiskFull': return errnoOf('ENOSPC');
  }
  if (e?.code && typeof e.code === 'string' && table[e.code] !== undefined) return table[e.code]!;
  return errnoOf('EIO');
}

/**
 * A key this session does not hold (a file sealed for someone else's key, a write ACL that admits
 * none of ours): an answer (EACCES) like a mode bit's, not a failure to report.
 */
export function isMissingKey(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  return name === 'NoReadKey' || name === 'NoWriteAuthority';
}

/**
 * An FsError without a stack trace. Errno replies (ENOENT on lookup, ENODATA on getxattr) are
 * ordinary control flow on the hot path; capturing a stack costs ~5 µs per throw, measured here.
 * Without a message, one shared instance per code is returned (frozen: nobody can alter it).
 */
export function fsErr(code: ErrnoName, message?: string): FsError {
  if (message === undefined) {
    const c = shared.get(code);
    if (c !== undefined) return c;
  }
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  let e: FsError;
  try { e = new FsError(code, message); } finally { Error.stackTraceLimit = limit; }
  if (message === undefined) { Object.freeze(e); shared.set(code, e); }
  return e;
}
const shared = new Map<ErrnoName, FsError>();
