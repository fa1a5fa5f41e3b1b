// Typed errors of identities, sessions and token files (mapped to exit codes / errno in one place).

export class SessionError extends Error {
  override name = 'SessionError';
}

/** The token's expiry time has passed. */
export class TokenExpired extends SessionError {
  override name = 'TokenExpired';
  constructor(readonly expiredAt: number) {
    super(`token expired at ${new Date(expiredAt).toISOString()}`);
  }
}

/** The passphrase does not open the token (or the sealed part was tampered with). */
export class BadPassphrase extends SessionError {
  override name = 'BadPassphrase';
}

/** The token is sealed under a passphrase and none was given. */
export class PassphraseRequired extends SessionError {
  override name = 'PassphraseRequired';
}

/** Not a token, an unknown version, or a file whose integrity check / issuer signature fails. */
export class TokenInvalid extends SessionError {
  override name = 'TokenInvalid';
}
