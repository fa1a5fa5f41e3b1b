// What a Chain (the committed state) and a Transaction (that state and its own writes) read the
// same way: records as typed DAOs, and the key of an entry by name in a collection.
import type { DaoKey } from '../chain/index.js';
import type { DaoRecord } from '../view/index.js';
import { type Collection, collectionId } from './collections.js';
import { decodeValue } from './values.js';

/** A loaded DAO with its decoded value. */
export interface Dao<T> {
  key: DaoKey;
  version: number;
  value: T;
  type: string | null;
  parent: { key: DaoKey; collection: number } | null;
  /** Commit time of this version (ms since the epoch, the writer's clock). */
  updatedAt: number;
}

/** The record reads of a view (committed state) or of a DIO transaction. */
export interface RecordSource {
  load(key: DaoKey): DaoRecord;
  tryLoad(key: DaoKey): DaoRecord | undefined;
  nameKey(parent: DaoKey, collection: number, name: Uint8Array): DaoKey;
}

export function toDao<T>(r: DaoRecord): Dao<T> {
  return { key: r.key, version: r.version, value: decodeValue<T>(r.key, r.data), type: r.type, parent: r.parent, updatedAt: r.updatedAt };
}

/** NotFound when absent or deleted, NoReadKey when the session may not decrypt it. */
export function loadDao<T>(src: RecordSource, key: DaoKey): Dao<T> {
  return toDao<T>(src.load(key));
}

export function tryLoadDao<T>(src: RecordSource, key: DaoKey): Dao<T> | undefined {
  const r = src.tryLoad(key);
  return r ? toDao<T>(r) : undefined;
}

/**
 * The key of the entry called `name` in (parent, collection): an HMAC under the parent's data
 * key, so the same name always finds the same DAO and the index never holds the name itself.
 */
export function entryKey(src: RecordSource, parent: DaoKey, name: string | Uint8Array, collection?: Collection): DaoKey {
  return src.nameKey(parent, collectionId(collection), typeof name === 'string' ? Buffer.from(name) : name);
}
