// Compacted logs: compaction (src/view/compaction.ts) keeps whole commits and drops the rest, so a
// kept commit may write version 5 of a DAO whose versions 2-4 are gone. Loading such a log runs in
// "gap mode": a DAO version whose predecessor is missing is checked against the last retained
// version of that DAO (or, if none is left, an inheriting stand-in under the event's parent)
// renumbered as its predecessor, so every retained write is still checked against the ACLs the
// retained history proves. Gaps only bridge forwards: a version at or below the one the state
// holds (a replayed or reordered commit) is still a conflict. The view's loader and `atefs verify`
// (verifyChain) share this rule; a log is in gap mode from its first missing seq on.
import type { AuthorityState, CommitEffects, DataKeyRecord, Genesis, NodeRecord } from './state.js';
import type { Commit, DaoKey, DataKeyId, KeyId } from './types.js';

export interface GapHint { version: number; parent: NodeRecord['parent']; type: string | null }
/** Expected version (and parent, type) per DAO written by one commit. */
export type GapHints = Map<DaoKey, GapHint>;

export function hintsOf(c: Commit): GapHints {
  const m: GapHints = new Map();
  for (const ev of c.events) m.set(ev.meta.key, { version: ev.meta.version, parent: ev.meta.parent, type: ev.meta.type });
  return m;
}

/** The record a commit's event about `key` is checked against when versions before it may be gone. */
export function nodeAcrossGap(key: DaoKey, n: NodeRecord | undefined, hint: GapHint | undefined): NodeRecord | undefined {
  if (!hint || (n && n.version >= hint.version - 1)) return n;
  const base: NodeRecord = n ?? {
    key,
    version: 0,
    deleted: false,
    parent: hint.parent,
    read: { mode: 'inherit' },
    write: { mode: 'inherit' },
    nodeKey: null,
    keys: [],
    type: hint.type,
    updatedAt: 0,
  };
  return { ...base, version: hint.version - 1 };
}

/** A state seen in gap mode for the commit whose hints are set (writes go to the state itself). */
export class GapBridgingState implements AuthorityState {
  hints: GapHints | null = null;
  constructor(readonly inner: AuthorityState) {}
  getGenesis(): Genesis | undefined { return this.inner.getGenesis(); }
  getNode(key: DaoKey): NodeRecord | undefined { return nodeAcrossGap(key, this.inner.getNode(key), this.hints?.get(key)); }
  getDataKey(id: DataKeyId): DataKeyRecord | undefined { return this.inner.getDataKey(id); }
  getPublicKey(id: KeyId): Buffer | undefined { return this.inner.getPublicKey(id); }
  hasCommit(hash: Buffer): boolean { return this.inner.hasCommit(hash); }
  latestTimestamp(): number | undefined { return this.inner.latestTimestamp?.(); }
  applyEffects(effects: CommitEffects): void { this.inner.applyEffects(effects); }
}

/**
 * A kept commit failed its replay in a compaction's candidate log: the DAOs whose dropped
 * versions its checks may have walked through — its events' DAOs and their parents, every DAO key
 * the refusal names, and `also` (the ancestors the caller saw its tree walk go through).
 */
export function keysNamedByFailure(commit: Commit, message: string, also: Iterable<DaoKey> = []): Set<DaoKey> {
  const names = new Set<DaoKey>(also);
  for (const ev of commit.events) {
    names.add(ev.meta.key);
    if (ev.meta.parent) names.add(ev.meta.parent.key);
  }
  for (const m of message.matchAll(/\b[0-9a-f]{32}\b/g)) names.add(m[0]);
  return names;
}

/**
 * For each key, keeps the version that held at `seq` (its latest write before it, from `writes`:
 * seqs in log order) unless it is kept already; returns how many were added (0: nothing left to
 * try, the candidate cannot be made to validate).
 */
export function keepVersionsBefore(keys: Iterable<DaoKey>, seq: number, writes: (key: DaoKey) => readonly number[] | undefined, keep: Set<number>): number {
  let added = 0;
  for (const k of keys) {
    let best = -1;
    for (const s of writes(k) ?? []) if (s < seq) best = s;
    if (best >= 0 && !keep.has(best)) {
      keep.add(best);
      added++;
    }
  }
  return added;
}
