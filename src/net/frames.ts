// Framing of the wire: `u32be length | body`. Before the handshake completes the body is a plain
// msgpack handshake record (small, its own low maximum); afterwards it is AES-256-GCM ciphertext
// with the tag at its end, the four length bytes as associated data, per-direction keys and a
// per-direction frame counter as the nonce (4 zero bytes + u64be counter), as protocol-notes.md
// describes (the shape of SSH's and TLS 1.3's record layers).
//
// The length is checked against the maximum as soon as its 4 bytes are in, before any buffer for
// the body exists; incoming chunks are only queued until a whole frame is present. The counter is
// implicit, so a dropped, repeated or reordered frame fails the tag, and any tag failure is a
// ProtocolError that closes the connection. Every 2^30 frames both sides step the key through
// HKDF at the same frame, so no (key, nonce) pair is ever used twice and no message is needed.
import * as nodeCrypto from 'node:crypto';
import { hkdfSha256 } from '../crypto/index.js';
import { ProtocolError } from './errors.js';

export const LENGTH_BYTES = 4;
export const TAG_BYTES = 16;
/** Default maximum frame body: a commit up to the chain's 64 MiB limit plus the message envelope. */
export const DEFAULT_MAX_FRAME = 64 * 1024 * 1024 + 64 * 1024;
/** Handshake records are a few KiB (an X-Wing key, a host key, a signature). */
export const HANDSHAKE_MAX_FRAME = 16 * 1024;
const REKEY_EVERY = 2 ** 30;
const REKEY_INFO = 'atedb/v1/frame-rekey';

/**
 * Bytes received and not yet consumed, summed over every connection of a process: a server shares
 * one so that many connections each sending most of a maximum-size frame cannot add up to more
 * memory than `max` (the connection that pushes it over is closed).
 */
export interface ReceiveBudget {
  used: number;
  max: number;
}

