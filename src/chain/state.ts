// The authority state: what validation needs to know about the chain so far (nodes with their
// parent and ACLs, data keys with their wraps, published public keys, seen commit hashes, the
// genesis). Kept behind an interface so the view layer can back it with LMDB for big chains; the
// in-memory implementation here serves tests, small chains and the overlay of a commit in flight.
import type { Commit, DaoKey, DataKeyId, GenesisInfo, KeyId, KeyWrap, ParentLink, ReadAcl, WriteAcl } from './types.js';

/** The latest version of a node, as far as authority and confidentiality are concerned. */
export interface NodeRecord {
  key: DaoKey;
  version: number;
  /** Last version was a tombstone. Kept (not removed) so versions stay monotonic and orphans resolve ACLs. */
  deleted: boolean;
  parent: ParentLink | null;
  read: ReadAcl;
  write: WriteAcl;
  /** Children ACL (EventMeta.children); absent: the same as the node's effective write ACL. */
  children?: WriteAcl;
  /** Admin ACL (EventMeta.admin); absent: the same as the node's effective write ACL. */
  admin?: WriteAcl;
  /** Current own data key (read ACL set), else null. */
  nodeKey: DataKeyId | null;
  /** Every data key this node introduced, oldest first (re-wrapped when readers are added). */
  keys: readonly DataKeyId[];
  type: string | null;
  /** Timestamp of the commit that wrote this version. */
  updatedAt: number;
}

export interface DataKeyRecord {
  id: DataKeyId;
  /** Node that introduced the key; null for the genesis root data key. */
  owner: DaoKey | null;
  wraps: readonly KeyWrap[];
}

/** A validated genesis: the root of trust of a chain. */
export interface Genesis {
  /** The genesis commit hash = the chain id clients pin. */
  hash: Buffer;
  info: GenesisInfo;
  /** publicKeyId of each root key. */
  rootKeyIds: KeyId[];
}

/** What accepting one commit changes; computed by validation, written by applyEffects. */
export interface CommitEffects {
  commitHash: Buffer;
  timestamp: number;
  genesis: Genesis | null;
  /** New latest versions (one per DAO touched). */
  nodes: NodeRecord[];
  /** New or extended data key records (full records, wraps merged). */
  dataKeys: DataKeyRecord[];
  /** Newly published public keys by id. */
  publicKeys: Array<[KeyId, Buffer]>;
}

export interface AuthorityStateReader {
  getGenesis(): Genesis | undefined;
  getNode(key: DaoKey): NodeRecord | undefined;
  getDataKey(id: DataKeyId): DataKeyRecord | undefined;
  getPublicKey(id: KeyId): Buffer | undefined;
  hasCommit(hash: Buffer): boolean;
  /**
   * Timestamp of the newest commit applied (the last one in log order; genesis included), or
   * undefined when the state cannot tell. The validator refuses a commit earlier than this.
   */
  latestTimestamp?(): number | undefined;
}

export interface AuthorityState extends AuthorityStateReader {
  /** Applies the effects of an accepted commit (synchronously, all or nothing). */
  applyEffects(effects: CommitEffects): void;
}

export class MemoryAuthorityState implements AuthorityState {
  private genesis: Genesis | undefined;
  readonly nodes = new Map<DaoKey, NodeRecord>();
  readonly dataKeys = new Map<DataKeyId, DataKeyRecord>();
  readonly publicKeys = new Map<KeyId, Buffer>();
  // Hex strings: Buffers are compared by identity in a Set.
  readonly commits = new Set<string>();
  /** Number of commits applied (genesis included). */
  applied = 0;
  lastTimestamp = 0;

  getGenesis(): Genesis | undefined {
    return this.genesis;
  }
  getNode(key: DaoKey): NodeRecord | undefined {
    return this.nodes.get(key);
  }
  getDataKey(id: DataKeyId): DataKeyRecord | undefined {
    return this.dataKeys.get(id);
  }
  getPublicKey(id: KeyId): Buffer | undefined {
    return this.publicKeys.get(id);
  }
  hasCommit(hash: Buffer): boolean {
    return this.commits.has(hash.toString('hex'));
  }
  latestTimestamp(): number | undefined {
    return this.applied > 0 ? this.lastTimestamp : undefined;
  }
  applyEffects(e: CommitEffects): void {
    if (e.genesis) this.genesis = e.genesis;
    for (const n of e.nodes) this.nodes.set(n.key, n);
    for (const k of e.dataKeys) this.dataKeys.set(k.id, k);
    for (const [id, pk] of e.publicKeys) this.publicKeys.set(id, pk);
    this.commits.add(e.commitHash.toString('hex'));
    this.applied++;
    if (e.timestamp > this.lastTimestamp) this.lastTimestamp = e.timestamp;
  }
  /** Empties the state (a replica rebuilt from its log: src/net/remote-chain.ts rebaseOnCut). */
  clear(): void {
    this.genesis = undefined;
    this.nodes.clear();
    this.dataKeys.clear();
    this.publicKeys.clear();
    this.commits.clear();
    this.applied = 0;
    this.lastTimestamp = 0;
  }

  /** Fills an empty state from a saved copy of another's contents (src/net/replica-snapshot.ts). */
  restore(s: {
    genesis: Genesis | null; nodes: NodeRecord[]; dataKeys: DataKeyRecord[]; publicKeys: Array<[KeyId, Buffer]>;
    commits: string[]; applied: number; lastTimestamp: number;
  }): void {
    if (this.applied !== 0) throw new Error('restore needs an empty state');
    this.genesis = s.genesis ?? undefined;
    for (const n of s.nodes) this.nodes.set(n.key, n);
    for (const k of s.dataKeys) this.dataKeys.set(k.id, k);
    for (const [id, pk] of s.publicKeys) this.publicKeys.set(id, pk);
    for (const c of s.commits) this.commits.add(c);
    this.applied = s.applied;
    this.lastTimestamp = s.lastTimestamp;
  }
}

/**
 * The state as seen from inside a commit being validated or built: reads fall through to the base
 * state, writes stay here until the commit is accepted (then `effects()` is applied to the base).
 */
export class StateOverlay implements AuthorityStateReader {
  readonly nodes = new Map<DaoKey, NodeRecord>();
  readonly dataKeys = new Map<DataKeyId, DataKeyRecord>();
  readonly publicKeys = new Map<KeyId, Buffer>();
  genesis: Genesis | null = null;

  constructor(readonly base: AuthorityStateReader) {}

  getGenesis(): Genesis | undefined {
    return this.genesis ?? this.base.getGenesis();
  }
  latestTimestamp(): number | undefined {
    return this.base.latestTimestamp?.();
  }
  getNode(key: DaoKey): NodeRecord | undefined {
    return this.nodes.get(key) ?? this.base.getNode(key);
  }
  getDataKey(id: DataKeyId): DataKeyRecord | undefined {
    return this.dataKeys.get(id) ?? this.base.getDataKey(id);
  }
  getPublicKey(id: KeyId): Buffer | undefined {
    return this.publicKeys.get(id) ?? this.base.getPublicKey(id);
  }
  hasCommit(hash: Buffer): boolean {
    return this.base.hasCommit(hash);
  }
  effects(commit: Pick<Commit, 'hash' | 'header'>): CommitEffects {
    return {
      commitHash: commit.hash,
      timestamp: commit.header.timestamp,
      genesis: this.genesis,
      nodes: [...this.nodes.values()],
      dataKeys: [...this.dataKeys.values()],
      publicKeys: [...this.publicKeys.entries()],
    };
  }
}
