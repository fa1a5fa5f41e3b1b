// The server's checkpoint of a chain: the newest head it signed (seq, chain hash, signature), kept
// in <chain dir>/checkpoint. On reopen, records up to that seq whose hashes chain up to the signed
// chain hash are not re-verified signature by signature (the expensive part: ~1,000 hybrid verifies
// a second on two cores); every record is still decoded, hash-checked and checked against the
// state. A checkpoint that does not verify, or a log that does not reach or match it, falls back to
// full validation.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  type AuthorityState, CommitRejected, GapBridgingState, MemoryAuthorityState, hintsOf, type SizeLimits, checkAgainstState, decodeCommit, signersOf,
  verifySignatures, ChainLoadError, GenesisMismatch,
} from '../src/chain/index.js';
import { type CryptoPool, signingPublicKeyOf } from '../src/crypto/index.js';
import type { RedoLog } from '../src/log/index.js';
import { type SignedHead, ZERO_CHAIN_HASH, nextChainHash, verifyHead } from '../src/net/index.js';
import { readDropped } from './chain-compactor.js';

export const CHECKPOINT_FILE = 'checkpoint';

export async function writeCheckpoint(dir: string, head: SignedHead): Promise<void> {
  const file = path.join(dir, CHECKPOINT_FILE);
  const tmp = `${file}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify({ seq: head.seq, chainHash: head.chainHash.toString('hex'), sig: head.sig.toString('base64') }));
  await fsp.rename(tmp, file);
}

async function readCheckpoint(dir: string): Promise<SignedHead | null> {
  try {
    const j = JSON.parse(await fsp.readFile(path.join(dir, CHECKPOINT_FILE), 'utf8'));
    return { seq: j.seq, chainHash: Buffer.from(j.chainHash, 'hex'), sig: Buffer.from(j.sig, 'base64') };
  } catch {
    return null;
  }
}

export interface LoadedHostState {
  state: AuthorityState;
  chainHashes: Buffer[];
  seqOf: Map<string, number>;
  /** Records whose signatures were taken on the checkpoint's word. */
  trusted: number;
}

/** Loads a hosted chain's state from its log, validating everything past the checkpoint fully. */
/** Options of loadHostState; `cut`: the log's compaction cut and atedb's chain hash there (chain-compactor.ts). */
interface LoadOptions { pool: CryptoPool | null; signingKey: Buffer; limits?: Partial<SizeLimits>; cut?: { seq: number; hash: Buffer } | null }

/**
 * Loads a hosted chain's state from its log, validating everything past the checkpoint fully. A
 * compacted log (a cut) is checked in gap mode (src/chain/gaps.ts) and its chain hashes start
 * from the cut's (the seqs below it keep placeholders: no head is ever signed there again).
 */
export async function loadHostState(dir: string, log: RedoLog, opts: LoadOptions): Promise<LoadedHostState> {
  const o = { ...opts, dir };
  let cp = await readCheckpoint(dir);
  // A checkpoint at or below the cut vouches for records some of which are gone: not used.
  if (cp && o.cut && cp.seq <= o.cut.seq) cp = null;
  try {
    return await load(log, o, cp);
  } catch (e) {
    if (!cp || !(e instanceof CheckpointMismatch)) throw e;
    return load(log, o, null);
  }
}

class CheckpointMismatch extends Error {}

async function load(log: RedoLog, o: LoadOptions & { dir: string }, cp: SignedHead | null): Promise<LoadedHostState> {
  const state = new MemoryAuthorityState();
  const bridged = new GapBridgingState(state);
  let expect = 1;
  let gaps = false;
  const cut = o.cut ?? null;
  let crossed = !cut;
  const chainHashes: Buffer[] = [ZERO_CHAIN_HASH];
  const cross = () => {
    crossed = true;
    while (chainHashes.length < cut!.seq) chainHashes.push(ZERO_CHAIN_HASH);
    chainHashes[cut!.seq] = cut!.hash;
  };
  const seqOf = new Map<string, number>();
  const serverKey = signingPublicKeyOf(o.signingKey);
  const limits = { ...(o.limits ?? {}) };
  let trusted = 0;
  let batch: Array<{ seq: number; pos: unknown; bytes: Buffer }> = [];
  const flush = async () => {
    const commits = batch.map((r) => {
      try {
        return decodeCommit(r.bytes, limits as SizeLimits);
      } catch (e) {
        if (e instanceof CommitRejected) throw new ChainLoadError(r.seq, r.pos, e);
        throw e;
      }
    });
    const untrusted = commits.map((_, i) => !cp || batch[i]!.seq > cp.seq);
    const toVerify = commits.filter((_, i) => untrusted[i]);
    const verified = toVerify.length ? await verifySignatures(toVerify, o.pool) : [];
    let v = 0;
    commits.forEach((c, i) => {
      const rec = batch[i]!;
      let signers;
      if (untrusted[i]) {
        const r = verified[v++]!;
        if (r instanceof CommitRejected) throw new ChainLoadError(rec.seq, rec.pos, r);
        signers = r;
      } else {
        signers = signersOf(c);
        trusted++;
      }
      if (rec.seq === 1 && !c.header.genesis) throw new GenesisMismatch('the log does not start with a genesis');
      if (rec.seq !== expect) {
        // A gap is only ever below a certified cut (the log refuses any other at open).
        if (!cut || rec.seq - 1 > cut.seq) throw new ChainLoadError(rec.seq, rec.pos, new CommitRejected('malformed', `seq ${rec.seq} follows ${expect - 1} above the compaction cut`));
        gaps = true;
      }
      expect = rec.seq + 1;
      bridged.hints = gaps ? hintsOf(c) : null;
      try {
        state.applyEffects(checkAgainstState(gaps ? bridged : state, c, signers, { now: () => Number.MAX_SAFE_INTEGER / 2, backwardsToleranceMs: Number.POSITIVE_INFINITY }));
      } catch (e) {
        if (e instanceof CommitRejected) throw new ChainLoadError(rec.seq, rec.pos, e);
        throw e;
      } finally {
        bridged.hints = null;
      }
      if (!crossed && rec.seq > cut!.seq) cross();
      if (crossed) chainHashes.push(nextChainHash(chainHashes[chainHashes.length - 1]!, c.hash));
      seqOf.set(c.hash.toString('hex'), rec.seq);
      if (cp && rec.seq === cp.seq) {
        const genesis = state.getGenesis()!.hash;
        if (!chainHashes[cp.seq]!.equals(cp.chainHash) || !verifyHead(serverKey, genesis, cp)) throw new CheckpointMismatch();
      }
    });
    batch = [];
  };
  for (const rec of log.records()) {
    batch.push({ seq: rec.seq, pos: rec.pos, bytes: Buffer.from(rec.payload) });
    if (batch.length >= 256) await flush();
  }
  await flush();
  if (!crossed) cross();
  if (cp && chainHashes.length - 1 < cp.seq) throw new CheckpointMismatch();
  if (!state.getGenesis()) throw new GenesisMismatch('the log holds no genesis');
  if (cut) {
    // Commits compaction dropped are still in the chain's history: a second copy is a replay.
    for (const [seq, hash] of await readDropped(o.dir)) {
      const hex = hash.toString('hex');
      if (!seqOf.has(hex)) seqOf.set(hex, seq);
      state.commits.add(hex);
    }
  }
  return { state, chainHashes, seqOf, trusted };
}
