// Following a history the server compacted (server/chain-compactor.ts). A subscriber that starts
// at or below the server's cut is sent a 'cut' first (src/net/messages.ts): the certificate of the
// server's log (src/log/chain-hash.ts), the seq and commit hash of every record kept up to the
// cut, and the server's signed head at the cut. It is checked here before anything is applied:
//   - signed by the key this client pinned for the server (known_hosts / --server-key) — never
//     by whatever key the certificate names;
//   - the listed hashes chain to the certificate's `kept`, the first is the genesis;
//   - the head at the cut verifies under the same pinned key;
//   - the records this replica already holds up to the cut are a prefix of the list (a replica
//     with history the server dropped is behind the cut: it is refused, see CompactedAway).
// The kept records then arrive with their seqs; each must be the next listed one (so nothing can
// be left out or slipped in) and validates in gap mode (src/chain/gaps.ts). The replica stores
// them at their seqs under the same certificate (RedoLog.adoptCut) and reopens with it; atedb's
// chain hash resumes from the signed head at the cut (kept in cut-head.json).
import {
  type Commit, GapBridgingState, type MemoryAuthorityState, type ValidationOptions, checkAgainstState, decodeCommit, hintsOf, loadChain, signersOf,
} from '../chain/index.js';
import { type CryptoPool, verifySignature } from '../crypto/index.js';
import { type CutCertificate, type RedoLog, chainStep, cutMessage, recordHash } from '../log/index.js';
import { NetError, ServerMisbehaved } from './errors.js';
import { verifyHead } from './heads.js';
import { hostFingerprint } from './known-hosts.js';
import type { Msg, SignedHead } from './messages.js';
import { HeadStore, type HistoryGuard, SpeculativeState } from './remote-state.js';

/** The replica holds history below the server's cut that the server dropped: it cannot follow. */
export class CompactedAway extends ServerMisbehaved {
  override name = 'CompactedAway';
}

/** A verified 'cut' being followed: `next` indexes the next listed record this replica needs. */
export interface FollowedCut {
  /** Seqs this replica holds at or below the cut that the server dropped (it was offline across the cut). */
  drop: number[];
  cert: CutCertificate;
  genesis: Buffer;
  seqs: number[];
  hashes: Buffer[];
  head: SignedHead;
  next: number;
}

/** Checks a 'cut' message against the pinned server key and the replica; throws ServerMisbehaved. */
export function checkCut(m: Msg<'cut'>, o: { name: string; serverKey: Buffer; pinnedGenesis: Buffer | null; replica: RedoLog }): FollowedCut {
  const fp = (k: Buffer) => hostFingerprint(k);
  if (!m.signer.equals(o.serverKey)) {
    throw new ServerMisbehaved(`server sent a compaction certificate for chain '${o.name}' signed by ${fp(m.signer)}, not by its pinned key ${fp(o.serverKey)}: refused, nothing applied`);
  }
  if (o.pinnedGenesis && !m.genesis.equals(o.pinnedGenesis)) {
    throw new ServerMisbehaved(`server's compaction certificate is for genesis ${m.genesis.toString('hex')}, not the pinned ${o.pinnedGenesis.toString('hex')}`);
  }
  const cert: CutCertificate = { seq: m.seq, hash: m.hash, kept: m.kept, sig: m.sig, signer: m.signer };
  if (!verifySignature(o.serverKey, cutMessage(o.name, m.genesis, cert), m.sig)) {
    throw new ServerMisbehaved(`server's compaction certificate for chain '${o.name}' (cut at seq ${m.seq}) does not verify: refused, nothing applied`);
  }
  const n = m.seqs.length;
  if (n === 0 || m.hashes.length !== n * 32 || m.seqs[0] !== 1) throw new ServerMisbehaved('server sent a malformed list of the records kept at its compaction cut');
  const hashes: Buffer[] = [];
  let kept: Buffer = m.genesis;
  for (let i = 0; i < n; i++) {
    if (i > 0 && m.seqs[i]! <= m.seqs[i - 1]!) throw new ServerMisbehaved('server listed the records kept at its compaction cut out of order');
    const h = m.hashes.subarray(i * 32, (i + 1) * 32);
    hashes.push(Buffer.from(h));
    kept = chainStep(kept, h);
  }
  if (m.seqs[n - 1]! > m.seq) throw new ServerMisbehaved('server listed a kept record past its compaction cut');
  if (!hashes[0]!.equals(m.genesis)) throw new ServerMisbehaved('the first record kept at the server\'s compaction cut is not the genesis');
  if (!kept.equals(m.kept)) {
    throw new ServerMisbehaved(`the records server lists as kept at its compaction cut (seq ${m.seq}) do not hash to the certificate's kept: refused, nothing applied`);
  }
  if (m.head.seq !== m.seq || !verifyHead(o.serverKey, m.genesis, m.head)) {
    throw new ServerMisbehaved(`server's signed head at its compaction cut (seq ${m.seq}) does not verify`);
  }
  // What this replica holds up to the cut: the start of the list, and records the server dropped
  // (this replica was behind the cut); a listed seq it holds with another commit is a fork.
  let next = 0;
  const drop: number[] = [];
  for (const rec of o.replica.records()) {
    if (rec.seq > m.seq) break;
    if (next < n && m.seqs[next]! < rec.seq) {
      throw new CompactedAway(`this replica of chain '${o.name}' lacks seq ${m.seqs[next]}, which the server kept at its compaction cut (seq ${m.seq}) while it holds seq ${rec.seq}: open the chain in a new directory to sync the compacted history`);
    }
    if (m.seqs[next] === rec.seq) {
      if (!hashes[next]!.equals(recordHash(rec.payload))) throw new ServerMisbehaved(`server's compaction certificate lists another commit at seq ${rec.seq} than the one this client holds there: a fork`);
      next++;
    } else drop.push(rec.seq);
  }
  return { cert, genesis: m.genesis, seqs: m.seqs, hashes, head: m.head, next, drop };
}

