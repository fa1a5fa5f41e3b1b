// How much of a replica a client may reopen without verifying every signature again (the expensive
// part of a resume: ~1,000 hybrid verifications a second on two cores). The replica holds only
// commits this client validated when they arrived; head.json holds the newest head the server
// signed over them. If that head verifies under a key pinned for this server (known_hosts or
// --server-key: not the key head.json names itself, which anyone who can write the replica could
// choose) and the replica's hash chain reaches the head's chain hash at its seq, the records up to
// it are exactly what was validated: a commit's hash binds its content, so only their signatures
// go unchecked (loader.ts trustSignaturesUntil). Anything else, and every record after the head,
// is validated in full. The chain is computed over the hashes the records carry, not re-hashed
// from their bytes (a resume costs one small hash per record, not a decode of the replica): a
// record whose bytes were changed under its hash fails decodeCommit wherever it is read — the
// replay of loadChain, commits(), a view built on the replica.
import { decodeCommit, toGenesisHash } from '../chain/index.js';
import { type RedoLog, recordHash } from '../log/index.js';
import { ZERO_CHAIN_HASH, nextChainHash } from './heads.js';
import { pinnedFingerprint } from './known-hosts.js';
import type { HeadStore } from './remote-state.js';

export interface ReplicaTrust {
  /** Records up to this seq need no signature checks (0: none). */
  until: number;
  /** Why nothing is trusted, when nothing is. */
  why: string | null;
  /** The replica's chain hash at every seq up to `until` ([0]: before the genesis). */
  chainHashes: Buffer[];
}

export async function replicaTrust(
  replica: RedoLog,
  heads: HeadStore,
  o: { addresses: readonly string[]; knownHosts?: string; serverKey?: string; pinnedGenesis: Uint8Array | string | null },
): Promise<ReplicaTrust> {
  const none = (why: string): ReplicaTrust => ({ until: 0, why, chainHashes: [ZERO_CHAIN_HASH] });
  let genesis: Buffer;
  try {
    const first = replica.records({ seq: 1 })[Symbol.iterator]().next();
    if (first.done || first.value.seq !== 1) return none('the replica has no genesis record');
    genesis = decodeCommit(first.value.payload).hash;
  } catch {
    return none('the replica genesis does not decode');
  }
  if (o.pinnedGenesis !== null && !toGenesisHash(o.pinnedGenesis).equals(genesis)) return none('the replica is of another genesis');
  let stored;
  try {
    stored = await heads.load(genesis, () => null);
  } catch {
    return none('the stored head does not verify');
  }
  if (!stored) return none('no stored head');
  const pinned = o.serverKey ? [o.serverKey] : await Promise.all(o.addresses.map((a) => pinnedFingerprint(a, o.knownHosts)));
  if (!pinned.includes(stored.server)) return none(`the stored head is signed by ${stored.server}, not a key pinned for this server`);
  let hash: Buffer = ZERO_CHAIN_HASH;
  const chainHashes = [hash];
  for (const rec of replica.records({ seq: 1 })) {
    if (rec.seq > stored.head.seq) break;
    if (rec.seq !== chainHashes.length) return none(`the replica has a gap before seq ${rec.seq}`);
    // The hash the record claims, read without decoding it: every reader of a replica record
    // decodes it, which recomputes its hash and refuses a record whose bytes no longer match.
    hash = nextChainHash(hash, recordHash(rec.payload));
    chainHashes.push(hash);
    if (rec.seq === stored.head.seq) {
      return hash.equals(stored.head.chainHash) ? { until: rec.seq, why: null, chainHashes } : none('the replica differs from the signed head');
    }
  }
  return none('the replica ends before the signed head');
}
