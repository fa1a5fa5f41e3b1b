/** A mistake the user can fix: printed as one line, never as a stack trace. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}

export class NotImplemented extends UserError {
  constructor(what: string) {
    super(`${what}: not implemented yet`, 2);
    this.name = 'NotImplemented';
  }
}

/** Runs a CLI body: user errors become one line on stderr and a non-zero exit. */
export async function runCli(body: () => Promise<unknown>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    const e = err as Error;
    process.stderr.write(`error: ${e?.message ?? String(err)}\n`);
    if (process.env.ATEFS_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
    process.exitCode = 1;
  }
}

/** Typed failures of opening a chain become one clear line; anything else stays an error. */
export function chainOpenError(e: unknown): Error {
  const err = e as Error;
  switch (err?.name) {
    case 'LogLockedError': return new UserError(`the chain is in use by another process: ${err.message}`);
    case 'LogCorruptError': return new UserError(`the chain's log is damaged: ${err.message} (see 'atefs verify' and 'atefs repair')`);
    case 'GenesisMismatch': case 'LogHeaderMismatch': return new UserError(`refusing a chain that is not the one pinned: ${err.message}`);
    // A record of the log that fails validation on load: the message names it (seq, segment, offset).
    case 'CommitRejected': return new UserError(`the chain's log is damaged: ${err.message} (see 'atefs verify' and 'atefs repair')`);
    case 'ChainNotPinned': return new UserError(`refusing an unpinned chain: ${err.message}`);
    // Freshness and history (src/session/history-guard.ts): the message says how to accept it.
    case 'ChainRolledBack': return new UserError(`refusing a rolled-back chain: ${err.message}`);
    case 'ChainHistoryBroken': return new UserError(`refusing a chain with a broken history: ${err.message}`);
    case 'DiskFull': return new UserError(`disk full: ${err.message}`);
    // Written by a newer atefs (fs/chain-store/codec.ts FS_FEATURES): the message says to upgrade.
    case 'FsFeatureUnknown': return new UserError(`refusing the chain: ${err.message}`);
    default: return err instanceof Error ? err : new Error(String(e));
  }
}
