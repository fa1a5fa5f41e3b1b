// The data model of a chain: events, commits, ACLs, confidentiality grants and the genesis.
//
// Identifiers are lowercase hex strings in the API (cheap to compare and to use as Map/LMDB keys)
// and fixed-size binary in the encoded form (see codec.ts):
//   DaoKey     16 random bytes   - a record (DAO) of the chain
//   KeyId      32 bytes          - domain hash of an encoded public key (signing or KEM) or of a
//                                  symmetric read key: who may write / who may read
//   DataKeyId  16 bytes          - domain hash of a per-node data key (a lookup handle; the AEAD
//                                  tag is what proves a key right, so 128 bits is plenty)

export type DaoKey = string;
export type KeyId = string;
export type DataKeyId = string;

/** Tree edge: this node is a child of `key`, in collection `collection` (u32, 0 = default). */
export interface ParentLink {
  key: DaoKey;
  collection: number;
}

/**
 * A reader a data key is wrapped for: a symmetric read key (XChaCha20-Poly1305 wrap, for the
 * chain-wide key of a user or a group role) or a hybrid KEM public key (sealed box).
 */
export interface ReaderRef {
  kind: 'sym' | 'kem';
  id: KeyId;
}

/**
 * Read ACL of a node. 'inherit': use the parent's data key (root-level: the genesis root data key).
 * 'chain': a fresh data key wrapped for the chain-wide readers named in the genesis policy.
 * 'readers': a fresh data key wrapped for exactly these readers.
 * There is no plaintext mode: every payload is encrypted.
 */
export type ReadAcl =
  | { mode: 'inherit' }
  | { mode: 'chain' }
  | { mode: 'readers'; readers: ReaderRef[] };

/**
 * Write ACL of a node. 'inherit': the parent's (root-level: the root keys of the genesis).
 * 'nobody': immutable. 'any': a signature by at least one of the keys. 'all': signatures by every
 * listed key (multi-signature; a single specific key is 'any' or 'all' with one key).
 */
export type WriteAcl =
  | { mode: 'inherit' }
  | { mode: 'nobody' }
  | { mode: 'any'; keys: KeyId[] }
  | { mode: 'all'; keys: KeyId[] };

/** A data key wrapped for one reader. `sealed` is opaque ciphertext from src/crypto. */
export interface KeyWrap {
  reader: ReaderRef;
  sealed: Buffer;
}

/**
 * Confidentiality grant: wraps of data key `id`. The first grant of an id introduces the key (it
 * becomes owned by the node whose event carries it); later grants of the same id by the same node
 * add wraps for new readers (re-wrapping: old data stays as it is).
 */
export interface DataKeyGrant {
  id: DataKeyId;
  wraps: readonly KeyWrap[];
}

/**
 * Metadata of one event, i.e. of one version of one DAO. Every version is self-describing (parent
 * and ACLs are repeated), so the latest version alone is enough to rebuild the authority state.
 */
export interface EventMeta {
  /** Data key: the DAO this event is a version of. */
  key: DaoKey;
  /** Version of the DAO: exactly 1 + the previous version (1 for a new DAO). Anti-replay + conflicts. */
  version: number;
  /** This version deletes the DAO. A tombstone carries no payload. */
  tombstone: boolean;
  /** Tree edge; null = root-level node. */
  parent: ParentLink | null;
  /** Authorization: read ACL. */
  read: ReadAcl;
  /** Authorization: write ACL — who may change this DAO itself (a new version, a move, a tombstone). */
  write: WriteAcl;
  /**
   * Authorization: the children ACL — who may create children under this DAO (or move them
   * here), and what its descendants whose write ACL is 'inherit' inherit. Absent: the same as the
   * node's effective write ACL (every record written before the field existed). Never 'inherit'.
   * It lets a node admit more keys below it than on itself: a group root is changed only by the
   * group's owners and delegates while its contributors create files under it (authority.ts).
   */
  children?: WriteAcl;
  /**
   * Authorization: the admin ACL — who may change this DAO's ACLs (read, write, children, admin),
   * on top of its write ACL. Absent: the node's effective write ACL (every record written before
   * the field existed). Never 'inherit'. It lets a node admit writers of its content who may not
   * change who else may read or write it: a group-writable file's contributors, where only its
   * owner and the group's managers may change its mode (authority.ts).
   */
  admin?: WriteAcl;
  /** The node's own current data key; set iff `read.mode !== 'inherit'`. */
  nodeKey: DataKeyId | null;
  /** Confidentiality: data keys introduced or re-wrapped by this event. */
  grants: readonly DataKeyGrant[];
  /** Confidentiality: id ("key hash") of the data key the payload is sealed under; null iff no payload. */
  payloadKey: DataKeyId | null;
  /** Public-key publication: encoded public keys (signing or KEM) made known to the chain. */
  publish: readonly Buffer[];
  /** Type tag (e.g. 'inode', 'dentry', 'block'). Plaintext: never put user data in it. */
  type: string | null;
  /** Reply / correlation id: the DAO this one answers. */
  replyTo: DaoKey | null;
}

