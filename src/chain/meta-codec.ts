// The event metadata's encoding (the map documented at the top of codec.ts): encodeMeta, and two
// decoders that must agree — a fast one reading the common shapes straight from the bytes, and the
// general one through msgpack (metaDecoders lets a test hold them side by side).
import { CommitRejected } from './errors.js';
import { DAO_KEY_BYTES, DATA_KEY_ID_BYTES, KEY_ID_BYTES } from './ids.js';
import { DEFAULT_LIMITS, type EventMeta, type ReadAcl, type SizeLimits, type WriteAcl } from './types.js';
import {
  Malformed, asArray, asBuffer, asMap, asUint, bad, binToHex, decodeGrant, decodeReaders, encodeGrant, encodeReaders, hexToBin, packr, unpack,
} from './codec-values.js';


export function encodeMeta(m: EventMeta): Buffer {
  const o: Record<string, unknown> = { k: hexToBin(m.key, DAO_KEY_BYTES, 'DAO key'), v: m.version };
  if (m.tombstone) o.d = true;
  if (m.parent) o.p = [hexToBin(m.parent.key, DAO_KEY_BYTES, 'parent key'), m.parent.collection];
  if (m.read.mode === 'chain') o.r = 1;
  else if (m.read.mode === 'readers') o.r = encodeReaders(m.read.readers);
  if (m.write.mode !== 'inherit') o.w = encodeWriteAcl(m.write);
  if (m.children !== undefined) {
    if (m.children.mode === 'inherit') throw new TypeError("a children ACL is never 'inherit' (leave it out)");
    o.c = encodeWriteAcl(m.children);
  }
  if (m.admin !== undefined) {
    if (m.admin.mode === 'inherit') throw new TypeError("an admin ACL is never 'inherit' (leave it out)");
    o.a = encodeWriteAcl(m.admin);
  }
  if (m.nodeKey) o.n = hexToBin(m.nodeKey, DATA_KEY_ID_BYTES, 'node key id');
  if (m.grants.length) o.g = m.grants.map(encodeGrant);
  if (m.payloadKey) o.e = hexToBin(m.payloadKey, DATA_KEY_ID_BYTES, 'payload key id');
  if (m.publish.length) o.u = m.publish;
  if (m.type !== null) o.y = m.type;
  if (m.replyTo) o.q = hexToBin(m.replyTo, DAO_KEY_BYTES, 'reply key');
  return packr.pack(o);
}

function encodeWriteAcl(w: WriteAcl): unknown {
  if (w.mode === 'nobody') return 0;
  if (w.mode === 'any' || w.mode === 'all') return [w.mode === 'any' ? 1 : 2, w.keys.map((k) => hexToBin(k, KEY_ID_BYTES, 'write key id'))];
  throw new TypeError(`write ACL mode ${w.mode} has no encoding`);
}

// Shared immutable values for the common case: decoding a million events shouldn't allocate a
// fresh 'inherit' ACL and two empty arrays for each.
const READ_INHERIT: ReadAcl = Object.freeze({ mode: 'inherit' }) as ReadAcl;
const READ_CHAIN: ReadAcl = Object.freeze({ mode: 'chain' }) as ReadAcl;
const WRITE_INHERIT: WriteAcl = Object.freeze({ mode: 'inherit' }) as WriteAcl;
const WRITE_NOBODY: WriteAcl = Object.freeze({ mode: 'nobody' }) as WriteAcl;
const NONE: readonly never[] = Object.freeze([]);

const META_FIELDS = new Set(['k', 'v', 'd', 'p', 'r', 'w', 'c', 'a', 'n', 'g', 'e', 'u', 'y', 'q']);

/** A write or children ACL as encoded (`what` names it in errors); undefined = absent. */
function decodeWriteAcl(v: unknown, what: string, limits: SizeLimits): WriteAcl | undefined {
  if (v === undefined) return undefined;
  if (v === 0) return WRITE_NOBODY;
  const w = asArray(v, what, 2);
  if (w.length !== 2 || (w[0] !== 1 && w[0] !== 2)) bad(`${what}: expected [1|2, keys]`);
  const keys = asArray(w[1], `${what} keys`, limits.maxAclKeys).map((k) => binToHex(k, KEY_ID_BYTES, `${what} key id`));
  return { mode: w[0] === 1 ? 'any' : 'all', keys };
}

