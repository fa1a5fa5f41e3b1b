// The replica's confirmed authority state, saved when a RemoteChain closes, so the next open applies
// only the records after it instead of replaying the whole replica (issue 14: a resume costs time in
// proportion to its tail). The state is what validation of every later commit rests on (ACLs,
// keys, versions), and it is not derived from the replica on this path, so it is authenticated: an
// HMAC-SHA-256 under a key derived from the user's signing key (whoever can write the replica's
// directory cannot forge it). It is bound to the replica by the chain hash at its seq: it is used
// only when the replica's hash chain, checked up to the head the pinned server signed
// (replica-trust.ts), has that hash at that seq. A missing, stale, foreign or damaged snapshot only
// costs the full replay it replaces; it is never an error.
import { promises as fsp } from 'node:fs';
import { Packr } from 'msgpackr';
import type { Keyring, MemoryAuthorityState } from '../chain/index.js';
import { constantTimeEqual, hkdfSha256, hmacSha256 } from '../crypto/index.js';

export const SNAPSHOT_FILE = 'state.snapshot';
const VERSION = 1;
const MAC = 32;
// Records (msgpackr's structures, defined inline): the nodes share a few shapes, and decoding
// them as records is several times faster than as maps.
const packr = new Packr({ useRecords: true, mapsAsObjects: true });

/** The snapshot key of a replica, or null when the keyring holds no signing key (no snapshot then). */
export function snapshotKey(keyring: Keyring, chain: string): Buffer | null {
  const k = keyring.signingKeys()[0];
  return k ? hkdfSha256(k.secretKey, Buffer.from('atefs/replica-snapshot'), `v1\0${chain}`, 32) : null;
}

export interface ReplicaSnapshot {
  /** The replica's last seq the state includes. */
  seq: number;
  /** The chain hash at `seq` (heads.ts): what binds the state to the replica's records. */
  chainHash: Buffer;
  state: MemoryAuthorityState;
}

/** A snapshot read back: its place in the replica, and its state to fill an empty one with. */
export interface LoadedSnapshot {
  seq: number;
  chainHash: Buffer;
  restoreInto(state: MemoryAuthorityState): void;
}

interface Body {
  v: number;
  chain: string;
  seq: number;
  chainHash: Buffer;
  genesis: unknown;
  nodes: unknown[];
  dataKeys: unknown[];
  publicKeys: Array<[string, Buffer]>;
  commits: string[];
  applied: number;
  lastTimestamp: number;
}

/** Writes the snapshot atomically (temporary file, rename), mode 0600. No fsync: losing it is harmless. */
export async function saveSnapshot(file: string, key: Buffer, chain: string, snap: ReplicaSnapshot): Promise<void> {
  const s = snap.state;
  const body: Body = {
    v: VERSION, chain, seq: snap.seq, chainHash: snap.chainHash, genesis: s.getGenesis() ?? null,
    nodes: [...s.nodes.values()], dataKeys: [...s.dataKeys.values()], publicKeys: [...s.publicKeys],
    commits: [...s.commits], applied: s.applied, lastTimestamp: s.lastTimestamp,
  };
  const bytes = packr.pack(body);
  const tmp = `${file}.tmp`;
  await fsp.writeFile(tmp, Buffer.concat([bytes, hmacSha256(key, bytes)]), { mode: 0o600 });
  await fsp.rename(tmp, file);
}

/** The snapshot in `file` for `chain`, or why there is none to use. */
export async function loadSnapshot(file: string, key: Buffer, chain: string): Promise<LoadedSnapshot | string> {
  let raw: Buffer;
  try {
    raw = await fsp.readFile(file);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no snapshot' : `snapshot unreadable: ${(e as Error).message}`;
  }
  if (raw.length <= MAC) return 'snapshot truncated';
  const bytes = raw.subarray(0, raw.length - MAC);
  if (!constantTimeEqual(hmacSha256(key, bytes), raw.subarray(raw.length - MAC))) return 'snapshot does not authenticate';
  let b: Body;
  try {
    b = packr.unpack(bytes) as Body;
  } catch {
    return 'snapshot does not decode';
  }
  if (b.v !== VERSION || b.chain !== chain || !Number.isSafeInteger(b.seq) || b.seq < 1) return 'snapshot of another chain or version';
  type Saved = Parameters<MemoryAuthorityState['restore']>[0];
  const saved: Saved = {
    genesis: b.genesis as Saved['genesis'], nodes: b.nodes as Saved['nodes'], dataKeys: b.dataKeys as Saved['dataKeys'],
    publicKeys: b.publicKeys, commits: b.commits, applied: b.applied, lastTimestamp: b.lastTimestamp,
  };
  return { seq: b.seq, chainHash: Buffer.from(b.chainHash), restoreInto: (state) => state.restore(saved) };
}
