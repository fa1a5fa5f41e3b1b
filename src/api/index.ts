// ATE as a library: open a chain, store and load typed DAOs in signed transactions, subscribe to
// changes, take leases, reference DAOs across chains. Every error thrown is an exported class.
export { openChain, defaultChainsDir, type OpenChainOptions } from './open-chain.js';
export { Chain, type TransactOpts } from './chain.js';
export { Transaction, type Dao, type StoreOpts, type CommitOpts } from './transaction.js';
export { type ChangeNotice, type ChangedDao, type SubscribeOpts } from './subscription.js';
export { type LeaseService, LocalLeases, RemoteLeases } from './leases.js';
// A tcp:// chain's errors: the server unreachable (a lease request, a commit not confirmed in time), a commit refused.
export { NetError, Disconnected, RemoteRejected, OfflineRefused } from '../net/index.js';
export { ChainRegistry, isDaoRef, type DaoRef } from './refs.js';
export { collectionId, type Collection } from './collections.js';
export { encodeValue, decodeValue } from './values.js';
export {
  AteError, InvalidChainTarget, ChainUnavailable, ValueDecodeError, SubscriptionOverflow, UnknownChainRef, TimeoutError,
} from './errors.js';
// The lower layers' errors a caller of this API can meet.
export {
  ViewError, NotFound, NoWriteAuthority, Conflict, CommitRejected, TransactionClosed, ViewClosed, ReadOnlyView,
  LeaseHeld, LeaseNotOwner, IndexMismatch, IndexFailed, RecordUnreadable, NoReadKey, type Lease, type CommitScope,
} from '../view/index.js';
export { type DaoKey, type ReadAcl, type WriteAcl, type ReaderRef, type KeyId, INHERIT_READ, INHERIT_WRITE, publicKeyId, ChainNotPinned } from '../chain/index.js';
export { ChainHistoryBroken, ChainRolledBack } from '../session/index.js';
export {
  Session, createIdentity, createGroupRole, readersOfPrincipal, readTokenFile, writeTokenFile,
  SessionError, TokenExpired, TokenInvalid, BadPassphrase, PassphraseRequired, type Identity, type Principal,
} from '../session/index.js';
