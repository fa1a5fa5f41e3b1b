// A filesystem over a chain kept on an atedb server (`atefs mount DIR tcp://host/chain`).
//
//   RemoteChain (src/net)  replica log (server order) + staging log (this machine's commits not
//                          confirmed yet); validates everything it receives.
//   view                   the state the mount serves: the replica's commits with the staged ones
//                          on top, in the order they reached this machine. Rebuilt from the
//                          replica and the staging log on every mount (a fresh log and index), and
//                          when the server refused a staged commit (see resync).
//   RemoteChainStore       the ChainStore over that view (remote-chain-store.ts); its commits
//                          are staged (durably) and applied to the view without waiting for the
//                          network; `sync` mode waits for the server's confirmation on fsync.
//
// A commit another machine made is applied to the view as it arrives and handed to the core
// (onRemoteChange), which drops its caches and tells the kernel (notify messages). A staged
// commit that lost a race in server order comes back rejected; the view is then rebuilt from what
// the server confirmed plus what is still staged, and the lost changes are re-made on top of it by
// the conflict rules (conflicts.ts): nothing is dropped silently.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Commit, CommitRejected, type EventMeta, type KeyId, type ReaderRef, openEventPayload, publicKeyId, toGenesisHash } from '../../src/chain/index.js';
import { defaultBulkPool, defaultPool } from '../../src/crypto/index.js';
import type { RedoLog } from '../../src/log/index.js';
import { OfflineRefused, RemoteChain, RemoteRejected, parseRemoteUrl, type RecoveryMode } from '../../src/net/index.js';
import { type Session, readPins, readersOfPrincipal, writePin } from '../../src/session/index.js';
import { Conflict, View, type CommitScope } from '../../src/view/index.js';
import type { ViewProgress } from '../../src/view/progress.js';
import type { FsBatch, Durability, InodeRecord } from '../core/store.js';
import { ChainStore } from '../chain-store/chain-store.js';
import { decodeDentry } from '../chain-store/codec.js';
import { loadInoSpace, type InoSpace } from './ino-space.js';
import { type ConflictNote, readableInode, resolveLost } from './conflicts.js';
import type { Ino } from '../core/api.js';
import { batchOfEvents, inoOfKey } from './remote-batch.js';
import { buildView, dentryNamesBefore } from './remote-view.js';
import { RemoteChainStore } from './remote-chain-store.js';
import { groupRootOf } from './group-root.js';

/** How long a lock's lease outlives a mount that stopped renewing it. */
const LOCK_TTL_MS = 15_000;

export interface OpenRemoteFsOptions {
  url: string;
  session: Session;
  /** Local state: replica, staging, machine number; null = in memory (--temp). */
  dir: string | null;
  /** known_hosts and the genesis pins. */
  configDir: string;
  mode?: RecoveryMode;
  serverKey?: string;
  /** Name of this machine in conflict copies (default: the host name). */
  machineName?: string;
  onWarning?: (msg: string) => void;
  confirmTimeoutMs?: number;
  pingIntervalMs?: number;
  readOnly?: boolean;
  /** Seconds the kernel may cache entries and attributes (default 1). */
  cacheTimeout?: number;
  /**
   * How the first mount creates the chain on the server (default: rooted at and read by the
   * session's user). Personal and group chains under the auth policy need their own roots.
   */
  create?: { rootKeys?: Buffer[]; readers?: ReaderRef[]; creatorReads?: boolean };
  /**
   * A group chain: mode bits map to the group's keys (ChainStore's `group`) and inodes hang under
   * the group root (group-root.ts), so contributors can create files.
   */
  group?: { readers: ReaderRef[]; writers: KeyId[]; managers: KeyId[] };
  /** Loading progress: the history download, then the view's build ('download', 'rebuild'). */
  onProgress?: (p: ViewProgress) => void;
}

/** The default local state of a remote mount: $XDG_DATA_HOME/atefs/remote/<host>/<chain>/. */
export function defaultRemoteDir(dataDir: string, url: string): string {
  const u = parseRemoteUrl(url);
  const host = u.port === 5000 ? u.host : `${u.host}_${u.port}`;
  return path.join(dataDir, 'remote', host, ...u.name.split('/').map((p) => p.replace(/^\.+$/, '_')));
}

/** A Conflict when `e` says the commit lost an optimistic race, else `e`. */
function asConflict(e: unknown): unknown {
  if ((e instanceof CommitRejected || e instanceof RemoteRejected) && e.reason === 'conflict') return new Conflict(null, (e as Error).message);
  return e;
}

