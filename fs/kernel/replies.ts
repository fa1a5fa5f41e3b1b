// Replies to the kernel: one write(2) per reply, from one reply buffer reused by every
// synchronous reply; and the replies that come back after an await (PendingReplies).
import { writeSync, writevSync } from 'node:fs';
import { constants as osc } from 'node:os';
import { toErrno } from '../core/errors.js';
import { writeOutHeader } from './codec.js';
import { OUT_HEADER_SIZE, Op, PAGE_SIZE } from './protocol.js';
import type { Pending } from './session-types.js';

const EIO = osc.errno.EIO;
const ERANGE = osc.errno.ERANGE;

export class Replies {
  /** The reply being built: its body goes at [OUT_HEADER_SIZE, ...). Free again once it is sent. */
  readonly buf: Buffer;
  private readonly hdr = Buffer.allocUnsafe(OUT_HEADER_SIZE);
  private readonly iov: Buffer[] = [this.hdr, this.hdr];
  errors = 0;

  /** `fd`: the /dev/fuse descriptor (the bulk workers write their replies to it too). */
  constructor(readonly fd: number, maxWrite: number, private readonly debug: boolean) {
    this.buf = Buffer.allocUnsafe(OUT_HEADER_SIZE + Math.max(maxWrite, 1 << 17) + PAGE_SIZE);
  }

  /** One write(2) per reply. false when the kernel no longer wants it (interrupted: ENOENT). */
  send(buf: Buffer, len: number): boolean {
    try {
      writeSync(this.fd, buf, 0, len);
      return true;
    } catch (e) {
      if (this.debug) process.stderr.write(`kernel: reply write failed: ${(e as Error).message}\n`);
      return false;
    }
  }

  err(unique: number, errno: number): void {
    const b = this.buf;
    writeOutHeader(b, OUT_HEADER_SIZE, -errno, unique);
    this.errors++;
    this.send(b, OUT_HEADER_SIZE);
  }

  /** Body already written at buf[16..16+len). */
  ok(unique: number, bodyLen: number): boolean {
    const n = OUT_HEADER_SIZE + bodyLen;
    writeOutHeader(this.buf, n, 0, unique);
    return this.send(this.buf, n);
  }

  /** Writes the body `u32 value, u32 0` (WRITE, COPY_FILE_RANGE, xattr size probes); its length. */
  putU32(value: number): number {
    this.buf.writeUInt32LE(value >>> 0, OUT_HEADER_SIZE);
    this.buf.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
    return 8;
  }

  /** A reply whose body is putU32's. */
  okU32(unique: number, value: number): boolean {
    return this.ok(unique, this.putU32(value));
  }

  /** A reply whose body is `data` itself (no copy into the reply buffer). */
  data(unique: number, data: Buffer): void {
    const n = OUT_HEADER_SIZE + data.length;
    writeOutHeader(this.hdr, n, 0, unique);
    if (data.length === 0) { this.send(this.hdr, OUT_HEADER_SIZE); return; }
    this.iov[1] = data;
    try {
      writevSync(this.fd, this.iov);
    } catch (e) {
      if (this.debug) process.stderr.write(`kernel: reply writev failed: ${(e as Error).message}\n`);
    }
    this.iov[1] = this.hdr;
  }

  /** xattr replies: size 0 is a probe for the length; a too-small buffer is ERANGE. */
  sized(unique: number, size: number, v: Buffer): void {
    if (size === 0) this.okU32(unique, v.length);
    else if (size < v.length) this.err(unique, ERANGE);
    else this.data(unique, v);
  }
}

/**
 * Requests whose reply is a Promise still running (fsync, fsyncdir, setlk, destroy, a write held
 * back by the committer). The loop must not block on /dev/fuse while any is pending.
 */
export class PendingReplies {
  readonly map = new Map<number, Pending>();
  /** Called once the last pending reply was sent (the loop goes back to reading itself). */
  onDrained: (() => void) | null = null;

  constructor(private readonly out: Replies, private readonly debug: boolean) {}

  /**
   * Replies that come back after an await (the shared reply buffer is free again by then): `send`
   * writes the reply once `p` resolves; a rejection, or an errno `send` throws, is the error reply.
   */
  settleWith(unique: number, opcode: number, p: Promise<unknown>, send: () => void): void {
    const rec: Pending = { opcode, interrupted: false };
    this.map.set(unique, rec);
    const fail = (err: unknown) => {
      const errno = toErrno(err);
      if (errno === EIO || this.debug) process.stderr.write(`kernel: async reply failed: ${(err as Error)?.stack ?? String(err)}\n`);
      this.out.err(unique, errno);
    };
    p.then(() => {
      this.map.delete(unique);
      if (!rec.interrupted) {
        try {
          send();
        } catch (err) {
          fail(err);
        }
      }
      if (this.map.size === 0) this.onDrained?.();
    }, (err: unknown) => {
      this.map.delete(unique);
      if (!rec.interrupted) fail(err);
      if (this.map.size === 0) this.onDrained?.();
    });
  }

  /** An empty-bodied or reply-buffer reply after an await; `ok` writes the body and returns its length. */
  settle(unique: number, p: Promise<unknown>, ok: () => number): void {
    this.settleWith(unique, 0, p, () => this.out.ok(unique, ok()));
  }

  /** A data reply after an await; `produce` runs then (and may throw an errno). */
  settleData(unique: number, p: Promise<void>, produce: () => Buffer): void {
    this.settleWith(unique, Op.READ, p, () => this.out.data(unique, produce()));
  }
}
