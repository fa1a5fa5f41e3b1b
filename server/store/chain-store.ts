// The storage backend seam of atedb. The protocol side (server/session.ts) talks to a ChainStore
// (which chains exist, create one from its genesis) and to the ServedChains it hands out (history,
// append, signed head, listeners). Two backends:
//   file      server/chain-host.ts + hosted-chain.ts: one redo log per chain under <data-dir>/chains
//             (the default, embedded, one node)
//   jetstream server/store/jetstream-store.ts + jetstream-chain.ts: chains in one NATS JetStream
//             stream, one subject per chain; any atedb node on the same stream serves any chain
// Both validate a commit in atedb before it is stored, and confirm it only once it is durable
// (fdatasync for the file store, the stream's quorum acknowledgement for JetStream).
import type { SignedHead } from '../../src/net/index.js';
import type { CutCertificate } from '../../src/log/index.js';

/** What a subscriber is sent before a compacted history ('cut', src/net/messages.ts). */
export interface CutOffer {
  cut: CutCertificate;
  genesis: Buffer;
  seqs: number[];
  /** 32 bytes per seq: the commit hash of each kept record. */
  hashes: Buffer;
  head: SignedHead;
}

/** The sender of an append: told its seq first, synchronously, in seq order with the relays. */
export interface AppendOrigin {
  confirmed(chain: ServedChain, seq: number): void;
}

/** Who receives what a chain confirms; implemented by the protocol side (server/session.ts). */
export interface ChainListener {
  /** Called synchronously, in seq order, for every confirmed commit, after its origin was told. */
  onCommit(chain: ServedChain, seq: number, bytes: Buffer, origin: AppendOrigin | null): void;
  onHead(chain: ServedChain, head: SignedHead): void;
  /** The chain stopped (its store failed under it); nothing more comes from this instance. */
  onClosed?(chain: ServedChain, reason: Error): void;
}

export interface ServedChain {
  readonly name: string;
  readonly genesisHash: Buffer;
  readonly listeners: Set<ChainListener>;
  /** Newest seq confirmed (dense: 1..n per chain). */
  readonly confirmedSeq: number;
  /** Set when the store closes this chain (evicted, broken or shutting down); it reopens on next use. */
  closing: boolean;
  /** Validates, stores durably and confirms one commit; resolves with its seq. */
  append(bytes: Buffer, origin: AppendOrigin | null): Promise<number>;
  /** The signed head at the newest confirmed seq. */
  head(): Promise<SignedHead>;
  /**
   * Confirmed commits from seq `from` up to `upto` (inclusive), at most `maxBytes` of them (one
   * larger commit alone): a batch is one message, and a message must fit the connection's frame.
   */
  readHistory(from: number, upto: number, maxBytes: number): Promise<Buffer[]>;
  /**
   * A store that compacts (the file store, server/chain-compactor.ts): held while a subscriber is
   * streamed history, so no compaction switches records under it; resolves with the release.
   */
  beginHistory?(): Promise<() => void>;
  /** The cut (seq) a history from `from` would cross a compacted gap at, or null. */
  compactedFrom?(from: number): number | null;
  /** Seq of the chain's compaction cut (null: never compacted). */
  cutSeq?(): number | null;
  /** The 'cut' message's contents, when the store compacted this chain. */
  cutOffer?(): Promise<CutOffer | null>;
  /** Records with their seqs, gaps below the cut included. */
  readSparse?(from: number, upto: number, maxBytes: number): Promise<{ seqs: number[]; commits: Buffer[] }>;
}

export interface ChainStore {
  /** 'file' or 'jetstream' (the listening line and stats say which). */
  readonly kind: string;
  readonly openCount: number;
  /** The chain, opened if needed; null if the store does not have it. */
  get(name: string): Promise<ServedChain | null>;
  /** Creates a chain from its genesis; AppendRejected('wrong-genesis') if it exists. */
  create(name: string, genesis: Buffer, clientIdentity: string | null): Promise<ServedChain>;
  /** Finishes in-flight appends and closes every chain. */
  close(): Promise<void>;
}
