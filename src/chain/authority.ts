// Tree authority: effective ACLs by inheritance (iterative walk with cycle, missing-parent and
// depth detection), the write requirements of an event, and whether a set of signers meets them.
import type { AuthorityStateReader, NodeRecord } from './state.js';
import type { DaoKey, DataKeyId, EventMeta, KeyId, ParentLink, ReaderRef, WriteAcl } from './types.js';

export const MAX_TREE_DEPTH = 4096;
/** Below this depth no visited-set is kept (cycles are caught by the depth counter beyond it). */
const CHEAP_DEPTH = 64;

export type TreeProblem = 'cycle' | 'missing-parent' | 'deleted-parent' | 'too-deep' | 'no-genesis';

/** The tree cannot be resolved at a node. Validation turns it into CommitRejected('authority'). */
export class TreeError extends Error {
  override name = 'TreeError';
  constructor(
    readonly problem: TreeProblem,
    readonly at: DaoKey | null,
    detail: string,
  ) {
    super(detail);
  }
}

/** What a write needs: a write ACL to satisfy, or (open root policy) just some valid signature. */
export type WriteRequirement = WriteAcl | { mode: 'signed' };

/**
 * Walks from `start` (a node record) up through parents until `pick` returns a value.
 * Returns [value, null] or [undefined, top] where top is the last node walked (root-level).
 */
function walk<T>(
  state: AuthorityStateReader,
  start: NodeRecord,
  pick: (n: NodeRecord) => T | undefined,
): T | undefined {
  let node: NodeRecord = start;
  let visited: Set<DaoKey> | null = null;
  for (let depth = 0; ; depth++) {
    const v = pick(node);
    if (v !== undefined) return v;
    if (!node.parent) return undefined;
    if (depth >= CHEAP_DEPTH) {
      visited ??= new Set();
      if (visited.has(node.key)) throw new TreeError('cycle', node.key, `parent cycle through ${node.key}`);
      visited.add(node.key);
      if (depth >= MAX_TREE_DEPTH) throw new TreeError('too-deep', node.key, `tree deeper than ${MAX_TREE_DEPTH}`);
    }
    const next = state.getNode(node.parent.key);
    if (!next) throw new TreeError('missing-parent', node.key, `parent ${node.parent.key} of ${node.key} does not exist`);
    if (next.key === node.key) throw new TreeError('cycle', node.key, `${node.key} is its own parent`);
    node = next;
  }
}

function rootRequirement(state: AuthorityStateReader): WriteRequirement {
  const g = state.getGenesis();
  if (!g) throw new TreeError('no-genesis', null, 'chain has no genesis');
  if (g.info.policy.openRoot) return { mode: 'signed' };
  return { mode: 'any', keys: g.rootKeyIds };
}

/*
 * Two rights per node:
 *   self(n)    who may change n itself: n.write, else (inherit) childrenRight(parent), root-level:
 *              the root requirement;
 *   childrenRight(n)  who may create children under n or move them there, and what n's inheriting
 *              descendants get: n.children when set, else self(n).
 * Without a children ACL anywhere (every chain made before it existed) both are the old single
 * effective write ACL, so older chains validate exactly as they did.
 */

/** Effective write ACL of an existing node: who may change the node itself. */
export function effectiveWriteOf(state: AuthorityStateReader, node: NodeRecord): WriteRequirement {
  if (node.write.mode !== 'inherit') return node.write;
  if (!node.parent) return rootRequirement(state);
  const parent = state.getNode(node.parent.key);
  if (!parent) throw new TreeError('missing-parent', node.key, `parent ${node.parent.key} of ${node.key} does not exist`);
  if (parent.key === node.key) throw new TreeError('cycle', node.key, `${node.key} is its own parent`);
  return childrenRightOf(state, parent);
}

/** What `node` grants below it (childrenRight above): its children ACL, else its own effective write ACL. */
export function childrenRightOf(state: AuthorityStateReader, node: NodeRecord): WriteRequirement {
  // Walking up: a node answers with its children ACL when it has one, else with its own write
  // ACL when that is set (its self right, which is then also what it grants), else defers to its
  // parent — exactly self/childrenRight above, without recursion (trees may be 4096 deep).
  const acl = walk(state, node, (n) => n.children ?? (n.write.mode === 'inherit' ? undefined : n.write));
  return acl ?? rootRequirement(state);
}

/** Effective write ACL that governs creating a child under `parent` (null: root level). */
export function effectiveWriteUnder(state: AuthorityStateReader, parent: ParentLink | null): WriteRequirement {
  if (!parent) return rootRequirement(state);
  const p = liveParent(state, parent.key, null);
  return childrenRightOf(state, p);
}

function liveParent(state: AuthorityStateReader, key: DaoKey, child: DaoKey | null): NodeRecord {
  const p = state.getNode(key);
  if (!p) throw new TreeError('missing-parent', child, `parent ${key} does not exist`);
  if (p.deleted) throw new TreeError('deleted-parent', child, `parent ${key} is deleted`);
  return p;
}

