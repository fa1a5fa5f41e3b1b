// The messages inside the encrypted frames: msgpackr maps `{ v, t, ... }`. Every message carries the
// message-format version `v` and its type `t`; decode() checks the shape of each field of the type
// it announces, and an unknown type, a wrong version or a wrong field is a ProtocolError (the
// connection closes), never a best-effort guess.
import { Packr } from 'msgpackr';
import { ProtocolError } from './errors.js';

export const MESSAGE_VERSION = 1;

/** A head the server signed: (chain id = genesis hash, seq, running chain hash). */
export interface SignedHead {
  seq: number;
  chainHash: Buffer;
  sig: Buffer;
}

/** Typed reasons of a rejected append (chain RejectReasons plus the server's own). */
export type WireRejectReason =
  | 'conflict' | 'unauthorized' | 'bad-signature' | 'too-large' | 'future-timestamp' | 'unknown-chain'
  | 'wrong-genesis' | 'replay' | 'malformed' | 'hash' | 'confidentiality' | 'policy' | 'unavailable';

export type Message =
  // handshake completion (first encrypted frames)
  | { v: number; t: 'auth'; pk: Buffer | null; sig: Buffer | null }
  | { v: number; t: 'ready'; time: number; identity: string | null }
  // chains
  // cuts: the client follows a compacted history (a 'cut', then 'hist' with explicit seqs);
  // absent (older clients): a history below a cut is refused with err 'compacted'.
  | { v: number; t: 'sub'; id: number; chain: string; genesis: Buffer | null; from: number; cuts?: boolean | null }
  | { v: number; t: 'unsub'; chain: string }
  | { v: number; t: 'hist'; chain: string; from: number; commits: Buffer[]; upTo?: number | null; seqs?: number[] | null }
  // Before the history of a subscriber (with `cuts`) that starts at or below the server's
  // compaction cut: the cut certificate of the server's log (src/log/chain-hash.ts, signed by the
  // server's key), the seqs and commit hashes of every record kept up to the cut (they chain to
  // `kept`), and the server's signed head at the cut (atedb's chain hash there). The list comes in
  // parts (a frame has a maximum): entries `at`.. of `total`, in consecutive 'cut' messages.
  | { v: number; t: 'cut'; chain: string; genesis: Buffer; seq: number; hash: Buffer; kept: Buffer; sig: Buffer; signer: Buffer; seqs: number[]; hashes: Buffer; head: SignedHead; at: number; total: number }
  | { v: number; t: 'eoh'; chain: string; head: SignedHead; genesis: Buffer }
  | { v: number; t: 'live'; chain: string; seq: number; commit: Buffer }
  | { v: number; t: 'head'; chain: string; head: SignedHead }
  | { v: number; t: 'append'; id: number; chain: string; commit: Buffer }
  | { v: number; t: 'ok'; id: number; chain: string; seq: number }
  | { v: number; t: 'rej'; id: number; reason: WireRejectReason; detail: string; seq: number | null }
  // leases
  | { v: number; t: 'lease'; id: number; op: 'acquire' | 'renew' | 'release' | 'get'; chain: string; key: string; ttl: number }
  | { v: number; t: 'leased'; id: number; ok: boolean; holder: string | null; expires: number }
  // keepalive, errors
  | { v: number; t: 'ping'; id: number; time: number }
  | { v: number; t: 'pong'; id: number; time: number }
  | { v: number; t: 'err'; id: number | null; code: string; detail: string }
  // the user/group/token service (server/auth): an operation and its msgpack body, answered by
  // 'ares' { ok, body } (body: the result, or { code, message } when !ok). See src/net/auth-protocol.ts.
  | { v: number; t: 'areq'; id: number; op: string; body: Buffer }
  | { v: number; t: 'ares'; id: number; ok: boolean; body: Buffer };

export type MessageType = Message['t'];
export type Msg<T extends MessageType> = Extract<Message, { t: T }>;
/** A message as written by a caller: the version is filled in by encode(). */
export type Outgoing = { [K in MessageType]: Omit<Msg<K>, 'v'> }[MessageType];

type Check = 'int' | 'num' | 'str' | 'bytes' | 'bytes?' | 'str?' | 'bool' | 'bool?' | 'head' | 'bytes[]' | 'int?' | 'int[]' | 'int[]?' | string[];

const SHAPES: Record<MessageType, Record<string, Check>> = {
  auth: { pk: 'bytes?', sig: 'bytes?' },
  ready: { time: 'num', identity: 'str?' },
  sub: { id: 'int', chain: 'str', genesis: 'bytes?', from: 'int', cuts: 'bool?' },
  unsub: { chain: 'str' },
  // upTo: the server's newest seq when it sent the batch (a progress hint; absent from older servers).
  // seqs: the commits' seqs when they are not from, from + 1, ... (a compacted history, after a 'cut').
  hist: { chain: 'str', from: 'int', commits: 'bytes[]', upTo: 'int?', seqs: 'int[]?' },
  cut: { chain: 'str', genesis: 'bytes', seq: 'int', hash: 'bytes', kept: 'bytes', sig: 'bytes', signer: 'bytes', seqs: 'int[]', hashes: 'bytes', head: 'head', at: 'int', total: 'int' },
  eoh: { chain: 'str', head: 'head', genesis: 'bytes' },
  live: { chain: 'str', seq: 'int', commit: 'bytes' },
  head: { chain: 'str', head: 'head' },
  append: { id: 'int', chain: 'str', commit: 'bytes' },
  ok: { id: 'int', chain: 'str', seq: 'int' },
  rej: { id: 'int', reason: 'str', detail: 'str', seq: 'int?' },
  lease: { id: 'int', op: ['acquire', 'renew', 'release', 'get'], chain: 'str', key: 'str', ttl: 'int' },
  leased: { id: 'int', ok: 'bool', holder: 'str?', expires: 'num' },
  ping: { id: 'int', time: 'num' },
  pong: { id: 'int', time: 'num' },
  err: { id: 'int?', code: 'str', detail: 'str' },
  areq: { id: 'int', op: 'str', body: 'bytes' },
  ares: { id: 'int', ok: 'bool', body: 'bytes' },
};

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export function encodeMessage(m: Outgoing): Buffer {
  return packr.pack({ v: MESSAGE_VERSION, ...m });
}

