// Public API of identities, sessions and token files.
export * from './errors.js';
export {
  type Principal,
  type PrincipalKind,
  type RolePurpose,
  type Identity,
  READ_KEY_BYTES,
  createIdentity,
  createGroupRole,
  principalFromSecrets,
  principalIds,
  readersOfPrincipal,
  isIdentity,
} from './identity.js';
export { Session, type SigningKeyEntry } from './session.js';
export {
  TOKEN_FORMAT,
  type Token,
  type EncodeTokenOptions,
  type DecodeTokenOptions,
  encodeToken,
  decodeToken,
  writeTokenFile,
  readTokenFile,
  writeSecretFile,
} from './token.js';
export { LOCAL_IDENTITY_FILE, type LocalIdentity, defaultConfigDir, loadOrCreateLocalIdentity } from './local.js';
export { PINS_FILE, type PinLookup, findPin, pinKeyOf, readPins, writePin } from './pins.js';
export { ensurePrivateConfigDir } from './config-dir.js';
export {
  HEADS_FILE, type ChainHead, ChainHistoryBroken, ChainRolledBack, HeadWriter, compareWithHead, headsKeyOf, readHead, writeHead,
} from './heads.js';
export { type GuardOptions, type GuardedHistory, type StoredHeadLookup, guardHistory, lookupHead } from './history-guard.js';
export { type LoginKeys, KeyringInvalid, deriveLoginKeys, sealKeyring, openKeyring, sealRoleKeys, openRoleKeys } from './login-keys.js';