/** True if `ancestor` is `key` or one of its ancestors (used to refuse moves that make a cycle). */
export function isAncestorOrSelf(state: AuthorityStateReader, ancestor: DaoKey, key: DaoKey): boolean {
  const start = state.getNode(key);
  if (!start) return ancestor === key;
  return walk(state, start, (n) => (n.key === ancestor ? true : undefined)) === true;
}

/**
 * Write requirements of an event against the state BEFORE it (the previous ACL):
 * - existing live node: its previous effective write ACL;
 * - new node (or re-creation after a tombstone): the effective ACL of its parent (root: root keys);
 * - a move to another parent additionally needs the new parent's ACL, and must not make a cycle.
 * Throws TreeError for a missing/deleted parent or a cycle.
 */
export function writeRequirements(
  state: AuthorityStateReader,
  meta: EventMeta,
  /** The node's current record when the caller already looked it up (saves a lookup per event). */
  current?: NodeRecord | undefined,
): WriteRequirement[] {
  const cur = arguments.length > 2 ? current : state.getNode(meta.key);
  if (meta.parent && meta.parent.key === meta.key) throw new TreeError('cycle', meta.key, `${meta.key} cannot be its own parent`);
  if (!cur || cur.deleted) {
    return [effectiveWriteUnder(state, meta.parent)];
  }
  const reqs: WriteRequirement[] = [effectiveWriteOf(state, cur)];
  if (!sameParent(cur.parent, meta.parent)) {
    if (meta.parent) {
      liveParent(state, meta.parent.key, meta.key);
      if (isAncestorOrSelf(state, meta.key, meta.parent.key)) {
        throw new TreeError('cycle', meta.key, `moving ${meta.key} under ${meta.parent.key} makes a cycle`);
      }
    }
    reqs.push(effectiveWriteUnder(state, meta.parent));
  }
  return reqs;
}

/**
 * Words for requirement `index` of writeRequirements(state, meta, cur), for a refusal: the node's
 * own write ACL (changing it) or the children ACL of the parent it is created or moved under.
 */
export function describeRequirement(meta: EventMeta, cur: NodeRecord | undefined, index: number, req: WriteRequirement): string {
  if (cur && !cur.deleted && index === 0) return `the write ACL (${req.mode}) of ${meta.key}, which says who may change it`;
  if (!meta.parent) return `the chain's root keys (${req.mode}), which say who may create root-level DAOs`;
  return `the children ACL (${req.mode}) of ${meta.parent.key}, which says who may create entries under it`;
}

export function sameParent(a: ParentLink | null, b: ParentLink | null): boolean {
  if (a === null || b === null) return a === b;
  return a.key === b.key && a.collection === b.collection;
}

/** Whether signatures by `signers` (key ids of verified signatures) meet a requirement. */
export function admits(req: WriteRequirement, signers: ReadonlySet<KeyId>): boolean {
  switch (req.mode) {
    case 'signed':
      return signers.size > 0;
    case 'nobody':
    case 'inherit':
      return false;
    case 'any':
      for (const k of req.keys) if (signers.has(k)) return true;
      return false;
    case 'all':
      if (req.keys.length === 0) return false;
      for (const k of req.keys) if (!signers.has(k)) return false;
      return true;
  }
}

/** Id of the data key that seals payloads of `node` (own key, else inherited, else the genesis root key). */
export function effectiveDataKeyOf(state: AuthorityStateReader, node: NodeRecord): DataKeyId {
  const id = walk(state, node, (n) => (n.read.mode === 'inherit' ? undefined : (n.nodeKey ?? undefined)));
  if (id !== undefined) return id;
  const g = state.getGenesis();
  if (!g) throw new TreeError('no-genesis', null, 'chain has no genesis');
  return g.info.rootDataKey.id;
}

/** Effective data key id of a DAO by key. */
export function effectiveDataKey(state: AuthorityStateReader, key: DaoKey): DataKeyId {
  const n = state.getNode(key);
  if (!n) throw new TreeError('missing-parent', key, `node ${key} does not exist`);
  return effectiveDataKeyOf(state, n);
}

/** Effective write ACL of a DAO by key (for callers deciding whether the session can write). */
export function effectiveWrite(state: AuthorityStateReader, key: DaoKey): WriteRequirement {
  const n = state.getNode(key);
  if (!n) throw new TreeError('missing-parent', key, `node ${key} does not exist`);
  return effectiveWriteOf(state, n);
}

/** The readers a read ACL names ('chain' resolves to the genesis policy's chain readers). */
export function readersOf(state: AuthorityStateReader, read: EventMeta['read']): ReaderRef[] {
  if (read.mode === 'readers') return read.readers;
  const g = state.getGenesis();
  if (!g) throw new TreeError('no-genesis', null, 'chain has no genesis');
  return g.info.policy.chainReaders;
}
