// Requests on directories as open files: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
import { readU64, writeDirent, writeDirentplus, writeOpenOut } from './codec.js';
import { FOPEN, FUSE_FSYNC_FDATASYNC, OPEN_OUT_SIZE, OUT_HEADER_SIZE } from './protocol.js';
import type { OpHandler } from './session-types.js';

const DOT = 0x2e;
function isDotOrDotDot(n: Buffer): boolean {
  return (n.length === 1 && n[0] === DOT) || (n.length === 2 && n[0] === DOT && n[1] === DOT);
}

export const opendir: OpHandler = (s, b, unique, nodeid, p) => {
  const flags = b.readUInt32LE(p);
  const r = s.core.opendir(s.ctx, nodeid, flags);
  const of = s.opts.cacheDir ? FOPEN.CACHE_DIR | FOPEN.KEEP_CACHE : 0;
  writeOpenOut(s.out.buf, OUT_HEADER_SIZE, r.fh, of);
  if (!s.out.ok(unique, OPEN_OUT_SIZE)) s.core.releasedir(nodeid, r.fh);
};

export const readdir: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  const offset = readU64(b, p + 8);
  const r = s.out.buf;
  const size = Math.min(b.readUInt32LE(p + 16), r.length - OUT_HEADER_SIZE);
  const list = s.core.readdir(s.ctx, nodeid, fh, offset, Math.max(1, size >>> 5));
  const limit = OUT_HEADER_SIZE + size;
  let o = OUT_HEADER_SIZE;
  for (let i = 0; i < list.length; i++) {
    const next = writeDirent(r, o, limit, list[i]!);
    if (next < 0) break;
    o = next;
  }
  s.out.ok(unique, o - OUT_HEADER_SIZE);
};

export const readdirplus: OpHandler = (s, b, unique, nodeid, p) => {
  const core = s.core;
  const fh = readU64(b, p);
  const offset = readU64(b, p + 8);
  const r = s.out.buf;
  const size = Math.min(b.readUInt32LE(p + 16), r.length - OUT_HEADER_SIZE);
  // An entry is >= 160 bytes; asking for more than fit would count lookups we then undo.
  const list = core.readdirplus(s.ctx, nodeid, fh, offset, Math.max(1, Math.floor(size / 168)));
  const limit = OUT_HEADER_SIZE + size;
  let o = OUT_HEADER_SIZE;
  let i = 0;
  let linked = 0;
  for (; i < list.length; i++) {
    const d = list[i]!;
    const dots = isDotOrDotDot(d.name);
    const next = writeDirentplus(r, o, limit, d, dots ? null : d.entry);
    if (next < 0) break;
    // No entry (nodeid 0): the kernel lists the name and links nothing; a lookup follows.
    if (!dots && d.entry) { linked++; s.attrTimeout = d.entry.attrTimeout; }
    o = next;
  }
  // Entries that did not fit were counted by the core but never reach the kernel.
  for (let j = i; j < list.length; j++) {
    const d = list[j]!;
    if (!isDotOrDotDot(d.name) && d.entry) core.forget(d.entry.ino, 1);
  }
  if (s.out.ok(unique, o - OUT_HEADER_SIZE)) {
    s.lookupsOutstanding += linked;
  } else {
    for (let j = 0; j < i; j++) {
      const d = list[j]!;
      if (!isDotOrDotDot(d.name) && d.entry) core.forget(d.entry.ino, 1);
    }
  }
};

export const releasedir: OpHandler = (s, b, unique, nodeid, p) => {
  s.core.releasedir(nodeid, readU64(b, p));
  s.out.ok(unique, 0);
};

export const fsyncdir: OpHandler = (s, b, unique, nodeid, p) => {
  const fh = readU64(b, p);
  const datasync = (b.readUInt32LE(p + 8) & FUSE_FSYNC_FDATASYNC) !== 0;
  s.waits.settle(unique, s.core.fsyncdir(nodeid, fh, datasync), () => 0);
};
