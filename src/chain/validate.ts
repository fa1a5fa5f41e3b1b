// The validation pipeline. Nothing reaches the state (or the view) before all of it passed:
//   1 structure and size limits, 2 hash        (codec.decodeCommit)
//   3 signatures                                (verifySignatures: batched across commits via the pool)
//   4 chain id / genesis, replay, future time   (checkAgainstState; cheap checks first)
//   5 tree authority, DAO versions, confidentiality consistency (checkAgainstState, event by event
//     against the state as left by the previous events of the same commit)
//   6 time order: not earlier than the newest commit before it (checkAgainstState, last)
// A failure anywhere rejects the whole commit with a typed CommitRejected.
import { Alg, type CryptoPool, verifySignature } from '../crypto/index.js';
import { TreeError, admits, describeRequirement, labelledRequirements, readersOf } from './authority.js';
import { decodeCommit, signatureMessage } from './codec.js';
import { type DeferredCheck, isDeferredSignature } from './deferred.js';
import { CommitRejected } from './errors.js';
import { publicKeyId } from './ids.js';
import { type AuthorityState, type AuthorityStateReader, type CommitEffects, type Genesis, type NodeRecord, StateOverlay } from './state.js';
import { type Commit, DEFAULT_LIMITS, type EventMeta, type KeyId, type SizeLimits } from './types.js';

export interface ValidationOptions {
  /** Clock in ms since the epoch (tests pin it). Default Date.now. */
  now?: () => number;
  /** Overrides the genesis policy's future tolerance. */
  futureToleranceMs?: number;
  /**
   * How much earlier than the newest commit before it (in log order) a commit's timestamp may be.
   * Default 0: timestamps never go backwards (a local chain has one writer and one order, and its
   * writer clamps its clock: builder.ts). Infinity: not applied — for server-ordered replicated
   * chains (server/hosted-chain.ts, src/net, api/open-remote.ts), whose order is the server's
   * arrival order of commits several writers timestamped with their own estimate of the server's
   * clock: a commit signed first and delivered later (a retry, a slow upload) is legitimately
   * earlier than its predecessor, and any fixed tolerance would turn a slow link into a refused
   * commit. There the order is protected by the hash chain and the server-signed heads instead,
   * and the future check still bounds every timestamp from above.
   */
  backwardsToleranceMs?: number;
  limits?: Partial<SizeLimits>;
}

export interface ValidatedCommit {
  commit: Commit;
  /** Key ids of the verified signatures. */
  signers: ReadonlySet<KeyId>;
  effects: CommitEffects;
}

export function resolveLimits(l?: Partial<SizeLimits>): SizeLimits {
  return l ? { ...DEFAULT_LIMITS, ...l } : DEFAULT_LIMITS;
}

function hex(c: Commit): string {
  return c.hash.toString('hex');
}

// ---------------------------------------------------------------- signatures

interface SigPlan {
  commit: Commit;
  ids: KeyId[];
  problem: CommitRejected | null;
  /** Slots that are deferred signatures (deferred.ts), checked by a DeferredCheck, not the pool. */
  deferred: boolean[];
}

function planSignatures(commit: Commit): SigPlan {
  const sigs = commit.signatures;
  const deferred: boolean[] = [];
  if (sigs.length === 0) return { commit, ids: [], deferred, problem: new CommitRejected('signature', 'commit carries no signature', hex(commit)) };
  const ids: KeyId[] = [];
  for (const s of sigs) {
    if (s.publicKey[0] !== Alg.SIG_PUBLIC_KEY) {
      return { commit, ids, deferred, problem: new CommitRejected('signature', 'signature key is not a signing public key', hex(commit)) };
    }
    const id = publicKeyId(s.publicKey);
    if (ids.includes(id)) return { commit, ids, deferred, problem: new CommitRejected('malformed', 'two signatures by the same key', hex(commit)) };
    ids.push(id);
    const d = isDeferredSignature(s.signature);
    // A sign-off stands for the signatures it replaces: it must carry real ones itself.
    if (d && commit.header.signs) return { commit, ids, deferred, problem: new CommitRejected('signature', 'a sign-off with a deferred signature', hex(commit)) };
    deferred.push(d);
  }
  return { commit, ids, deferred, problem: null };
}

/**
 * Verifies every signature of every commit; with a pool, all of them in one batch across the
 * workers. Returns, per commit, its signer ids or the rejection. A deferred slot (deferred.ts) is
 * accepted only when `deferred` vouches for it (the opener's own MAC key, a verified sign-off); without
 * one — the server, any other validator — it is refused like a bad signature. `seqs[i]` is the log
 * seq of `commits[i]`, when known (for checks that depend on it).
 */
