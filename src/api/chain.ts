// A chain opened through the library: typed transactions, change subscriptions, leases and
// references, over one view (local log, or a replica of a server's chain).
import { createHash } from 'node:crypto';
import { DAO_KEY_BYTES, type DaoKey } from '../chain/index.js';
import type { Session } from '../session/index.js';
import { Conflict, type CommitScope, type View } from '../view/index.js';
import { Transaction } from './transaction.js';
import { type Dao, type RecordSource, entryKey, loadDao, tryLoadDao } from './dao-reads.js';
import { type ChangeNotice, type SubscribeOpts, subscribe } from './subscription.js';
import type { LeaseService } from './leases.js';
import type { DaoRef } from './refs.js';
import type { Collection } from './collections.js';

export interface TransactOpts {
  scope?: CommitScope;
  /** Times a transaction that lost an optimistic race (Conflict) is run again (default 5). */
  retries?: number;
}

export class Chain {
  /** Reads of the committed state, as a transaction's reads (dao-reads.ts). */
  private readonly committed: RecordSource = {
    load: (key) => this.view.get(key),
    tryLoad: (key) => this.view.tryGet(key),
    nameKey: (parent, collection, name) => this.view.nameKey(parent, collection, name),
  };

  constructor(
    /** The chain's name (`universe`, `acme/docs`). */
    readonly name: string,
    readonly view: View,
    readonly session: Session,
    readonly leases: LeaseService,
    private readonly closer: () => Promise<void>,
  ) {}

  /** A transaction; nothing is written until its commit(). */
  begin(): Transaction {
    return new Transaction(this.view.begin('durable'));
  }

  /**
   * Runs `fn` in a transaction and commits it; a Conflict (someone changed what `fn` read) runs
   * it again on the new state, up to `retries` times. `fn` must not have side effects outside
   * the transaction. Resolves with fn's result.
   */
  async transact<T>(fn: (tx: Transaction) => T | Promise<T>, opts: TransactOpts = {}): Promise<T> {
    const retries = opts.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      const tx = this.begin();
      let out: T;
      try {
        out = await fn(tx);
      } catch (e) {
        tx.cancel();
        throw e;
      }
      try {
        await tx.commit({ scope: opts.scope ?? 'durable' });
        return out;
      } catch (e) {
        if (!(e instanceof Conflict) || attempt >= retries) throw e;
      }
    }
  }

  /** Loads one DAO outside a transaction (the committed state). */
  load<T>(key: DaoKey): Dao<T> {
    return loadDao<T>(this.committed, key);
  }

  tryLoad<T>(key: DaoKey): Dao<T> | undefined {
    return tryLoadDao<T>(this.committed, key);
  }

  /**
   * A fixed DAO key for a well-known root-level record (an app's root, a queue's head), the same
   * every time for this chain. Derived from the genesis hash and the name: anyone who knows both
   * can tell that the record exists, never what it holds.
   */
  namedKey(name: string): DaoKey {
    return createHash('sha256').update('ate/named-key/v1\0').update(this.view.genesisHash).update(name).digest().subarray(0, DAO_KEY_BYTES).toString('hex');
  }

  /** See Transaction.keyOf (the committed state). */
  keyOf(parent: DaoKey, name: string | Uint8Array, collection?: Collection): DaoKey {
    return entryKey(this.committed, parent, name, collection);
  }

  /** Every commit applied from now on, in order (own commits and, on a replica, others'). */
  changes(opts?: SubscribeOpts): AsyncIterableIterator<ChangeNotice> {
    return subscribe(this.view, opts);
  }

  /** A reference to a DAO of this chain, to store in another chain (see ChainRegistry). */
  ref(key: DaoKey): DaoRef {
    return { chain: this.name, key };
  }

  get genesisHash(): string {
    return this.view.genesisHash.toString('hex');
  }

  async close(): Promise<void> {
    await this.closer();
  }
}
