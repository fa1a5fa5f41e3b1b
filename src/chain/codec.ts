// Binary encoding of events and commits (msgpackr, useRecords:false, a format version byte first).
//
// Commit record (what the log stores and the wire carries):
//   u8 COMMIT_FORMAT (1) || msgpack [ hash(32), headerBytes, events, signatures ]
//     events:     [ [metaBytes, payload | null], ... ]
//     signatures: [ [publicKey, signature], ... ]
// headerBytes and each metaBytes are themselves msgpack maps, kept as bins so that they are hashed
// exactly as stored (never re-serialized):
//   eventHash  = domainHash('atefs/chain/event/v1', metaBytes [, payload])
//   commitHash = domainHash('atefs/chain/commit/v1', headerBytes, eventHash_1 || ... || eventHash_n)
// The header carries the chain's genesis hash, so a commit cannot be replayed into another chain.
// The stored hash lets corruption ('hash') be told apart from forgery ('signature').
//
// Metadata map (short keys; absent = default):
//   k key(bin16)  v version  d tombstone(true)  p [parent(bin16), collection]
//   r read: 1 = chain | [[kind, id(bin32)], ...]     (absent = inherit; kind 1 sym, 2 kem)
//   w write: 0 = nobody | [1 any | 2 all, [id(bin32), ...]]   (absent = inherit)
//   c children ACL: as w   (absent = the node's effective write ACL; see EventMeta.children)
//   a admin ACL: as w      (absent = the node's effective write ACL; see EventMeta.admin)
//   n nodeKey(bin16)  g [[id(bin16), [[kind, readerId(bin32), sealed], ...]], ...]
//   e payloadKey(bin16)  u [publicKey, ...]  y type  q replyTo(bin16)
// Header map: c chain(bin32)  t timestamp  g genesis{ n name, t createdAt, k [rootKey...],
//   p { r readers, o openRoot, f futureToleranceMs }, d rootDataKey grant }  s [commitHash...] (a sign-off only)
import { type CryptoPool, domainHash, sha256, signMessage } from '../crypto/index.js';
import { CommitRejected } from './errors.js';
import { Malformed, asArray, asBuffer, asMap, asUint, bad, decodeGrant, decodeReaders, encodeGrant, encodeReaders, packr, unpack } from './codec-values.js';
import { decodeMetaBytes, encodeMeta } from './meta-codec.js';
export { decodeMeta, encodeMeta, metaDecoders } from './meta-codec.js';
import {
  DEFAULT_LIMITS,
  type ChainEvent,
  type ChainPolicy,
  type Commit,
  type CommitHeader,
  type CommitSignature,
  type RecordSpan,
  type EventMeta,
  type GenesisInfo,
  type SizeLimits,
} from './types.js';

export const COMMIT_FORMAT = 1;
export const HASH_BYTES = 32;

export const EVENT_DOMAIN = 'atefs/chain/event/v1';
export const COMMIT_DOMAIN = 'atefs/chain/commit/v1';
export const SIGNATURE_DOMAIN = 'atefs/chain/commit-signature/v1';

// ---------------------------------------------------------------- header / genesis

function encodePolicy(p: ChainPolicy): unknown {
  // 'm' only when set: an older genesis encodes (and hashes) exactly as it did.
  return { r: encodeReaders(p.chainReaders), o: p.openRoot, f: p.futureToleranceMs, ...(p.monotonicTime ? { m: true } : {}) };
}

function decodePolicy(v: unknown, limits: SizeLimits): ChainPolicy {
  const o = asMap(v, 'policy');
  if (typeof o.o !== 'boolean') bad('policy: openRoot');
  if (o.m !== undefined && o.m !== true) bad('policy: monotonic time');
  return {
    chainReaders: decodeReaders(o.r, limits), openRoot: o.o, futureToleranceMs: asUint(o.f, 'policy: future tolerance'),
    ...(o.m === true ? { monotonicTime: true } : {}),
  };
}

export function encodeHeader(h: CommitHeader): Buffer {
  const o: Record<string, unknown> = { t: h.timestamp };
  if (h.chain) o.c = h.chain;
  // 's' only in sign-offs: every other header encodes (and hashes) exactly as before they existed.
  if (h.signs) o.s = h.signs;
  if (h.genesis) {
    const g = h.genesis;
    o.g = { n: g.name, t: g.createdAt, k: g.rootKeys, p: encodePolicy(g.policy), d: encodeGrant(g.rootDataKey) };
  }
  return packr.pack(o);
}

