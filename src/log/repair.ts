// Repair: cut the log at its first damaged frame, after copying everything from there on aside.
// Nothing is deleted without a copy: the damaged remainder of the segment is copied to
// "<segment>.damaged-<ts>" (fsynced before the truncation), later segments are renamed to
// "<segment>.damaged-<ts>". Those names are not segment names, so opens leave them alone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CutCertificate } from './chain-hash.js';
import { LogError } from './errors.js';
import { decodeHeader, decodeManifest, encodeManifest, frameSeq, MANIFEST, MANIFEST_TMP, parseSegmentName, segmentName } from './format.js';
import { openFileIo } from './io.js';
import { lockDir } from './lock.js';
import { scanFrames } from './scan.js';
import { zeroRemainder } from './runway.js';
import type { LogPosition } from './types.js';

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export async function repairLog(dir: string): Promise<RepairResult> {
  const lock = lockDir(dir);
  const io = openFileIo(dir);
  const ts = new Date().toISOString().replace(/[:.]/g, '-');
  try {
    let ids: number[] | null = null;
    let chainId: string | null = null;
    let cut: CutCertificate | null = null;
    if (io.exists(MANIFEST)) {
      const m = decodeManifest(io.readFile(MANIFEST));
      if (typeof m === 'string') {
        // Keep the bad manifest, fall back to the segment files in order.
        fs.copyFileSync(path.join(dir, MANIFEST), path.join(dir, `${MANIFEST}.damaged-${ts}`));
      } else {
        ids = m.segments;
        chainId = m.chainId;
        cut = m.cut ?? null;
      }
    }
    ids ??= io
      .list()
      .map(parseSegmentName)
      .filter((n): n is number => n !== null)
      .sort((a, b) => a - b);
    let damage: { index: number; offset: number } | null = null;
    let prevSeq = 0;
    for (let i = 0; i < ids.length && !damage; i++) {
      const name = segmentName(ids[i]!);
      if (!io.exists(name)) {
        damage = { index: i, offset: 0 };
        break;
      }
      const fd = io.openRead(name);
      try {
        const size = io.size(fd);
        const hb = Buffer.alloc(Math.min(size, 1 << 17));
        io.pread(fd, hb, 0, hb.length, 0);
        const h = decodeHeader(hb);
        if (typeof h === 'string' || h.segment !== ids[i] || h.firstSeq <= prevSeq || (chainId && h.chainId !== chainId)) {
          damage = { index: i, offset: 0 };
          break;
        }
        chainId ??= h.chainId;
        const r = scanFrames(io, fd, h.headerLen, size, Math.max(prevSeq, h.firstSeq - 1));
        // Zeros after the last frame are a runway (runway.ts), not damage.
        if (r.end < size && !zeroRemainder(io, fd, r.end, size)) damage = { index: i, offset: r.end };
        prevSeq = r.count > 0 ? r.lastSeq : Math.max(prevSeq, h.firstSeq - 1);
      } finally {
        io.close(fd);
      }
    }
    if (!damage) {
      const unlisted = moveUnlistedAside(dir, io.list(), ids, ts);
      return { truncatedAt: null, movedAside: null, ...(unlisted.length ? { unlisted } : {}) };
    }
    return cutAt(dir, io, ids, chainId, damage, ts, cut);
  } finally {
    lock.release();
  }
}

/**
 * Cuts the log at `pos` (a record that failed validation above the log: src/chain), the same way
 * as a damaged frame: everything from there on is kept aside first.
 */
export async function cutLog(dir: string, pos: LogPosition): Promise<RepairResult> {
  const lock = lockDir(dir);
  const io = openFileIo(dir);
  const ts = new Date().toISOString().replace(/[:.]/g, '-');
  try {
    const m = io.exists(MANIFEST) ? decodeManifest(io.readFile(MANIFEST)) : null;
    if (!m || typeof m === 'string') throw new LogError(`no readable manifest in ${dir}: run the frame repair first`);
    const index = m.segments.indexOf(pos.segment);
    if (index < 0) throw new LogError(`segment ${pos.segment} is not part of the log in ${dir}`);
    return cutAt(dir, io, m.segments, m.chainId, { index, offset: pos.offset }, ts, m.cut ?? null);
  } finally {
    lock.release();
  }
}

