// A typed transaction: the view's DIO with values instead of bytes. Reads see the transaction's
// own writes; commit() turns everything into one signed commit (one signature, all or nothing).
import type { DaoKey, ReadAcl, WriteAcl } from '../chain/index.js';
import type { CommitScope, Dio } from '../view/index.js';
import { type Collection, collectionId } from './collections.js';
import { type Dao, entryKey, loadDao, toDao, tryLoadDao } from './dao-reads.js';
import { encodeValue } from './values.js';

export type { Dao };

export interface StoreOpts {
  /** Key of the DAO; absent = a fresh random key (a new DAO). */
  key?: DaoKey;
  /** Parent DAO (a tree edge) and the collection in its child list; null = root level. */
  parent?: DaoKey | null;
  collection?: Collection;
  /** Plaintext type tag (never user data): lets readers tell records apart without decrypting. */
  type?: string;
  /** Who may decrypt (default: inherit from the parent, or the chain's readers at root level). */
  read?: ReadAcl;
  /** Who may write the next version (default: inherit). `{ mode: 'nobody' }` makes it immutable. */
  write?: WriteAcl;
  /**
   * Who may create DAOs under this one, and what its descendants that inherit their write ACL get
   * (default: keep; a new DAO: none, i.e. the same as its write ACL; null drops it). Lets a DAO
   * admit more writers below it than on itself: a shared folder everyone adds to, changed only by
   * its managers.
   */
  children?: WriteAcl | null;
  /**
   * Who may change this DAO's ACLs (default: keep; a new DAO: none, i.e. its write ACL; null
   * drops it): writers of its content who may not change who else reads or writes it.
   */
  admin?: WriteAcl | null;
  /** The DAO this one answers (request/reply). */
  replyTo?: DaoKey;
  /** Public keys to publish with this version (KEM keys of readers named in `read`, say). */
  publish?: Uint8Array[];
}

export interface CommitOpts {
  /**
   * 'none' buffered, 'local' written to the log, 'durable' fsynced (default), 'remote' confirmed
   * by the server of a replicated chain (durable locally for a local chain).
   */
  scope?: CommitScope;
}

export class Transaction {
  constructor(private readonly dio: Dio) {}

  /** Stores a value as a new DAO (or a new version of `opts.key`). Returns the key. */
  store<T>(value: T, opts: StoreOpts = {}): DaoKey {
    const parent = opts.parent === undefined ? undefined
      : opts.parent === null ? null : { key: opts.parent, collection: collectionId(opts.collection) };
    return this.dio.store(encodeValue(value), {
      ...(opts.key !== undefined ? { key: opts.key } : {}),
      ...(parent !== undefined ? { parent } : {}),
      ...(opts.type !== undefined ? { type: opts.type } : {}),
      ...(opts.read !== undefined ? { read: opts.read } : {}),
      ...(opts.write !== undefined ? { write: opts.write } : {}),
      ...(opts.children !== undefined ? { children: opts.children } : {}),
      ...(opts.admin !== undefined ? { admin: opts.admin } : {}),
      ...(opts.replyTo !== undefined ? { replyTo: opts.replyTo } : {}),
      ...(opts.publish !== undefined ? { publish: opts.publish.map((k) => Buffer.from(k)) } : {}),
      take: true,
    });
  }

  /** Loads a DAO; NotFound when absent or deleted, NoReadKey when the session may not decrypt it. */
  load<T>(key: DaoKey): Dao<T> {
    return loadDao<T>(this.dio, key);
  }

  tryLoad<T>(key: DaoKey): Dao<T> | undefined {
    return tryLoadDao<T>(this.dio, key);
  }

  exists(key: DaoKey): boolean {
    return this.dio.exists(key);
  }

  /** The live children of `parent` in `collection`, loaded, in key order. */
  children<T>(parent: DaoKey, collection?: Collection): Array<Dao<T>> {
    const out: Array<Dao<T>> = [];
    for (const r of this.dio.iterate(parent, collectionId(collection))) out.push(toDao<T>(r));
    return out;
  }

  /** Keys of the live children, without decrypting them. */
  childKeys(parent: DaoKey, collection?: Collection): DaoKey[] {
    return this.dio.children(parent, collectionId(collection));
  }

  /**
   * The key of the entry called `name` in (parent, collection): an HMAC under the parent's data
   * key, so the same name always finds the same DAO and the index never holds the name itself.
   */
  keyOf(parent: DaoKey, name: string | Uint8Array, collection?: Collection): DaoKey {
    return entryKey(this.dio, parent, name, collection);
  }

  /** Deletes a DAO (a tombstone version). NotFound when it does not exist. */
  delete(key: DaoKey): void {
    this.dio.delete(key);
  }

  /** Changes who may read or write an existing DAO, or create under it (its payload is re-sealed, not re-written). */
  setAcl(key: DaoKey, acl: { read?: ReadAcl; write?: WriteAcl; children?: WriteAcl | null; admin?: WriteAcl | null }): void {
    this.dio.setAcl(key, acl);
  }

  /** Number of DAOs written so far. */
  get size(): number {
    return this.dio.size;
  }

  /**
   * One signed commit of everything written. Resolves with the commit's seq (-1: nothing to
   * commit). Conflict when a DAO read or written here changed meanwhile: nothing is applied.
   */
  async commit(opts: CommitOpts = {}): Promise<{ seq: number }> {
    const r = await this.dio.commit(opts.scope ?? 'durable');
    return { seq: r.seq };
  }

  cancel(): void {
    this.dio.cancel();
  }
}