/** Whether a remote commit failed to apply because this view holds staged changes it races. */
function isDivergence(e: unknown): boolean {
  const err = e as Error;
  return err instanceof Conflict || err?.name === 'Conflict' || err?.name === 'NotFound' || err?.name === 'CommitRejected' || err?.name === 'NoWriteAuthority';
}

export interface RemoteFsStatus {
  connection: string;
  server: string | null;
  seq: number;
  lag: number;
  pendingUploads: number;
  pendingBytes: number;
  lastConflict: string | null;
  conflicts: number;
  resyncs: number;
}

export class RemoteFs {
  readonly store: RemoteChainStore;
  conflicts: ConflictNote[] = [];
  resyncs = 0;
  private feedQueue: Promise<unknown> = Promise.resolve();
  private generation = 0;
  private rejected: Commit[] = [];
  private readonly rescued = new Set<string>();
  private readonly confirmWaiters = new Map<string, Array<() => void>>();
  private failure: Error | null = null;
  private closed = false;
  /** Commits staged without an fdatasync since the last durable one. */
  private stagedLocal = false;

  private constructor(
    readonly rc: RemoteChain,
    private view: View,
    private log: RedoLog,
    private readonly genesis: Commit,
    readonly ino: InoSpace,
    readonly machineName: string,
    private readonly o: OpenRemoteFsOptions,
  ) {
    const user = o.session.user!;
    this.store = new RemoteChainStore(view, {
      cacheTimeout: o.cacheTimeout ?? 1,
      readOnly: !!o.readOnly,
      owner: { readers: readersOfPrincipal(user, { sym: true, kem: false }), signingKey: publicKeyId(user.signing!.publicKey) },
      ...(o.group ? { group: o.group } : {}),
      inoSpace: { key: ino.key, first: ino.first },
      // Whole blocks only: replicas and the server's conflict handling stay as they were (reads
      // still apply deltas written by a local mount of the chain).
      pageDeltas: false,
    });
    this.store.settle = () => this.feedQueue.then(() => undefined, () => undefined);
    this.store.durableFlush = async () => {
      if (this.stagedLocal) {
        this.stagedLocal = false;
        await this.rc.flushStaging();
      }
      // sync: fsync returns once the server confirmed everything staged before it.
      if (this.rc.mode === 'sync') await Promise.all(this.rc.stagedCommits().map((c) => this.waitConfirmed(c)));
    };
    this.store.holdUploads = () => this.rc.holdUploads();
    this.store.refusal = () => (rc.mode === 'readonly' && rc.status !== 'online'
      ? `${rc.name} is ${rc.status} and mounted with --recovery-mode readonly: writes wait for the server`
      : null);
    this.attach(view);
    this.store.machine = machineName;
    this.store.onConflict = (n) => {
      this.conflicts.push(n);
      o.onWarning?.(`conflict: ${n.text}`);
    };
    rc.on('commit', (e) => {
      if (e.own) this.noteOwn(e.commit);
      const waiters = this.confirmWaiters.get(e.commit.hash.toString('hex'));
      if (waiters) {
        this.confirmWaiters.delete(e.commit.hash.toString('hex'));
        for (const w of waiters) w();
      }
      this.enqueue(() => this.applyRemote(e.commit, e.seq));
    });
    rc.on('rejected', (e) => {
      if (this.rescued.has(e.commit.hash.toString('hex'))) return;
      this.rejected.push(e.commit);
      this.enqueue(() => this.resync(`the server refused a staged commit (${e.error.message})`));
    });
    rc.on('warning', (m) => o.onWarning?.(m));
    // The replica dropped what the server compacted away while this machine was offline: the view
    // (which holds it) is rebuilt from the replica, as after a refused commit.
    rc.on('rebased', (e) => this.enqueue(() => this.resync(`the server compacted history this machine held (cut at seq ${e.cut})`)));
    this.store.lockLease = {
      acquire: (ino) => this.acquireLockLease(ino),
      release: (ino) => this.releaseLockLease(ino),
    };
  }

  // ------------------------------------------------------------------ locks across mounts

  private readonly leased = new Map<Ino, NodeJS.Timeout>();