function decodeMetaObject(v: unknown, limits: SizeLimits): EventMeta {
  const o = asMap(v, 'metadata');
  for (const f in o) if (!META_FIELDS.has(f)) bad(`metadata: unknown field '${f}'`);
  let parent: EventMeta['parent'] = null;
  if (o.p !== undefined) {
    const p = asArray(o.p, 'parent', 2);
    if (p.length !== 2) bad('parent: expected [key, collection]');
    parent = { key: binToHex(p[0], DAO_KEY_BYTES, 'parent key'), collection: asUint(p[1], 'collection', 0xffffffff) };
  }
  let read: ReadAcl = READ_INHERIT;
  if (o.r === 1) read = READ_CHAIN;
  else if (o.r !== undefined) read = { mode: 'readers', readers: decodeReaders(o.r, limits) };
  const write: WriteAcl = decodeWriteAcl(o.w, 'write ACL', limits) ?? WRITE_INHERIT;
  const children = decodeWriteAcl(o.c, 'children ACL', limits);
  const admin = decodeWriteAcl(o.a, 'admin ACL', limits);
  if (o.d !== undefined && o.d !== true) bad('tombstone: expected true');
  if (o.y !== undefined && (typeof o.y !== 'string' || o.y.length > limits.maxTypeLength)) bad('type: bad tag');
  return {
    key: binToHex(o.k, DAO_KEY_BYTES, 'DAO key'),
    version: asUint(o.v, 'version'),
    tombstone: o.d === true,
    parent,
    read,
    write,
    ...(children !== undefined ? { children } : {}),
    ...(admin !== undefined ? { admin } : {}),
    nodeKey: o.n === undefined ? null : binToHex(o.n, DATA_KEY_ID_BYTES, 'node key id'),
    grants: o.g === undefined ? NONE : asArray(o.g, 'grants', limits.maxGrantsPerEvent).map((g) => decodeGrant(g, limits)),
    payloadKey: o.e === undefined ? null : binToHex(o.e, DATA_KEY_ID_BYTES, 'payload key id'),
    publish: o.u === undefined ? NONE : asArray(o.u, 'published keys', limits.maxAclKeys).map((k) => asBuffer(k, 'published key', 8192)),
    type: o.y === undefined ? null : (o.y as string),
    replyTo: o.q === undefined ? null : binToHex(o.q, DAO_KEY_BYTES, 'reply key'),
  };
}

// Fast path for the common shape of event metadata (decoding it is a large share of loading a
// chain): a map16/fixmap of one-letter keys among k v d p r w n e q y, with bin8 keys/ids of the right
// length, unsigned ints, r = 1, w = 0, d = true and an ASCII type tag. It recognises only inputs
// that msgpackr decodes to exactly these values and that decodeMetaObject accepts, consuming every
// byte; anything else (grants, published keys, ACL lists, other encodings, duplicate fields, any
// doubt) returns null and goes through msgpackr + decodeMetaObject, which also produce the errors.
// Hex ids are read straight from the record bytes, without a Buffer per field.
const F_K = 1, F_V = 2, F_D = 4, F_P = 8, F_R = 16, F_W = 32, F_N = 64, F_E = 128, F_Q = 256, F_Y = 512;

function fastUint(b: Buffer, at: number): [number, number] | null {
  const t = b[at]!;
  if (t <= 0x7f) return [t, at + 1];
  if (t === 0xcc && at + 2 <= b.length) return [b[at + 1]!, at + 2];
  if (t === 0xcd && at + 3 <= b.length) return [b.readUInt16BE(at + 1), at + 3];
  if (t === 0xce && at + 5 <= b.length) return [b.readUInt32BE(at + 1), at + 5];
  return null;
}

function fastBinHex(b: Buffer, at: number, len: number): string | null {
  if (at + 2 + len > b.length || b[at] !== 0xc4 || b[at + 1] !== len) return null;
  return b.toString('hex', at + 2, at + 2 + len);
}

