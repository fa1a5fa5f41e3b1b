// Signs off commits whose signatures were deferred (src/chain/deferred.ts), in the background.
//
// The view's index lists the applied deferred commits no sign-off covers yet (lmdb-state.ts
// `unsigned`, persisted with the records). After each deferred commit, at open (a mount that
// stopped between a durable commit and its sign-off) and after a compaction (which drops the old
// sign-offs), this appends one event-less commit listing their hashes, hybrid-signed by every key
// they named. One run at a time: commits made while a sign-off is being signed wait for the next
// one, so under a stream of fsyncs there are far fewer signatures than commits, and none of them
// is on an fsync's path. The sign-off is appended without its own fdatasync: it becomes durable
// with the next durable commit, the view's close, or `flush()`.
import { assembleCommit, hashCommitParts, signatureMessage } from '../chain/codec.js';
import { MAX_SIGNOFF_HASHES } from '../chain/deferred.js';
import { publicKeyId } from '../chain/ids.js';
import type { CommitHeader, KeyId } from '../chain/types.js';
import { signMessage } from '../crypto/index.js';
import type { View } from './view.js';

export interface DeferredSignerStats {
  /** Sign-offs appended by this view. */
  signoffs: number;
  /** Commits they covered. */
  covered: number;
  /** Why the last run stopped early (a key this session does not hold, a failed append), if it did. */
  lastError: string | null;
}

export class DeferredSigner {
  private running: Promise<void> | null = null;
  readonly stats: DeferredSignerStats = { signoffs: 0, covered: 0, lastError: null };

  constructor(private readonly view: View) {}

  /** Starts a sign-off run unless one is running (that run goes on with what came since). */
  kick(): void {
    if (this.running || this.view.state.unsignedCount === 0 || this.view.readOnly) return;
    this.running = this.run().finally(() => {
      this.running = null;
    });
  }

  /** Resolves once every commit listed as unsigned is signed off (or cannot be by this session). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
    this.kick();
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    try {
      while (this.view.state.unsignedCount > 0) if (!(await this.signOffOnce())) return;
    } catch (e) {
      // The view failed or closed: the list stays in the index; the next open signs it off.
      this.stats.lastError = (e as Error).message;
    }
  }

  /** One sign-off over the oldest unsigned commits this session can sign for; false if none. */
  private async signOffOnce(): Promise<boolean> {
    const v = this.view;
    const mine = new Map<KeyId, { publicKey: Buffer; secretKey: Buffer }>();
    for (const k of v.keyring.signingKeys()) mine.set(publicKeyId(k.publicKey), k);
    const take = [];
    const keys = new Map<KeyId, { publicKey: Buffer; secretKey: Buffer }>();
    for (const u of v.state.unsigned()) {
      const ids = u.keys.map((k) => publicKeyId(k));
      if (!ids.every((id) => mine.has(id))) {
        this.stats.lastError = `commit ${u.hash.toString('hex')} (seq ${u.seq}) needs a key this session does not hold to be signed off`;
        continue;
      }
      for (const id of ids) keys.set(id, mine.get(id)!);
      take.push(u);
      if (take.length >= MAX_SIGNOFF_HASHES) break;
    }
    if (take.length === 0) return false;
    const now = v.now();
    const prev = v.state.latestTimestamp();
    const header: CommitHeader = { chain: v.genesisHash, timestamp: prev !== undefined && prev > now ? prev : now, genesis: null, signs: take.map((u) => u.hash) };
    const { headerBytes, hash } = hashCommitParts(header, []);
    const msg = signatureMessage(hash);
    const pool = v.pool;
    const sigs = await Promise.all(
      [...keys.values()].map(async (k) => ({ publicKey: k.publicKey, signature: pool ? await pool.sign(k.secretKey, msg) : signMessage(k.secretKey, msg) })),
    );
    await v.submit(assembleCommit(header, headerBytes, hash, [], sigs), 'local', true);
    this.stats.signoffs++;
    this.stats.covered += take.length;
    return true;
  }
}