  /**
   * The server's lease on inode `ino` (held by this connection: a mount that dies, or loses its
   * connection, drops it at once; one that hangs, after LOCK_TTL_MS). Renewed while held. Offline
   * there is no one to ask: the lock is local only (said in the README).
   */
  private async acquireLockLease(ino: Ino): Promise<boolean> {
    if (this.leased.has(ino)) return true;
    let r;
    try {
      r = await this.rc.lease('acquire', `fs-lock/${ino}`, LOCK_TTL_MS);
    } catch {
      return true;
    }
    if (!r.ok) return false;
    if (!this.leased.has(ino)) {
      const t = setInterval(() => { this.rc.lease('renew', `fs-lock/${ino}`, LOCK_TTL_MS).catch(() => undefined); }, LOCK_TTL_MS / 3);
      t.unref?.();
      this.leased.set(ino, t);
    }
    return true;
  }

  private releaseLockLease(ino: Ino): void {
    const t = this.leased.get(ino);
    if (t === undefined) return;
    clearInterval(t);
    this.leased.delete(ino);
    this.rc.lease('release', `fs-lock/${ino}`, 0).catch(() => undefined);
  }

  static async open(o: OpenRemoteFsOptions): Promise<RemoteFs> {
    const user = o.session.user;
    if (!user?.signing) throw new Error('the session holds no user identity with a signing key: it cannot mount a remote chain');
    const u = parseRemoteUrl(o.url);
    const pinKey = `tcp:${u.host}:${u.port}/${u.name}`;
    const pinned = (await readPins(o.configDir))[pinKey];
    const rc = await RemoteChain.open({
      url: o.url, session: o.session, dir: o.dir ? path.join(o.dir, 'replica') : null, mode: o.mode ?? 'async', pool: defaultPool(),
      ...(pinned ? { genesisHash: toGenesisHash(pinned) } : {}),
      knownHosts: path.join(o.configDir, 'known_hosts'), create: o.create ?? true,
      ...(o.serverKey ? { serverKey: o.serverKey } : {}),
      ...(o.confirmTimeoutMs ? { confirmTimeoutMs: o.confirmTimeoutMs } : {}),
      ...(o.pingIntervalMs ? { pingIntervalMs: o.pingIntervalMs } : {}),
      backoff: { minMs: 100, maxMs: 2000 },
      onNewHost: (addr, fp) => o.onWarning?.(`first contact with ${addr}: server key ${fp} (now pinned in known_hosts)`),
      ...(o.onProgress ? { onDownload: (done: number, total: number) => o.onProgress!({ phase: 'download', done, total, unit: 'records', records: done }) } : {}),
    });
    let rfs: RemoteFs | undefined;
    try {
      const first = [...rc.commits(1)][0];
      if (!first) throw new Error(`${o.url}: the server sent no genesis`);
      if (!pinned) await writePin(o.configDir, pinKey, first.commit.hash.toString('hex'));
      if (o.dir) {
        for (const e of await fsp.readdir(o.dir)) if (e.startsWith('view')) await fsp.rm(path.join(o.dir, e), { recursive: true, force: true });
      }
      const built = await buildView(rc, first.commit, o, 0, new Set(), new Set(), o.onProgress);
      for (const c of built.lost) o.onWarning?.(`staged commit ${c.hash.toString('hex').slice(0, 16)} no longer fits what the server holds; its changes are re-made when the server refuses it`);
      const ino = await loadInoSpace(o.dir, (k) => built.view.exists(k));
      rfs = new RemoteFs(rc, built.view, built.log, first.commit, ino, o.machineName ?? process.env.ATEFS_MACHINE ?? os.hostname(), o);
      // The sealing workers start now, not inside the first large write (a local mount's open
      // starts them reading its log; a remote one's view is built from commits already decoded).
      void defaultBulkPool().start();
      if (o.group) rfs.store.top = await groupRootOf(rfs.store.view, o.group, { readOnly: !!o.readOnly, ...(o.onWarning ? { onWarning: o.onWarning } : {}) });
      return rfs;
    } catch (e) {
      if (rfs) await rfs.close().catch(() => undefined);
      else await rc.close().catch(() => undefined);
      throw e;
    }
  }

