// A cache with expiry on top of a chain: entries are DAOs keyed by the HMAC of their name under
// the cache's key, each with an expiry time; reads treat expired entries as absent, and a sweep
// deletes them in one commit. On a replicated chain every process sees the same cache.
import { openChain, NotFound } from 'atefs';

class ChainCache {
  constructor(chain, root) {
    this.chain = chain;
    this.root = root;
  }

  static async open(chain) {
    // The cache's root DAO: one fixed key per chain, created by the first process that needs it.
    const root = chain.namedKey('cache-root');
    if (!chain.tryLoad(root)) await chain.transact((tx) => { if (!tx.exists(root)) tx.store({ kind: 'cache' }, { key: root, type: 'cache-root' }); });
    return new ChainCache(chain, root);
  }

  async set(name, value, ttlMs) {
    await this.chain.transact((tx) => {
      tx.store({ value, expiresAt: Date.now() + ttlMs }, { key: tx.keyOf(this.root, name, 'entries'), parent: this.root, collection: 'entries', type: 'cache-entry' });
    }, { scope: 'local' });
  }

  get(name) {
    const e = this.chain.tryLoad(this.chain.keyOf(this.root, name, 'entries'));
    if (!e || e.value.expiresAt <= Date.now()) return undefined;
    return e.value.value;
  }

  /** Deletes every expired entry in one commit; returns how many. */
  async sweep() {
    return this.chain.transact((tx) => {
      let n = 0;
      for (const e of tx.children(this.root, 'entries')) {
        if (e.value.expiresAt > Date.now()) continue;
        try {
          tx.delete(e.key);
          n++;
        } catch (err) {
          if (!(err instanceof NotFound)) throw err;
        }
      }
      return n;
    });
  }
}

const chain = await openChain('cache', { temp: !process.argv.includes('--keep') });
try {
  const cache = await ChainCache.open(chain);
  await cache.set('greeting', 'hello', 60_000);
  await cache.set('session:42', { user: 'ada' }, 1000);
  console.log(`greeting = ${JSON.stringify(cache.get('greeting'))}`);
  console.log(`session:42 = ${JSON.stringify(cache.get('session:42'))}`);
  await new Promise((ok) => setTimeout(ok, 1200));
  console.log(`after 1.2 s: session:42 = ${JSON.stringify(cache.get('session:42'))}, greeting = ${JSON.stringify(cache.get('greeting'))}`);
  console.log(`swept ${await cache.sweep()} expired entr(ies)`);
} finally {
  await chain.close();
}
