// The replication client: a chain kept on an atedb server.
//   replica log  — every commit the server confirmed, in server order (log seq = server seq)
//   staging log  — this client's commits not confirmed yet; durable before they are sent, so they
//                  survive a crash and are re-sent after restart (the server refuses a second copy
//                  as a replay naming its seq, so each is stored exactly once)
// Everything received is validated here before it is applied (hash recomputed, signatures, state
// checks; nothing from the server is trusted), the genesis is pinned, and the newest server-signed
// head is kept: a server that shows a shorter history, another commit at a seen seq, or a gap is
// refused with a message naming what it did, and the client stops talking to it.
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  type Commit, CommitBuilder, CommitRejected, DataKeyCache, MemoryAuthorityState, checkAgainstState, createGenesis, decodeCommit,
  loadChain, signersOf, verifySignatures,
} from '../chain/index.js';
import { type CutHost, CutFollower, keptComplete } from './remote-cut.js';
import { pinnedFingerprint } from './known-hosts.js';
import { defaultBulkPool } from '../crypto/index.js';
import { type RedoLog, openLog } from '../log/index.js';
import { Disconnected, NetError, OfflineRefused, RemoteRejected, ServerMisbehaved, ServerUnavailable } from './errors.js';
import { type ClientSession, connectClient } from './handshake.js';
import { type Message, type SignedHead, encodeAppendParts } from './messages.js';
import { HeadStore, HistoryGuard, SpeculativeState } from './remote-state.js';
import { StagingUpkeep } from './staging-upkeep.js';
import { type LeaseOp, type LeaseReply, SessionRequests } from './session-requests.js';
import { type ReplicaTrust, replicaTrust } from './replica-trust.js';
import { SNAPSHOT_FILE, loadSnapshot, saveSnapshot as saveSnapshotFile, snapshotKey } from './replica-snapshot.js';
import { type RecoveryMode, type RemoteChainEvents, type RemoteChainOptions, type RemoteStatus, parseRemoteUrl } from './remote-options.js';

export { DEFAULT_PORT, parseRemoteUrl, type RecoveryMode, type RemoteChainEvents, type RemoteChainOptions, type RemoteStatus } from './remote-options.js';
export type { LeaseReply } from './session-requests.js';

/** The longest an fsync holds back uploads (holdUploads). */
const UPLOAD_HOLD_MAX_MS = 5000;
/** Segment size of the replica and staging logs (see open). */
const REPLICA_SEGMENT_SIZE = 1 << 30;

interface Staged {
  commit: Commit;
  sentOn: ClientSession | null;
  requestId: number;
  waiters: Array<{ resolve: (seq: number) => void; reject: (e: Error) => void }>;
}

export class RemoteChain extends EventEmitter<RemoteChainEvents> {
  /** The node this client talks to (or tries next): one of `nodes`, in turn. */
  host: string;
  port: number;
  readonly nodes: ReadonlyArray<{ host: string; port: number }>;
  private nodeIndex = 0;
  readonly name: string;
  readonly mode: RecoveryMode;
  readonly confirmed = new MemoryAuthorityState();
  private spec: SpeculativeState = new SpeculativeState(this.confirmed);
  private specDirty = false;
  private readonly history = new HistoryGuard();
  /** The server's clock as far as this client knows it: future-time checks and our timestamps
   *  follow it, so a client whose own clock is off neither refuses good commits nor sends bad ones. */
  // Also the validation options of the server's order: timestamps may go backwards there (see
  // ValidationOptions.backwardsToleranceMs: several writers, one arrival order).
  private readonly clock = { now: () => this.localNow() + this.clockOffsetMs, backwardsToleranceMs: Number.POSITIVE_INFINITY };
  private readonly localNow: () => number;
  private pending: Staged[] = [];
  private session: ClientSession | null = null;
  private nextRequest = 1;
  private recv: Promise<void> = Promise.resolve();
  private commitQueue: Promise<unknown> = Promise.resolve();
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private firstSync: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Leases, pings and the keepalive of the current connection (session-requests.ts). */
  private readonly requests = new SessionRequests(() => this.nextRequest++);
  private readonly keys: DataKeyCache;
  private readonly heads: HeadStore;
  /** Following a history the server compacted (remote-cut.ts). */
  private readonly cuts: CutFollower;
  private readonly upkeep: StagingUpkeep;
  /** How the local replica was reopened: records, and how many of them were not re-verified (replica-trust.ts). */
  loadReport: { records: number; signaturesTrusted: number; why: string | null; fromSnapshot: number; snapshotWhy: string | null } | null = null;
  genesisHash: Buffer | null;
  serverKey: Buffer | null = null;
  status: RemoteStatus = 'offline';
  refusal: ServerMisbehaved | null = null;
  clockOffsetMs = 0;
  lastError: Error | null = null;

  private constructor(
    private readonly o: RemoteChainOptions,
    readonly replica: RedoLog,
    readonly staging: RedoLog,
  ) {
    super();
    const u = parseRemoteUrl(o.url);
    this.host = u.host;
    this.port = u.port;
    this.nodes = u.nodes;
    this.name = u.name;
    this.mode = o.mode ?? 'async';
    this.localNow = o.now ?? Date.now;
    this.genesisHash = o.genesisHash ?? null;
    this.keys = new DataKeyCache(o.session);
    this.heads = new HeadStore(o.dir ? path.join(o.dir, 'head.json') : null);
    this.cuts = new CutFollower(this.cutHost(), o.dir ? path.join(o.dir, 'cut-head.json') : null);
    this.upkeep = new StagingUpkeep(staging, {
      closed: () => this.status === 'closed',
      pendingCount: () => this.pending.length,
      confirmed: (hash) => this.confirmed.hasCommit(hash),
      compaction: o.stagingCompaction,
    });
  }

