// Tree authority: effective ACLs by inheritance (iterative walk with cycle, missing-parent and
// depth detection), the write requirements of an event, and whether a set of signers meets them.
import type { AuthorityStateReader, NodeRecord } from './state.js';
import type { DaoKey, DataKeyId, EventMeta, KeyId, ParentLink, ReadAcl, ReaderRef, WriteAcl } from './types.js';

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

/** What a requirement is for: changing the node, creating it under (or moving it to) a parent, changing its ACLs. */
export type RequirementRole = 'change' | 'create' | 'acl';

export interface LabelledRequirement {
  req: WriteRequirement;
  role: RequirementRole;
  /** The node whose ACL it is (the event's own DAO, or the parent it goes under; null: root level). */
  of: DaoKey | null;
}

/**
 * Write requirements of an event against the state BEFORE it (the previous ACL):
 * - existing live node: its previous effective write ACL;
 * - new node (or re-creation after a tombstone): the children right of its parent (root: root keys);
 * - a move to another parent additionally needs the new parent's children right, and must not
 *   make a cycle;
 * - an existing node with an admin ACL whose ACLs (read, write, children, admin) change
 *   additionally needs that admin ACL (without one, its write ACL decides, as it always did).
 * Throws TreeError for a missing/deleted parent or a cycle.
 */
export function labelledRequirements(
  state: AuthorityStateReader,
  meta: EventMeta,
  /** The node's current record when the caller already looked it up (with `lookedUp`). */
  current?: NodeRecord | undefined,
  lookedUp = false,
): LabelledRequirement[] {
  const cur = lookedUp ? current : state.getNode(meta.key);
  if (meta.parent && meta.parent.key === meta.key) throw new TreeError('cycle', meta.key, `${meta.key} cannot be its own parent`);
  if (!cur || cur.deleted) {
    return [{ req: effectiveWriteUnder(state, meta.parent), role: 'create', of: meta.parent?.key ?? null }];
  }
  const out: LabelledRequirement[] = [{ req: effectiveWriteOf(state, cur), role: 'change', of: meta.key }];
  if (!sameParent(cur.parent, meta.parent)) {
    if (meta.parent) {
      liveParent(state, meta.parent.key, meta.key);
      if (isAncestorOrSelf(state, meta.key, meta.parent.key)) {
        throw new TreeError('cycle', meta.key, `moving ${meta.key} under ${meta.parent.key} makes a cycle`);
      }
    }
    out.push({ req: effectiveWriteUnder(state, meta.parent), role: 'create', of: meta.parent?.key ?? null });
  }
  if (cur.admin !== undefined && !sameAcls(cur, meta)) out.push({ req: cur.admin, role: 'acl', of: meta.key });
  return out;
}

/** labelledRequirements without the labels. */
export function writeRequirements(
  state: AuthorityStateReader,
  meta: EventMeta,
  /** The node's current record when the caller already looked it up (saves a lookup per event). */
  current?: NodeRecord | undefined,
): WriteRequirement[] {
  return labelledRequirements(state, meta, current, arguments.length > 2).map((r) => r.req);
}

/** Who may change the ACLs of an existing node: its admin ACL, else its effective write ACL. */
export function effectiveAdminOf(state: AuthorityStateReader, node: NodeRecord): WriteRequirement {
  return node.admin ?? effectiveWriteOf(state, node);
}

/** Effective admin ACL of a DAO by key (for callers deciding whether the session may change its ACLs). */
export function effectiveAdmin(state: AuthorityStateReader, key: DaoKey): WriteRequirement {
  const n = state.getNode(key);
  if (!n) throw new TreeError('missing-parent', key, `node ${key} does not exist`);
  return effectiveAdminOf(state, n);
}

/** Whether an event keeps every ACL of the node as it is (read, write, children, admin; key order aside). */
export function sameAcls(cur: Pick<NodeRecord, 'read' | 'write' | 'children' | 'admin'>, m: Pick<EventMeta, 'read' | 'write' | 'children' | 'admin'>): boolean {
  return sameReadAcl(cur.read, m.read) && sameWriteAcl(cur.write, m.write) && sameWriteAcl(cur.children, m.children) && sameWriteAcl(cur.admin, m.admin);
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((k, i) => k === y[i]);
}

function sameWriteAcl(a: WriteAcl | undefined, b: WriteAcl | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.mode !== b.mode) return false;
  if ((a.mode === 'any' || a.mode === 'all') && (b.mode === 'any' || b.mode === 'all')) return sameKeys(a.keys, b.keys);
  return true;
}

function sameReadAcl(a: ReadAcl, b: ReadAcl): boolean {
  if (a.mode !== b.mode) return false;
  if (a.mode === 'readers' && b.mode === 'readers') return sameKeys(a.readers.map((r) => `${r.kind}:${r.id}`), b.readers.map((r) => `${r.kind}:${r.id}`));
  return true;
}

/** Words for a requirement an event's signers do not meet, for a refusal. */
export function describeRequirement(r: LabelledRequirement): string {
  const mode = r.req.mode;
  if (r.role === 'change') return `the write ACL (${mode}) of ${r.of}, which says who may change it`;
  if (r.role === 'acl') return `the admin ACL (${mode}) of ${r.of}, which says who may change its ACLs`;
  if (r.of === null) return `the chain's root keys (${mode}), which say who may create root-level DAOs`;
  return `the children ACL (${mode}) of ${r.of}, which says who may create entries under it`;
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
