// Typed errors of the wire protocol and the replication client.

export class NetError extends Error {
  override name = 'NetError';
}

/** The peer broke the protocol (bad frame, failed tag, unknown message, oversize length): the
 *  connection is closed, never resynchronised. */
export class ProtocolError extends NetError {
  override name = 'ProtocolError';
}

/** The handshake failed (no common version or format, bad signature, timeout). */
export class HandshakeError extends NetError {
  override name = 'HandshakeError';
}

/** The server's host key is not the one pinned for that address (or not the one demanded). */
export class HostKeyMismatch extends NetError {
  override name = 'HostKeyMismatch';
}

/** The connection went away (or was never there) while a command needed it. */
export class Disconnected extends NetError {
  override name = 'Disconnected';
}

/** The server showed a history that contradicts what this client has seen (rollback, fork, gap). */
export class ServerMisbehaved extends NetError {
  override name = 'ServerMisbehaved';
}

/** The server is up but cannot serve the chain for now (its store is starting or electing a
 *  leader): the client reconnects with backoff, as after a dropped connection. */
export class ServerUnavailable extends NetError {
  override name = 'ServerUnavailable';
}

/** A command refused because of the recovery mode (readonly while offline). */
export class OfflineRefused extends NetError {
  override name = 'OfflineRefused';
}

/** The server rejected a commit; `reason` is the typed reason from the wire. */
export class RemoteRejected extends NetError {
  override name = 'RemoteRejected';
  constructor(
    readonly reason: string,
    detail: string,
    readonly commitHash: string | null = null,
  ) {
    super(`server rejected commit ${commitHash ? commitHash.slice(0, 16) : '?'} (${reason}): ${detail}`);
  }
}