/** Whether the replica holds every record its cut certifies (the kept chain reaches `kept`). */
export function keptComplete(replica: RedoLog, cut: CutCertificate, genesis: Buffer): boolean {
  let kept: Buffer = genesis;
  for (const rec of replica.records()) {
    if (rec.seq > cut.seq) break;
    kept = chainStep(kept, recordHash(rec.payload));
  }
  return kept.equals(cut.kept);
}

/** Whether the replica's own cut is signed by a key pinned for its server (`pinned`: fingerprints). */
export function replicaCutProblem(name: string, cut: CutCertificate, genesis: Buffer, pinned: ReadonlyArray<string | null>): string | null {
  if (cut.sig.length === 0) return `the replica's compaction certificate (cut at seq ${cut.seq}) is not signed`;
  const fp = hostFingerprint(cut.signer);
  if (!pinned.includes(fp)) return `the replica's compaction certificate (cut at seq ${cut.seq}) is signed by ${fp}, not a key pinned for this server`;
  if (!verifySignature(cut.signer, cutMessage(name, genesis, cut), cut.sig)) return `the replica's compaction certificate (cut at seq ${cut.seq}) has a bad signature`;
  return null;
}

/** What the follower reads and changes of its replication client (src/net/remote-chain.ts). */
export interface CutHost {
  readonly name: string;
  readonly replica: RedoLog;
  readonly confirmed: MemoryAuthorityState;
  readonly history: HistoryGuard;
  readonly clock: ValidationOptions;
  readonly pool: CryptoPool | null;
  genesisHash: Buffer | null;
  /** The server key of the connection (pinned by the handshake). */
  readonly serverKey: Buffer | null;
  /** A kept commit was applied at `seq`: its staged copy (if any) is confirmed; listeners are told. */
  applied(seq: number, commit: Commit): void;
  /** The confirmed state changed under the staged commits. */
  stateChanged(): void;
  /** The replica dropped `dropped` records the server compacted away and was rebuilt. */
  rebased(cut: number, dropped: number): void;
}

type CutParts = Omit<Msg<'cut'>, 'hashes'> & { hashes: Buffer[] };

/** One replication client's side of compacted histories: the 'cut' it follows, and its kept records. */
export class CutFollower {
  private parts: CutParts | null = null;
  private follow: FollowedCut | null = null;
  /** The server's signed head at its cut (cut-head.json), saved before any kept record is stored. */
  private readonly heads: HeadStore;