  /** Opens the local replica (validating it), then connects in the background. A chain never
   *  synced before waits for its first sync (or creation) and fails if the server is unreachable. */
  static async open(o: RemoteChainOptions): Promise<RemoteChain> {
    const { name } = parseRemoteUrl(o.url);
    if (o.dir) await fsp.mkdir(o.dir, { recursive: true, mode: 0o700 });
    // Large segments: a rotation fdatasyncs the whole segment it seals and fsyncs the directory
    // twice, on the thread that serves the mount. The replica needs no such sync (the server holds
    // every confirmed commit durably) and the staging log is made durable by the fsyncs that ask
    // for it; with 64 MiB segments a big copy rotated both in the middle of the writes.
    const logOpts = (sub: string) => (o.dir
      ? { dir: path.join(o.dir, sub), chainId: name, maxRecordSize: 80 << 20, segmentSize: REPLICA_SEGMENT_SIZE }
      : { memory: true, chainId: name, maxRecordSize: 80 << 20 });
    const replica = await openLog(logOpts('replica'));
    const staging = await openLog(logOpts('staging'));
    const rc = new RemoteChain(o, replica, staging);
    try {
      await rc.loadLocal();
    } catch (e) {
      await replica.close().catch(() => undefined);
      await staging.close().catch(() => undefined);
      throw e;
    }
    const first = rc.confirmed.getGenesis() ? null : new Promise<void>((resolve, reject) => { rc.firstSync = { resolve, reject }; });
    rc.connect();
    if (first) {
      // Never hang: a server that accepts the connection and then says nothing fails the open too.
      const ms = o.openTimeoutMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Disconnected(`no history from ${rc.host}:${rc.port} for chain '${name}' within ${ms} ms`)), ms);
      });
      try {
        await Promise.race([first, timeout]);
      } catch (e) {
        await rc.close();
        throw e;
      } finally {
        clearTimeout(timer);
      }
    }
    return rc;
  }

  private async loadLocal(): Promise<void> {
    if (this.replica.nextSeq > 1) {
      // What the pinned server signed need not be re-verified signature by signature (replica-trust.ts).
      const trust = await replicaTrust(this.replica, this.heads, {
        addresses: this.nodes.map((n) => `${n.host}:${n.port}`), pinnedGenesis: this.genesisHash,
        ...(this.o.knownHosts ? { knownHosts: this.o.knownHosts } : {}), ...(this.o.serverKey ? { serverKey: this.o.serverKey } : {}),
      });
      // The state saved at the last close, when it matches the trusted replica: only the records
      // after it are applied (replica-snapshot.ts).
      const snap = await this.restoreSnapshot(trust);
      this.loadReport = { records: this.replica.nextSeq - 1, signaturesTrusted: trust.until, why: trust.why, fromSnapshot: snap.seq, snapshotWhy: snap.why };
      // A replica of a compacted history (remote-cut.ts): its cut must be signed by a key pinned
      // for this server, and the server's head at the cut is where atedb's chain hash resumes.
      const cut = this.replica.chain.cut;
      const cutHead = cut ? await this.cuts.checkReplicaCut(cut, await this.pinnedKeys()) : null;
      let crossed = !cut;
      // No future-time check here: the server confirmed these by its clock, which ours may trail.
      // A compacted replica has gaps below its cut: loadChain checks it in gap mode.
      for await (const c of loadChain(this.replica, {
        pinnedGenesis: this.genesisHash, state: this.confirmed, pool: this.o.pool ?? null, trustSignaturesUntil: trust.until,
        futureToleranceMs: Number.POSITIVE_INFINITY, backwardsToleranceMs: Number.POSITIVE_INFINITY,
        ...(snap.seq > 0 ? { from: { seq: snap.seq + 1 } } : {}),
      })) {
        if (!crossed && c.seq <= cut!.seq) {
          this.history.unknownAt(c.seq);
          continue;
        }
        if (!crossed) {
          this.history.crossCut(cut!.seq, cutHead!.chainHash);
          crossed = true;
        }
        this.history.push(c.commit.hash);
      }
      this.genesisHash = this.confirmed.getGenesis()!.hash;
      if (cut && !crossed && keptComplete(this.replica, cut, this.genesisHash)) {
        // Every kept record is here (the sync stopped at the cut): the history resumes after it.
        this.history.crossCut(cut.seq, cutHead!.chainHash);
        await this.replica.adoptCut!(cut, cut.seq + 1);
      }
      const stored = await this.heads.load(this.genesisHash, () => null);
      if (stored) this.history.head = stored.head;
    }
    // Staged commits not in the replica are still pending (the rest were confirmed before a crash).
    let dropped = 0;
    for (const rec of this.staging.records()) {
      const commit = decodeCommit(Buffer.from(rec.payload));
      if (this.confirmed.hasCommit(commit.hash)) dropped++;
      else this.pending.push({ commit, sentOn: null, requestId: 0, waiters: [] });
    }
    // All confirmed: dropped unread (they were just read above).
    if (dropped > 0 && this.pending.length === 0) await this.staging.compact(() => false, { dropBefore: this.staging.nextSeq });
    this.specDirty = true;
  }

  /** Fingerprints of the server keys pinned for this chain's nodes (--server-key or known_hosts). */
  private async pinnedKeys(): Promise<Array<string | null>> {
    return this.o.serverKey ? [this.o.serverKey] : Promise.all(this.nodes.map((n) => pinnedFingerprint(`${n.host}:${n.port}`, this.o.knownHosts)));
  }

  /** What the cut follower reads and changes of this chain. */
  private cutHost(): CutHost {
    const self = this;
    return {
      name: this.name, replica: this.replica, confirmed: this.confirmed, history: this.history, clock: this.clock, pool: this.o.pool ?? null,
      get genesisHash() { return self.genesisHash; },
      set genesisHash(h) { self.genesisHash = h; },
      get serverKey() { return self.serverKey; },
      applied: (seq, commit) => {
        const k = this.pending.findIndex((p) => p.commit.hash.equals(commit.hash));
        if (k >= 0) {
          const [p] = this.pending.splice(k, 1);
          for (const w of p!.waiters.splice(0)) w.resolve(seq);
        }
        this.emit('commit', { seq, commit, own: k >= 0 });
      },
      stateChanged: () => { this.specDirty = true; },
      rebased: (cut, dropped) => {
        this.emit('warning', `chain '${this.name}': this replica was behind the server's compaction cut (seq ${cut}); ${dropped} record(s) the server dropped were dropped here too and the state rebuilt`);
        this.emit('rebased', { cut, dropped });
      },
    };
  }

  /** Fills the confirmed state from the saved snapshot when it fits the trusted replica; its seq (0: not used) and why not. */
  private async restoreSnapshot(trust: ReplicaTrust): Promise<{ seq: number; why: string | null }> {
    const key = this.o.dir ? snapshotKey(this.o.session, this.name) : null;
    if (!key || !this.o.dir) return { seq: 0, why: 'no snapshot kept (memory replica or no signing key)' };
    if (trust.until === 0) return { seq: 0, why: `replica not trusted: ${trust.why}` };
    const snap = await loadSnapshot(path.join(this.o.dir, SNAPSHOT_FILE), key, this.name);
    if (typeof snap === 'string') return { seq: 0, why: snap };
    if (snap.seq > trust.until || !trust.chainHashes[snap.seq]!.equals(snap.chainHash)) return { seq: 0, why: 'snapshot does not match the replica' };
    snap.restoreInto(this.confirmed);
    for (let seq = 1; seq <= snap.seq; seq++) this.history.chainHashes.push(trust.chainHashes[seq]!);
    return { seq: snap.seq, why: null };
  }

  /** Saves the confirmed state for the next open (close): only when it is exactly the replica's records. */
  private async saveSnapshot(): Promise<void> {
    const key = this.o.dir ? snapshotKey(this.o.session, this.name) : null;
    const seq = this.replica.nextSeq - 1;
    // A compacted replica is never reopened from a snapshot (it is not trusted without its records).
    if (!key || !this.o.dir || this.refusal || seq < 1 || this.history.lastSeq !== seq || this.confirmed.applied !== seq || this.replica.chain.cut) return;
    await saveSnapshotFile(path.join(this.o.dir, SNAPSHOT_FILE), key, this.name, { seq, chainHash: this.history.chainHashes[seq]!, state: this.confirmed })
      .catch(() => undefined);
  }

  /** Whether the confirmed commit at `seq` was kept by the server's compaction (below its cut: check it in gap mode). */
  belowCut(seq: number): boolean {
    const cut = this.replica.chain.cut;
    return cut !== null && seq <= cut.seq;
  }

  /** The newest signed head this client verified. */
  get head(): SignedHead | null {
    return this.history.head;
  }

  get lastSeq(): number {
    return this.replica.nextSeq - 1;
  }

  /** Commits staged and not yet confirmed. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** The staged commits not confirmed yet, in the order they were staged (and are sent). */
  stagedCommits(): Commit[] {
    return this.pending.map((p) => p.commit);
  }

  /** Bytes of the staged commits not confirmed yet. */
  get pendingBytes(): number {
    let n = 0;
    for (const p of this.pending) n += p.commit.size ?? p.commit.bytes.length;
    return n;
  }

  /** The state new commits are built against: confirmed, with the staged commits on top. */
  get state(): SpeculativeState {
    if (this.specDirty) {
      const s = new SpeculativeState(this.confirmed);
      for (const p of this.pending) {
        try {
          s.applyEffects(checkAgainstState(s, p.commit, signersOf(p.commit), this.clock));
        } catch {
          // A staged commit that no longer fits (a conflict with what the server confirmed
          // meanwhile): the server will reject it and 'rejected' hands it back.
        }
      }
      this.spec = s;
      this.specDirty = false;
    }
    return this.spec;
  }

  /** Builds, signs, stages and sends one commit. Resolves with the server's seq when the mode (or
   *  `wait: 'confirmed'`) waits for it, else with null once the commit is durably staged. */
  commit(fill: (b: CommitBuilder) => void, opts: { wait?: 'staged' | 'confirmed' } = {}): Promise<{ commit: Commit; seq: number | null }> {
    const wait = opts.wait ?? (this.mode === 'sync' ? 'confirmed' : 'staged');
    const run = this.commitQueue.then(async () => {
      this.assertWritable();
      const b = new CommitBuilder({ state: this.state, keyring: this.o.session, keys: this.keys, pool: this.o.pool ?? null, now: this.clock.now });
      fill(b);
      const commit = await b.build();
      return this.stage(commit, wait);
    });
    this.commitQueue = run.catch(() => undefined);
    return run.then(async (staged) => {
      if (wait === 'staged') return { commit: staged.commit, seq: null };
      return { commit: staged.commit, seq: await this.waitConfirmed(staged) };
    });
  }

  /** Stages and sends a commit built elsewhere (a View's DIO) against `state`; same rules as commit(). */
  /** `staging`: how durably it is staged before this resolves (default: 'durable' when waiting
   *  only for staging); 'local' for a caller that makes the staging log durable itself later
   *  (flushStaging), as a filesystem does for commits no fsync asked for. */
  /** `onQueued`: told once the commit passed the checks and its staging record is queued, before
   *  that record is written (a caller may do its own work meanwhile; the commit is sent only once
   *  it is staged as asked, and this promise resolves only then). */
  submitCommit(commit: Commit, opts: { wait?: 'staged' | 'confirmed'; staging?: 'local' | 'durable'; onQueued?: () => void } = {}): Promise<{ commit: Commit; seq: number | null }> {
    const wait = opts.wait ?? (this.mode === 'sync' ? 'confirmed' : 'staged');
    const run = this.commitQueue.then(() => {
      this.assertWritable();
      return this.stage(commit, wait, opts.staging, opts.onQueued);
    });
    this.commitQueue = run.catch(() => undefined);
    return run.then(async (staged) => ({ commit: staged.commit, seq: wait === 'staged' ? null : await this.waitConfirmed(staged) }));
  }

  private assertWritable(): void {
    if (this.status === 'closed') throw new NetError('the remote chain is closed');
    if (this.mode === 'readonly' && this.status !== 'online') {
      throw new OfflineRefused(`chain '${this.name}' is ${this.status === 'refused' ? 'refusing its server' : 'offline'} and opened in readonly recovery mode: writes are refused until the server is back`);
    }
  }

  /** Makes everything staged so far durable (see submitCommit's `staging`). */
  flushStaging(): Promise<void> {
    return this.commitQueue.then(() => this.staging.flush('durable'));
  }

  private async stage(commit: Commit, wait: 'staged' | 'confirmed', staging?: 'local' | 'durable', onQueued?: () => void): Promise<Staged> {
    const st = this.state;
    st.applyEffects(checkAgainstState(st, commit, signersOf(commit), this.clock));
    // A commit the caller is told about only once the server confirmed it needs no fdatasync of
    // its own: until then nobody relies on it, and afterwards the server holds it durably (a crash
    // in between loses an unacknowledged commit, or finds it in the server's history). A commit
    // acknowledged as staged must survive a crash here: durable.
    // A commit built here (a View's DIO) comes as pieces: written and sent as such, never joined
    // into one buffer (commit.bytes would copy tens of MiB on the writer's path, and keep both).
    const durability = staging ?? (wait === 'staged' ? 'durable' : 'local');
    const written = commit.parts && this.staging.appendParts ? this.staging.appendParts(commit.parts, durability) : this.staging.append(commit.bytes, durability);
    onQueued?.();
    await written;
    const s: Staged = { commit, sentOn: null, requestId: 0, waiters: [] };
    this.pending.push(s);
    this.scheduleSend();
    return s;
  }

  private sendScheduled = false;
  /**
   * Sends what is staged and not sent on this connection yet, in staging order, once the caller
   * that staged it went on: the writer (a filesystem applying its commit, an fsync waiting for
   * it) does not wait for the upload's encryption and socket writes.
   */
  private scheduleSend(): void {
    if (this.holds.size > 0) return; // sent when the last hold ends (holdUploads)
    if (this.sendScheduled) return;
    this.sendScheduled = true;
    setImmediate(() => {
      this.sendScheduled = false;
      if (this.status !== 'online' || !this.session || this.holds.size > 0) return;
      for (const p of this.pending) if (p.sentOn === null) this.send(p);
    });
  }

  private readonly holds = new Set<NodeJS.Timeout>();
  /**
   * Holds back the upload of what is staged from now on until the returned release is called (or
   * `maxMs` passed: a hold never starves the uploads): a writer waiting for its fsync (a durable
   * commit of tens of MiB) is not slowed by the encryption and socket writes of its own upload,
   * nor by the replica write of its confirmation, on the thread that serves it; the commits go out
   * the moment it returns. Not in sync mode, whose fsync waits for the server's confirmation.
   */
  holdUploads(maxMs = UPLOAD_HOLD_MAX_MS): () => void {
    if (this.mode === 'sync') return () => undefined;
    const t = setTimeout(() => release(), maxMs);
    t.unref?.();
    this.holds.add(t);
    const release = () => {
      if (!this.holds.delete(t)) return;
      clearTimeout(t);
      if (this.holds.size === 0 && this.pending.some((p) => p.sentOn === null)) this.scheduleSend();
    };
    return release;
  }

  private waitConfirmed(s: Staged): Promise<number> {
    return new Promise((resolve, reject) => {
      const timeout = this.o.confirmTimeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        s.waiters = s.waiters.filter((w) => w.resolve !== ok);
        reject(new Disconnected(`commit ${s.commit.hash.toString('hex').slice(0, 16)} not confirmed within ${timeout} ms (server ${this.status}); it stays staged and is uploaded when the server is back`));
      }, timeout);
      const ok = (seq: number) => { clearTimeout(timer); resolve(seq); };
      s.waiters.push({ resolve: ok, reject: (e) => { clearTimeout(timer); reject(e); } });
    });
  }

  private send(s: Staged): void {
    const sess = this.session!;
    s.sentOn = sess;
    s.requestId = this.nextRequest++;
    const c = s.commit;
    if (c.parts) sess.conn.sendEncoded(encodeAppendParts({ id: s.requestId, chain: this.name }, c.parts, c.size ?? c.bytes.length));
    else sess.conn.send({ t: 'append', id: s.requestId, chain: this.name, commit: c.bytes });
  }

  // ------------------------------------------------------------------------------ connection

  private connect(): void {
    if (this.status === 'closed' || this.status === 'refused') return;
    this.setStatus('connecting');
    const identity = this.o.identity === undefined ? this.o.session.user?.signing : this.o.identity ?? undefined;
    connectClient({
      host: this.host, port: this.port,
      ...(this.o.knownHosts ? { knownHosts: this.o.knownHosts } : {}),
      ...(this.o.serverKey ? { serverKey: this.o.serverKey } : {}),
      ...(identity ? { identity } : {}),
      ...(this.o.onNewHost ? { onNewHost: this.o.onNewHost } : {}),
    }).then((s) => this.onConnected(s), (e: Error) => this.onDisconnected(e));
  }

  private onConnected(s: ClientSession): void {
    if (this.status === 'closed') {
      s.conn.close();
      return;
    }
    this.session = s;
    this.serverKey = s.serverKey;
    // A commit of tens of MiB is encrypted for the wire on a bulk worker, not on the thread that
    // also serves the mount (this thread only copies it, a few MiB at a time).
    s.conn.gcmOffload = (key, iv, aad, parts, step, onStep) => defaultBulkPool().sealStream(key, iv, aad, parts, step, onStep);
    // The handshake measured against Date.now(); re-base it on this client's clock.
    this.clockOffsetMs = s.clockOffsetMs + Date.now() - this.localNow();
    if (Math.abs(s.clockOffsetMs) > 60_000) this.emit('warning', `this machine's clock is ${Math.round(s.clockOffsetMs / 1000)} s off the server's; commits are timestamped with the server's clock`);
    this.setStatus('syncing');
    s.conn.on('message', (m) => this.onMessage(s, m));
    s.conn.on('close', (e) => {
      if (this.session === s) this.onDisconnected(e ?? new Disconnected('connection closed'));
    });
    this.requests.startKeepalive(s, this.o.pingIntervalMs ?? 15_000, () => this.session === s);
    this.cuts.reset();
    s.conn.send({ t: 'sub', id: this.nextRequest++, chain: this.name, genesis: this.genesisHash, from: this.replica.nextSeq, cuts: true });
  }

  private onDisconnected(e: Error): void {
    this.session = null;
    // The server dropped this connection's leases with it.
    this.requests.failAll(new Disconnected(`lease request lost with the connection: ${e.message}`));
    this.requests.stopKeepalive();
    this.lastError = e;
    for (const p of this.pending) p.sentOn = null;
    if (this.status === 'closed' || this.status === 'refused') return;
    if (e instanceof NetError && e.name === 'HostKeyMismatch') return this.refuse(new ServerMisbehaved(e.message));
    if (this.firstSync && !this.confirmed.getGenesis() && this.nodeIndex + 1 >= this.nodes.length && !(e instanceof ServerUnavailable)) {
      const f = this.firstSync;
      this.firstSync = null;
      this.setStatus('offline');
      f.reject(e instanceof NetError ? e : new Disconnected(`cannot reach ${this.host}:${this.port}: ${e.message}`));
      return;
    }
    this.setStatus('offline');
    if (this.nodes.length > 1) {
      // A cluster: the next node serves the same chains; resume there from the replica's seq
      // (the subscription asks for replica.nextSeq). The backoff grows once per round of nodes.
      this.nodeIndex = (this.nodeIndex + 1) % this.nodes.length;
      ({ host: this.host, port: this.port } = this.nodes[this.nodeIndex]!);
      if (this.nodeIndex !== 0) {
        this.reconnectTimer = setTimeout(() => { this.reconnectTimer = null; this.connect(); }, 20);
        this.reconnectTimer.unref?.();
        return;
      }
    }
    const min = this.o.backoff?.minMs ?? 100;
    const max = this.o.backoff?.maxMs ?? 5000;
    const delay = Math.min(max, min * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    this.reconnectTimer = setTimeout(() => { this.reconnectTimer = null; this.connect(); }, delay);
    this.reconnectTimer.unref?.();
  }

  private setStatus(s: RemoteStatus): void {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', s);
  }

  /** A lying or inconsistent server: stop talking to it, keep everything local. */
  private refuse(e: ServerMisbehaved): void {
    this.refusal = e;
    this.setStatus('refused');
    this.session?.conn.close(e);
    this.session = null;
    this.firstSync?.reject(e);
    this.firstSync = null;
    for (const p of this.pending) for (const w of p.waiters.splice(0)) w.reject(e);
    this.emit('refused', e);
  }

  private onMessage(s: ClientSession, m: Message): void {
    if (this.session !== s) return;
    // Commits received are decoded and their signatures handed to the pool now, while earlier
    // messages are still being applied: the workers verify batch N+1 while this thread checks
    // and stores batch N (as a local load does). Nothing is applied before its turn in the queue.
    const checked = (m.t === 'hist' || m.t === 'live') && m.chain === this.name ? this.checkSignatures(m.t === 'hist' ? m.from : m.seq, m.t === 'hist' ? m.commits : [m.commit]) : null;
    // Everything that touches the replica goes through one queue, in arrival order.
    this.recv = this.recv.then(() => (this.session === s ? this.handle(s, m, checked) : undefined)).catch((e: Error) => {
      if (e instanceof ServerMisbehaved) this.refuse(e);
      else s.conn.close(e);
    });
  }

  private async handle(s: ClientSession, m: Message, checked: Promise<Commit[]> | null): Promise<void> {
    switch (m.t) {
      case 'hist':
        if (m.chain !== this.name || !checked) return;
        if (m.seqs || this.cuts.active) {
          await this.cuts.receive(m.seqs ?? m.commits.map((_, i) => m.from + i), await checked, (from, commits) => this.receive(from, Promise.resolve(commits)));
        } else await this.receive(m.from, checked);
        if (typeof m.upTo === 'number') this.o.onDownload?.(this.lastSeq, Math.max(m.upTo, this.lastSeq));
        return;
      case 'live':
        if (m.chain !== this.name || !checked) return;
        await this.receive(m.seq, checked);
        return;
      case 'cut':
        if (m.chain === this.name) await this.cuts.onCut(m);
        return;
      case 'eoh':
        await this.cuts.finish();
        return this.endOfHistory(s, m.head, m.genesis);
      case 'head': return this.checkHead(m.head, false);
      case 'ok': {
        const p = this.pending.find((x) => x.sentOn === s && x.requestId === m.id);
        if (!p) return;
        if (m.seq < this.replica.nextSeq) return this.checkSeen(m.seq, p.commit);
        if (m.seq !== this.replica.nextSeq) throw new ServerMisbehaved(`server confirmed seq ${m.seq} while this client holds up to ${this.lastSeq}: a gap`);
        await this.applyConfirmed(m.seq, [p.commit], true);
        return;
      }
      case 'rej': return this.onRejected(m);
      case 'leased':
        // Answered in arrival order, after every commit the server sent before it is applied.
        return this.requests.onLeased(s, m);
      case 'err': return this.onError(s, m.code, m.detail);
      case 'pong':
        this.requests.onPong();
        this.clockOffsetMs = m.time - this.localNow();
        return;
      default: return;
    }
  }

  private async onError(s: ClientSession, code: string, detail: string): Promise<void> {
    if (code === 'unknown-chain' && !this.confirmed.getGenesis() && this.o.create) {
      const c = typeof this.o.create === 'object' ? this.o.create : {};
      const user = this.o.session.user;
      if (!user) throw new NetError('the session has no user identity to create a chain with');
      const genesis = await createGenesis({
        name: this.name, keyring: this.o.session, keys: this.keys, pool: this.o.pool ?? null, openRoot: c.openRoot ?? false,
        chainReaders: [...(c.creatorReads === false ? [] : this.o.session.chainReaders()), ...(c.readers ?? [])],
        // A group chain is rooted at the group's keys, not the creator's own (the auth policy).
        ...(c.rootKeys ? { rootKeys: c.rootKeys } : {}),
      });
      const id = this.nextRequest++;
      const reply = await new Promise<Message>((resolve) => {
        const on = (m: Message) => {
          if ((m.t === 'ok' || m.t === 'rej') && m.id === id) { s.conn.off('message', on); resolve(m); }
        };
        s.conn.on('message', on);
        s.conn.send({ t: 'append', id, chain: this.name, commit: genesis.bytes });
      });
      if (reply.t !== 'ok' || reply.seq !== 1) throw new ServerMisbehaved(`creating chain '${this.name}' failed: ${reply.t === 'rej' ? `${reply.reason}: ${reply.detail}` : `confirmed at seq ${reply.t === 'ok' ? reply.seq : '?'}`}`);
      this.genesisHash = genesis.hash;
      s.conn.send({ t: 'sub', id: this.nextRequest++, chain: this.name, genesis: genesis.hash, from: 1 });
      return;
    }
    if (code === 'unavailable' || code === 'internal') {
      // Transient on the server's side (a JetStream cluster that just restarted): not a lie, so
      // not a refusal. Retried like a lost connection; a first open stays bounded by openTimeoutMs.
      s.conn.close(new ServerUnavailable(`server cannot serve chain '${this.name}' for now: ${detail}`));
      return;
    }
    if (code === 'wrong-genesis') throw new ServerMisbehaved(`server offers chain '${this.name}' with another genesis than the pinned ${this.genesisHash?.toString('hex')}: ${detail}`);
    throw new ServerMisbehaved(`server refused chain '${this.name}' (${code}): ${detail}`);
  }

  private onRejected(m: Extract<Message, { t: 'rej' }>): void {
    const i = this.pending.findIndex((x) => x.sentOn === this.session && x.requestId === m.id);
    if (i < 0) return;
    const p = this.pending[i]!;
    if (m.reason === 'replay' && m.seq !== null) {
      // Already in the chain (sent before a crash or a lost confirmation): it arrives, or arrived,
      // through history; checkSeen compares it then.
      if (m.seq < this.replica.nextSeq) this.checkSeen(m.seq, p.commit);
      return;
    }
    if (m.reason === 'unavailable') {
      // The server could not take it now (shutting down, chain reopening): send it again shortly
      // (or on the next connection).
      p.sentOn = null;
      setTimeout(() => {
        if (this.status === 'online' && this.session && p.sentOn === null && this.pending.includes(p)) this.send(p);
      }, 200).unref?.();
      return;
    }
    this.pending.splice(i, 1);
    this.specDirty = true;
    const err = new RemoteRejected(m.reason, m.detail, p.commit.hash.toString('hex'));
    for (const w of p.waiters.splice(0)) w.reject(err);
    const current = new Map(p.commit.events.map((e) => [e.meta.key, this.confirmed.getNode(e.meta.key)?.version ?? 0]));
    this.emit('rejected', { commit: p.commit, error: err, current });
    this.upkeep.dropRefused(p.commit.hash);
  }

  /** A staged commit the server confirmed at `seq` and compacted away since: confirmed here too, its staging record dropped. */
  private confirmedAway(seq: number, commit: Commit): void {
    const k = this.pending.findIndex((p) => p.commit.hash.equals(commit.hash));
    if (k >= 0) {
      const [p] = this.pending.splice(k, 1);
      for (const w of p!.waiters.splice(0)) w.resolve(seq);
      this.specDirty = true;
    }
    // Known as a commit of the chain (a replay if built again); the staging upkeep drops its record.
    this.confirmed.commits.add(commit.hash.toString('hex'));
    this.upkeep.compactIfIdle();
  }

  /** A commit this client holds at `seq` must be the one the server names there. */
  private checkSeen(seq: number, commit: Commit): void {
    const first = this.replica.records({ seq })[Symbol.iterator]().next();
    const rec = first.done ? null : first.value;
    if ((!rec || rec.seq !== seq) && this.belowCut(seq)) {
      // Confirmed, then compacted away by the server before this client heard of it (a staged
      // commit whose 'ok' was lost): in the chain's history, not in what is kept of it.
      this.confirmedAway(seq, commit);
      return;
    }
    const there = rec && rec.seq === seq ? decodeCommit(Buffer.from(rec.payload)) : null;
    if (!there || !there.hash.equals(commit.hash)) {
      throw new ServerMisbehaved(`server says commit ${commit.hash.toString('hex').slice(0, 16)} is at seq ${seq}, but this client holds another commit there`);
    }
  }

  /**
   * Decodes commits received at seq `from`, `from + 1`, ... (hash recomputed) and verifies their
   * signatures; resolves with the commits, or rejects with ServerMisbehaved naming the first bad one.
   * Started as the message arrives (onMessage); its result is used in the message's turn (receive).
   */
  private checkSignatures(from: number, raw: Buffer[]): Promise<Commit[]> {
    const run = async () => {
      const commits: Commit[] = [];
      for (const b of raw) {
        try {
          commits.push(decodeCommit(b));
        } catch (e) {
          throw new ServerMisbehaved(`server sent an invalid commit at seq ${from + commits.length}: ${(e as Error).message}`);
        }
      }
      const sigs = await verifySignatures(commits, this.o.pool ?? null);
      sigs.forEach((r, i) => {
        if (r instanceof CommitRejected) throw new ServerMisbehaved(`server sent commit at seq ${from + i} with a bad signature: ${r.message}`);
      });
      return commits;
    };
    const p = run();
    p.catch(() => undefined); // reported in the message's turn (receive), not before
    return p;
  }

  /** Applies commits received at seq `from`, `from + 1`, ..., once their signatures verified. */
  private async receive(from: number, checked: Promise<Commit[]>): Promise<void> {
    const cut = this.replica.chain.cut;
    if (cut && this.history.lastSeq < cut.seq) throw new ServerMisbehaved(`server went on below its compaction cut (seq ${cut.seq}) without sending the cut first`);
    if (from > this.replica.nextSeq) throw new ServerMisbehaved(`server sent seq ${from} while this client holds up to ${this.lastSeq}: a gap`);
    if (from < this.replica.nextSeq) throw new ServerMisbehaved(`server re-sent seq ${from}, which this client already holds (up to ${this.lastSeq})`);
    await this.applyConfirmed(from, await checked, false);
  }

  private async applyConfirmed(from: number, commits: Commit[], own: boolean): Promise<void> {
    const applied: Array<{ seq: number; commit: Commit; own: boolean }> = [];
    let othersOrReordered = false;
    // Check every commit against the state before anything is written.
    const trial = new SpeculativeState(this.confirmed);
    // The effects of each commit, checked against the confirmed state plus the commits before it
    // in this batch: exactly what the confirmed state is when they are applied to it below.
    const effects = commits.map((c, i) => {
      const seq = from + i;
      if (c.header.genesis) {
        if (seq !== 1) throw new ServerMisbehaved(`server sent a genesis at seq ${seq}`);
        if (this.genesisHash && !c.hash.equals(this.genesisHash)) throw new ServerMisbehaved(`server's genesis ${c.hash.toString('hex')} is not the pinned ${this.genesisHash.toString('hex')}`);
      } else if (seq === 1) throw new ServerMisbehaved('server history does not start with a genesis');
      try {
        const e = checkAgainstState(trial, c, signersOf(c), this.clock);
        trial.applyEffects(e);
        return e;
      } catch (e) {
        throw new ServerMisbehaved(`server sent a commit at seq ${seq} that does not validate: ${(e as Error).message}`);
      }
    });
    // 'local': the server holds every confirmed commit durably; a replica tail lost in a power
    // failure is downloaded again (and validated again) from the last seq that survived.
    // This client's own commit (confirmed one at a time) is written from its pieces, not joined.
    const one = commits.length === 1 ? commits[0]! : null;
    const res = one?.parts && this.replica.appendParts
      ? [await this.replica.appendParts(one.parts, 'local')]
      : await this.replica.appendBatch(commits.map((c) => c.bytes), 'local');
    commits.forEach((c, i) => {
      const seq = from + i;
      if (res[i]!.seq !== seq) throw new Error(`replica assigned seq ${res[i]!.seq}, expected ${seq}`);
      this.confirmed.applyEffects(effects[i]!);
      if (c.header.genesis && !this.genesisHash) this.genesisHash = c.hash;
      this.history.push(c.hash);
      const k = this.pending.findIndex((p) => p.commit.hash.equals(c.hash));
      // The oldest staged commit confirmed as it was: the speculative state (confirmed + staged)
      // is unchanged and need not be rebuilt over every staged commit again.
      if (k !== 0) othersOrReordered = true;
      const mine = own || k >= 0;
      if (k >= 0) {
        const [p] = this.pending.splice(k, 1);
        for (const w of p!.waiters.splice(0)) w.resolve(seq);
      }
      applied.push({ seq, commit: c, own: mine });
    });
    if (othersOrReordered) this.specDirty = true;
    for (const a of applied) this.emit('commit', a);
    // A stored head past what the replica held (its tail lost in a crash) is checked once reached.
    const h = this.history.head;
    if (h && h.seq > this.lastSeq - commits.length && h.seq <= this.lastSeq) this.checkHead(h, false);
    this.upkeep.compactIfIdle();
  }

  private checkHead(h: SignedHead, endOfHistory: boolean): void {
    if (!this.serverKey || !this.genesisHash) return;
    if (this.history.check(h, this.serverKey, this.genesisHash, endOfHistory)) void this.heads.save(h, this.serverKey);
  }

  private endOfHistory(s: ClientSession, h: SignedHead, genesis: Buffer): void {
    if (this.genesisHash && !genesis.equals(this.genesisHash)) throw new ServerMisbehaved(`server offers another genesis (${genesis.toString('hex')}) for the pinned chain`);
    this.checkHead(h, true);
    this.o.onDownload?.(this.lastSeq, this.lastSeq);
    this.attempt = 0;
    this.setStatus('online');
    if (this.firstSync) {
      this.firstSync.resolve();
      this.firstSync = null;
    }
    for (const p of this.pending) if (p.sentOn !== s) this.send(p);
  }

  /**
   * Fork check between two clients of the same chain: `peer` is a head another client holds. It
   * must verify under the server key this client knows and, where this client's history reaches
   * its seq, match the chain hash this client computed. Throws ServerMisbehaved on a fork;
   * 'behind' when the peer's head is past this client's history (the peer can check ours).
   */
  checkPeerHead(peer: SignedHead): 'consistent' | 'behind' {
    if (!this.serverKey || !this.genesisHash) throw new Disconnected('this client has not talked to its server yet');
    return this.history.checkPeer(peer, this.serverKey, this.genesisHash);
  }

  /** Round trip to the server; updates the clock offset. */
  async ping(): Promise<number> {
    const s = this.session;
    if (!s || this.status !== 'online') throw new Disconnected('not connected');
    return this.requests.ping(s);
  }

  /** The identity the server knows this client by (its leases' holder name); null before connecting. */
  get identity(): string | null {
    return this.session?.identity ?? null;
  }

  /**
   * A lease request on this connection (leases are the server's, held by this connection and
   * dropped when it closes). The reply is handled after every commit the server sent before it,
   * so a granted lease reflects what was confirmed before it was granted.
   */
  lease(op: LeaseOp, key: string, ttlMs: number, timeoutMs = 30_000): Promise<LeaseReply> {
    const s = this.session;
    if (!s || this.status !== 'online') return Promise.reject(new Disconnected(`chain '${this.name}' is ${this.status}: leases need the server`));
    return this.requests.lease(s, this.name, op, key, ttlMs, timeoutMs);
  }

  /** Every confirmed commit, in server order. */
  *commits(from = 1): Iterable<{ seq: number; commit: Commit }> {
    for (const rec of this.replica.records({ seq: from })) yield { seq: rec.seq, commit: decodeCommit(Buffer.from(rec.payload)) };
  }

  /** Drops the connection (tests: simulate a network failure); reconnects per the backoff. */
  disconnect(): void {
    this.session?.conn.close(new Disconnected('disconnected by the client'));
  }

  async close(): Promise<void> {
    if (this.status === 'closed') return;
    this.setStatus('closed');
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.requests.stopKeepalive();
    for (const t of this.holds) clearTimeout(t);
    this.holds.clear();
    const s = this.session;
    this.session = null;
    s?.conn.close();
    this.requests.failAll(new Disconnected('the remote chain was closed'));
    await this.recv.catch(() => undefined);
    await this.commitQueue.catch(() => undefined);
    await this.upkeep.stop();
    const e = new Disconnected('the remote chain was closed');
    for (const p of this.pending) for (const w of p.waiters.splice(0)) w.reject(e);
    await this.saveSnapshot();
    await this.replica.close();
    await this.staging.close();
  }
}
