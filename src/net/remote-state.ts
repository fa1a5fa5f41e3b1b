// Client-side helpers of a replicated chain: the speculative state (the confirmed state with this
// client's staged commits on top, what new commits are built against) and the head store (the
// newest server-signed head, kept beside the replica and re-verified on load).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { StateOverlay, type AuthorityState, type CommitEffects } from '../chain/index.js';
import { hostFingerprint } from './known-hosts.js';
import { ServerMisbehaved } from './errors.js';
import { ZERO_CHAIN_HASH, nextChainHash, verifyHead } from './heads.js';
import type { SignedHead } from './messages.js';

/**
 * The chain's StateOverlay that also applies accepted effects and remembers their commits: the
 * confirmed state with this client's staged commits on top.
 */
export class SpeculativeState extends StateOverlay implements AuthorityState {
  private readonly commits = new Set<string>();

  override hasCommit(hash: Buffer): boolean {
    return this.commits.has(hash.toString('hex')) || this.base.hasCommit(hash);
  }
  applyEffects(e: CommitEffects): void {
    if (e.genesis) this.genesis = e.genesis;
    for (const n of e.nodes) this.nodes.set(n.key, n);
    for (const k of e.dataKeys) this.dataKeys.set(k.id, k);
    for (const [id, pk] of e.publicKeys) this.publicKeys.set(id, pk);
    this.commits.add(e.commitHash.toString('hex'));
  }
}

export interface StoredHead {
  head: SignedHead;
  /** Fingerprint of the server key that signed it. */
  server: string;
}

/** head.json: the newest signed head this client verified. Written atomically (tmp + rename). */
export class HeadStore {
  private writing: Promise<void> = Promise.resolve();
  constructor(readonly file: string | null) {}

  async load(genesis: Buffer, serverKeyOf: (fingerprint: string) => Buffer | null): Promise<StoredHead | null> {
    if (!this.file) return null;
    let j: { seq: number; chainHash: string; sig: string; server: string; serverKey: string };
    try {
      j = JSON.parse(await fsp.readFile(this.file, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const head: SignedHead = { seq: j.seq, chainHash: Buffer.from(j.chainHash, 'hex'), sig: Buffer.from(j.sig, 'base64') };
    const key = Buffer.from(j.serverKey, 'base64');
    // The stored head authenticates itself: it must verify under the key it names.
    if (hostFingerprint(key) !== j.server || !verifyHead(key, genesis, head)) {
      throw new Error(`${this.file}: the stored head does not verify; remove it only if you trust the server`);
    }
    void serverKeyOf;
    return { head, server: j.server };
  }

  save(head: SignedHead, serverKey: Buffer): Promise<void> {
    if (!this.file) return Promise.resolve();
    const file = this.file;
    const text = JSON.stringify({
      seq: head.seq, chainHash: head.chainHash.toString('hex'), sig: head.sig.toString('base64'),
      server: hostFingerprint(serverKey), serverKey: serverKey.toString('base64'),
    });
    this.writing = this.writing.then(async () => {
      const tmp = `${file}.tmp`;
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.writeFile(tmp, text, { mode: 0o600 });
      await fsp.rename(tmp, file);
    }).catch(() => undefined);
    return this.writing;
  }
}

/**
 * What this client knows of the server's history: the chain hash at every seq it validated (its
 * own computation, never the server's) and the newest head the server signed. Anything the
 * server signs later must extend it.
 */
export class HistoryGuard {
  /**
   * Seqs at or below a compaction cut the server made (src/net/remote-cut.ts): their chain hash is
   * unknown to this client (the records between them are gone); none is ever checked there.
   */
  static readonly UNKNOWN = Buffer.alloc(32, 0xff);
  readonly chainHashes: Buffer[] = [ZERO_CHAIN_HASH];
  head: SignedHead | null = null;

  get lastSeq(): number {
    return this.chainHashes.length - 1;
  }

  push(commitHash: Buffer): void {
    const prev = this.chainHashes[this.chainHashes.length - 1]!;
    if (prev === HistoryGuard.UNKNOWN) throw new Error(`internal: no chain hash at seq ${this.lastSeq} to continue from`);
    this.chainHashes.push(nextChainHash(prev, commitHash));
  }

  /** Forgets the chain hashes (the replica is replayed again); the newest signed head stays. */
  reset(): void {
    this.chainHashes.length = 1;
  }

  /** A kept record at or below a compaction cut, at `seq`: its chain hash is not known here. */
  unknownAt(seq: number): void {
    while (this.chainHashes.length <= seq) this.chainHashes.push(HistoryGuard.UNKNOWN);
  }

  /** The compaction cut at `seq`: the chain hash the server signed there (verified by the caller). */
  crossCut(seq: number, chainHash: Buffer): void {
    this.unknownAt(seq);
    this.chainHashes.length = seq + 1;
    this.chainHashes[seq] = chainHash;
  }

  private known(seq: number): boolean {
    return this.chainHashes[seq] !== HistoryGuard.UNKNOWN;
  }

  /** Checks a head the server sent; true when it is newer than the one held (and now held). */
  check(h: SignedHead, serverKey: Buffer, genesis: Buffer, endOfHistory: boolean): boolean {
    if (!verifyHead(serverKey, genesis, h)) throw new ServerMisbehaved(`server sent a head for seq ${h.seq} whose signature does not verify`);
    if (this.head && h.seq < this.head.seq && endOfHistory) {
      throw new ServerMisbehaved(`server shows a shorter history (seq ${h.seq}) than the signed head this client holds (seq ${this.head.seq}): a rollback`);
    }
    if (h.seq <= this.lastSeq) {
      if (this.known(h.seq) && !this.chainHashes[h.seq]!.equals(h.chainHash)) {
        throw new ServerMisbehaved(`server's signed head at seq ${h.seq} does not match the history this client validated: a different commit at a seen seq`);
      }
    } else if (endOfHistory) {
      throw new ServerMisbehaved(`server's head is at seq ${h.seq} but it sent history only up to ${this.lastSeq}: a gap`);
    }
    if (this.head && h.seq <= this.head.seq) return false;
    this.head = h;
    return true;
  }

  /** Fork check against a head another client holds (see RemoteChain.checkPeerHead). */
  checkPeer(peer: SignedHead, serverKey: Buffer, genesis: Buffer): 'consistent' | 'behind' {
    if (!verifyHead(serverKey, genesis, peer)) throw new ServerMisbehaved(`a peer's head for seq ${peer.seq} does not verify under this server's key`);
    if (peer.seq > this.lastSeq) return 'behind';
    // Below a compaction cut this client cannot tell (the server dropped those records).
    if (this.known(peer.seq) && !this.chainHashes[peer.seq]!.equals(peer.chainHash)) {
      throw new ServerMisbehaved(`fork: the server signed a different history at seq ${peer.seq} for another client`);
    }
    return 'consistent';
  }
}
