// Freshness: the newest head (seq, chain hash — src/log/chain-hash.ts) of each chain this user
// has seen durable, kept beside the pins in the config directory, apart from the chain's storage.
// Whoever can write the storage (a synced folder, a backup disk) can cut the log back or restore
// an older copy; every commit in it is still validly signed, so only a record of what the user
// already saw tells the rollback apart. Each entry carries an HMAC under a key derived from the
// local identity, so the file cannot be edited into agreeing with a rolled-back log without the
// user's keys.
//
// Written after durable commits, late and without fsync (never on the hot path): it may lag the
// log, which only weakens the check to an older head; it is never ahead of what is durable, so a
// crash never makes the next open refuse the chain.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { hkdfSha256, hmacSha256, constantTimeEqual } from '../crypto/index.js';
import type { ChainState } from '../log/index.js';
import { ensurePrivateConfigDir } from './config-dir.js';
import { SessionError } from './errors.js';
import type { Session } from './session.js';

export const HEADS_FILE = 'chain-heads.json';

export interface ChainHead {
  seq: number;
  hash: Buffer;
}

interface StoredHead {
  seq: number;
  hash: string;
  mac: string;
}

/** The HMAC key of the heads file: derived from the identity's read key (else its signing secret). */
export function headsKeyOf(session: Session): Buffer {
  const u = session.user;
  const ikm = u?.readKey ?? u?.signing?.secretKey;
  if (!ikm) throw new SessionError('the session holds no user key to authenticate chain heads with');
  return hkdfSha256(ikm, Buffer.from('atefs/chain-heads'), 'v1', 32);
}

function macOf(key: Buffer, name: string, seq: number, hash: Buffer): string {
  const s = Buffer.alloc(8);
  s.writeBigUInt64BE(BigInt(seq));
  return hmacSha256(key, Buffer.from(`atefs/chain-head/v1\0${name}\0`), s, hash).toString('hex');
}

async function readAll(configDir: string): Promise<Record<string, StoredHead>> {
  try {
    return JSON.parse(await fsp.readFile(path.join(configDir, HEADS_FILE), 'utf8')) as Record<string, StoredHead>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    if (e instanceof SyntaxError) return {}; // a torn write of an earlier version: heads lag, never lie
    throw e;
  }
}

/** The stored head of `name`, or null when none (or its MAC does not verify: then `forged` is set). */
export async function readHead(configDir: string, name: string, key: Buffer): Promise<{ head: ChainHead | null; forged: boolean }> {
  const e = (await readAll(configDir))[name];
  if (!e || typeof e.seq !== 'number' || typeof e.hash !== 'string' || typeof e.mac !== 'string') return { head: null, forged: false };
  const hash = Buffer.from(e.hash, 'hex');
  const ok = hash.length === 32 && constantTimeEqual(Buffer.from(macOf(key, name, e.seq, hash), 'hex'), Buffer.from(e.mac, 'hex'));
  return ok ? { head: { seq: e.seq, hash }, forged: false } : { head: null, forged: true };
}

// Config directories made private by this process already (once is enough for a writer that
// stores a head several times a second).
const ensured = new Set<string>();

// One write at a time per file in this process (several chains may share it).
const queues = new Map<string, Promise<void>>();

/** Stores the head of `name` (tmp + rename, mode 0600, no fsync). */
export function writeHead(configDir: string, name: string, key: Buffer, head: ChainHead): Promise<void> {
  const file = path.join(configDir, HEADS_FILE);
  const run = async () => {
    if (!ensured.has(configDir)) {
      await ensurePrivateConfigDir(configDir);
      ensured.add(configDir);
    }
    const all = await readAll(configDir);
    all[name] = { seq: head.seq, hash: head.hash.toString('hex'), mac: macOf(key, name, head.seq, head.hash) };
    const tmp = `${file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(all, null, 1), { mode: 0o600 });
    await fsp.rename(tmp, file);
  };
  const p = (queues.get(file) ?? Promise.resolve()).then(run, run);
  const tail = p.catch(() => undefined);
  queues.set(file, tail);
  void tail.then(() => {
    if (queues.get(file) === tail) queues.delete(file);
  });
  return p;
}

/**
 * Keeps a chain's stored head following the log's durable records: coalesced, written at most
 * every `delayMs` off the commit path; close() writes the last one.
 */
export class HeadWriter {
  private latest: ChainHead | null = null;
  private written = -1;
  private timer: NodeJS.Timeout | null = null;
  private inflight: Promise<void> = Promise.resolve();

  constructor(
    private readonly configDir: string,
    private readonly name: string,
    private readonly key: Buffer,
    private readonly delayMs = 200,
    private readonly onError: (e: Error) => void = () => undefined,
  ) {}

  update(head: ChainHead): void {
    if (this.latest && head.seq <= this.latest.seq) return;
    this.latest = head;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.delayMs);
    this.timer.unref();
  }

  flush(): Promise<void> {
    const h = this.latest;
    if (!h || h.seq === this.written) return this.inflight;
    this.written = h.seq;
    this.inflight = this.inflight.then(() => writeHead(this.configDir, this.name, this.key, h)).catch((e: Error) => this.onError(e));
    return this.inflight;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}

/** The chain is older than, or diverges from, the head this user has seen. */
export class ChainRolledBack extends SessionError {
  override name = 'ChainRolledBack';
  constructor(readonly where: string, readonly found: ChainHead, readonly seen: ChainHead, diverged: boolean, howToAccept: string) {
    super(diverged
      ? `the chain at ${where} diverges from the history this user has seen: at seq ${seen.seq} its chain hash is not ` +
        `${seen.hash.toString('hex').slice(0, 16)}... (the log was replaced by another history). ${howToAccept}`
      : `the chain at ${where} ends at seq ${found.seq}, but this user has seen it up to seq ${seen.seq} ` +
        `(chain hash ${seen.hash.toString('hex').slice(0, 16)}...): its log was cut back or an older copy was restored. ${howToAccept}`);
  }
}

/** The log's history does not hold together (frames removed from the middle, kept records changed). */
export class ChainHistoryBroken extends SessionError {
  override name = 'ChainHistoryBroken';
  constructor(readonly where: string, readonly seq: number, detail: string, howToAccept: string) {
    super(`the chain at ${where} has a broken history: ${detail}. ${howToAccept}`);
  }
}

/**
 * Compares what the log holds with the stored head: null when it is the same history, at or past
 * the head; else what is wrong (the stored head's seq must have been passed as chainHashAt).
 */
export function compareWithHead(chain: ChainState, seen: ChainHead): 'older' | 'diverged' | null {
  if (chain.head.seq < seen.seq) return 'older';
  if (chain.probe && chain.probe.seq === seen.seq && chain.probe.hash && !chain.probe.hash.equals(seen.hash)) return 'diverged';
  // A head at or below a later compaction's cut other than the cut itself cannot be recomputed:
  // the signed cut certificate vouches for that part of the history.
  return null;
}
