// FUSE_INIT: the protocol version and the features both sides agree on.
import { constants as osc } from 'node:os';
import { FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, INIT, INIT_OUT_SIZE, OUT_HEADER_SIZE, PAGE_SIZE } from './protocol.js';
import type { Replies } from './replies.js';
import type { SessionOptions } from './session-types.js';

/** Negotiated protocol: our minor if the kernel's is newer; INIT flags both sides agreed on. */
export interface Proto { major: number; minor: number; kernelMinor: number; flags: number; maxReadahead: number }

/** Answers INIT; `initialized` is false when the kernel must try again (another major) or cannot. */
export function answerInit(out: Replies, opts: SessionOptions, b: Buffer, unique: number, p: number): { proto: Proto; initialized: boolean } {
  const major = b.readUInt32LE(p);
  const minor = b.readUInt32LE(p + 4);
  const maxReadahead = b.readUInt32LE(p + 8);
  const kflags = b.readUInt32LE(p + 12);
  const proto: Proto = { major, minor: Math.min(minor, FUSE_KERNEL_MINOR_VERSION), kernelMinor: minor, flags: kflags, maxReadahead };
  if (major !== FUSE_KERNEL_VERSION) {
    // Newer major: answer with ours and the kernel re-sends INIT; older: unsupported.
    if (major > FUSE_KERNEL_VERSION) {
      const r = out.buf;
      r.fill(0, OUT_HEADER_SIZE, OUT_HEADER_SIZE + 8);
      r.writeUInt32LE(FUSE_KERNEL_VERSION, OUT_HEADER_SIZE);
      out.ok(unique, 8);
    } else {
      out.err(unique, osc.errno.EPROTO);
    }
    return { proto, initialized: false };
  }
  let want = INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO
    | INIT.PARALLEL_DIROPS | INIT.HANDLE_KILLPRIV_V2 | INIT.MAX_PAGES | INIT.CACHE_SYMLINKS | INIT.ASYNC_DIO
    | INIT.AUTO_INVAL_DATA | INIT.ATOMIC_O_TRUNC;
  if (opts.writebackCache) want |= INIT.WRITEBACK_CACHE;
  if (opts.flockLocks) want |= INIT.FLOCK_LOCKS;
  if (opts.posixLocks !== false) want |= INIT.POSIX_LOCKS;
  const flags = (want & kflags) >>> 0;
  proto.flags = flags;
  const maxPages = Math.ceil(opts.maxWrite / PAGE_SIZE);
  const r = out.buf;
  const o = OUT_HEADER_SIZE;
  r.fill(0, o, o + INIT_OUT_SIZE);
  r.writeUInt32LE(FUSE_KERNEL_VERSION, o);
  r.writeUInt32LE(Math.min(minor, FUSE_KERNEL_MINOR_VERSION), o + 4);
  r.writeUInt32LE(maxReadahead, o + 8);
  r.writeUInt32LE(flags, o + 12);
  r.writeUInt16LE(64, o + 16);          // max_background
  r.writeUInt16LE(48, o + 18);          // congestion_threshold
  r.writeUInt32LE(opts.maxWrite, o + 20);
  r.writeUInt32LE(1, o + 24);           // time_gran: ns timestamps
  r.writeUInt16LE(maxPages, o + 28);
  out.ok(unique, minor < 23 ? 24 : INIT_OUT_SIZE);
  return { proto, initialized: true };
}
