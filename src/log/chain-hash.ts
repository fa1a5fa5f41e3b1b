// The log's history binding: a running chain hash over the records' commit hashes in log (seq)
// order, the definition atedb's signed heads use too:
//   chainHash(0) = the genesis hash (32 zero bytes for a log without one)
//   chainHash(n) = SHA-256(chainHash(n-1) || commitHash(n))
// Nothing of it is stored per record: the open scan reads every frame anyway (CRC), so the hash is
// recomputed there for one SHA-256 of 64 bytes per record, and kept running on append. Binding in
// log order (instead of a predecessor hash inside the signed commit header) keeps commits
// independent of which writer's commit the server orders before them.
//
// Compaction removes records, so the running hash cannot be recomputed over what it keeps. It
// leaves a cut certificate in the MANIFEST: (cut seq, chain hash at the cut, hash of the kept
// records' commit hashes up to the cut), signed by the chain owner. A seq gap is accepted only at
// or below a certified cut; records above it must follow each other without gaps.
import * as nodeCrypto from 'node:crypto';
import { createHash } from 'node:crypto';

export const HASH_LEN = 32;
export const ZERO_HASH = Buffer.alloc(HASH_LEN);

/** What compaction certifies (types.ts RedoLog.cut); sig/signer are the signer's, checked above the log. */
export interface CutCertificate {
  /** Highest seq the compaction covered: gaps at or below it are compaction's. */
  seq: number;
  /** chainHash(seq) of the history before compaction. */
  hash: Buffer;
  /** Running hash (same rule, from the genesis hash) over the commit hashes of the kept records <= seq. */
  kept: Buffer;
  /** Signature over cutMessage() (empty when the log was compacted without a signer). */
  sig: Buffer;
  /** Public key of the signer (empty without a signer). */
  signer: Buffer;
}

/** The bytes a cut certificate's signature covers. */
export function cutMessage(chainId: string, genesis: Buffer | null, c: Pick<CutCertificate, 'seq' | 'hash' | 'kept'>): Buffer {
  const seq = Buffer.alloc(8);
  seq.writeBigUInt64BE(BigInt(c.seq));
  return createHash('sha256')
    .update('atefs/log/cut/v1\0')
    .update(chainId)
    .update('\0')
    .update(genesis ?? ZERO_HASH)
    .update(seq)
    .update(c.hash)
    .update(c.kept)
    .digest();
}

/**
 * The commit hash of a record: a commit record (src/chain/codec.ts) starts with its format byte
 * (1), a 4-element msgpack array (0x94) and the 32-byte hash as bin8 (0xc4 0x20), so it is read at
 * offset 4 without decoding. Validation above the log checks that stored hash against the commit's
 * contents. Any other payload (raw users of the log: its tests and benchmark) stands for itself by
 * its length and first bytes only — constant cost per record; it is never a valid commit, so the
 * chain's own history cannot lean on it.
 */
export function recordHash(payload: Uint8Array): Buffer {
  if (looksLikeCommit(payload)) return Buffer.from(payload.buffer, payload.byteOffset + 4, HASH_LEN);
  return rawDigest(payload.length, payload.subarray(0, RAW_PREFIX));
}

const RAW_PREFIX = 64;

function rawDigest(length: number, prefix: Uint8Array): Buffer {
  const n = Buffer.alloc(8);
  n.writeBigUInt64BE(BigInt(length));
  return createHash('sha256').update('atefs/log/raw-record/v1\0').update(n).update(prefix).digest();
}

/** recordHash of a payload given as consecutive pieces (appendParts). */
export function recordHashOfParts(parts: readonly Uint8Array[]): Buffer {
  const first = parts.find((p) => p.length > 0);
  if (first && looksLikeCommit(first)) return recordHash(first);
  let length = 0;
  for (const p of parts) length += p.length;
  const prefix = Buffer.concat(parts.filter((p) => p.length > 0).slice(0, RAW_PREFIX) as Uint8Array[]).subarray(0, RAW_PREFIX);
  return rawDigest(length, prefix);
}