  /** The view's own commits go through here: staged (and sent), then applied to the view. */
  private attach(view: View): void {
    view.remote = {
      submit: async (commit: Commit, scope: CommitScope) => {
        const durable = scope === 'durable' || scope === 'remote';
        const confirmed = durable && this.rc.mode === 'sync' ? this.waitConfirmed(commit) : null;
        // Staged durably when an fsync waits for it; else written, and made durable by the next
        // fsync (durableFlush), as a local chain's 'local' commits are. The view applies it (and
        // writes its own log) while the staging record is written: tens of MiB of a big copy
        // are written to both at once, not one after the other.
        let queued!: () => void;
        const isQueued = new Promise<void>((resolve) => { queued = resolve; });
        const staged = this.rc.submitCommit(commit, { wait: 'staged', staging: durable ? 'durable' : 'local', onQueued: queued })
          .then(() => { if (durable) this.stagedLocal = false; else this.stagedLocal = true; }, (e: unknown) => { throw asConflict(e); });
        // Refused by the checks (before it is queued): the view never sees it.
        await Promise.race([isQueued, staged]);
        const applied = view.submit(commit, 'local', true);
        const [s, r] = await Promise.allSettled([staged, applied]);
        if (s.status === 'rejected') throw s.reason;
        if (r.status === 'rejected') throw r.reason;
        if (confirmed) await confirmed;
        return r.value;
      },
    };
  }