  constructor(private readonly h: CutHost, headFile: string | null) {
    this.heads = new HeadStore(headFile);
  }

  /** A 'cut' is being followed (its kept records are arriving). */
  get active(): boolean {
    return this.follow !== null;
  }

  /** A new connection: whatever was being followed is sent again. */
  reset(): void {
    this.parts = null;
    this.follow = null;
  }

  /** One part of a 'cut' (the list comes in parts); checked once whole. */
  async onCut(m: Msg<'cut'>): Promise<void> {
    const serverKey = this.h.serverKey;
    if (!serverKey) return;
    if (m.at === 0) this.parts = { ...m, seqs: [...m.seqs], hashes: [m.hashes] };
    else if (!this.parts || m.at !== this.parts.seqs.length || m.seq !== this.parts.seq || !m.sig.equals(this.parts.sig)) {
      throw new ServerMisbehaved('server sent a part of its compaction certificate out of order');
    } else {
      this.parts.seqs.push(...m.seqs);
      this.parts.hashes.push(m.hashes);
    }
    const whole = this.parts!;
    if (whole.seqs.length < m.total) return;
    this.parts = null;
    const f = checkCut({ ...whole, hashes: Buffer.concat(whole.hashes) }, { name: this.h.name, serverKey, pinnedGenesis: this.h.genesisHash, replica: this.h.replica });
    // Kept first: a replica that stops during the kept records reopens from it (checkReplicaCut).
    await this.heads.save(f.head, serverKey);
    if (f.drop.length > 0) await this.rebase(f);
    this.follow = f;
    if (f.next === f.seqs.length) await this.finish();
  }

  /**
   * History with explicit seqs while following a cut: the records at or below the cut are the
   * kept ones, applied in gap mode; the first one past it ends the cut, and the rest go to `dense`
   * (the client's usual path, from `from` on).
   */
  async receive(seqs: number[], commits: Commit[], dense: (from: number, commits: Commit[]) => Promise<void>): Promise<void> {
    if (seqs.length !== commits.length) throw new ServerMisbehaved('server sent a history batch whose seqs do not match its commits');
    const f = this.follow;
    const consecutive = (xs: number[]) => xs.every((s, i) => s === xs[0]! + i);
    if (!f) {
      if (consecutive(seqs)) return dense(seqs[0]!, commits);
      throw new ServerMisbehaved('server sent a history with gaps without a compaction certificate');
    }
    let k = 0;
    while (k < seqs.length && seqs[k]! <= f.cert.seq) k++;
    if (k > 0) await this.applyKept(f, seqs.slice(0, k), commits.slice(0, k));
    if (k === seqs.length) return;
    await this.finish();
    const rest = seqs.slice(k);
    if (!consecutive(rest)) throw new ServerMisbehaved(`server sent a gap above its compaction cut (seq ${f.cert.seq})`);
    await dense(rest[0]!, commits.slice(k));
  }

