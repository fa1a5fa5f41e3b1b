// Errors of the library API. Everything the API throws is an exported class: these, and the
// lower layers' own classes re-exported from the entry (NotFound, Conflict, NoWriteAuthority,
// NoReadKey, CommitRejected, LeaseHeld, ...), so callers catch by class, never by message.

export class AteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** openChain was given something it cannot open (a malformed name or URL). */
export class InvalidChainTarget extends AteError {}

/** A read-only chain was opened for a write, or it has no genesis and cannot be created read-only. */
export class ChainUnavailable extends AteError {}

/** A DAO's payload is not a value this API wrote (bytes that msgpack cannot decode). */
export class ValueDecodeError extends AteError {
  constructor(readonly key: string, cause: unknown) {
    super(`DAO ${key}: payload is not a msgpack value: ${(cause as Error)?.message ?? cause}`);
  }
}

/** A subscriber fell further behind than its buffer allows; it ended instead of growing without bound. */
export class SubscriptionOverflow extends AteError {
  constructor(readonly limit: number) {
    super(`subscription fell more than ${limit} commits behind and was closed; subscribe again from the current state`);
  }
}

/** A DaoRef names a chain the registry cannot open. */
export class UnknownChainRef extends AteError {}

/** A wait (reply, lease, event) did not finish within its timeout. */
export class TimeoutError extends AteError {
  constructor(readonly what: string, readonly ms: number) {
    super(`${what}: no answer within ${ms} ms`);
  }
}
