// Confidentiality: per-node data keys wrapped for readers, and payload AEAD bound to its context.
//
// A data key is wrapped for a symmetric reader with XChaCha20-Poly1305 and for a KEM reader with a
// hybrid sealed box; the associated data binds the wrap to the data key id, so a wrap can't be
// passed off as the wrap of another key. Payloads are AES-256-GCM sealed with associated data
// (chain id, DAO key, version): a payload moved to another event, DAO, version or chain fails to open.
import {
  DecryptError,
  aesGcmOpen,
  aesGcmSeal,
  openSealed,
  sealForPublicKey,
  xchachaOpen,
  xchachaSeal,
} from '../crypto/index.js';
import type { AuthorityStateReader } from './state.js';
import { NoReadKey } from './errors.js';
import { DAO_KEY_BYTES, DATA_KEY_ID_BYTES, dataKeyId } from './ids.js';
import type { DaoKey, DataKeyGrant, DataKeyId, KeyId, KeyWrap, ReaderRef } from './types.js';

/** The keys a process holds, as the chain layer needs them. Implemented by session/Session. */
export interface Keyring {
  /** Signing keys, with their publicKeyId. */
  signingKeys(): ReadonlyArray<{ id: KeyId; publicKey: Buffer; secretKey: Buffer }>;
  /** Symmetric read key by readKeyId. */
  readKey(id: KeyId): Buffer | undefined;
  /** KEM secret key by publicKeyId of its public half. */
  kemSecretKey(id: KeyId): Buffer | undefined;
  /** KEM public key by id, if the keyring knows it (own keys, group keys, contacts). */
  kemPublicKey?(id: KeyId): Buffer | undefined;
}

const WRAP_AAD_PREFIX = Buffer.from('atefs/chain/wrap/v1\0', 'utf8');
const PAYLOAD_AAD_PREFIX = Buffer.from('atefs/chain/payload/v1\0', 'utf8');

function wrapAad(id: DataKeyId): Buffer {
  return Buffer.concat([WRAP_AAD_PREFIX, Buffer.from(id, 'hex')]);
}

/** Associated data of a payload: chain id (genesis hash), DAO key, version. */
export function payloadAad(chain: Buffer, key: DaoKey, version: number): Buffer {
  const out = Buffer.allocUnsafe(PAYLOAD_AAD_PREFIX.length + chain.length + DAO_KEY_BYTES + 8);
  let o = PAYLOAD_AAD_PREFIX.copy(out, 0);
  o += chain.copy(out, o);
  o += out.write(key, o, DAO_KEY_BYTES, 'hex');
  out.writeUInt32BE(Math.floor(version / 0x1_0000_0000), o);
  out.writeUInt32BE(version >>> 0, o + 4);
  return out;
}

export function sealPayload(dataKey: Buffer, plaintext: Uint8Array, aad: Buffer): Buffer {
  return aesGcmSeal(dataKey, plaintext, aad);
}

/** Throws DecryptError when the payload was tampered with or moved (never returns garbage). */
export function openPayload(dataKey: Buffer, sealed: Uint8Array, aad: Buffer): Buffer {
  return aesGcmOpen(dataKey, sealed, aad);
}

/** Resolves a reader's public key for wrapping: keyring, then keys published in the chain. */
export type PublicKeyLookup = (id: KeyId) => Buffer | undefined;

/** Wraps `dataKey` for each reader. Symmetric readers need the key in the keyring; KEM readers a public key. */
export function wrapDataKey(
  dataKey: Buffer,
  readers: readonly ReaderRef[],
  keyring: Keyring,
  lookupPublic: PublicKeyLookup,
): DataKeyGrant {
  const id = dataKeyId(dataKey);
  const aad = wrapAad(id);
  const wraps: KeyWrap[] = readers.map((reader) => {
    if (reader.kind === 'sym') {
      const k = keyring.readKey(reader.id);
      if (!k) throw new NoReadKey(id, `cannot wrap for symmetric reader ${reader.id.slice(0, 16)}: key not in the session`);
      return { reader, sealed: xchachaSeal(k, dataKey, aad) };
    }
    const pk = keyring.kemPublicKey?.(reader.id) ?? lookupPublic(reader.id);
    if (!pk) throw new NoReadKey(id, `cannot wrap for KEM reader ${reader.id.slice(0, 16)}: public key unknown`);
    return { reader, sealed: sealForPublicKey(pk, dataKey, aad) };
  });
  return { id, wraps };
}

/** Tries to open one wrap with the keyring; undefined if the keyring has no key for its reader. */
function tryUnwrap(w: KeyWrap, id: DataKeyId, keyring: Keyring): Buffer | undefined {
  try {
    let k: Buffer | undefined;
    if (w.reader.kind === 'sym') {
      const rk = keyring.readKey(w.reader.id);
      if (rk) k = xchachaOpen(rk, w.sealed, wrapAad(id));
    } else {
      const sk = keyring.kemSecretKey(w.reader.id);
      if (sk) k = openSealed(sk, w.sealed, wrapAad(id));
    }
    // A wrap that opens to a key with another id is hostile or corrupt: ignore it.
    if (k && k.length === 32 && dataKeyId(k) === id) return k;
    return undefined;
  } catch (e) {
    if (e instanceof DecryptError || (e as Error).name === 'MalformedEncoding' || (e as Error).name === 'UnsupportedAlgorithm') {
      return undefined;
    }
    throw e;
  }
}

/**
 * Unwrapped data keys of one session, cached by id (data keys never change; wraps only grow).
 * `get` throws NoReadKey when no wrap opens with the session's keys.
 */
export class DataKeyCache {
  private readonly keys = new Map<DataKeyId, Buffer>();
  private readonly misses = new Map<DataKeyId, number>();

  constructor(readonly keyring: Keyring) {}

  /** Remembers a key this process created (no unwrap needed). */
  remember(dataKey: Buffer): DataKeyId {
    const id = dataKeyId(dataKey);
    this.keys.set(id, dataKey);
    this.misses.delete(id);
    return id;
  }

  has(id: DataKeyId): boolean {
    return this.keys.has(id);
  }

  get(state: AuthorityStateReader, id: DataKeyId): Buffer {
    const hit = this.keys.get(id);
    if (hit) return hit;
    if (id.length !== DATA_KEY_ID_BYTES * 2) throw new NoReadKey(id, 'bad data key id');
    const rec = state.getDataKey(id);
    if (!rec) throw new NoReadKey(id, 'data key unknown to the chain');
    // Re-try only when new wraps arrived since the last miss (a re-wrap adds wraps).
    if (this.misses.get(id) === rec.wraps.length) throw new NoReadKey(id);
    for (const w of rec.wraps) {
      const k = tryUnwrap(w, id, this.keyring);
      if (k) {
        this.keys.set(id, k);
        this.misses.delete(id);
        return k;
      }
    }
    this.misses.set(id, rec.wraps.length);
    throw new NoReadKey(id);
  }

  /** Forgets everything (e.g. when the session changes). */
  clear(): void {
    this.keys.clear();
    this.misses.clear();
  }
}