  /** Kept records at or below the followed cut: each the next one the certificate lists, checked in gap mode. */
  private async applyKept(f: FollowedCut, seqs: number[], commits: Commit[]): Promise<void> {
    const { replica, confirmed } = this.h;
    commits.forEach((c, i) => {
      const at = f.next + i;
      if (f.seqs[at] !== seqs[i] || !f.hashes[at]!.equals(c.hash)) {
        throw new ServerMisbehaved(`server sent seq ${seqs[i]} below its compaction cut, which is not the record its certificate lists next (seq ${f.seqs[at] ?? 'none'})`);
      }
    });
    const trial = new SpeculativeState(confirmed);
    const bridged = new GapBridgingState(trial);
    const effects = commits.map((c, i) => {
      const seq = seqs[i]!;
      if (c.header.genesis) {
        if (seq !== 1) throw new ServerMisbehaved(`server sent a genesis at seq ${seq}`);
        const pinned = this.h.genesisHash;
        if (pinned && !c.hash.equals(pinned)) throw new ServerMisbehaved(`server's genesis ${c.hash.toString('hex')} is not the pinned ${pinned.toString('hex')}`);
      } else if (seq === 1) throw new ServerMisbehaved('server history does not start with a genesis');
      bridged.hints = hintsOf(c);
      try {
        const e = checkAgainstState(bridged, c, signersOf(c), this.h.clock);
        trial.applyEffects(e);
        return e;
      } catch (e) {
        throw new ServerMisbehaved(`server sent a kept commit at seq ${seq} that does not validate in gap mode: ${(e as Error).message}`);
      } finally {
        bridged.hints = null;
      }
    });
    // Stored at their seqs: each run of consecutive seqs after a gap the certificate covers.
    for (let i = 0; i < commits.length;) {
      let j = i + 1;
      while (j < commits.length && seqs[j] === seqs[j - 1]! + 1) j++;
      if (seqs[i]! < replica.nextSeq) throw new ServerMisbehaved(`server re-sent seq ${seqs[i]}, which this client already holds`);
      if (seqs[i]! > replica.nextSeq) await replica.adoptCut!(f.cert, seqs[i]!);
      const res = await replica.appendBatch(commits.slice(i, j).map((c) => c.bytes), 'local');
      res.forEach((r, k) => { if (r.seq !== seqs[i + k]) throw new Error(`replica assigned seq ${r.seq}, expected ${seqs[i + k]}`); });
      i = j;
    }
    f.next += commits.length;
    commits.forEach((c, i) => {
      const seq = seqs[i]!;
      confirmed.applyEffects(effects[i]!);
      if (c.header.genesis && !this.h.genesisHash) this.h.genesisHash = c.hash;
      this.h.history.unknownAt(seq);
      this.h.applied(seq, c);
    });
    this.h.stateChanged();
  }

  /**
   * This replica was behind the server's cut and holds records the server dropped: they go (the
   * replica is compacted to the kept ones it holds, under the server's certificate) and the
   * confirmed state is rebuilt from what is left, in gap mode — a DAO whose expired tombstone was
   * dropped with its earlier versions must not stay alive here. The host is told (no 'commit'
   * event says what disappeared).
   */
  private async rebase(f: FollowedCut): Promise<void> {
    const { replica, confirmed, history } = this.h;
    const drop = new Set(f.drop);
    await replica.compact((rec) => !drop.has(rec.seq));
    await replica.adoptCut!(f.cert, replica.nextSeq);
    confirmed.clear();
    history.reset();
    for await (const c of loadChain(replica, {
      pinnedGenesis: this.h.genesisHash, state: confirmed, pool: this.h.pool, compacted: true,
      futureToleranceMs: Number.POSITIVE_INFINITY, backwardsToleranceMs: Number.POSITIVE_INFINITY,
    })) {
      history.unknownAt(c.seq);
    }
    this.h.stateChanged();
    this.h.rebased(f.cert.seq, drop.size);
  }

  /** Every kept record is here: the replica continues after the cut, from the head the server signed there. */
  async finish(): Promise<void> {
    const f = this.follow;
    if (!f) return;
    if (f.next !== f.seqs.length) {
      throw new ServerMisbehaved(`server ended its compacted history after ${f.next} of the ${f.seqs.length} records its certificate lists as kept`);
    }
    await this.h.replica.adoptCut!(f.cert, f.cert.seq + 1);
    this.h.history.crossCut(f.cert.seq, f.head.chainHash);
    this.follow = null;
  }

  /** The replica's own cut (at open) checked against the keys pinned for its server; the signed head at it. */
  async checkReplicaCut(cut: CutCertificate, pinned: ReadonlyArray<string | null>): Promise<SignedHead> {
    const first = this.h.replica.records({ seq: 1 })[Symbol.iterator]().next();
    const genesis = first.done ? null : decodeCommit(Buffer.from(first.value.payload)).hash;
    if (!genesis) throw new NetError(`the replica of chain '${this.h.name}' is compacted but holds no genesis`);
    const problem = replicaCutProblem(this.h.name, cut, genesis, pinned);
    if (problem) throw new NetError(`chain '${this.h.name}': ${problem}`);
    const stored = await this.heads.load(genesis, () => null).catch(() => null);
    if (!stored || stored.head.seq !== cut.seq || !pinned.includes(stored.server)) {
      throw new NetError(`chain '${this.h.name}': the replica is compacted at seq ${cut.seq} but the server's signed head there (cut-head.json) is missing or not by a pinned key; open the chain in a new directory`);
    }
    return stored.head;
  }
}
