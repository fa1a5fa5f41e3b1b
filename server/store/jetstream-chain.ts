// One chain kept in a NATS JetStream stream (one subject per chain), served by this atedb node
// while other nodes may serve and append to the same chain.
//
// Order and sequence numbers: JetStream decides. Every message of the chain's subject carries one
// or more commits (a batch: the JetStream counterpart of the file store's group commit) and the
// header Ate-Seq = the chain seq of its first commit. A node publishes a batch with
// `expect.lastSubjectSequence` = the stream seq of the newest message of the subject it has applied,
// so a batch lands only directly after the state it was validated against (the per-chain
// compare-and-set); otherwise JetStream refuses it (wrong last sequence), the node catches up and
// validates the batch again. The client-visible seq is dense (1..n per chain) because it counts
// commits, not stream messages; Ate-Seq is checked against that count on every message, so a lost
// or reordered message stops the chain instead of renumbering it. The msgID is the first commit's
// hash and the batch size: a publish retried after a lost acknowledgement is deduplicated.
//
// One ordered consumer per open chain (filtered on its subject) tails the stream: every commit —
// this node's and other nodes' — is applied to the authority state, confirmed to its origin and
// relayed to subscribers from there, in stream order. A commit is confirmed only once JetStream
// acknowledged it (its quorum) and the tail applied it.
import { type JetStreamClient, JetStreamApiError, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import {
  type AuthorityState, type Commit, CommitRejected, DEFAULT_LIMITS, MemoryAuthorityState, type SizeLimits, checkAgainstState, decodeCommit,
  verifySignatures,
} from '../../src/chain/index.js';
import type { CryptoPool } from '../../src/crypto/index.js';
import { type SignedHead, ZERO_CHAIN_HASH, nextChainHash } from '../../src/net/index.js';
import { SpeculativeState } from '../../src/net/remote-state.js';
import { AppendRejected, serverOrder, toAppendRejected } from '../hosted-chain.js';
import type { AppendStats } from '../stats.js';
import type { VerifyBatcher } from '../verify-batcher.js';
import type { AppendOrigin, ChainListener, ServedChain } from './chain-store.js';
import { HeadSigner } from './head-signer.js';
import { frameCommits, unframeCommits } from './jetstream-batch.js';

/** JetStream's "wrong last sequence" API error: another node appended first. */
const WRONG_LAST_SEQUENCE = 10071;
/** Room kept in a message for headers and framing. */
const MESSAGE_OVERHEAD = 4096;
// Stored already: no clock applies to it now (and, as for every append, not the time-order rule).
const STORED_COMMIT = serverOrder(Number.POSITIVE_INFINITY);

/** How long one publish attempt waits for its ack before it is sent again (see publishBatch). */
const PUBLISH_ATTEMPT_MS = 1500;
/** Longest wait between attempts while JetStream has no leader (publishes, tail restarts). */
const RETRY_MAX_MS = 100;
/** An acknowledged message the tail has not delivered after this long: the tail is replaced. */
const STALL_MS = 5000;
/** The same after a publish needed retries: the tail's consumer likely died with the leader. */
const STALL_AFTER_OUTAGE_MS = 300;

export interface JetStreamContext {
  js: JetStreamClient;
  /** The same with a short request timeout: recreating a tail retries fast through an election. */
  jsQuick: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  /** The server's max_payload (bytes per message). */
  maxPayload: number;
  pool: CryptoPool | null;
  verifier: VerifyBatcher;
  signingKey: Buffer;
  limits?: Partial<SizeLimits>;
  stats?: AppendStats;
  /** How long an append may wait for JetStream (leader election included) before 'unavailable'. */
  publishTimeoutMs: number;
}

interface Item {
  commit: Commit;
  hex: string;
  bytes: Buffer;
  signers: ReadonlySet<string>;
  origin: AppendOrigin | null;
  done: boolean;
  t0: number;
  resolve: (seq: number) => void;
  reject: (e: Error) => void;
}

interface MessageSpan {
  streamSeq: number;
  first: number;
  count: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class JetStreamChain implements ServedChain {
  readonly listeners = new Set<ChainListener>();
  readonly state: AuthorityState = new MemoryAuthorityState();
  private readonly limits: SizeLimits;
  private chainHashes: Buffer[] = [ZERO_CHAIN_HASH];
  private readonly seqOf = new Map<string, number>();
  /** Which stream message holds which chain seqs (history reads start at the right message). */
  private readonly spans: MessageSpan[] = [];
  /** Stream seq of the newest message of the subject seen (applied or skipped): the CAS expectation. */
  private lastStreamSeq = 0;
  /** Messages skipped as losers of a race the CAS let through (see applyMessage). */
  skipped = 0;
  private readonly queue: Item[] = [];
  private readonly published = new Map<string, Item>();
  private publishing = false;
  private appliedWaiters: Array<{ streamSeq: number; resolve: () => void }> = [];
  private tail: { stop(): void } | null = null;
  private tailGen = 0;
  private applying: Promise<unknown> = Promise.resolve();
  private restartingTail = false;
  private readonly heads: HeadSigner;
  private broken: Error | null = null;
  genesisHash: Buffer = Buffer.alloc(0);
  confirmedSeq = 0;
  inflight = 0;
  closing = false;
  lastUsed = Date.now();

  private constructor(
    readonly name: string,
    readonly subject: string,
    private readonly c: JetStreamContext,
    private readonly onBroken: (chain: JetStreamChain, e: Error) => void,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...c.limits };
    this.heads = new HeadSigner({
      signingKey: c.signingKey, pool: c.pool, genesisHash: () => this.genesisHash,
      confirmedSeq: () => this.confirmedSeq, chainHashAt: (seq) => this.chainHashes[seq]!,
      onSigned: (h) => { for (const l of this.listeners) l.onHead(this, h); },
    });
  }

  /** The largest commit this chain takes: the size limit, and one commit must fit in a message. */
  get maxCommitBytes(): number {
    return Math.min(this.limits.maxCommitBytes, this.c.maxPayload - MESSAGE_OVERHEAD);
  }

  /** Opens a chain that exists in the stream (null if its subject is empty): replays and validates
   *  every commit, then keeps tailing the subject. */
  static async open(c: JetStreamContext, name: string, subject: string, onBroken: (chain: JetStreamChain, e: Error) => void): Promise<JetStreamChain | null> {
    const last = await c.jsm.streams.getMessage(c.stream, { last_by_subj: subject });
    if (!last) return null;
    const chain = new JetStreamChain(name, subject, c, onBroken);
    await chain.startTail(1);
    try {
      await chain.waitApplied(last.seq, 5 * 60_000);
    } catch (e) {
      chain.stopTail();
      throw e;
    }
    return chain;
  }

  /** Validates a genesis and publishes it as the subject's first message. */
  static async publishGenesis(c: JetStreamContext, name: string, subject: string, genesisBytes: Buffer, futureToleranceMs?: number): Promise<Buffer> {
    const limits = { ...DEFAULT_LIMITS, ...c.limits };
    const max = Math.min(limits.maxCommitBytes, c.maxPayload - MESSAGE_OVERHEAD);
    if (genesisBytes.length > max) throw new AppendRejected('too-large', `genesis of ${genesisBytes.length} bytes, the limit is ${max}`);
    let commit: Commit;
    try {
      commit = decodeCommit(genesisBytes, limits);
      if (!commit.header.genesis) throw new AppendRejected('unknown-chain', `no chain '${name}' here, and this commit is not a genesis`);
      const [signers] = await verifySignatures([commit], c.pool);
      if (signers instanceof CommitRejected) throw signers;
      checkAgainstState(new MemoryAuthorityState(), commit, signers!, serverOrder(futureToleranceMs));
    } catch (e) {
      throw toAppendRejected(e);
    }
    if (commit.header.genesis.name !== name) throw new AppendRejected('wrong-genesis', `genesis names chain '${commit.header.genesis.name}', not '${name}'`);
    const h = natsHeaders();
    h.set('Ate-Seq', '1');
    const deadline = Date.now() + c.publishTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await c.js.publish(subject, frameCommits([genesisBytes]), { msgID: `${commit.hash.toString('hex')}:1:1`, expect: { lastSubjectSequence: 0 }, headers: h, timeout: 5000 });
        return commit.hash;
      } catch (e) {
        if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) throw new AppendRejected('wrong-genesis', `chain '${name}' already exists`);
        if (Date.now() > deadline) throw new AppendRejected('unavailable', `JetStream did not store the genesis: ${(e as Error).message}`);
        await sleep(Math.min(1000, 100 * 2 ** attempt));
      }
    }
  }

  // ------------------------------------------------------------------------------ the tail

  private async startTail(fromStreamSeq: number): Promise<void> {
    const gen = ++this.tailGen;
    const consumer = await this.c.jsQuick.consumers.get(this.c.stream, { filter_subjects: this.subject, opt_start_seq: fromStreamSeq });
    // Short pulls and heartbeats: the consumer (R1, on one server) dies with that server.
    const messages = await consumer.consume({ max_messages: 256, expires: 5000, idle_heartbeat: 1000 });
    if (gen !== this.tailGen || this.closing) {
      void messages.close();
      return;
    }
    this.tail = { stop: () => { void messages.close(); } };
    void (async () => {
      for await (const st of messages.status()) {
        this.debug(`tail: ${JSON.stringify(st)}`);
        // The client's own recovery of an ordered consumer gives up when the server holding it
        // died during a leader election (it keeps reporting missed heartbeats): start a new one
        // from the newest message applied.
        if (st.type === 'heartbeats_missed' && st.count >= 2 && gen === this.tailGen) {
          this.restartTail();
          return;
        }
      }
    })().catch(() => undefined);
    void (async () => {
      try {
        for await (const m of messages) {
          if (gen !== this.tailGen) break;
          // Serialised across tails: an old tail may still be applying while a new one starts.
          const apply = this.applying.then(() => (gen === this.tailGen && !this.broken ? this.applyMessage(m) : undefined));
          this.applying = apply.catch(() => undefined);
          await apply;
          if (this.broken) break;
        }
      } catch (e) {
        if (!this.closing) this.markBroken(e as Error);
      }
    })();
  }

  /** Replaces a stalled tail by a new ordered consumer, retrying while JetStream has no leader. */
  private restartTail(): void {
    if (this.restartingTail) return;
    this.restartingTail = true;
    this.stopTail();
    const deadline = Date.now() + 2 * this.c.publishTimeoutMs;
    void (async () => {
      for (let attempt = 0; !this.closing && !this.broken; attempt++) {
        try {
          await this.applying;
          this.debug('restarting the tail');
          await this.startTail(this.lastStreamSeq + 1);
          return;
        } catch (e) {
          this.debug(`restarting the tail failed: ${(e as Error).message}`);
          if (Date.now() > deadline) {
            this.markBroken(new Error(`cannot follow the chain's subject: ${(e as Error).message}`));
            return;
          }
          await sleep(Math.min(RETRY_MAX_MS, 25 * 2 ** attempt));
        }
      }
    })().finally(() => { this.restartingTail = false; });
  }

  private debug(line: string): void {
    if (process.env.ATEDB_DEBUG) process.stderr.write(`${new Date().toISOString()} chain '${this.name}' (seq ${this.confirmedSeq}, stream ${this.lastStreamSeq}): ${line}\n`);
  }

  private stopTail(): void {
    this.tailGen++;
    this.tail?.stop();
    this.tail = null;
  }

  /** Applies one message of the subject: its commits get the next chain seqs. */
  private async applyMessage(m: JsMsg): Promise<void> {
    if (m.seq <= this.lastStreamSeq) return; // redelivered after the ordered consumer reset
    const first = Number(m.headers?.get('Ate-Seq'));
    if (!Number.isSafeInteger(first) || first < 1) throw new Error(`stream message ${m.seq} has no Ate-Seq header`);
    if (first <= this.confirmedSeq) {
      // A batch that lost the race but was stored anyway: nats-server 2.9's clustered streams check
      // the expected last subject sequence against what is applied, not what is in flight, so two
      // concurrent publishes with the same expectation can both land. It was validated against a
      // chain prefix that is no longer the newest, so every node skips it (the same decision
      // everywhere: it depends only on the stream's order); its publisher sends its commits again.
      this.skipped++;
      this.debug(`skipped stream message ${m.seq} (Ate-Seq ${first})`);
      this.lastStreamSeq = m.seq;
      this.wakeWaiters();
      return;
    }
    if (first !== this.confirmedSeq + 1) {
      throw new Error(`stream message ${m.seq} holds chain seq ${first}, but the chain is at ${this.confirmedSeq}: a message is missing`);
    }
    const raw = unframeCommits(m.data);
    if (raw.length === 0) throw new Error(`stream message ${m.seq} holds no commit`);
    const commits = raw.map((b) => decodeCommit(b, this.limits));
    // This node's own commits were verified before publishing; others' are verified here.
    const own = commits.map((c) => this.published.get(c.hash.toString('hex')) ?? null);
    const toVerify = commits.filter((_, i) => !own[i]);
    const verified = toVerify.length ? await verifySignatures(toVerify, this.c.pool) : [];
    let v = 0;
    const effects = commits.map((commit, i) => {
      const signers = own[i]?.signers ?? verified[v++]!;
      if (signers instanceof CommitRejected) throw new Error(`stored commit at seq ${first + i}: ${signers.message}`);
      if (commit.header.genesis) {
        if (first + i !== 1) throw new Error(`a genesis at seq ${first + i}`);
        if (commit.header.genesis.name !== this.name) throw new Error(`the subject's genesis names chain '${commit.header.genesis.name}'`);
      } else if (first + i === 1) throw new Error('the chain does not start with a genesis');
      // Checked against the state before anything is applied: a stored commit that does not fit
      // means the nodes disagree about validity, and the chain stops rather than diverge.
      return checkAgainstState(this.state, commit, signers, STORED_COMMIT);
    });
    const now = performance.now();
    commits.forEach((commit, i) => {
      const seq = first + i;
      this.state.applyEffects(effects[i]!);
      if (seq === 1) this.genesisHash = commit.hash;
      this.chainHashes.push(nextChainHash(this.chainHashes[this.chainHashes.length - 1]!, commit.hash));
      this.seqOf.set(commit.hash.toString('hex'), seq);
    });
    this.spans.push({ streamSeq: m.seq, first, count: commits.length });
    this.confirmedSeq = first + commits.length - 1;
    this.lastStreamSeq = m.seq;
    commits.forEach((commit, i) => {
      const seq = first + i;
      const it = own[i];
      if (it) {
        this.published.delete(it.hex);
        it.done = true;
        this.c.stats?.stored(now - it.t0, commit.events.length);
        it.resolve(seq);
        it.origin?.confirmed(this, seq);
      }
      for (const l of this.listeners) l.onCommit(this, seq, raw[i]!, it?.origin ?? null);
    });
    this.wakeWaiters();
    this.heads.committed();
  }

  private wakeWaiters(): void {
    this.appliedWaiters = this.appliedWaiters.filter((w) => (w.streamSeq <= this.lastStreamSeq ? (w.resolve(), false) : true));
  }

  private waitApplied(streamSeq: number, timeoutMs: number, stallMs = STALL_MS): Promise<void> {
    if (streamSeq <= this.lastStreamSeq) return Promise.resolve();
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.appliedWaiters = this.appliedWaiters.filter((w) => w.resolve !== done);
        reject(new Error(`stream message ${streamSeq} of chain '${this.name}' did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      // A message JetStream acknowledged that the tail does not deliver within seconds: the tail
      // is stuck (its server died); a new one starts from the newest message applied.
      const nudge = setTimeout(() => this.restartTail(), stallMs);
      const done = () => { clearTimeout(timer); clearTimeout(nudge); resolve(); };
      this.appliedWaiters.push({ streamSeq, resolve: done });
    });
  }

  private markBroken(e: Error): void {
    if (this.broken) return;
    this.broken = e;
    this.closing = true;
    this.stopTail();
    const err = new AppendRejected('unavailable', `chain '${this.name}' is unavailable: ${e.message}`);
    for (const it of [...this.queue.splice(0), ...this.published.values()]) if (!it.done) { it.done = true; it.reject(err); }
    this.published.clear();
    for (const w of this.appliedWaiters.splice(0)) w.resolve();
    this.onBroken(this, e);
    // Subscribers reconnect and resume from their seq on a freshly opened instance.
    for (const l of [...this.listeners]) l.onClosed?.(this, e);
  }

  // ------------------------------------------------------------------------------ appends

  get idle(): boolean {
    return this.listeners.size === 0 && this.inflight === 0 && this.queue.length === 0 && this.published.size === 0;
  }

  async append(bytes: Buffer, origin: AppendOrigin | null): Promise<number> {
    if (this.broken) throw new AppendRejected('unavailable', `chain '${this.name}' is unavailable: ${this.broken.message}`);
    if (this.closing) throw new AppendRejected('unavailable', `chain '${this.name}' is closing`);
    this.lastUsed = Date.now();
    if (bytes.length > this.maxCommitBytes) {
      throw new AppendRejected('too-large', `commit of ${bytes.length} bytes, the limit is ${this.maxCommitBytes} (the commit size limit and the NATS server's max_payload of ${this.c.maxPayload})`);
    }
    this.inflight++;
    try {
      let commit: Commit;
      try {
        commit = decodeCommit(bytes, this.limits);
      } catch (e) {
        throw toAppendRejected(e);
      }
      const hex = commit.hash.toString('hex');
      const known = this.seqOf.get(hex);
      if (known !== undefined) throw new AppendRejected('replay', `commit already in the chain at seq ${known}`, known);
      if (commit.header.genesis) throw new AppendRejected('wrong-genesis', `chain '${this.name}' already has its genesis`);
      if (this.published.has(hex) || this.queue.some((q) => q.hex === hex)) throw new AppendRejected('unavailable', 'the same commit is being stored right now; send it again');
      const signers = await this.c.verifier.verify(commit);
      if (signers instanceof CommitRejected) throw toAppendRejected(signers);
      return await new Promise<number>((resolve, reject) => {
        this.queue.push({ commit, hex, bytes, signers, origin, done: false, t0: performance.now(), resolve, reject });
        void this.pump();
      });
    } finally {
      this.inflight--;
    }
  }

  /** Publishes the queue in batches, one batch in flight per chain (the CAS needs the previous
   *  batch's stream seq); what arrives meanwhile forms the next batch. */
  private async pump(): Promise<void> {
    if (this.publishing) return;
    this.publishing = true;
    try {
      while (this.queue.length && !this.broken) {
        const { batch, deferred } = this.nextBatch();
        // Checked again once the batch they did not fit with is applied (and relayed): refused
        // then, a client hears of the commit it lost to before it hears that it lost. Queued
        // meanwhile (publishBatch puts what it did not store back in front of them).
        this.queue.unshift(...deferred);
        if (batch.length) await this.publishBatch(batch);
      }
    } catch (e) {
      this.markBroken(e as Error);
    } finally {
      this.publishing = false;
    }
  }

  /** Validates queued commits against the state plus the batch so far; rejects what does not fit
   *  the state, and defers what does not fit the batch (see pump). */
  private nextBatch(): { batch: Item[]; deferred: Item[] } {
    const overlay = new SpeculativeState(this.state);
    const batch: Item[] = [];
    const deferred: Item[] = [];
    let bytes = 0;
    while (this.queue.length) {
      const it = this.queue[0]!;
      const known = this.seqOf.get(it.hex);
      if (known !== undefined) {
        this.queue.shift();
        if (!it.done) { it.done = true; it.reject(new AppendRejected('replay', `commit already in the chain at seq ${known}`, known)); }
        continue;
      }
      if (batch.length && bytes + 4 + it.bytes.length > this.c.maxPayload - MESSAGE_OVERHEAD) break;
      try {
        overlay.applyEffects(checkAgainstState(overlay, it.commit, it.signers, serverOrder(undefined)));
      } catch (e) {
        this.queue.shift();
        if (batch.length > 0) {
          deferred.push(it);
          continue;
        }
        it.done = true;
        try {
          it.reject(toAppendRejected(e));
        } catch (e2) {
          it.reject(e2 as Error);
        }
        continue;
      }
      this.queue.shift();
      batch.push(it);
      bytes += 4 + it.bytes.length;
    }
    return { batch, deferred };
  }

  private async publishBatch(batch: Item[]): Promise<void> {
    const expect = this.lastStreamSeq;
    const first = this.confirmedSeq + 1;
    const h = natsHeaders();
    h.set('Ate-Seq', String(first));
    const payload = frameCommits(batch.map((b) => b.bytes));
    // Same batch at the same place = same msgID (a retry is deduplicated); the same commits sent
    // again after their first copy was skipped go to another place, under another msgID.
    const msgID = `${batch[0]!.hex}:${batch.length}:${first}`;
    for (const it of batch) this.published.set(it.hex, it);
    const deadline = Date.now() + this.c.publishTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (this.broken) return;
      try {
        // A short wait per attempt: a publish in flight when the stream leader dies is never
        // answered, and the retry (same msgID: deduplicated if the first landed) must reach the
        // new leader as soon as it is elected, not 5 s later. A slow ack is only sent again.
        const ack = await this.c.js.publish(this.subject, payload, { msgID, expect: { lastSubjectSequence: expect }, headers: h, timeout: PUBLISH_ATTEMPT_MS });
        // After failed attempts (a leader died) the tail's consumer may have died with it: a tail
        // that does not deliver this acknowledged message soon is replaced at once.
        await this.waitApplied(ack.seq, this.c.publishTimeoutMs, attempt > 0 ? STALL_AFTER_OUTAGE_MS : STALL_MS);
        break;
      } catch (e) {
        if (this.broken) return;
        this.debug(`publish of ${batch.length} at seq ${first} (attempt ${attempt}): ${(e as Error).message}`);
        if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) {
          // Another node appended first: apply what it stored, then validate the rest again. The
          // error names the subject's last sequence (saving a request); otherwise ask for it.
          const named = /wrong last sequence: (\d+)/.exec(e.message);
          if (named) await this.waitApplied(Number(named[1]), this.c.publishTimeoutMs);
          else await this.catchUp();
          break;
        }
        if (Date.now() > deadline) {
          // Not known to be stored: the client keeps the commit staged and sends it again (a
          // second copy is refused as a replay naming its seq if this one did land after all).
          const err = new AppendRejected('unavailable', `JetStream did not acknowledge within ${this.c.publishTimeoutMs} ms: ${(e as Error).message}`);
          for (const it of batch) {
            this.published.delete(it.hex);
            if (!it.done) { it.done = true; it.reject(err); }
          }
          return;
        }
        // No leader (an election after a node died), a timeout, no responders: try again, same
        // msgID, same expectation (a copy that did land is deduplicated). Often: during an
        // election these fail within a millisecond, and each wait is time after the new leader.
        await sleep(Math.min(RETRY_MAX_MS, 25 * 2 ** attempt));
      }
    }
    // Commits not applied (the CAS lost, or the batch was skipped) go back to the front of the queue.
    const left = batch.filter((it) => !it.done);
    for (const it of left) this.published.delete(it.hex);
    this.queue.unshift(...left);
  }

  /** Waits until the tail has applied the subject's newest message. */
  private async catchUp(): Promise<void> {
    const deadline = Date.now() + this.c.publishTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const last = await this.c.jsm.streams.getMessage(this.c.stream, { last_by_subj: this.subject });
        if (last) await this.waitApplied(last.seq, Math.max(1000, deadline - Date.now()));
        return;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(Math.min(500, 50 * 2 ** attempt));
      }
    }
  }

  // ------------------------------------------------------------------------------ reads

  async readHistory(from: number, upto: number, maxBytes: number): Promise<Buffer[]> {
    upto = Math.min(upto, this.confirmedSeq);
    if (from > upto) return [];
    // The message holding `from`: the last span starting at or before it.
    let lo = 0;
    let hi = this.spans.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.spans[mid]!.first <= from) lo = mid;
      else hi = mid - 1;
    }
    const start = this.spans[lo];
    if (!start) return [];
    const consumer = await this.c.js.consumers.get(this.c.stream, { filter_subjects: this.subject, opt_start_seq: start.streamSeq, inactive_threshold: 10_000 });
    const out: Buffer[] = [];
    let bytes = 0;
    let full = false; // the next commit would take the batch past maxBytes
    let seq = start.first;
    while (seq <= upto && !full) {
      const batch = await consumer.fetch({ max_messages: 64, expires: 5000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        const first = Number(m.headers?.get('Ate-Seq'));
        if (first < seq) continue; // a skipped batch (applyMessage)
        if (first !== seq) throw new Error(`history of '${this.name}': stream message ${m.seq} holds seq ${first}, expected ${seq}`);
        for (const c of unframeCommits(m.data)) {
          if (seq >= from && seq <= upto && !full) {
            if (out.length > 0 && bytes + c.length > maxBytes) full = true;
            else {
              out.push(c);
              bytes += c.length;
            }
          }
          seq++;
        }
        if (seq > upto || full) break;
      }
      if (got === 0) throw new Error(`history of '${this.name}': no message at seq ${seq}`);
    }
    return out;
  }

  seqOfCommit(hash: Buffer): number | undefined {
    return this.seqOf.get(hash.toString('hex'));
  }

  get chainHash(): Buffer {
    return this.chainHashes[this.confirmedSeq]!;
  }

  head(): Promise<SignedHead> {
    return this.heads.head();
  }

  /** Lets in-flight appends confirm or fail, then stops tailing. */
  async close(): Promise<void> {
    this.closing = true;
    const t0 = Date.now();
    while ((this.inflight > 0 || this.queue.length > 0 || this.published.size > 0 || this.publishing) && !this.broken && Date.now() - t0 < this.c.publishTimeoutMs + 1000) {
      await sleep(5);
    }
    await this.heads.settled();
    this.stopTail();
  }
}
