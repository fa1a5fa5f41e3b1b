import { FsError, type ErrnoName } from './errors.js';

/**
 * What a failed commit means for the filesystem, and the error writers see.
 *
 * Every batch holds ALL dirty state, so a batch that cannot commit blocks every later change: a
 * failing commit must never be a silent retry loop behind a filesystem that keeps accepting
 * writes. While commits fail, the core refuses changes (see Committer.refusal):
 *  - 'transient': the condition can clear (disk full, an I/O or connection error). Retried on the
 *    commit timer; changes fail with ENOSPC (disk full) or EIO meanwhile; the first commit that
 *    succeeds lifts it.
 *  - 'permanent': this batch can never commit (the store rejected it: a missing parent, a
 *    validation error, a closed or read-only store). The mount turns read-only (EROFS); only an
 *    explicit sync (fsync, unmount) tries again.
 */
export type CommitFailureKind = 'transient' | 'permanent';

/** Errno codes of conditions that can clear by themselves. */
const TRANSIENT_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO', 'EAGAIN', 'EBUSY', 'EINTR', 'ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ENETUNREACH', 'EHOSTUNREACH']);

/** Default classification, by error name (lower layers' typed errors) and errno code. */
export function classifyCommitError(err: Error): CommitFailureKind {
  if (err.name === 'DiskFull') return 'transient';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return 'transient';
  return 'permanent';
}

/** Changes held in memory that no commit has persisted. */
export interface Uncommitted {
  /** Inode records (files, directories, links) created, changed or deleted. */
  inodes: number;
  /** Directory entries added, replaced or removed. */
  names: number;
  /** File data in dirty blocks (approximate: whole blocks). */
  bytes: number;
}

function size(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function describeUncommitted(u: Uncommitted): string {
  return `${u.inodes} inode record${u.inodes === 1 ? '' : 's'}, ${u.names} directory entr${u.names === 1 ? 'y' : 'ies'} and ${size(u.bytes)} of file data not committed`;
}

/**
 * A commit failed: what fsync, close and sync report (EIO, or ENOSPC when the disk is full), and
 * what an unmount that cannot commit throws. `error` is the store's error.
 */
export class CommitFailed extends FsError {
  constructor(readonly error: Error, readonly kind: CommitFailureKind, readonly uncommitted: Uncommitted) {
    super(errnoFor(error), `commit failed (${describeUncommitted(uncommitted)}): ${error.message}`);
    this.name = 'CommitFailed';
  }
}

function errnoFor(cause: Error): ErrnoName {
  return cause.name === 'DiskFull' || (cause as { code?: unknown }).code === 'ENOSPC' ? 'ENOSPC' : 'EIO';
}

/** What a change is refused with while commits fail. */
export function refusalFor(cause: Error, kind: CommitFailureKind): FsError {
  if (kind === 'permanent') return new FsError('EROFS', `read-only: a commit failed and cannot be retried (${cause.message})`);
  return new FsError(errnoFor(cause), `commits are failing (${cause.message}); changes are refused until one succeeds`);
}