function looksLikeCommit(p: Uint8Array): boolean {
  return p.length >= 36 && p[0] === 1 && p[1] === 0x94 && p[2] === 0xc4 && p[3] === 0x20;
}

// node >= 20.12's one-shot crypto.hash skips the Hash object (~25 % of a 64-byte step here); the
// open scan takes one step per record.
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;
const step = Buffer.alloc(2 * HASH_LEN);

/** One step of the running hash. */
export function chainStep(prev: Buffer, commitHash: Uint8Array): Buffer {
  if (!oneShot || commitHash.length !== HASH_LEN) return createHash('sha256').update(prev).update(commitHash).digest();
  step.set(prev, 0);
  step.set(commitHash, HASH_LEN);
  return oneShot('sha256', step, 'buffer');
}

/** What the open scan found about the history (RedoLog.chain). */
export interface ChainState {
  /** Seq and chain hash of the last record (seq 0 and the genesis hash for an empty log). */
  head: { seq: number; hash: Buffer };
  /** The certificate of the last compaction, if any. */
  cut: CutCertificate | null;
  /** The genesis hash the running hash starts from (segment headers; null: zeros). */
  genesis?: Buffer | null;
  /** Why the history does not hold together (a gap no certificate covers, kept records changed); null when it does. */
  problem: { seq: number; message: string } | null;
  /** chainHash at the seq asked for with OpenLogOptions.chainHashAt, when the scan passed it (null otherwise). */
  probe: { seq: number; hash: Buffer | null } | null;
}

/**
 * Follows records in log order during the open scan and checks that the history holds together:
 * records above the certified cut follow each other without gaps, records at or below it hash to
 * the certified `kept` value. Without a certificate every record must follow its predecessor.
 */
export class ChainTracker {
  private kept: Buffer;
  private hash: Buffer;
  private seq = 0;
  private crossed: boolean;
  problem: { seq: number; message: string } | null = null;
  probe: { seq: number; hash: Buffer | null } | null;

  constructor(
    genesis: Buffer | null,
    readonly cut: CutCertificate | null,
    probeSeq?: number,
  ) {
    this.hash = genesis ?? ZERO_HASH;
    this.kept = this.hash;
    this.crossed = !cut;
    this.probe = probeSeq !== undefined ? { seq: probeSeq, hash: probeSeq === 0 ? this.hash : null } : null;
    if (cut && probeSeq === cut.seq) this.probe = { seq: probeSeq, hash: cut.hash };
  }

  /** One record, in log order. */
  add(seq: number, commitHash: Uint8Array): void {
    if (!this.crossed) {
      if (seq <= this.cut!.seq) {
        this.kept = chainStep(this.kept, commitHash);
        this.seq = seq;
        return;
      }
      this.crossCut();
    }
    if (seq !== this.seq + 1 && !this.problem) {
      this.problem = {
        seq,
        message: `seq ${seq} follows seq ${this.seq}: commit(s) ${this.seq + 1}..${seq - 1} are missing and no compaction certificate covers them`,
      };
    }
    this.hash = chainStep(this.hash, commitHash);
    this.seq = seq;
    if (this.probe && this.probe.seq === seq) this.probe.hash = this.hash;
  }

  private crossCut(): void {
    const cut = this.cut!;
    this.crossed = true;
    if (!this.kept.equals(cut.kept) && !this.problem) {
      this.problem = { seq: cut.seq, message: `the records at or below the compaction cut (seq ${cut.seq}) are not the ones compaction kept` };
    }
    this.hash = cut.hash;
    this.seq = Math.max(this.seq, cut.seq);
  }

  /** The state after the last record. */
  finish(): ChainState {
    if (!this.crossed) this.crossCut();
    return { head: { seq: this.seq, hash: this.hash }, cut: this.cut, problem: this.problem, probe: this.probe };
  }
}