export async function verifySignatures(
  commits: readonly Commit[],
  pool?: CryptoPool | null,
  deferred?: DeferredCheck,
  seqs?: readonly number[],
): Promise<Array<ReadonlySet<KeyId> | CommitRejected>> {
  const plans = commits.map(planSignatures);
  const items: Array<{ publicKey: Buffer; message: Buffer; signature: Buffer }> = [];
  plans.forEach((p, i) => {
    if (p.problem) return;
    const sigs = p.commit.signatures;
    // Deferred slots first: a commit one of them fails queues nothing for the pool.
    for (let k = 0; k < sigs.length; k++) {
      if (p.deferred[k] && !deferred?.(sigs[k]!, p.commit, seqs?.[i])) {
        p.problem = new CommitRejected(
          'signature',
          deferred
            ? 'a deferred signature that no sign-off covers and no key of the opener vouches for'
            : 'a deferred signature (not signed off yet: only its writer can check it)',
          hex(p.commit),
        );
        return;
      }
    }
    const message = signatureMessage(p.commit.hash);
    for (let k = 0; k < sigs.length; k++) if (!p.deferred[k]) items.push({ publicKey: sigs[k]!.publicKey, message, signature: sigs[k]!.signature });
  });
  let ok: boolean[];
  if (pool && items.length > 0) ok = await pool.verifyMany(items);
  else ok = items.map((it) => safeVerify(it.publicKey, it.message, it.signature));
  let i = 0;
  return plans.map((p) => {
    if (p.problem) return p.problem;
    let good = true;
    for (let k = 0; k < p.commit.signatures.length; k++) if (!p.deferred[k] && !ok[i++]) good = false;
    if (!good) return new CommitRejected('signature', 'a signature does not verify', hex(p.commit));
    return new Set(p.ids);
  });
}

