// When and how a hosted chain compacts (server/compaction.ts decides what it keeps).
//
// The cut: the log's crash-safe segment swap (RedoLog.compact, src/log/compaction-swap.ts) leaves a
// cut certificate in the MANIFEST, signed here by the SERVER's key — the server is not a root of
// the chain, and holds no key of its owners; the hosted log is reopened trusting that key
// (cutProblem's alsoTrusted). The server's signed heads chain over atedb's own running hash
// (src/net/heads.ts), which cannot be recomputed across the dropped records either: its value at
// the cut is kept in <chain dir>/cut-hashes, written durably (before the swap, from the certify
// step, where the log's cut seq is already fixed and at most the head) for every seq the cut can be.
//
// Subscribers: a subscriber being streamed history holds a history lease (HostedChain.beginHistory);
// a compaction starts only when none is held (it waits up to HISTORY_WAIT_MS, then skips the run:
// a slow reader is never cut short), and new history streams wait for the compaction to end.
// Appends and live relays go on meanwhile (records after the cut are always kept).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { SizeLimits } from '../src/chain/index.js';
import { type CryptoPool, signMessage } from '../src/crypto/index.js';
import type { Certify, RedoLog } from '../src/log/index.js';
import { type CompactPolicyOptions, CompactionPolicy } from '../src/view/compaction-policy.js';
import { planCompaction } from './compaction.js';

export const CUT_HASHES_FILE = 'cut-hashes';
/**
 * Seq (u64 BE) and hash (32 bytes) of every commit compaction dropped, appended before each swap:
 * after a reopen the server still answers a second copy of one as a replay (naming its seq), never
 * takes it as new — a dropped commit whose DAOs are gone since (an expired tombstone) would
 * otherwise come back to life when a client re-sends it (a staged commit whose 'ok' was lost).
 */
export const DROPPED_FILE = 'dropped-commits';
const DROPPED_ENTRY = 40;
/** Longest a compaction waits for history streams to end before it skips the run. */
const HISTORY_WAIT_MS = 10_000;
/** Tombstones younger than this are kept (the client's default retention). */
export const DEFAULT_TOMBSTONE_RETENTION_MS = 7 * 24 * 3600 * 1000;

export interface ServerCompactionOptions extends CompactPolicyOptions {
  retentionMs?: number;
}

export interface ServerCompactionReport {
  reason: string;
  /** The log's cut (the certificate's seq) and the seq the keep set was decided at: the records
   *  between them were appended while the run started, and are all kept. */
  cut: number;
  planned: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsBefore: number;
  recordsKept: number;
  skipped: string | null;
}

