// Public API of the chain layer: events and commits, codec, genesis, validation, tree authority,
// confidentiality, building and loading.
export * from './types.js';
export * from './errors.js';
export { publicKeyId, readKeyId, dataKeyId, newDaoKey, newDataKey, isDaoKey, DAO_KEY_BYTES, DATA_KEY_BYTES } from './ids.js';
export {
  COMMIT_FORMAT,
  encodeMeta,
  decodeMeta,
  encodeHeader,
  eventHash,
  commitHash,
  signatureMessage,
  makeEvent,
  hashCommitParts,
  encodeCommitParts,
  encodeCommitRecord,
  assembleCommit,
  decodeCommit,
  decodeEventAt,
} from './codec.js';
export {
  type NodeRecord,
  type DataKeyRecord,
  type Genesis,
  type CommitEffects,
  type AuthorityStateReader,
  type AuthorityState,
  MemoryAuthorityState,
  StateOverlay,
} from './state.js';
export {
  TreeError,
  type TreeProblem,
  type WriteRequirement,
  MAX_TREE_DEPTH,
  effectiveWriteOf,
  effectiveWriteUnder,
  effectiveWrite,
  effectiveDataKeyOf,
  effectiveDataKey,
  writeRequirements,
  labelledRequirements,
  type LabelledRequirement,
  describeRequirement,
  effectiveAdmin,
  effectiveAdminOf,
  childrenRightOf,
  sameAcls,
  admits,
  readersOf,
  isAncestorOrSelf,
} from './authority.js';
export {
  type Keyring,
  DataKeyCache,
  payloadAad,
  sealPayload,
  openPayload,
  wrapDataKey,
} from './confidentiality.js';
export { type GapHint, type GapHints, GapBridgingState, hintsOf, keepVersionsBefore, keysNamedByFailure, nodeAcrossGap } from './gaps.js';
export {
  type ValidationOptions,
  type ValidatedCommit,
  ChainValidator,
  verifySignatures,
  checkAgainstState,
  signersOf,
} from './validate.js';
export { type CreateGenesisOptions, createGenesis, toGenesisHash } from './genesis.js';
export { type PutOptions, type CommitBuilderOptions, CommitBuilder } from './builder.js';
export {
  type LoadOptions,
  type LoadProgress,
  type LoadedCommit,
  type ChainProblem,
  type ChainReport,
  loadChain,
  loadChainState,
  verifyChain,
  SignoffLookup,
} from './loader.js';
export { openEventPayload } from './read.js';
export { ChainNotPinned, type UnpinnedCheck, checkUnpinnedChain } from './pinning.js';
export { cutCertifier, cutProblem, genesisRootKeys } from './cut-signing.js';
export {
  type DeferredCheck,
  MAX_SIGNOFF_HASHES,
  SignoffIndex,
  deferredKeys,
  deferredMacKey,
  deferredSignature,
  eitherCheck,
  hasDeferredSignature,
  isDeferredSignature,
  macCheck,
} from './deferred.js';
