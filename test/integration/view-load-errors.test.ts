// Issue 13 (smaller findings): an error from loading or reading a chain names the record that
// actually failed — its seq, segment and offset, and the DAO where one is to blame — not the first
// record of the batch it was decoded in. Records are corrupted on disk with their frame checksum
// recomputed, so the log's own framing accepts them and validation has to catch them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';
import { openLog, type LogPosition } from '../../src/log/index.js';

const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
const FRAME_HEADER = 16; // crc32 | length | seq (src/log/format.ts)
let base: string;
let chainDir: string;
let configDir: string;
const positions = new Map<number, LogPosition>();
const sizes = new Map<number, number>();

const segFile = (pos: LogPosition) => join(chainDir, 'log', readdirSync(join(chainDir, 'log')).find((n) => n === `${String(pos.segment).padStart(8, '0')}.seg`)!);

/** Changes one payload byte of record `seq` on disk (fix = recompute the frame's CRC); returns an undo. */
function corrupt(seq: number, at: (len: number) => number, fix = true): () => void {
  const pos = positions.get(seq)!;
  const file = segFile(pos);
  const saved = `${file}.orig`;
  copyFileSync(file, saved);
  const b = readFileSync(file);
  const len = b.readUInt32LE(pos.offset + 4);
  b[pos.offset + FRAME_HEADER + at(len)]! ^= 0x5a;
  if (fix) b.writeUInt32LE(crc32(b.subarray(pos.offset + 4, pos.offset + FRAME_HEADER + len)), pos.offset);
  writeFileSync(file, b);
  return () => { copyFileSync(saved, file); rmSync(saved); };
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'atefs-load-errors-'));
  chainDir = join(base, 'chain');
  configDir = join(base, 'config');
  const chain = await openLocalChain({ chainDir, configDir, deferCompaction: false, compactMode: 'never' });
  const fs = await Filesystem.open(chain.store);
  // One commit per file (and sign-offs between them): small commits, then one carrying bulk blocks.
  for (const [name, size] of [['a', 10], ['b', 10], ['c', 10], ['d', 10], ['big', 300_000]] as const) {
    const { entry, open } = fs.create(ROOT, 1, Buffer.from(name), 0o644, 2);
    fs.write(ROOT, entry.ino, open.fh, 0, name === 'big' ? randomBytes(size) : Buffer.alloc(size, name.charCodeAt(0)));
    fs.release(entry.ino, open.fh);
    await fs.sync();
  }
  await fs.destroy();
  await chain.close();
  const log = await openLog({ dir: join(chainDir, 'log'), chainId: 'atefs/local', readOnly: true });
  for (const r of log.records()) { positions.set(r.seq, r.pos); sizes.set(r.seq, r.payload.length); }
  await log.close();
  expect(positions.size).toBeGreaterThanOrEqual(6);
});
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

const where = (seq: number) => `record seq ${seq} (segment ${positions.get(seq)!.segment}, offset ${positions.get(seq)!.offset}`;

describe('load errors name the failing record', () => {
  it('a record that no longer decodes, in the middle of a batch, is named itself (not the batch\'s first record)', async () => {
    const undo = corrupt(4, () => 0); // the record's format byte
    rmSync(join(chainDir, 'index'), { recursive: true, force: true }); // rebuilt from the log
    try {
      const err = await openLocalChain({ chainDir, configDir }).then(() => null, (e: Error) => e);
      expect(err?.name).toBe('CommitRejected');
      expect(err?.message).toContain(`chain load stopped at ${where(4)})`);
      expect(err?.message).toMatch(/rejected \(malformed\): unknown commit format/);
    } finally {
      undo();
    }
  });

  it('a record whose bytes changed (hash, signature or event check fails) is named with its position', async () => {
    const undo = corrupt(3, (len) => len - 40);
    rmSync(join(chainDir, 'index'), { recursive: true, force: true });
    try {
      const err = await openLocalChain({ chainDir, configDir }).then(() => null, (e: Error) => e);
      expect(err?.name).toBe('CommitRejected');
      expect(err?.message).toContain(`chain load stopped at ${where(3)}`);
    } finally {
      undo();
    }
  });

  it('a file block changed under a running view: the read names the DAO, its version and the record', async () => {
    const chain = await openLocalChain({ chainDir, configDir, deferCompaction: false, compactMode: 'never' });
    const fs = await Filesystem.open(chain.store);
    // The largest record holds the blocks (sign-offs of deferred signatures may follow it).
    const last = [...sizes.entries()].sort((x, y) => y[1] - x[1])[0]![0];
    const undo = corrupt(last, (len) => Math.floor(len / 2)); // inside a block's ciphertext
    try {
      const ino = fs.lookup(ROOT, 1, Buffer.from('big')).ino;
      const { fh } = fs.open(ROOT, ino, 0);
      let err: Error | null = null;
      try {
        fs.read(ROOT, ino, fh, 0, 300_000);
      } catch (e) {
        err = e as Error;
      }
      fs.release(ino, fh);
      expect(err?.name).toBe('IndexMismatch');
      expect(err?.message).toMatch(new RegExp(`^log bytes of DAO [0-9a-f]+ version \\d+ \\(${where(last).replace(/[()]/g, '\\$&')}\\)\\) do not match the index`));
    } finally {
      undo();
      await fs.destroy();
      await chain.close();
    }
  });
});
