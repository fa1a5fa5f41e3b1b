// The open scan: the MANIFEST read, leftovers of an interrupted rotation or compaction removed,
// every segment's header checked and its frames verified (and chain-hashed), a torn tail cut.
import { LogCorruptError, LogError, LogHeaderMismatch } from './errors.js';
import { decodeHeader, decodeManifest, MANIFEST, MANIFEST_TMP, type Manifest, parseSegmentName, segmentName } from './format.js';
import type { LogIo } from './io.js';
import { scanFrames, validFrameAfter } from './scan.js';
import { zeroRemainder } from './runway.js';
import { type CutCertificate, ChainTracker, recordHash } from './chain-hash.js';
import type { Seg } from './engine.js';
import type { LogPosition, RecoveryReport } from './types.js';

export function readManifest(io: LogIo, chainId: string): Manifest | null {
  if (!io.exists(MANIFEST)) return null;
  const m = decodeManifest(io.readFile(MANIFEST));
  if (typeof m === 'string') throw new LogCorruptError(-1, 0, MANIFEST, m);
  if (m.chainId !== chainId)
    throw new LogHeaderMismatch(`log belongs to chain '${m.chainId}', not '${chainId}'`);
  return m;
}

/**
 * What the scan needs of the engine. It is told what it found as it goes (a failed scan leaves
 * the engine with what was found before the failure, and the descriptors to close).
 */
export interface OpenScanHost {
  readonly io: LogIo;
  readonly chainId: string;
  readonly readOnly: boolean;
  readonly probeSeq: number | undefined;
  readonly recovery: RecoveryReport;
  readonly readFds: Map<number, number>;
  /** Given, or adopted from the first segment header that names one. */
  genesis(): Buffer | null;
  setGenesis(g: Buffer): void;
  setCut(cut: CutCertificate | null): void;
  setNextSegId(id: number): void;
  addSegment(seg: Seg): void;
  setLastPos(pos: LogPosition): void;
}

export interface OpenScanResult {
  /** Segment ids in order (empty: a new log; the engine creates its first segment). */
  ids: number[];
  /** The segment list came from the MANIFEST (else from the directory: the manifest is written). */
  fromManifest: boolean;
  /** Seq of the last record found (or the one before the last segment's first). */
  prevSeq: number;
  /** Null when no segment header was read (a new log). */
  tracker: ChainTracker | null;
}

