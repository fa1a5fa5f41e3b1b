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
import { assembleCommit, hashCommitParts, signCommitHash } from '../chain/codec.js';
import { MAX_SIGNOFF_HASHES } from '../chain/deferred.js';
import { publicKeyId } from '../chain/ids.js';
import type { CommitHeader, KeyId } from '../chain/types.js';
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
  private timer: NodeJS.Timeout | null = null;
  readonly stats: DeferredSignerStats = { signoffs: 0, covered: 0, lastError: null };

  /**
   * `delayMs`: how long a sign-off waits after the first commit it will cover. On 2 cores a
   * signature per fsync burst takes CPU from the next fsync; waiting a little lets one signature
   * cover a whole run of fsyncs (a database's transactions), and still signs within a second.
   */
  constructor(private readonly view: View, private readonly delayMs = 100) {}

  /** Schedules a sign-off run unless one is due or running (that run takes what came since). */
  kick(): void {
    if (this.running || this.timer || this.view.state.unsignedCount === 0 || this.view.readOnly) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.start();
    }, this.delayMs);
    // A process that ends without closing the view leaves the list in the index: the next open signs it off.
    this.timer.unref();
  }

  private start(all = false): void {
    if (this.running || this.view.state.unsignedCount === 0 || this.view.readOnly) return;
    this.running = this.run(all).finally(() => {
      this.running = null;
      // Commits made while it was signed: the next sign-off, after the delay again.
      if (!all) this.kick();
    });
  }

  /** Resolves once every commit listed as unsigned is signed off (or cannot be by this session). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.running) await this.running;
    // The run that just ended scheduled the next one: run it now instead.
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.start(true);
    while (this.running) await this.running;
  }

  /** One sign-off, or (`all`) as many as it takes to cover every unsigned commit. */
  private async run(all: boolean): Promise<void> {
    try {
      do if (!(await this.signOffOnce())) return;
      while (all && this.view.state.unsignedCount > 0);
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
    const sigs = await signCommitHash(hash, [...keys.values()], v.pool);
    await v.submit(assembleCommit(header, headerBytes, hash, [], sigs), 'local', true);
    this.stats.signoffs++;
    this.stats.covered += take.length;
    return true;
  }
}