export interface RepairResult {
  truncatedAt: LogPosition | null;
  movedAside: string | null;
  /** Segment files the manifest does not name, renamed "<segment>.unlisted-<ts>" (never deleted). */
  unlisted?: string[];
}

/** Segment files not named by `live`: renamed aside, so that an open does not delete them as leftovers. */
function moveUnlistedAside(dir: string, names: string[], live: number[], ts: string): string[] {
  const keep = new Set(live.map(segmentName));
  const out: string[] = [];
  for (const n of names) {
    if (parseSegmentName(n) === null || keep.has(n)) continue;
    const to = `${n}.unlisted-${ts}`;
    fs.renameSync(path.join(dir, n), path.join(dir, to));
    out.push(to);
  }
  return out;
}

function cutAt(
  dir: string,
  io: ReturnType<typeof openFileIo>,
  ids: number[],
  chainId: string | null,
  damage: { index: number; offset: number },
  ts: string,
  cut: CutCertificate | null = null,
): RepairResult & { unlisted: string[] } {
  {
    const firstCut = firstSeqCut(dir, ids, damage);
    const id = ids[damage.index]!;
    const name = segmentName(id);
    const file = path.join(dir, name);
    const aside = `${file}.damaged-${ts}`;
    let keepUpTo = damage.index; // segments [0, keepUpTo) stay whole
    if (fs.existsSync(file)) {
      if (damage.offset === 0) fs.renameSync(file, aside);
      else {
        const src = fs.openSync(file, 'r+');
        try {
          const size = fs.fstatSync(src).size;
          const out = fs.openSync(aside, 'wx', 0o600);
          try {
            const buf = Buffer.allocUnsafe(1 << 20);
            for (let off = damage.offset; off < size; ) {
              const n = fs.readSync(src, buf, 0, Math.min(buf.length, size - off), off);
              if (n === 0) break;
              fs.writeSync(out, buf, 0, n, off - damage.offset);
              off += n;
            }
            fs.fsyncSync(out);
          } finally {
            fs.closeSync(out);
          }
          fsyncPath(dir);
          fs.ftruncateSync(src, damage.offset);
          fs.fsyncSync(src);
        } finally {
          fs.closeSync(src);
        }
        keepUpTo = damage.index + 1;
      }
    }
    for (const later of ids.slice(damage.index + 1)) {
      const p = path.join(dir, segmentName(later));
      if (fs.existsSync(p)) fs.renameSync(p, `${p}.damaged-${ts}`);
    }
    if (chainId !== null) {
      // A compaction cut above what remains no longer describes this log: dropped with the rest.
      const keepCut = cut && cut.seq < firstCut ? cut : null;
      io.writeFileSync(MANIFEST_TMP, encodeManifest({ chainId, segments: ids.slice(0, keepUpTo), cut: keepCut }));
      io.rename(MANIFEST_TMP, MANIFEST);
    }
    const unlisted = moveUnlistedAside(dir, io.list(), ids.slice(0, keepUpTo), ts);
    io.fsyncDir();
    return { truncatedAt: { segment: id, offset: damage.offset }, movedAside: aside, unlisted };
  }
}

/** Seq of the first record cut off (the frame at the damage, or the segment's first seq). */
function firstSeqCut(dir: string, ids: number[], damage: { index: number; offset: number }): number {
  const p = path.join(dir, `${segmentName(ids[damage.index]!)}`);
  try {
    const b = fs.readFileSync(p);
    if (damage.offset > 0 && damage.offset + 16 <= b.length) return frameSeq(b, damage.offset);
    const h = decodeHeader(b);
    return typeof h === 'string' ? 0 : h.firstSeq;
  } catch {
    return 0;
  }
}
