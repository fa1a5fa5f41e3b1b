// Read-only instances (followers): picking up what the writer, maybe another process, did since
// the last poll — new frames, new segments, or a compaction (then a reload from scratch).
import { decodeHeader, type Manifest, segmentName } from './format.js';
import type { LogIo } from './io.js';
import { scanFrames } from './scan.js';
import { type CutCertificate, ZERO_HASH } from './chain-hash.js';
import type { Seg } from './engine.js';

/** What a refresh needs of the engine. */
export interface FollowerHost {
  readonly io: LogIo;
  readManifest(): Manifest | null;
  segments(): readonly Seg[];
  cut(): CutCertificate | null;
  /** Forgets every segment and opens the log again (the open scan); throws when that fails. */
  reload(): void;
  readFd(seg: Seg): number;
  setReadFd(id: number, fd: number): void;
  addSegment(seg: Seg): void;
  /** The running chain hash advanced over one more record. */
  chainRecord(seq: number, payload: Buffer): void;
  /** The newest record is now `seq` at `pos`. */
  setTail(seq: number, pos: { segment: number; offset: number }): void;
}

/** Picks up what the writer appended since (new frames, new segments, compaction). */
export function refreshFollower(host: FollowerHost): void {
  const io = host.io;
  let ids: number[] | null;
  let cut: CutCertificate | null;
  try {
    const m = host.readManifest();
    ids = m?.segments ?? null;
    cut = m?.cut ?? null;
  } catch {
    return; // mid-rename: try again next poll
  }
  const segs = host.segments();
  const cur = segs.map((s) => s.id);
  const known = host.cut();
  // A compaction of only some segments can leave the list this instance knows as a prefix of
  // the new one (it compacted segments this instance has not read yet): the new cut says so.
  const recut = (cut?.seq ?? 0) !== (known?.seq ?? 0) || !(cut?.kept ?? ZERO_HASH).equals(known?.kept ?? ZERO_HASH);
  if (ids && (recut || ids.length < cur.length || cur.some((id, i) => ids![i] !== id))) {
    // Compacted by the writer: reload from scratch.
    try {
      host.reload();
    } catch {
      /* writer mid-change; next poll */
    }
    return;
  }
  const last = segs[segs.length - 1]!;
  const fd = host.readFd(last);
  const size = io.size(fd);
  if (size > last.end) extend(host, last, fd, size);
  for (const id of ids?.slice(cur.length) ?? []) {
    const name = segmentName(id);
    let sfd: number;
    try {
      sfd = io.openRead(name);
    } catch {
      return;
    }
    host.setReadFd(id, sfd);
    const hb = Buffer.alloc(1 << 17);
    const n = io.pread(sfd, hb, 0, hb.length, 0);
    const h = decodeHeader(hb.subarray(0, n));
    if (typeof h === 'string') return;
    const seg: Seg = { id, name, headerLen: h.headerLen, firstSeq: h.firstSeq, end: h.headerLen, count: 0, lastSeq: 0 };
    host.addSegment(seg);
    extend(host, seg, sfd, io.size(sfd));
  }
}

function extend(host: FollowerHost, seg: Seg, fd: number, size: number): void {
  const r = scanFrames(host.io, fd, seg.end, size, Math.max(seg.lastSeq, seg.firstSeq - 1), (seq, payload) => host.chainRecord(seq, payload));
  if (r.count > 0) {
    seg.end = r.end;
    seg.count += r.count;
    seg.lastSeq = r.lastSeq;
    host.setTail(r.lastSeq, { segment: seg.id, offset: r.lastOff });
  }
}