  private waitConfirmed(commit: Commit): Promise<void> {
    const key = commit.hash.toString('hex');
    const ms = this.o.confirmTimeoutMs ?? 30_000;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(Object.assign(new Error(`not confirmed by the server within ${ms} ms (it stays staged and is uploaded when the server is back)`), { code: 'ETIMEDOUT' }));
      }, ms);
      const list = this.confirmWaiters.get(key) ?? [];
      list.push(() => { clearTimeout(timer); resolve(); });
      this.confirmWaiters.set(key, list);
    });
  }

  private enqueue(fn: () => Promise<void>): void {
    this.feedQueue = this.feedQueue.then(() => (this.closed || this.failure ? undefined : fn())).catch((e: Error) => {
      this.failure = e;
      this.o.onWarning?.(`replication stopped: ${e.message}`);
    });
  }

  /**
   * Inode versions this machine wrote and the server confirmed (`key:version`), newest last and
   * bounded: a lost change whose base was overtaken only by these is no conflict (conflicts.ts).
   */
  private readonly ownInodeVersions = new Set<string>();
  private noteOwn(c: Commit): void {
    for (const ev of c.events) {
      if (ev.meta.type !== 'inode') continue;
      this.ownInodeVersions.add(`${ev.meta.key}:${ev.meta.version}`);
      if (this.ownInodeVersions.size > 200_000) this.ownInodeVersions.delete(this.ownInodeVersions.values().next().value!);
    }
  }

  /** A commit the server confirmed: applied to the view unless it is already there (our own). */
  private async applyRemote(c: Commit, seq: number): Promise<void> {
    const view = this.store.view;
    if (view.state.hasCommit(c.hash)) return;
    const names = dentryNamesBefore(view, c);
    // What the files it touches held before: only a change of their content can clash.
    const before = new Map<Ino, InodeRecord | null | undefined>();
    for (const ev of c.events) {
      if (ev.meta.type !== 'inode') continue;
      const ino = inoOfKey(ev.meta.key);
      if (!before.has(ino)) before.set(ino, readableInode(this.store, ino));
    }
    try {
      await view.submit(c, 'local', true, { gap: this.rc.belowCut(seq) });
    } catch (e) {
      if (!isDivergence(e)) throw e;
      await this.resync(`a commit from elsewhere (${c.hash.toString('hex').slice(0, 16)}) races staged changes`);
      return;
    }
    this.noteRemote(batchOfEvents(c.events.map((ev) => ev.meta), (k) => this.store.view.tryGet(k)?.data ?? null, names, (ino) => readableInode(this.store, ino)), before);
  }

  /**
   * Hands a remote change to the core; remembers what content changed (conflict detection).
   * `before`: the files' records before it; without it, every file record counts as new content.
   */
  private noteRemote(batch: FsBatch, before?: Map<Ino, InodeRecord | null | undefined>): void {
    const st = this.store;
    st.remoteCount++;
    for (const b of batch.blocks) st.remoteContentAt.set(b.ino, st.remoteCount);
    for (const r of batch.inodes) {
      if ((r.mode & 0o170000) !== 0o100000) continue;
      // An attribute change (chmod, times, xattrs) is no second version of the content.
      if (before && !contentDiffers(before.get(r.ino), r)) continue;
      st.remoteContentAt.set(r.ino, st.remoteCount);
    }
    const clashes = st.onRemoteChange?.(batch);
    if (clashes) for (const ino of clashes) st.clashes.add(ino);
  }

  /**
   * The view holds staged changes the server will not take (it refused one, or a confirmed
   * commit from elsewhere does not apply on top of them): rebuild it from the replica and what is
   * still staged, re-make the lost changes by the conflict rules, and tell the core what moved.
   */
  private async resync(why: string): Promise<void> {
    if (this.closed) return;
    await this.store.serialize(async () => {
      const oldView = this.store.view;
      const oldLog = this.log;
      const candidates = [...this.rejected, ...this.rc.stagedCommits()].filter((c) => !this.rescued.has(c.hash.toString('hex')));
      const interest = new Set<string>();
      for (const c of candidates) for (const ev of c.events) interest.add(ev.meta.key);
      this.generation++;
      const built = await buildView(this.rc, this.genesis, this.o, this.generation, interest, this.rescued);
      const h = (c: Commit) => c.hash.toString('hex').slice(0, 8);
      if (process.env.ATEFS_DEBUG_RESYNC) process.stderr.write(`resync: rejected ${this.rejected.map(h)} staged ${this.rc.stagedCommits().map(h)} built.lost ${built.lost.map(h)} rescued ${[...this.rescued].map((x) => x.slice(0, 8))}\n`);
      const lost = [...this.rejected.filter((c) => !this.rescued.has(c.hash.toString('hex')) && !built.view.state.hasCommit(c.hash)), ...built.lost];
      this.rejected = [];
      for (const c of lost) this.rescued.add(c.hash.toString('hex'));
      this.resyncs++;
      // What the core may hold stale: everything the lost commits touched and everything the
      // server confirmed that the old view did not have.
      const touched: EventMeta[] = [];
      // Of those, what other machines changed: only that can clash with what the core holds
      // uncommitted. The lost commits are this machine's own earlier changes (re-made): a file
      // still being written here is no conflict with its own first part.
      const elsewhere: EventMeta[] = [];
      for (const c of lost) for (const ev of c.events) touched.push(ev.meta);
      for (const c of built.fresh) if (!oldView.state.hasCommit(c.hash)) for (const ev of c.events) { touched.push(ev.meta); elsewhere.push(ev.meta); }
      const oldNames = new Map<string, { parent: number; name: Buffer }>();
      for (const m of touched) {
        if (m.type !== 'dentry') continue;
        const r = oldView.tryGet(m.key)?.data ?? built.view.tryGet(m.key)?.data;
        if (r && m.parent) oldNames.set(m.key, { parent: inoOfKey(m.parent.key), name: decodeDentry(r).name });
      }
      const stagedVersions = new Set<string>();
      // Only staged commits the rebuilt view holds: a lost one's versions may be another machine's now.
      for (const c of this.rc.stagedCommits()) {
        if (!built.view.state.hasCommit(c.hash) || this.rescued.has(c.hash.toString('hex'))) continue;
        for (const ev of c.events) if (ev.meta.type === 'inode') stagedVersions.add(`${ev.meta.key}:${ev.meta.version}`);
      }
      const oldStore = new ChainStore(oldView, {});
      const newStore = new ChainStore(built.view, {});
      const resolution = resolveLost({
        lost, old: oldStore, now: newStore, machine: this.machineName, alloc: () => this.store.allocIno(),
        payload: (meta, payload) => openEventPayload(oldView.state, oldView.keys, { meta, payload }),
        base: (key, version) => {
          const ev = built.bases.get(`${key}:${version}`);
          return ev ? openEventPayload(built.view.state, built.view.keys, ev) : null;
        },
        // Confirmed own commits, and the staged ones the rebuilt view holds on top.
        ownVersion: (key, version) => this.ownInodeVersions.has(`${key}:${version}`) || stagedVersions.has(`${key}:${version}`),
      });
      if (process.env.ATEFS_DEBUG_RESYNC) process.stderr.write(`resync: lost ${lost.length}, batch ${JSON.stringify({ inodes: resolution.batch.inodes.map((i) => i.ino), dentries: resolution.batch.dentries.map((d) => [d.parent, d.name.toString(), d.ino]), blocks: resolution.batch.blocks.length, del: resolution.batch.deletedInodes })}\n`);
      this.store.replaceView(built.view);
      this.view = built.view;
      this.log = built.log;
      this.attach(built.view);
      // Commits confirmed while this ran are applied here (the feed finds them applied).
      let next = built.next;
      const catchUp = async () => {
        for (const { seq, commit } of this.rc.commits(next)) {
          next = seq + 1;
          if (built.view.state.hasCommit(commit.hash)) continue;
          for (const [k, v] of dentryNamesBefore(built.view, commit)) oldNames.set(k, v);
          await built.view.submit(commit, 'local', true, { gap: this.rc.belowCut(seq) });
          for (const ev of commit.events) { touched.push(ev.meta); elsewhere.push(ev.meta); }
        }
      };
      await catchUp();
      const b = resolution.batch;
      if (b.inodes.length + b.dentries.length + b.blocks.length + b.deletedInodes.length > 0) {
        for (let attempt = 0; ; attempt++) {
          try {
            await (this.store as unknown as { apply(b: FsBatch, d: Durability): Promise<void> }).apply(b, 'durable');
            break;
          } catch (e) {
            if (!(e instanceof Conflict) || attempt >= 20) throw e;
            await new Promise((r) => setTimeout(r, 20));
            await catchUp();
          }
        }
      }
      const batchOf = (events: EventMeta[]) => batchOfEvents(events, (k) => built.view.tryGet(k)?.data ?? null, oldNames, (ino) => readableInode(this.store, ino));
      // The core refreshes its caches of everything touched; clashes count only changes from elsewhere.
      const fromElsewhere = new Set(elsewhere.map((m) => m.key));
      this.store.onRemoteChange?.(batchOf(touched.filter((m) => !fromElsewhere.has(m.key))));
      this.noteRemote(batchOf(elsewhere));
      if (b.inodes.length + b.dentries.length + b.blocks.length + b.deletedInodes.length > 0) {
        this.store.onRemoteChange?.(b);
        if (process.env.ATEFS_DEBUG_RESYNC) process.stderr.write(`resync: applied; pending ${this.rc.pendingCount}; lookups ${b.dentries.map((d) => `${d.name}=${this.store.lookupDentry(d.parent, d.name)}`)}; commits ${this.store.timings.commits}\n`);
      }
      for (const n of resolution.notes) {
        this.conflicts.push(n);
        this.o.onWarning?.(`conflict: ${n.text}`);
      }
      this.o.onWarning?.(`resynced with the server (${why}): ${lost.length} staged commit(s) re-made on top of the server's state`);
      oldView.remote = null;
      await oldView.close().catch(() => undefined);
      await oldLog.close().catch(() => undefined);
      if (this.o.dir) await fsp.rm(path.join(this.o.dir, `view-${this.generation - 1}`), { recursive: true, force: true }).catch(() => undefined);
    });
  }

  status(): RemoteFsStatus {
    const last = this.conflicts[this.conflicts.length - 1];
    const head = this.rc.head?.seq ?? this.rc.lastSeq;
    return {
      connection: this.failure ? `stopped: ${this.failure.message}` : this.rc.status,
      server: this.rc.serverKey ? (this.rc as unknown as { serverKey: Buffer }).serverKey.toString('hex').slice(0, 16) : null,
      seq: this.rc.lastSeq,
      lag: Math.max(0, head - this.rc.lastSeq),
      pendingUploads: this.rc.pendingCount,
      pendingBytes: this.rc.pendingBytes,
      lastConflict: last ? last.text : null,
      conflicts: this.conflicts.length,
      resyncs: this.resyncs,
    };
  }

  /**
   * Waits until everything staged is confirmed, the server is unreachable for `timeoutMs`, or
   * the time is up. Returns how many commits stay staged.
   */
  async upload(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    // Offline for this long: the server is not coming back in time, leave the rest staged.
    let offlineSince = 0;
    while (this.rc.pendingCount > 0 && Date.now() < deadline && this.rc.status !== 'refused' && this.rc.status !== 'closed') {
      if (this.rc.status === 'online') offlineSince = 0;
      else if (offlineSince === 0) offlineSince = Date.now();
      else if (Date.now() - offlineSince > 3000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.feedQueue.catch(() => undefined);
    return this.rc.pendingCount;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const t of this.leased.values()) clearInterval(t);
    this.leased.clear();
    await this.feedQueue.catch(() => undefined);
    this.closed = true;
    await this.store.close();
    await this.rc.close();
    this.view.remote = null;
    await this.view.close();
    await this.log.close();
  }
}

export { OfflineRefused, RemoteChainStore };
export type { InodeRecord };

/** Whether a file's record says its content changed (size, inline bytes, block size). */
function contentDiffers(prev: InodeRecord | null | undefined, now: InodeRecord): boolean {
  if (!prev) return true;
  const empty = Buffer.alloc(0);
  return prev.size !== now.size || prev.blockSize !== now.blockSize || !(prev.inline ?? empty).equals(now.inline ?? empty);
}