export function scanOpen(host: OpenScanHost): OpenScanResult {
  const io = host.io;
  const names = io.list();
  const manifest = readManifest(io, host.chainId);
  const fromManifest = manifest?.segments ?? null;
  const cut = manifest?.cut ?? null;
  host.setCut(cut);
  // Created at the first segment header: the running hash starts at the genesis hash it names.
  let tracker: ChainTracker | null = null;
  const onFrame = (seq: number, payload: Buffer) => tracker!.add(seq, recordHash(payload));
  const onDisk = names.map(parseSegmentName).filter((n): n is number => n !== null);
  const ids = fromManifest ?? [...onDisk].sort((a, b) => a - b);
  host.setNextSegId(Math.max(0, ...onDisk, ...ids) + 1);
  if (!host.readOnly) {
    // Leftovers of an interrupted rotation or compaction: never named by the manifest.
    const live = new Set(ids.map(segmentName));
    for (const n of names)
      if (n === MANIFEST_TMP || n.endsWith('.seg.tmp') || (parseSegmentName(n) !== null && !live.has(n))) io.unlink(n);
  }
  if (ids.length === 0) {
    if (host.readOnly) throw new LogError(`no redo log in ${io.dir}`);
    return { ids, fromManifest: fromManifest !== null, prevSeq: 0, tracker: null };
  }
  let prevSeq = 0;
  let records = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const name = segmentName(id);
    const isLast = i === ids.length - 1;
    let fd: number;
    try {
      fd = io.openRead(name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new LogCorruptError(id, 0, name, 'segment named by the manifest is missing');
      throw e;
    }
    host.readFds.set(id, fd);
    const size = io.size(fd);
    const hb = Buffer.alloc(Math.min(size, 1 << 17));
    io.pread(fd, hb, 0, hb.length, 0);
    const h = decodeHeader(hb);
    if (typeof h === 'string') throw new LogCorruptError(id, 0, name, h);
    if (h.chainId !== host.chainId)
      throw new LogHeaderMismatch(`segment ${name} belongs to chain '${h.chainId}', not '${host.chainId}'`);
    const genesis = host.genesis();
    if (genesis && !(h.genesisHash && h.genesisHash.equals(genesis)))
      throw new LogHeaderMismatch(`segment ${name}: genesis hash differs from the expected one`);
    if (h.segment !== id) throw new LogCorruptError(id, 0, name, `header names segment ${h.segment}`);
    if (!genesis && h.genesisHash) host.setGenesis(h.genesisHash);
    tracker ??= new ChainTracker(host.genesis(), cut, host.probeSeq);
    if (h.firstSeq <= prevSeq) throw new LogCorruptError(id, 0, name, `first seq ${h.firstSeq} does not follow ${prevSeq}`);
    const r = scanFrames(io, fd, h.headerLen, size, Math.max(prevSeq, h.firstSeq - 1), onFrame);
    let end = r.end;
    if (size > r.end && zeroRemainder(io, fd, r.end, size)) {
      // Zeros after the last frame: a runway (runway.ts), the segment's end — neither torn nor damage.
      if (!host.readOnly) cutSegment(io, name, r.end);
    } else {
      if (r.bad) {
        const after = isLast ? validFrameAfter(io, fd, r.end, size, Math.max(prevSeq, r.lastSeq, h.firstSeq - 1)) : 0;
        if (!isLast || after >= 0) throw new LogCorruptError(id, r.end, name, r.bad);
      }
      if (isLast && size > r.end) {
        // Torn tail: a partial or unverifiable last write with nothing valid after it.
        host.recovery.truncatedBytes = size - r.end;
        host.recovery.truncatedAt = { segment: id, offset: r.end };
        if (!host.readOnly) {
          keepTornAside(io, host.recovery, fd, name, r.end, size);
          cutSegment(io, name, r.end);
        }
        end = r.end;
      } else if (!isLast && size > r.end) {
        throw new LogCorruptError(id, r.end, name, 'trailing bytes after the last frame');
      }
    }
    host.addSegment({ id, name, headerLen: h.headerLen, firstSeq: h.firstSeq, end, count: r.count, lastSeq: r.lastSeq });
    if (r.count > 0) {
      prevSeq = r.lastSeq;
      host.setLastPos({ segment: id, offset: r.lastOff });
    } else prevSeq = Math.max(prevSeq, h.firstSeq - 1);
    records += r.count;
  }
  host.recovery.records = records;
  return { ids, fromManifest: fromManifest !== null, prevSeq, tracker };
}

/**
 * Cuts a segment back to `at` on open. No fdatasync: if the truncation is lost in a crash, the
 * same bytes are found and cut again; appends that later overwrite the region are synced with
 * their data.
 */
function cutSegment(io: LogIo, name: string, at: number): void {
  const wfd = io.openRw(name, false);
  try {
    io.truncate(wfd, at);
  } finally {
    io.close(wfd);
  }
}

/**
 * The bytes a torn-tail recovery cuts off, kept beside the segment (`<segment>.torn-<offset>`)
 * before the cut: a damaged newest commit is then refused by the freshness check, not lost.
 * Never deleted by the log (not a segment name); left out above 64 MiB.
 */
function keepTornAside(io: LogIo, recovery: RecoveryReport, fd: number, name: string, from: number, size: number): void {
  if (size - from > 64 << 20) return;
  const b = Buffer.alloc(size - from);
  io.pread(fd, b, 0, b.length, from);
  const aside = `${name}.torn-${from}`;
  io.writeFileSync(aside, b);
  recovery.keptAside = aside;
}