function decodeHeaderObject(v: unknown, limits: SizeLimits): CommitHeader {
  const o = asMap(v, 'header');
  for (const f in o) if (f !== 't' && f !== 'c' && f !== 'g' && f !== 's') bad(`header: unknown field '${f}'`);
  let genesis: GenesisInfo | null = null;
  if (o.g !== undefined) {
    const g = asMap(o.g, 'genesis');
    if (typeof g.n !== 'string' || g.n.length === 0 || g.n.length > 1024) bad('genesis: bad name');
    genesis = {
      name: g.n,
      createdAt: asUint(g.t, 'genesis: createdAt'),
      rootKeys: asArray(g.k, 'root keys', limits.maxAclKeys).map((k) => asBuffer(k, 'root key', 8192)),
      policy: decodePolicy(g.p, limits),
      rootDataKey: decodeGrant(g.d, limits),
    };
  }
  const chain = o.c === undefined ? null : asBuffer(o.c, 'chain id', HASH_BYTES);
  if (chain && chain.length !== HASH_BYTES) bad('chain id: expected 32 bytes');
  if (!chain && !genesis) bad('header: neither chain id nor genesis');
  if (chain && genesis) bad('header: a genesis has no chain id');
  const timestamp = asUint(o.t, 'timestamp');
  if (o.s === undefined) return { chain, timestamp, genesis };
  if (genesis) bad('header: a genesis is no sign-off');
  const signs = asArray(o.s, 'sign-off', limits.maxEvents).map((h) => {
    const b = asBuffer(h, 'signed-off commit hash', HASH_BYTES);
    if (b.length !== HASH_BYTES) bad('sign-off: expected 32-byte commit hashes');
    return b;
  });
  if (signs.length === 0) bad('sign-off: lists no commit');
  return { chain, timestamp, genesis, signs };
}

// ---------------------------------------------------------------- hashes

// eventHash is the hottest hash of the system (once per event on every load), so it frames the
// domainHash input itself into one scratch buffer and hashes it in one call. The bytes hashed are
// exactly domainHash's framing (a test checks the two agree).
const EVENT_PREFIX = (() => {
  const d = Buffer.from(EVENT_DOMAIN, 'utf8');
  const b = Buffer.allocUnsafe(4 + d.length);
  b.writeUInt32BE(d.length, 0);
  d.copy(b, 4);
  return b;
})();
const SMALL_EVENT = 4096;
const scratch = Buffer.allocUnsafe(EVENT_PREFIX.length + 8 + SMALL_EVENT);
EVENT_PREFIX.copy(scratch, 0);

export function eventHash(metaBytes: Uint8Array, payload: Uint8Array | null): Buffer {
  const plen = payload === null ? 0 : payload.length;
  if (metaBytes.length + plen > SMALL_EVENT) {
    return payload === null ? domainHash(EVENT_DOMAIN, metaBytes) : domainHash(EVENT_DOMAIN, metaBytes, payload);
  }
  let o = EVENT_PREFIX.length;
  scratch.writeUInt32BE(metaBytes.length, o);
  o += 4;
  scratch.set(metaBytes, o);
  o += metaBytes.length;
  if (payload !== null) {
    scratch.writeUInt32BE(plen, o);
    o += 4;
    scratch.set(payload, o);
    o += plen;
  }
  return sha256(scratch.subarray(0, o));
}

export function commitHash(headerBytes: Uint8Array, eventHashes: readonly Uint8Array[]): Buffer {
  return domainHash(COMMIT_DOMAIN, headerBytes, Buffer.concat(eventHashes as Uint8Array[]));
}

/** The 32-byte message each key signs for a commit. */
export function signatureMessage(hash: Uint8Array): Buffer {
  return domainHash(SIGNATURE_DOMAIN, hash);
}

/** One hybrid signature per key over signatureMessage(hash), on the pool's workers when there is one. */
export async function signCommitHash(
  hash: Uint8Array,
  signers: ReadonlyArray<{ publicKey: Buffer; secretKey: Buffer }>,
  pool?: CryptoPool | null,
): Promise<CommitSignature[]> {
  const msg = signatureMessage(hash);
  return Promise.all(signers.map(async (s) => ({ publicKey: s.publicKey, signature: pool ? await pool.sign(s.secretKey, msg) : signMessage(s.secretKey, msg) })));
}

// ---------------------------------------------------------------- commits

/** An event ready to be put in a commit: encoded metadata + sealed payload. */
export function makeEvent(meta: EventMeta, payload: Buffer | null): ChainEvent {
  const metaBytes = encodeMeta(meta);
  return { meta, metaBytes, payload, hash: eventHash(metaBytes, payload) };
}

/** Hash of an unsigned commit (header + events); what the signers sign. */
export function hashCommitParts(header: CommitHeader, events: ChainEvent[]): { headerBytes: Buffer; hash: Buffer } {
  const headerBytes = encodeHeader(header);
  return { headerBytes, hash: commitHash(headerBytes, events.map((e) => e.hash)) };
}