const NO_BYTES = Buffer.alloc(0);

/**
 * An 'append' as pieces whose concatenation is exactly encodeMessage's bytes for it, the commit
 * given as its own pieces (Commit.parts, `size` bytes in all): a commit of tens of MiB is not
 * joined into one buffer and copied again into the message. The commit is the message's last
 * field, a msgpack bin: the message is packed with an empty one and its 2-byte header (c4 00)
 * replaced by the real one.
 */
export function encodeAppendParts(m: { id: number; chain: string }, commit: readonly Uint8Array[], size: number): Uint8Array[] {
  const head = packr.pack({ v: MESSAGE_VERSION, t: 'append', id: m.id, chain: m.chain, commit: NO_BYTES });
  const k = head.length - 2;
  if (head[k] !== 0xc4 || head[k + 1] !== 0) throw new Error('msgpack did not end the append message with its empty commit');
  let bin: Buffer;
  if (size < 0x100) bin = Buffer.from([0xc4, size]);
  else if (size < 0x10000) { bin = Buffer.alloc(3); bin[0] = 0xc5; bin.writeUInt16BE(size, 1); }
  else { bin = Buffer.alloc(5); bin[0] = 0xc6; bin.writeUInt32BE(size, 1); }
  // The packer's buffer is reused by its next pack: the head is copied (a few dozen bytes).
  return [Buffer.concat([head.subarray(0, k), bin]), ...commit];
}

function isBytes(x: unknown): x is Buffer {
  return x instanceof Uint8Array;
}

function ok(c: Check, x: unknown): boolean {
  if (Array.isArray(c)) return typeof x === 'string' && c.includes(x);
  switch (c) {
    case 'int': return Number.isSafeInteger(x) && (x as number) >= 0;
    // Optional: null, or absent (a field newer than the sender).
    case 'int?': return x === null || x === undefined || (Number.isSafeInteger(x) && (x as number) >= 0);
    case 'num': return typeof x === 'number' && Number.isFinite(x);
    case 'str': return typeof x === 'string' && x.length <= 4096;
    case 'str?': return x === null || (typeof x === 'string' && x.length <= 4096);
    case 'bytes': return isBytes(x);
    case 'bytes?': return x === null || isBytes(x);
    case 'bool': return typeof x === 'boolean';
    case 'bool?': return x === null || x === undefined || typeof x === 'boolean';
    case 'int[]': return Array.isArray(x) && x.every((n) => Number.isSafeInteger(n) && n >= 0);
    case 'int[]?': return x === null || x === undefined || (Array.isArray(x) && x.every((n) => Number.isSafeInteger(n) && n >= 0));
    case 'bytes[]': return Array.isArray(x) && x.every(isBytes);
    case 'head': {
      const h = x as SignedHead;
      return typeof h === 'object' && h !== null && Number.isSafeInteger(h.seq) && h.seq >= 0 && isBytes(h.chainHash) && isBytes(h.sig);
    }
    default: return false;
  }
}

const toBuf = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length));

export function decodeMessage(bytes: Buffer): Message {
  let m: Record<string, unknown>;
  try {
    m = packr.unpack(bytes) as Record<string, unknown>;
  } catch (e) {
    throw new ProtocolError(`message does not decode: ${(e as Error).message}`);
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new ProtocolError('message is not a map');
  if (m.v !== MESSAGE_VERSION) throw new ProtocolError(`message version ${String(m.v)}, this side speaks ${MESSAGE_VERSION}`);
  const t = m.t as MessageType;
  const shape = typeof t === 'string' && Object.hasOwn(SHAPES, t) ? SHAPES[t] : undefined;
  if (!shape) throw new ProtocolError(`unknown message type ${JSON.stringify(m.t)}`);
  for (const [k, c] of Object.entries(shape)) {
    if (!ok(c, m[k])) throw new ProtocolError(`message '${t}': field '${k}' is not ${Array.isArray(c) ? c.join('|') : c}`);
    const v = m[k];
    if (isBytes(v)) m[k] = toBuf(v);
    else if (Array.isArray(v) && c === 'bytes[]') m[k] = v.map((b: Uint8Array) => toBuf(b));
    else if (c === 'head') {
      const h = v as SignedHead;
      m[k] = { seq: h.seq, chainHash: toBuf(h.chainHash), sig: toBuf(h.sig) };
    }
  }
  return m as unknown as Message;
}