/** atedb's chain hash (heads.ts) at the seqs a cut may be, as the server computed them. */
export async function writeCutHashes(dir: string, entries: Map<number, Buffer>): Promise<void> {
  const file = path.join(dir, CUT_HASHES_FILE);
  const tmp = `${file}.tmp`;
  const body = JSON.stringify({ hashes: Object.fromEntries([...entries].map(([s, h]) => [String(s), h.toString('hex')])) });
  const fh = await fsp.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  const d = await fsp.open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export async function appendDropped(dir: string, dropped: ReadonlyArray<[number, Buffer]>): Promise<void> {
  if (dropped.length === 0) return;
  const buf = Buffer.alloc(dropped.length * DROPPED_ENTRY);
  dropped.forEach(([seq, hash], i) => {
    buf.writeBigUInt64BE(BigInt(seq), i * DROPPED_ENTRY);
    hash.copy(buf, i * DROPPED_ENTRY + 8);
  });
  const fh = await fsp.open(path.join(dir, DROPPED_FILE), 'a', 0o600);
  try {
    await fh.writeFile(buf);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The commits compaction dropped (a torn last entry, from a crash while appending, is ignored). */
export async function readDropped(dir: string): Promise<Array<[number, Buffer]>> {
  let buf: Buffer;
  try {
    buf = await fsp.readFile(path.join(dir, DROPPED_FILE));
  } catch {
    return [];
  }
  const out: Array<[number, Buffer]> = [];
  for (let at = 0; at + DROPPED_ENTRY <= buf.length; at += DROPPED_ENTRY) {
    out.push([Number(buf.readBigUInt64BE(at)), Buffer.from(buf.subarray(at + 8, at + DROPPED_ENTRY))]);
  }
  return out;
}

export async function readCutHash(dir: string, seq: number): Promise<Buffer | null> {
  try {
    const j = JSON.parse(await fsp.readFile(path.join(dir, CUT_HASHES_FILE), 'utf8')) as { hashes: Record<string, string> };
    const h = j.hashes[String(seq)];
    return typeof h === 'string' && /^[0-9a-f]{64}$/.test(h) ? Buffer.from(h, 'hex') : null;
  } catch {
    return null;
  }
}

/** What the compactor needs of its chain (server/hosted-chain.ts). */
export interface CompactableChain {
  readonly name: string;
  readonly log: RedoLog;
  readonly confirmedSeq: number;
  /** atedb's chain hash at `seq` (heads.ts), for every seq from the last cut to the head. */
  chainHashAt(seq: number): Buffer | undefined;
  /** History streams running now. */
  readonly historyReaders: number;
  /** Closes (a promise) or opens (null) the gate new history streams wait at. */
  setHistoryGate(p: Promise<void> | null): void;
}

export class ChainCompactor {
  private readonly policy: CompactionPolicy;
  private running: Promise<ServerCompactionReport> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly chain: CompactableChain,
    private readonly o: {
      dir: string; signingKey: Buffer; signingPublicKey: Buffer; pool: CryptoPool | null; limits?: Partial<SizeLimits>;
      compaction: ServerCompactionOptions; log?: (line: string) => void;
    },
  ) {
    this.policy = new CompactionPolicy(o.compaction, chain.log.sizeBytes());
    this.arm();
  }

  get busy(): boolean {
    return this.running !== null;
  }

  /** After each confirmed batch: compacts in the background when the policy says so. */
  committed(): void {
    if (this.stopped || this.running) return;
    const reason = this.policy.check(this.chain.log.sizeBytes());
    if (reason) void this.run(reason, true).catch(() => undefined);
  }

  private arm(): void {
    const ms = this.policy.msUntilTimer();
    if (ms === null || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.running) {
        const reason = this.policy.check(this.chain.log.sizeBytes());
        if (reason) void this.run(reason, true).catch(() => undefined);
      }
      this.arm();
    }, Math.max(1000, ms));
    this.timer.unref?.();
  }

  /** One compaction (manual when !automatic: runs whatever it reclaims). */
  run(reason: string, automatic: boolean): Promise<ServerCompactionReport> {
    if (this.running) return this.running;
    const p = this.runOnce(reason, automatic).finally(() => {
      this.running = null;
    });
    this.running = p;
    p.then(
      (r) => this.o.log?.(r.skipped
        ? `compaction of '${this.chain.name}' skipped (${reason}): ${r.skipped}`
        : `compacted '${this.chain.name}' (${reason}) at seq ${r.cut}: ${r.bytesBefore} -> ${r.bytesAfter} bytes, ${r.recordsKept} of ${r.recordsBefore} records kept, ${r.cut - r.planned} appended during the run`),
      (e: Error) => this.o.log?.(`compaction of '${this.chain.name}' failed, log left as it was: ${e.message}`),
    );
    return p;
  }

  private async runOnce(reason: string, automatic: boolean): Promise<ServerCompactionReport> {
    const log = this.chain.log;
    const skip = (why: string): ServerCompactionReport => ({
      reason, cut: 0, planned: 0, bytesBefore: log.sizeBytes(), bytesAfter: log.sizeBytes(), recordsBefore: 0, recordsKept: 0, skipped: why,
    });
    // No history stream may read records across the switch: wait for the running ones to end.
    const deadline = Date.now() + HISTORY_WAIT_MS;
    while (this.chain.historyReaders > 0) {
      if (Date.now() > deadline || this.stopped) return skip(`${this.chain.historyReaders} subscriber(s) still being sent history`);
      await new Promise((r) => setTimeout(r, 20));
    }
    let open!: () => void;
    this.chain.setHistoryGate(new Promise<void>((r) => { open = r; }));
    try {
      const cut = this.chain.confirmedSeq;
      const plan = await planCompaction(log, cut, {
        retentionMs: this.o.compaction.retentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS, now: Date.now(),
        ...(this.o.limits ? { limits: this.o.limits } : {}),
      });
      const bytesBefore = log.sizeBytes();
      if (plan.dropBytes === 0) return { ...skip('nothing to drop'), cut };
      if (automatic && plan.dropBytes < this.policy.minReclaimBytes(bytesBefore)) {
        this.policy.reset(bytesBefore);
        return { ...skip(`reclaimable ${plan.dropBytes} of ${bytesBefore} log bytes, below the ${this.policy.minReclaimBytes(bytesBefore)} an automatic compaction needs`), cut };
      }
      const res = await log.compact((rec) => rec.seq > cut || plan.keep.has(rec.seq), { certify: this.certifier(cut, plan.dropped) });
      this.policy.reset(res.bytesAfter);
      return {
        reason, cut: log.chain.cut?.seq ?? cut, planned: cut, bytesBefore: res.bytesBefore, bytesAfter: res.bytesAfter,
        recordsBefore: plan.records, recordsKept: plan.keep.size, skipped: null,
      };
    } finally {
      this.chain.setHistoryGate(null);
      open();
    }
  }

  /**
   * Signs the cut with the server's key, after storing the dropped commits' hashes and atedb's
   * chain hash at every seq the log's cut can be (from ours to the head: the log fixed its cut
   * before it asks for the signature). Both are durable before the swap.
   */
  private certifier(from: number, dropped: ReadonlyArray<[number, Buffer]>): Certify {
    return async (message) => {
      await appendDropped(this.o.dir, dropped);
      const entries = new Map<number, Buffer>();
      const prev = this.chain.log.chain.cut;
      const prevHash = prev ? this.chain.chainHashAt(prev.seq) : undefined;
      if (prev && prevHash) entries.set(prev.seq, prevHash);
      for (let s = from; s <= this.chain.log.nextSeq - 1; s++) {
        const h = this.chain.chainHashAt(s);
        if (h) entries.set(s, h);
      }
      await writeCutHashes(this.o.dir, entries);
      const sig = this.o.pool ? await this.o.pool.sign(this.o.signingKey, message) : signMessage(this.o.signingKey, message);
      return { sig, signer: this.o.signingPublicKey };
    };
  }

  /** Stops the timer and waits for a running compaction. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }
}