function fastDecodeMeta(b: Buffer, limits: SizeLimits): EventMeta | null {
  const n = b.length;
  // Packr writes map16 (0xde) unless told otherwise; fixmap is accepted too.
  let count: number;
  let at: number;
  if (n >= 3 && b[0] === 0xde) {
    count = (b[1]! << 8) | b[2]!;
    at = 3;
  } else if (n >= 1 && (b[0]! & 0xf0) === 0x80) {
    count = b[0]! & 0x0f;
    at = 1;
  } else return null;
  if (count > 10) return null;
  let seen = 0;
  let key: string | null = null;
  let version = -1;
  let parent: EventMeta['parent'] = null;
  let read: ReadAcl = READ_INHERIT;
  let write: WriteAcl = WRITE_INHERIT;
  let nodeKey: string | null = null;
  let payloadKey: string | null = null;
  let replyTo: string | null = null;
  let type: string | null = null;
  for (let i = 0; i < count; i++) {
    if (at + 3 > n || b[at] !== 0xa1) return null;
    const f = b[at + 1]!;
    at += 2;
    let bit: number;
    switch (f) {
      case 0x6b /* k */: {
        bit = F_K;
        key = fastBinHex(b, at, DAO_KEY_BYTES);
        if (key === null) return null;
        at += 2 + DAO_KEY_BYTES;
        break;
      }
      case 0x76 /* v */: {
        bit = F_V;
        const r = fastUint(b, at);
        if (!r) return null;
        [version, at] = r;
        break;
      }
      case 0x64 /* d */:
        bit = F_D;
        if (b[at] !== 0xc3) return null;
        at += 1;
        break;
      case 0x70 /* p */: {
        bit = F_P;
        if (b[at] !== 0x92) return null;
        const pk = fastBinHex(b, at + 1, DAO_KEY_BYTES);
        if (pk === null) return null;
        at += 3 + DAO_KEY_BYTES;
        if (at >= n) return null;
        const r = fastUint(b, at);
        if (!r) return null;
        at = r[1];
        parent = { key: pk, collection: r[0] };
        break;
      }
      case 0x72 /* r */:
        bit = F_R;
        if (b[at] !== 0x01) return null;
        read = READ_CHAIN;
        at += 1;
        break;
      case 0x77 /* w */:
        bit = F_W;
        if (b[at] !== 0x00) return null;
        write = WRITE_NOBODY;
        at += 1;
        break;
      case 0x6e /* n */:
      case 0x65 /* e */: {
        bit = f === 0x6e ? F_N : F_E;
        const id = fastBinHex(b, at, DATA_KEY_ID_BYTES);
        if (id === null) return null;
        if (f === 0x6e) nodeKey = id;
        else payloadKey = id;
        at += 2 + DATA_KEY_ID_BYTES;
        break;
      }
      case 0x71 /* q */: {
        bit = F_Q;
        replyTo = fastBinHex(b, at, DAO_KEY_BYTES);
        if (replyTo === null) return null;
        at += 2 + DAO_KEY_BYTES;
        break;
      }
      case 0x79 /* y */: {
        bit = F_Y;
        const t = b[at]!;
        if ((t & 0xe0) !== 0xa0) return null; // fixstr only
        const len = t & 0x1f;
        if (at + 1 + len > n || len > limits.maxTypeLength) return null;
        for (let j = at + 1; j < at + 1 + len; j++) if (b[j]! >= 0x80) return null;
        type = b.toString('latin1', at + 1, at + 1 + len);
        at += 1 + len;
        break;
      }
      default:
        return null;
    }
    if (seen & bit) return null;
    seen |= bit;
    if (at > n) return null;
  }
  if (at !== n || key === null || version < 0) return null;
  return {
    key,
    version,
    tombstone: (seen & F_D) !== 0,
    parent,
    read,
    write,
    nodeKey,
    grants: NONE,
    payloadKey,
    publish: NONE,
    type,
    replyTo,
  };
}

export function decodeMetaBytes(bytes: Buffer, limits: SizeLimits): EventMeta {
  return fastDecodeMeta(bytes, limits) ?? decodeMetaObject(unpack(bytes, 'metadata'), limits);
}

/** For tests: the fast path alone (null = not recognised) and the general path alone. */
export const metaDecoders = {
  fast: (bytes: Buffer, limits: SizeLimits = DEFAULT_LIMITS): EventMeta | null => fastDecodeMeta(bytes, limits),
  general: (bytes: Buffer, limits: SizeLimits = DEFAULT_LIMITS): EventMeta => {
    try {
      return decodeMetaObject(unpack(bytes, 'metadata'), limits);
    } catch (e) {
      if (e instanceof Malformed) throw new CommitRejected('malformed', e.message);
      throw e;
    }
  },
};

export function decodeMeta(bytes: Buffer, limits: SizeLimits = DEFAULT_LIMITS): EventMeta {
  try {
    return decodeMetaBytes(bytes, limits);
  } catch (e) {
    if (e instanceof Malformed) throw new CommitRejected('malformed', e.message);
    throw e;
  }
}