/**
 * The commit record as pieces: every byte but the payloads goes into one small buffer, cut where a
 * payload follows; the payloads are referenced, not copied. Joined, the pieces are exactly what
 * `packr.pack([...])` produces for these values (minimal bin / array headers, nil for a missing
 * payload) behind the format byte; a test checks that against msgpackr.
 */
export function encodeCommitParts(
  hash: Buffer,
  headerBytes: Buffer,
  events: ChainEvent[],
  signatures: CommitSignature[],
): { parts: Buffer[]; size: number; spans: RecordSpan[] } {
  let small = 1 + arrayHeaderLen(4) + binLen(hash.length) + binLen(headerBytes.length) + arrayHeaderLen(events.length);
  let payloads = 0;
  for (const e of events) {
    small += 1 + binLen(e.metaBytes.length) + (e.payload === null ? 1 : binLen(e.payload.length) - e.payload.length);
    if (e.payload !== null) payloads += e.payload.length;
  }
  small += arrayHeaderLen(signatures.length);
  for (const s of signatures) small += 1 + binLen(s.publicKey.length) + binLen(s.signature.length);
  const out = Buffer.allocUnsafe(small);
  const parts: Buffer[] = [];
  const spans: RecordSpan[] = new Array(events.length);
  out[0] = COMMIT_FORMAT;
  let o = writeArrayHeader(out, 1, 4);
  o = writeBin(out, o, hash);
  o = writeBin(out, o, headerBytes);
  o = writeArrayHeader(out, o, events.length);
  let cut = 0; // start in `out` of the piece being built
  let at = 0; // record offset of out[cut]
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    out[o++] = 0x92;
    const metaStart = at + (o - cut) + binHeaderLen(e.metaBytes.length);
    o = writeBin(out, o, e.metaBytes);
    if (e.payload === null) {
      out[o++] = 0xc0;
      spans[i] = { metaStart, metaLen: e.metaBytes.length, payloadStart: -1, payloadLen: 0 };
      continue;
    }
    o = writeBinHeader(out, o, e.payload.length);
    parts.push(out.subarray(cut, o));
    at += o - cut;
    spans[i] = { metaStart, metaLen: e.metaBytes.length, payloadStart: at, payloadLen: e.payload.length };
    parts.push(e.payload);
    at += e.payload.length;
    cut = o;
  }
  o = writeArrayHeader(out, o, signatures.length);
  for (const s of signatures) {
    out[o++] = 0x92;
    o = writeBin(out, o, s.publicKey);
    o = writeBin(out, o, s.signature);
  }
  if (o !== small) throw new Error(`commit record size ${o} != ${small}`);
  parts.push(out.subarray(cut, o));
  return { parts, size: small + payloads, spans };
}

/** The commit record in one buffer (encodeCommitParts joined). */
export function encodeCommitRecord(
  hash: Buffer,
  headerBytes: Buffer,
  events: ChainEvent[],
  signatures: CommitSignature[],
): Buffer {
  const { parts, size } = encodeCommitParts(hash, headerBytes, events, signatures);
  return Buffer.concat(parts, size);
}