function safeVerify(pk: Buffer, msg: Buffer, sig: Buffer): boolean {
  try {
    return verifySignature(pk, msg, sig);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- genesis

function checkGenesis(state: AuthorityStateReader, commit: Commit, signers: ReadonlySet<KeyId>): Genesis {
  const g = commit.header.genesis!;
  if (state.getGenesis()) throw new CommitRejected('genesis', 'a second genesis', hex(commit));
  if (commit.events.length !== 0) throw new CommitRejected('malformed', 'a genesis carries no events', hex(commit));
  if (g.rootKeys.length === 0 && !g.policy.openRoot) throw new CommitRejected('genesis', 'genesis without root keys', hex(commit));
  const rootKeyIds = g.rootKeys.map((k) => {
    if (k[0] !== Alg.SIG_PUBLIC_KEY) throw new CommitRejected('malformed', 'root key is not a signing public key', hex(commit));
    return publicKeyId(k);
  });
  for (const s of signers) {
    if (!rootKeyIds.includes(s)) throw new CommitRejected('authority', 'genesis signed by a key that is not a root key', hex(commit));
  }
  if (g.policy.chainReaders.length === 0) throw new CommitRejected('genesis', 'genesis names no chain reader', hex(commit));
  return { hash: commit.hash, info: g, rootKeyIds };
}

// ---------------------------------------------------------------- state checks

/**
 * Stages 4-5 for a commit whose signatures verified: returns the effects of applying it.
 * Pure with respect to `state` (nothing is written).
 */
export function checkAgainstState(
  state: AuthorityStateReader,
  commit: Commit,
  signers: ReadonlySet<KeyId>,
  opts: ValidationOptions = {},
): CommitEffects {
  const overlay = new StateOverlay(state);
  const h = commit.header;
  if (h.genesis) {
    overlay.genesis = checkGenesis(state, commit, signers);
    const rk = h.genesis.rootDataKey;
    overlay.dataKeys.set(rk.id, { id: rk.id, owner: null, wraps: rk.wraps });
    for (const pk of h.genesis.rootKeys) overlay.publicKeys.set(publicKeyId(pk), pk);
    checkFuture(commit, overlay.genesis, opts);
    checkOrder(state, overlay.genesis, commit, opts);
    return overlay.effects(commit);
  }
  const genesis = state.getGenesis();
  if (!genesis) throw new CommitRejected('genesis', 'the chain has no genesis yet', hex(commit));
  if (!h.chain || !h.chain.equals(genesis.hash)) throw new CommitRejected('genesis', 'commit belongs to another chain', hex(commit));
  if (state.hasCommit(commit.hash)) throw new CommitRejected('replay', 'commit already applied', hex(commit));
  if (h.signs && commit.events.length > 0) throw new CommitRejected('malformed', 'a sign-off carries no events', hex(commit));
  checkFuture(commit, genesis, opts);

  const seen = new Set<string>();
  for (let i = 0; i < commit.events.length; i++) {
    const ev = commit.events[i]!;
    const m = ev.meta;
    if (seen.has(m.key)) throw new CommitRejected('malformed', `DAO ${m.key} appears twice`, hex(commit), i);
    seen.add(m.key);
    checkEventShape(commit, i, ev.payload !== null);
    const cur = overlay.getNode(m.key);
    const expected = cur ? cur.version + 1 : 1;
    if (m.version !== expected) {
      throw new CommitRejected('conflict', `DAO ${m.key} version ${m.version}, expected ${expected}`, hex(commit), i);
    }
    let reqs;
    try {
      reqs = labelledRequirements(overlay, m, cur, true);
    } catch (e) {
      if (e instanceof TreeError) throw new CommitRejected('authority', `${e.problem}: ${e.message}`, hex(commit), i);
      throw e;
    }
    for (const r of reqs) {
      if (!admits(r.req, signers)) {
        throw new CommitRejected('authority', `no signature admitted by ${describeRequirement(r)} (as it was before this commit)`, hex(commit), i);
      }
    }
    applyEventToOverlay(overlay, m, cur, h.timestamp, commit, i);
  }
  // Last: a commit that is also a stale write (an old commit replayed after newer ones) is reported
  // as the conflict it is, and a DIO commit overtaken by one that touched the same DAOs gets its
  // Conflict rather than a rebuild (dio.ts).
  checkOrder(state, genesis, commit, opts);
  return overlay.effects(commit);
}

function checkFuture(commit: Commit, genesis: Genesis, opts: ValidationOptions): void {
  const now = (opts.now ?? Date.now)();
  const tol = opts.futureToleranceMs ?? genesis.info.policy.futureToleranceMs;
  if (commit.header.timestamp > now + tol) {
    throw new CommitRejected('future', `timestamp ${commit.header.timestamp} is ${commit.header.timestamp - now} ms ahead`, hex(commit));
  }
}

/**
 * Timestamps never go backwards in log order (within `backwardsToleranceMs`, default 0), in chains
 * whose genesis says so (policy.monotonicTime: every chain made since the rule exists).
 */
function checkOrder(state: AuthorityStateReader, genesis: Genesis, commit: Commit, opts: ValidationOptions): void {
  const tol = opts.backwardsToleranceMs ?? 0;
  if (tol === Number.POSITIVE_INFINITY || !genesis.info.policy.monotonicTime) return;
  // A sign-off (deferred.ts) changes no DAO, so its time dates nothing; it is signed while the
  // writer goes on committing, and would otherwise lose every race with a commit made meanwhile.
  if (commit.header.signs) return;
  const prev = state.latestTimestamp?.();
  const t = commit.header.timestamp;
  if (prev !== undefined && t < prev - tol) {
    throw new CommitRejected(
      'backwards',
      `timestamp ${new Date(t).toISOString()} (${t}) is ${prev - t} ms earlier than the previous commit's ${new Date(prev).toISOString()} (${prev}): timestamps never go backwards in log order`,
      hex(commit),
    );
  }
}

function checkEventShape(commit: Commit, i: number, hasPayload: boolean): void {
  const m = commit.events[i]!.meta;
  const fail = (d: string): never => {
    throw new CommitRejected('malformed', d, hex(commit), i);
  };
  if (hasPayload !== (m.payloadKey !== null)) fail('payload and payload key id must come together');
  if ((m.read.mode === 'inherit') !== (m.nodeKey === null)) fail('a node key goes with a read ACL');
  if (m.tombstone && (hasPayload || m.grants.length > 0)) fail('a tombstone carries no payload and no grants');
  if (m.version < 1) fail('versions start at 1');
  for (const pk of m.publish) {
    if (pk[0] !== Alg.SIG_PUBLIC_KEY && pk[0] !== Alg.KEM_PUBLIC_KEY) fail('published key of unknown kind');
  }
}

/**
 * Updates the overlay with one event that passed its checks (also used by the builder, so both
 * compute the same next state). Confidentiality rules: a grant of a new id introduces a key owned by
 * this node; a grant of a known id must come from its owner (re-wrap); the node key must be owned by
 * this node; the payload key must be a known key.
 */
const NO_KEYS: readonly string[] = Object.freeze([]);

export function applyEventToOverlay(
  overlay: StateOverlay,
  m: EventMeta,
  cur: NodeRecord | undefined,
  timestamp: number,
  commit: Pick<Commit, 'hash'> | null,
  index: number,
): NodeRecord {
  const fail = (d: string): never => {
    throw new CommitRejected('confidentiality', d, commit ? commit.hash.toString('hex') : null, index);
  };
  let keys: readonly string[] = cur ? cur.keys : NO_KEYS;
  for (const g of m.grants) {
    const known = overlay.getDataKey(g.id);
    if (known) {
      if (known.owner !== m.key) fail(`data key ${g.id} belongs to another node`);
      overlay.dataKeys.set(g.id, { id: g.id, owner: m.key, wraps: known.wraps.concat(g.wraps) });
    } else {
      if (g.wraps.length === 0) fail(`new data key ${g.id} without any wrap`);
      overlay.dataKeys.set(g.id, { id: g.id, owner: m.key, wraps: g.wraps });
      keys = keys.concat(g.id);
    }
  }
  if (m.nodeKey !== null) {
    const k = overlay.getDataKey(m.nodeKey);
    if (!k || k.owner !== m.key) fail(`node key ${m.nodeKey} is not a key of ${m.key}`);
    if (m.read.mode !== 'inherit') readersOf(overlay, m.read);
  }
  if (m.payloadKey !== null && !overlay.getDataKey(m.payloadKey)) fail(`payload sealed under unknown data key ${m.payloadKey}`);
  for (const pk of m.publish) overlay.publicKeys.set(publicKeyId(pk), pk);
  const rec: NodeRecord = {
    key: m.key,
    version: m.version,
    deleted: m.tombstone,
    parent: m.parent,
    read: m.read,
    write: m.write,
    ...(m.children !== undefined ? { children: m.children } : {}),
    ...(m.admin !== undefined ? { admin: m.admin } : {}),
    nodeKey: m.nodeKey,
    keys,
    type: m.type,
    updatedAt: timestamp,
  };
  overlay.nodes.set(m.key, rec);
  return rec;
}

// ---------------------------------------------------------------- validator

/**
 * Validates commits against an authority state and applies the accepted ones. Used for commits
 * received from the network and for the process's own commits before they are appended.
 */
export class ChainValidator {
  private readonly limits: SizeLimits;
  private chainTail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly state: AuthorityState,
    private readonly opts: ValidationOptions & { pool?: CryptoPool | null } = {},
  ) {
    this.limits = resolveLimits(opts.limits);
  }

  /** Stages 1-2 only. */
  decode(bytes: Uint8Array): Commit {
    return decodeCommit(bytes, this.limits);
  }

  /**
   * Full validation against the current state, without applying. The result may go stale if
   * the state changes before it is applied; `accept` is the atomic form.
   */
  async validate(input: Uint8Array | Commit, opts: { trustSignatures?: boolean } = {}): Promise<ValidatedCommit> {
    const commit = isCommit(input) ? input : this.decode(input);
    const signers = opts.trustSignatures ? signersOf(commit) : await this.verify(commit);
    const effects = checkAgainstState(this.state, commit, signers, this.opts);
    return { commit, signers, effects };
  }

  /**
   * Validates and applies, serialized with other accepts (the signature stage of several accepts
   * may overlap; state checks and application happen in arrival order, atomically).
   * `trustSignatures`: the commit was just signed by this process (skips re-verifying).
   */
  accept(input: Uint8Array | Commit, opts: { trustSignatures?: boolean } = {}): Promise<ValidatedCommit> {
    let commit: Commit;
    try {
      commit = isCommit(input) ? input : this.decode(input);
    } catch (e) {
      return Promise.reject(e);
    }
    const sigs = opts.trustSignatures ? Promise.resolve().then(() => signersOf(commit)) : this.verify(commit);
    // Handled below once the queue reaches this commit; don't let an early rejection go unhandled.
    sigs.catch(() => undefined);
    const run = this.chainTail.then(async () => {
      const signers = await sigs;
      const effects = checkAgainstState(this.state, commit, signers, this.opts);
      this.state.applyEffects(effects);
      return { commit, signers, effects };
    });
    this.chainTail = run.catch(() => undefined);
    return run;
  }

  private async verify(commit: Commit): Promise<ReadonlySet<KeyId>> {
    const [r] = await verifySignatures([commit], this.opts.pool);
    if (r instanceof CommitRejected) throw r;
    return r!;
  }
}

function isCommit(x: Uint8Array | Commit): x is Commit {
  return !(x instanceof Uint8Array);
}

/** Signer ids of a commit without verifying (for commits this process signed itself). */
export function signersOf(commit: Commit): ReadonlySet<KeyId> {
  const plan = planSignatures(commit);
  if (plan.problem) throw plan.problem;
  return new Set(plan.ids);
}
