// The bulk pool's worker re-implements two formats off the main thread: aes-gcm.ts's sealed layout
// and hash.ts's domainHash framing. Its output must open and hash exactly like the main thread's,
// and what it opens from files must fail on any change.
import { mkdtempSync, readdirSync, readlinkSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BulkCryptoPool, DecryptError, CryptoError, aesGcmOpen, aesGcmSeal, domainHash, randomBytes } from '../../src/crypto/index.js';

const pool = new BulkCryptoPool({ size: 2 });
const dir = mkdtempSync(join(tmpdir(), 'atefs-bulk-'));
afterAll(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('BulkCryptoPool', () => {
  it('seals like aesGcmSeal and hashes like domainHash', async () => {
    const key = randomBytes(32);
    const items = [0, 1, 4096, 65536, 100_000].map((n, i) => ({
      key, aad: Buffer.from(`aad ${i}`), meta: Buffer.from(`meta ${i}`), plaintext: randomBytes(n),
    }));
    const out = await pool.sealAndHash(items, 'atefs/test/v1');
    expect(out).toHaveLength(items.length);
    const nonces = new Set<string>();
    out.forEach((o, i) => {
      const it = items[i]!;
      expect(aesGcmOpen(key, o.sealed, it.aad).equals(it.plaintext)).toBe(true);
      expect(o.hash.equals(domainHash('atefs/test/v1', it.meta, o.sealed))).toBe(true);
      expect(() => aesGcmOpen(key, o.sealed, Buffer.from('other aad'))).toThrow(DecryptError);
      nonces.add(o.sealed.subarray(2, 14).toString('hex'));
    });
    expect(nonces.size).toBe(items.length);
  });

  it('opens sealed ranges of a file; a flipped byte, a wrong key or a wrong aad fail per item', async () => {
    const key = randomBytes(32);
    const a = aesGcmSeal(key, Buffer.alloc(70_000, 7), Buffer.from('A'));
    const b = aesGcmSeal(key, Buffer.alloc(5000, 9), Buffer.from('B'));
    const file = join(dir, 'seg');
    const pad = Buffer.alloc(123, 1);
    writeFileSync(file, Buffer.concat([pad, a, b]));
    const at = (buf: Buffer, off: number) => ({ path: file, offset: off, length: buf.length, key, aad: Buffer.from(buf === a ? 'A' : 'B') });
    const ok = await pool.openFileRanges([at(a, 123), at(b, 123 + a.length)]);
    expect((ok[0] as Buffer).equals(Buffer.alloc(70_000, 7))).toBe(true);
    expect((ok[1] as Buffer).equals(Buffer.alloc(5000, 9))).toBe(true);
    const bad = await pool.openFileRanges([
      { ...at(a, 123), aad: Buffer.from('B') },
      { ...at(b, 123 + a.length), key: randomBytes(32) },
      { ...at(b, 124 + a.length) },
      { ...at(a, 123), path: join(dir, 'missing') },
      at(b, 123 + a.length),
    ]);
    expect(bad[0]).toBeInstanceOf(DecryptError);
    expect(bad[1]).toBeInstanceOf(DecryptError);
    expect(bad[2]).toBeInstanceOf(Error);
    expect(bad[3]).toBeInstanceOf(CryptoError);
    expect((bad[4] as Buffer).equals(Buffer.alloc(5000, 9))).toBe(true);
    const flipped = Buffer.concat([pad, a, b]);
    flipped[123 + 500] ^= 1;
    writeFileSync(join(dir, 'seg2'), flipped);
    const f = await pool.openFileRanges([{ ...at(a, 123), path: join(dir, 'seg2') }]);
    expect(f[0]).toBeInstanceOf(DecryptError);
  });

  it('closeFiles drops the descriptors kept for reads, so deleted files free their space', async () => {
    const key = randomBytes(32);
    const a = aesGcmSeal(key, Buffer.alloc(70_000, 3), Buffer.from('A'));
    const file = join(dir, 'segment-to-delete');
    writeFileSync(file, a);
    const held = () => readdirSync('/proc/self/fd').filter((fd) => {
      try { return readlinkSync(`/proc/self/fd/${fd}`).startsWith(file); } catch { return false; }
    }).length;
    const r = await pool.openFileRanges([{ path: file, offset: 0, length: a.length, key, aad: Buffer.from('A') }]);
    expect((r[0] as Buffer).equals(Buffer.alloc(70_000, 3))).toBe(true);
    unlinkSync(file);
    expect(held()).toBe(1); // a worker keeps it open (reads reuse descriptors)
    await pool.closeFiles();
    expect(held()).toBe(0);
  });
});