/** Accumulates socket chunks and yields whole frame bodies; never allocates from an unchecked length. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private queued = 0;
  constructor(public maxFrame: number, private readonly budget: ReceiveBudget | null = null) {}

  /** Bytes received but not yet part of a returned frame. */
  get buffered(): number {
    return this.queued;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.queued += chunk.length;
    if (this.budget) {
      this.budget.used += chunk.length;
      if (this.budget.used > this.budget.max) throw new ProtocolError(`receive budget of ${this.budget.max} bytes exhausted`);
    }
  }

  /** Gives back what is still queued (the connection closed). */
  release(): void {
    if (this.budget) this.budget.used -= this.queued;
    this.chunks = [];
    this.queued = 0;
  }

  /** The 4 length bytes and the body of the next whole frame, or null; throws on an oversize length. */
  next(): { header: Buffer; body: Buffer } | null {
    if (this.queued < LENGTH_BYTES) return null;
    const header = this.peek(LENGTH_BYTES);
    const len = header.readUInt32BE(0);
    if (len > this.maxFrame) throw new ProtocolError(`frame of ${len} bytes announced, the maximum is ${this.maxFrame}`);
    if (this.queued < LENGTH_BYTES + len) return null;
    this.take(LENGTH_BYTES);
    return { header, body: this.take(len) };
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return Buffer.from(first.subarray(0, n));
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (o === n) break;
    }
    return out;
  }

  private take(n: number): Buffer {
    this.queued -= n;
    if (this.budget) this.budget.used -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first && first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first && first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    // n was checked against maxFrame and against the bytes actually queued before we got here.
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

export function lengthPrefix(n: number): Buffer {
  const b = Buffer.allocUnsafe(LENGTH_BYTES);
  b.writeUInt32BE(n, 0);
  return b;
}

/** A plaintext handshake frame. */
export function plainFrame(body: Buffer, maxFrame = HANDSHAKE_MAX_FRAME): Buffer[] {
  if (body.length > maxFrame) throw new ProtocolError(`handshake record of ${body.length} bytes exceeds ${maxFrame}`);
  return [lengthPrefix(body.length), body];
}

/** Pieces at least this large are encrypted on their own; smaller ones are joined first. */
const SEAL_PIECE = 64 << 10;

/** One direction of the record layer: a key and its frame counter. */
export class FrameCipher {
  private counter = 0;
  private key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new ProtocolError('frame keys are 32 bytes');
    this.key = Buffer.from(key);
  }

  get frames(): number {
    return this.counter;
  }

  private nonce(): Buffer {
    if (this.counter >= Number.MAX_SAFE_INTEGER) throw new ProtocolError('frame counter exhausted');
    if (this.counter > 0 && this.counter % REKEY_EVERY === 0) {
      this.key = hkdfSha256(this.key, Buffer.alloc(0), REKEY_INFO, 32);
    }
    const n = Buffer.alloc(12);
    n.writeBigUInt64BE(BigInt(this.counter), 4);
    this.counter++;
    return n;
  }

  /**
   * The length prefix, key and nonce of the next frame, for a frame of `n` plaintext bytes sealed
   * here (sealPartsInSteps) or elsewhere (Connection's GCM offload): taken now, so frames keep
   * their order. The key is read before the nonce steps it, as open() does.
   */
  nextFrame(n: number, maxFrame: number): { header: Buffer; key: Buffer; iv: Buffer } {
    const len = n + TAG_BYTES;
    if (len > maxFrame) throw new ProtocolError(`message of ${n} bytes exceeds the frame maximum ${maxFrame}`);
    const key = this.key;
    return { header: lengthPrefix(len), key, iv: this.nonce() };
  }

  /** Sealed frame as [length, ciphertext, tag] (written with one writev). */
  seal(plaintext: Buffer, maxFrame: number): Buffer[] {
    return this.sealParts([plaintext], maxFrame);
  }

  /**
   * The same frame for a plaintext given as consecutive pieces (a commit's own buffers behind its
   * message header: not copied into one buffer first), as [length, ciphertext pieces..., tag].
   * Small pieces are encrypted together (one socket write each otherwise).
   */
  sealParts(parts: readonly Uint8Array[], maxFrame: number): Buffer[] {
    const out: Buffer[] = [];
    for (const step of this.sealPartsInSteps(parts, maxFrame, Number.POSITIVE_INFINITY)) out.push(...step);
    return out;
  }

  /**
   * sealParts in steps of about `stepBytes` of plaintext each: [length, ciphertext...], then more
   * ciphertext, ..., the last step ending with the tag. The frame's nonce is taken at once, so
   * frames sealed later get later counters whatever the steps' pace; the caller writes the steps
   * in order, and nothing else between them (Connection does both).
   */
  *sealPartsInSteps(parts: readonly Uint8Array[], maxFrame: number, stepBytes: number): Generator<Buffer[], void, void> {
    let n = 0;
    for (const p of parts) n += p.length;
    const { header, key, iv } = this.nextFrame(n, maxFrame);
    const c = nodeCrypto.createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    c.setAAD(header);
    let out: Buffer[] = [header];
    let sealed = 0;
    let small: Uint8Array[] = [];
    let smallBytes = 0;
    const flushSmall = () => {
      if (small.length === 0) return;
      out.push(c.update(small.length === 1 ? small[0]! : Buffer.concat(small, smallBytes)));
      sealed += smallBytes;
      small = [];
      smallBytes = 0;
    };
    for (const p of parts) {
      if (p.length >= SEAL_PIECE) {
        flushSmall();
        // A piece larger than a step is sealed a step at a time (GCM does not care where updates cut).
        for (let at = 0; at < p.length; at += stepBytes) {
          const piece = at === 0 && p.length <= stepBytes ? p : p.subarray(at, at + stepBytes);
          out.push(c.update(piece));
          sealed += piece.length;
          if (sealed >= stepBytes && at + piece.length < p.length) {
            yield out;
            out = [];
            sealed = 0;
          }
        }
      } else if (p.length > 0) {
        small.push(p);
        smallBytes += p.length;
        if (smallBytes >= SEAL_PIECE) flushSmall();
      }
      if (sealed >= stepBytes) {
        yield out;
        out = [];
        sealed = 0;
      }
    }
    flushSmall();
    c.final();
    out.push(c.getAuthTag());
    yield out;
  }

  /** Opens a frame body read by FrameReader; throws ProtocolError on any failure. */
  open(header: Buffer, body: Buffer): Buffer {
    if (body.length < TAG_BYTES) throw new ProtocolError('frame shorter than its tag');
    const d = nodeCrypto.createDecipheriv('aes-256-gcm', this.key, this.nonce(), { authTagLength: TAG_BYTES });
    d.setAAD(header);
    d.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const pt = d.update(body.subarray(0, body.length - TAG_BYTES));
    try {
      d.final();
    } catch {
      throw new ProtocolError('frame authentication failed (tampered, reordered or dropped frame)');
    }
    return pt;
  }
}
