// Typed errors of the materialized view and the DIO. Everything src/view throws on purpose is a
// ViewError subclass, except NoReadKey, which belongs to the chain layer (confidentiality) and is
// re-thrown unchanged so callers map one class to EACCES.

export class ViewError extends Error {
  override name = 'ViewError';
}

/** No live DAO with that key (never stored, or deleted). */
export class NotFound extends ViewError {
  override name = 'NotFound';
  constructor(readonly key: string, detail = '') {
    super(`DAO ${key} not found${detail ? `: ${detail}` : ''}`);
  }
}

/** The session holds no key that the (previous) write ACL of a node admits. Maps to EACCES. */
export class NoWriteAuthority extends ViewError {
  override name = 'NoWriteAuthority';
  constructor(readonly key: string | null, detail: string) {
    super(`no write authority${key ? ` for DAO ${key}` : ''}: ${detail}`);
  }
}

/**
 * A DAO this transaction read (or stored on top of) was changed by another commit since.
 * Nothing of the transaction was applied; retry it from the start.
 */
export class Conflict extends ViewError {
  override name = 'Conflict';
  constructor(readonly key: string | null, detail: string) {
    super(`conflict${key ? ` on DAO ${key}` : ''}: ${detail}`);
  }
}

/** A commit was rejected by validation; nothing of it reached the log or the view. */
export class CommitRejected extends ViewError {
  override name = 'CommitRejected';
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** Transaction used after commit() or cancel(). */
export class TransactionClosed extends ViewError {
  override name = 'TransactionClosed';
}

/** The view was closed (or failed and closed itself). */
export class ViewClosed extends ViewError {
  override name = 'ViewClosed';
}

/** A write on a view opened read-only. */
export class ReadOnlyView extends ViewError {
  override name = 'ReadOnlyView';
}

/** A lease held by another owner (and not expired). */
export class LeaseHeld extends ViewError {
  override name = 'LeaseHeld';
  constructor(readonly key: Uint8Array, readonly owner: string, readonly expiresAt: number) {
    super(`lease on ${Buffer.from(key).toString('hex')} held by ${owner} until ${new Date(expiresAt).toISOString()}`);
  }
}

/** Release/renew of a lease by someone who does not own it. */
export class LeaseNotOwner extends ViewError {
  override name = 'LeaseNotOwner';
  constructor(readonly key: Uint8Array, readonly owner: string | null, readonly caller: string) {
    super(
      `lease on ${Buffer.from(key).toString('hex')} is ${owner === null ? 'not held' : `owned by ${owner}`}, not by ${caller}`,
    );
  }
}

/**
 * The persisted index does not describe this log (tampered or rolled-back log, index of another
 * chain, index ahead of the log). Only surfaced when automatic rebuild is disabled.
 */
export class IndexMismatch extends ViewError {
  override name = 'IndexMismatch';
}

/**
 * LMDB failed under the index and neither reopening nor rebuilding it from the log helped (see
 * View.recoverIndex). The log keeps every commit: the next open rebuilds the index.
 */
export class IndexFailed extends ViewError {
  override name = 'IndexFailed';
}

/**
 * A record that passed validation (its hash and signatures hold) whose content still cannot be
 * opened: a payload sealed under another key or malformed by its writer. Names the DAO and record.
 */
export class RecordUnreadable extends ViewError {
  override name = 'RecordUnreadable';
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** Compaction produced a log that does not validate to the same view; the old log is kept. */
export class CompactionFailed extends ViewError {
  override name = 'CompactionFailed';
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
  }
}