function binHeaderLen(n: number): number {
  return n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function writeBinHeader(out: Buffer, o: number, n: number): number {
  if (n < 0x100) {
    out[o] = 0xc4;
    out[o + 1] = n;
    return o + 2;
  }
  if (n < 0x10000) {
    out[o] = 0xc5;
    out.writeUInt16BE(n, o + 1);
    return o + 3;
  }
  out[o] = 0xc6;
  out.writeUInt32BE(n, o + 1);
  return o + 5;
}

function binLen(n: number): number {
  return n + (n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);
}

function arrayHeaderLen(n: number): number {
  return n < 16 ? 1 : n < 0x10000 ? 3 : 5;
}

function writeBin(out: Buffer, o: number, b: Uint8Array): number {
  o = writeBinHeader(out, o, b.length);
  out.set(b, o);
  return o + b.length;
}

function writeArrayHeader(out: Buffer, o: number, n: number): number {
  if (n < 16) {
    out[o] = 0x90 + n;
    return o + 1;
  }
  if (n < 0x10000) {
    out[o] = 0xdc;
    out.writeUInt16BE(n, o + 1);
    return o + 3;
  }
  out[o] = 0xdd;
  out.writeUInt32BE(n, o + 1);
  return o + 5;
}

/** Assembles a signed commit from its parts. */
export function assembleCommit(
  header: CommitHeader,
  headerBytes: Buffer,
  hash: Buffer,
  events: ChainEvent[],
  signatures: CommitSignature[],
): Commit {
  const { parts, size, spans } = encodeCommitParts(hash, headerBytes, events, signatures);
  let joined: Buffer | null = null;
  const c = { hash, header, headerBytes, events, signatures, parts, size, spans } as Omit<Commit, 'bytes'> as Commit;
  Object.defineProperty(c, 'bytes', { enumerable: true, get: () => (joined ??= Buffer.concat(parts, size)) });
  return c;
}

/**
 * Structure, size and hash stages of validation: decodes a record, recomputes every event hash and
 * the commit hash from the stored bytes and compares with the stored hash. Throws CommitRejected
 * ('malformed' | 'hash'). Signatures and authority are checked by the validator.
 */
export function decodeCommit(bytes: Uint8Array, limits: SizeLimits = DEFAULT_LIMITS): Commit {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let eventIndex: number | null = null;
  let storedHash: Buffer | null = null;
  try {
    if (buf.length < 2) bad('record too short');
    if (buf.length > limits.maxCommitBytes) bad(`record of ${buf.length} bytes is over the limit of ${limits.maxCommitBytes}`);
    if (buf[0] !== COMMIT_FORMAT) bad(`unknown commit format ${buf[0]}`);
    const top = asArray(unpack(buf.subarray(1), 'commit'), 'commit', 4);
    if (top.length !== 4) bad('commit: expected [hash, header, events, signatures]');
    storedHash = asBuffer(top[0], 'hash', HASH_BYTES);
    if (storedHash.length !== HASH_BYTES) bad('hash: expected 32 bytes');
    const headerBytes = asBuffer(top[1], 'header', limits.maxMetaBytes);
    const header = decodeHeaderObject(unpack(headerBytes, 'header'), limits);
    const rawEvents = asArray(top[2], 'events', limits.maxEvents);
    const events: ChainEvent[] = new Array(rawEvents.length);
    const hashes: Buffer[] = new Array(rawEvents.length);
    for (let i = 0; i < rawEvents.length; i++) {
      eventIndex = i;
      const ev = rawEvents[i];
      if (!Array.isArray(ev) || ev.length !== 2) bad('event: expected [meta, payload]');
      const metaBytes = asBuffer(ev[0], 'metadata', limits.maxMetaBytes);
      const payload = ev[1] === null ? null : asBuffer(ev[1], 'payload', limits.maxPayloadBytes);
      const meta = decodeMetaBytes(metaBytes, limits);
      const hash = eventHash(metaBytes, payload);
      hashes[i] = hash;
      events[i] = { meta, metaBytes, payload, hash };
    }
    eventIndex = null;
    const signatures = asArray(top[3], 'signatures', limits.maxSignatures).map((s) => {
      const x = asArray(s, 'signature', 2);
      if (x.length !== 2) bad('signature: expected [publicKey, signature]');
      return { publicKey: asBuffer(x[0], 'public key', 8192), signature: asBuffer(x[1], 'signature', 16384) };
    });
    const hash = commitHash(headerBytes, hashes);
    if (!hash.equals(storedHash)) {
      throw new CommitRejected('hash', 'stored commit hash does not match its contents', storedHash.toString('hex'));
    }
    return { hash, header, headerBytes, events, signatures, bytes: buf };
  } catch (e) {
    if (e instanceof Malformed) {
      throw new CommitRejected('malformed', e.message, storedHash ? storedHash.toString('hex') : null, eventIndex);
    }
    throw e;
  }
}

/**
 * One event of a stored commit record, without re-hashing or decoding the other events: for
 * reading a record that was validated when it was loaded (the view's "latest version" lookups).
 * Still checks structure; throws CommitRejected('malformed').
 */
export function decodeEventAt(
  bytes: Uint8Array,
  index: number,
  limits: SizeLimits = DEFAULT_LIMITS,
): { meta: EventMeta; metaBytes: Buffer; payload: Buffer | null } {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  try {
    if (buf.length < 2 || buf[0] !== COMMIT_FORMAT) bad('not a commit record of a known format');
    const top = asArray(unpack(buf.subarray(1), 'commit'), 'commit', 4);
    const events = asArray(top[2], 'events', limits.maxEvents);
    const ev = events[index];
    if (!Array.isArray(ev) || ev.length !== 2) bad(`no event ${index}`);
    const metaBytes = asBuffer(ev[0], 'metadata', limits.maxMetaBytes);
    const payload = ev[1] === null ? null : asBuffer(ev[1], 'payload', limits.maxPayloadBytes);
    return { meta: decodeMetaBytes(metaBytes, limits), metaBytes, payload };
  } catch (e) {
    if (e instanceof Malformed) throw new CommitRejected('malformed', e.message, null, index);
    throw e;
  }
}
