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
import { verifySignature } from '../crypto/index.js';
import { type CutCertificate, type RedoLog, chainStep, cutMessage, recordHash } from '../log/index.js';
import { ServerMisbehaved } from './errors.js';
import { verifyHead } from './heads.js';
import { hostFingerprint } from './known-hosts.js';
import type { Msg, SignedHead } from './messages.js';

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
