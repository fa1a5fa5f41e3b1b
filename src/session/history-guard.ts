// The check an opener runs between opening a chain's log and building its view: does the log's
// history hold together (no gap outside a signed compaction cut: src/log/chain-hash.ts,
// src/chain/cut-signing.ts), and is it the history this user has seen, at least up to the stored
// head (heads.ts)? A failure is refused unless the user accepts it deliberately; accepting
// certifies the log as it is and re-pins the head. Afterwards the stored head follows the log's
// durable records.
import type { CryptoPool } from '../crypto/index.js';
import type { RedoLog } from '../log/index.js';
import { cutCertifier, cutProblem } from '../chain/index.js';
import {
  type ChainHead, ChainHistoryBroken, ChainRolledBack, HeadWriter, compareWithHead, headsKeyOf, readHead, writeHead,
} from './heads.js';
import type { Session } from './session.js';


export interface StoredHeadLookup {
  /** Key of the head in chain-heads.json (the pin's key). */
  name: string;
  key: Buffer;
  seen: ChainHead | null;
  forged: boolean;
}

/** Reads the stored head before the log is opened (its seq goes to openLog's chainHashAt). */
export async function lookupHead(configDir: string, name: string, session: Session): Promise<StoredHeadLookup> {
  const key = headsKeyOf(session);
  const { head, forged } = await readHead(configDir, name, key);
  return { name, key, seen: head, forged };
}

export interface GuardOptions {
  log: RedoLog;
  configDir: string;
  /** Named in messages: the chain's directory. */
  where: string;
  stored: StoredHeadLookup;
  session: Session;
  pool: CryptoPool | null;
  /** The user accepts a rollback, a divergence or a gap as found (--accept-rollback). */
  accept: boolean;
  /** What a refusal tells the user to do to accept (e.g. "mount it with --accept-rollback"). */
  howToAccept: string;
  onWarning?: (msg: string) => void;
  readOnly?: boolean;
}

export interface GuardedHistory {
  /** Keeps the stored head following the log's durable records; close() writes the last one. */
  writer: HeadWriter;
  /**
   * The divergence check, run once the view has validated what it loaded: a record whose bytes
   * changed also changes the chain hash, and is better named by validation (CommitRejected) than
   * reported as another history.
   */
  afterLoad(): Promise<void>;
}

/**
 * Refuses (ChainHistoryBroken, ChainRolledBack) or passes. Gaps, the compaction cut and a log
 * older than the stored head are checked here, before the view loads; divergence in afterLoad().
 */
export async function guardHistory(o: GuardOptions): Promise<GuardedHistory> {
  const { log, stored } = o;
  const warn = o.onWarning ?? (() => undefined);
  if (stored.forged) warn(`the stored head of ${o.where} does not verify (edited chain-heads.json?): ignored, it is written anew`);
  let fixed = stored.forged;
  const cutBad = cutProblem(log, o.session.signingKeys().map((k) => k.publicKey));
  const gap = log.chain.problem;
  if (cutBad || gap) {
    const detail = cutBad ?? `${gap!.message}`;
    // A chain opened for the first time since heads were kept may carry gaps an older version's
    // compaction left without a certificate: certified as found, once, with a warning.
    const legacy = !cutBad && stored.seen === null && !stored.forged && log.chain.cut === null;
    if (!o.accept && !legacy) throw new ChainHistoryBroken(o.where, gap?.seq ?? log.chain.cut?.seq ?? 0, detail, o.howToAccept);
    warn(legacy
      ? `${o.where}: ${detail}; no head of this chain was stored yet (compacted by an older version?): its history is certified as found`
      : `${o.where}: ${detail}; accepted (--accept-rollback): its history is certified as found`);
    if (!o.readOnly) await log.acceptHistory(cutCertifier(o.session, o.pool));
    fixed = true;
  }
  const check = (which: 'older' | 'diverged') => {
    if (!stored.seen || compareWithHead(log.chain, stored.seen) !== which) return;
    const err = new ChainRolledBack(o.where, log.chain.head, stored.seen, which === 'diverged', o.howToAccept);
    if (!o.accept) throw err;
    warn(`${err.message.replace(` ${o.howToAccept}`, '')} Accepted (--accept-rollback): the head is re-pinned at seq ${log.chain.head.seq}`);
    fixed = true;
  };
  check('older');
  const writer = new HeadWriter(o.configDir, stored.name, stored.key, 200, (e) => warn(`could not store the chain head: ${e.message}`));
  if (!o.readOnly) {
    const off = log.onDurable((h) => writer.update(h));
    const close = writer.close.bind(writer);
    writer.close = async () => {
      off();
      await close();
    };
  }
  return {
    writer,
    async afterLoad() {
      check('diverged');
      if (fixed) await writeHead(o.configDir, stored.name, stored.key, log.chain.head);
    },
  };
}
