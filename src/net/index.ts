// Public API of the wire protocol and the replication client.
export * from './errors.js';
export { hostFingerprint, checkHostKey, defaultKnownHostsPath } from './known-hosts.js';
export { type Message, type Outgoing, type SignedHead, type WireRejectReason, MESSAGE_VERSION } from './messages.js';
export { Connection } from './connection.js';
export {
  PROTOCOL_VERSIONS, WIRE_FORMATS, connectClient, acceptClient,
  type ClientSession, type ServerSession, type ClientHandshakeOptions, type ServerHandshakeOptions,
} from './handshake.js';
export { ZERO_CHAIN_HASH, nextChainHash, headMessage, signHead, verifyHead } from './heads.js';
export { RemoteChain, parseRemoteUrl, DEFAULT_PORT, type RecoveryMode, type RemoteStatus, type RemoteChainOptions, type LeaseReply } from './remote-chain.js';
export * from './auth-protocol.js';
export * from './auth-client.js';