/** One event as stored: its decoded metadata, the exact bytes that were hashed, the sealed payload. */
export interface ChainEvent {
  meta: EventMeta;
  /** The exact encoded metadata (hashed as stored, never re-serialized). */
  metaBytes: Buffer;
  /** AEAD ciphertext as stored, or null. */
  payload: Buffer | null;
  /** domainHash('atefs/chain/event/v1', metaBytes, [hasPayload], payload) */
  hash: Buffer;
}

export interface ChainPolicy {
  /** Readers of data keys in 'chain' read mode and of the genesis root data key. */
  chainReaders: ReaderRef[];
  /** Development policy: root-level writes need only some valid signature, not a root key. */
  openRoot: boolean;
  /** Commits with a timestamp more than this ahead of the validator's clock are rejected. */
  futureToleranceMs: number;
  /**
   * Timestamps never go backwards in log order (validate.ts checkOrder). Set in every genesis made
   * since the rule exists; absent in older chains, whose writers did not clamp their clocks (a
   * commit signed first could be appended second), so loading them never refuses what they hold.
   */
  monotonicTime?: boolean;
}

export interface GenesisInfo {
  /** Chain name, e.g. 'acme/docs'. */
  name: string;
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** Encoded hybrid signing public keys allowed to write at root level. */
  rootKeys: Buffer[];
  policy: ChainPolicy;
  /** The data key of root-level nodes that inherit their read ACL, wrapped for policy.chainReaders. */
  rootDataKey: DataKeyGrant;
}

export interface CommitHeader {
  /** Genesis hash of the chain (chain id); null only in the genesis itself. */
  chain: Buffer | null;
  /** Commit time, ms since the epoch; applies to all its events. */
  timestamp: number;
  /** Present only in the genesis commit. */
  genesis: GenesisInfo | null;
  /**
   * Only in a sign-off (deferred.ts): hashes of earlier commits of this chain whose signatures were
   * deferred; the sign-off's signatures cover them. A sign-off carries no events.
   */
  signs?: Buffer[];
}

export interface CommitSignature {
  /** Encoded hybrid signing public key (carried inline: verification needs no state). */
  publicKey: Buffer;
  /** Hybrid signature over signatureMessage(commit hash). */
  signature: Buffer;
}

/** A decoded commit: hash-checked but not yet validated unless it came out of the validator/loader. */
export interface Commit {
  hash: Buffer;
  header: CommitHeader;
  headerBytes: Buffer;
  events: ChainEvent[];
  signatures: CommitSignature[];
  /** The exact record bytes (what is appended to the log and sent on the wire). */
  bytes: Buffer;
  /**
   * A commit built here also has its record as consecutive pieces — the payloads themselves, not
   * copies — with its size and where each event is in it; `bytes` is then joined on first use only.
   * A commit of file blocks is tens of MiB: joining it cost a pass over memory nobody needed, since
   * the log writes the pieces as they are.
   */
  parts?: Buffer[];
  size?: number;
  spans?: RecordSpan[];
}

/** Where an event's bytes are in its commit record (offsets from the record's first byte). */
export interface RecordSpan {
  metaStart: number;
  metaLen: number;
  /** -1 when the event has no payload. */
  payloadStart: number;
  payloadLen: number;
}

export interface SizeLimits {
  maxCommitBytes: number;
  maxEvents: number;
  maxMetaBytes: number;
  maxPayloadBytes: number;
  maxSignatures: number;
  maxGrantsPerEvent: number;
  maxWrapsPerGrant: number;
  maxAclKeys: number;
  maxTypeLength: number;
}

export const DEFAULT_LIMITS: Readonly<SizeLimits> = Object.freeze({
  maxCommitBytes: 64 * 1024 * 1024,
  maxEvents: 8192,
  maxMetaBytes: 256 * 1024,
  // A 1 MiB block plus AEAD overhead fits.
  maxPayloadBytes: 1024 * 1024 + 4096,
  maxSignatures: 16,
  maxGrantsPerEvent: 256,
  maxWrapsPerGrant: 256,
  maxAclKeys: 256,
  maxTypeLength: 64,
});

export const DEFAULT_FUTURE_TOLERANCE_MS = 5 * 60 * 1000;

export const INHERIT_READ: ReadAcl = Object.freeze({ mode: 'inherit' }) as ReadAcl;
export const INHERIT_WRITE: WriteAcl = Object.freeze({ mode: 'inherit' }) as WriteAcl;
