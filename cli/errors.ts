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
