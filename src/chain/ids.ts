// Identifiers derived from keys. Domain-separated SHA-256 so an id of one kind can never be
// confused with an id of another kind or with any other hash of the system.
import { domainHash, randomBytes } from '../crypto/index.js';
import type { DaoKey, DataKeyId, KeyId } from './types.js';

export const DAO_KEY_BYTES = 16;
export const KEY_ID_BYTES = 32;
export const DATA_KEY_ID_BYTES = 16;
export const DATA_KEY_BYTES = 32;

/** Id of an encoded public key (hybrid signing or hybrid KEM): what ACLs and reader lists name. */
export function publicKeyId(publicKey: Uint8Array): KeyId {
  // A hybrid public key is ~2 KiB: hashing it is ~100 times a comparison with a key seen before,
  // and the same few keys come back on every commit (its signers, the keys a sign-off covers).
  // Found by content (a copy is kept), so a reused or changed buffer can never answer a stale id.
  for (const k of recentKeys) if (Buffer.compare(k.bytes, publicKey) === 0) return k.id;
  const id = domainHash('atefs/chain/public-key-id/v1', publicKey).toString('hex');
  if (recentKeys.length >= RECENT_KEYS) recentKeys.shift();
  recentKeys.push({ bytes: Buffer.from(publicKey), id });
  return id;
}

const RECENT_KEYS = 8;
const recentKeys: Array<{ bytes: Buffer; id: KeyId }> = [];

/** Id of a symmetric read key (a user's or a group role's chain-wide key). */
export function readKeyId(readKey: Uint8Array): KeyId {
  return domainHash('atefs/chain/read-key-id/v1', readKey).toString('hex');
}

/** Id ("key hash") of a per-node data key. */
export function dataKeyId(dataKey: Uint8Array): DataKeyId {
  return domainHash('atefs/chain/data-key-id/v1', dataKey).subarray(0, DATA_KEY_ID_BYTES).toString('hex');
}

// DAO keys are drawn from a block of CSPRNG output (one randomBytes call per 256 keys): a commit
// of many new nodes shouldn't pay a syscall-sized call per key. Bytes are never reused.
let pool: Buffer = Buffer.alloc(0);
let poolPos = 0;

/** A fresh random DAO key (CSPRNG). */
export function newDaoKey(): DaoKey {
  if (poolPos + DAO_KEY_BYTES > pool.length) {
    pool = randomBytes(DAO_KEY_BYTES * 256);
    poolPos = 0;
  }
  const key = pool.toString('hex', poolPos, poolPos + DAO_KEY_BYTES);
  pool.fill(0, poolPos, poolPos + DAO_KEY_BYTES);
  poolPos += DAO_KEY_BYTES;
  return key;
}

/** A fresh random data key. */
export function newDataKey(): Buffer {
  return randomBytes(DATA_KEY_BYTES);
}

const HEX = /^[0-9a-f]*$/;

export function isHexId(s: unknown, bytes: number): s is string {
  return typeof s === 'string' && s.length === bytes * 2 && HEX.test(s);
}

export function isDaoKey(s: unknown): s is DaoKey {
  return isHexId(s, DAO_KEY_BYTES);
}
