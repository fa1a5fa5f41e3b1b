// Issue 13: the index is a cache that cannot lie. Entries edited behind the view's back (pointed
// at an older version, bytes flipped) are caught by the index seal (src/view/index-auth.ts): the
// index is rebuilt from the log and the right content is served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { Filesystem } from '../../fs/core/index.js';
import { LOCAL_CHAIN_ID, openLocalChain, type LocalChain } from '../../fs/chain-store/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { IndexStore } from '../../src/view/index-store.js';
import { INDEX_SEAL, indexSealKey, sealIndex, startIndexSealCheck, takeIndexSeal } from '../../src/view/index-auth.js';
import { defaultPool } from '../../src/crypto/index.js';
import { PathFs } from './fs-path-ops.js';

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-index-seal-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });
const session = Session.of(createIdentity('alice'));

async function open(chainDir: string, configDir: string): Promise<{ chain: LocalChain; fs: Filesystem; p: PathFs }> {
  const chain = await openLocalChain({ chainDir, configDir, session, deferCompaction: false, compactMode: 'never' });
  const fs = await Filesystem.open(chain.store, {});
  return { chain, fs, p: new PathFs(fs) };
}
async function close(c: { chain: LocalChain; fs: Filesystem }): Promise<void> {
  await c.fs.destroy();
  await c.chain.close();
}

/** Puts every DAO entry of `from` that differs into the index at `to` (an attacker's edit). */
function rollEntriesBack(to: string, from: string): number {
  const old = new IndexStore({ path: from });
  const cur = new IndexStore({ path: to });
  let n = 0;
  try {
    const olds = new Map<string, Buffer>();
    for (const { key, value } of old.dao.getRange({})) olds.set((key as Buffer).toString('hex'), Buffer.from(value as Buffer));
    cur.transaction(() => {
      for (const { key, value } of cur.dao.getRange({})) {
        const o = olds.get((key as Buffer).toString('hex'));
        if (o && !o.equals(value as Buffer)) {
          cur.dao.putSync(Buffer.from(key as Buffer), o);
          n++;
        }
      }
    });
  } finally {
    void old.close();
    void cur.close();
  }
  return n;
}

describe('index seal', () => {
  it('entries pointed back at an older version: rebuilt from the log, the newest content served', async () => {
    const chainDir = join(base, 'older');
    const configDir = join(base, 'older-config');
    let c = await open(chainDir, configDir);
    c.p.writeFile('/f', Buffer.from('version one'));
    c.p.writeFile('/gone', Buffer.from('deleted later'));
    await c.fs.sync();
    await close(c);
    const oldIndex = join(base, 'older-index');
    cpSync(join(chainDir, 'index'), oldIndex, { recursive: true });
    c = await open(chainDir, configDir);
    expect(c.chain.view.openReport.mode).toBe('tail');
    c.p.writeFile('/f', Buffer.from('version two, longer'));
    c.p.unlink('/gone');
    await c.fs.sync();
    await close(c);

    expect(rollEntriesBack(join(chainDir, 'index'), oldIndex)).toBeGreaterThan(0);
    c = await open(chainDir, configDir);
    try {
      expect(c.chain.view.openReport.mode).toBe('rebuild');
      expect(c.chain.view.openReport.reason).toMatch(/index seal does not match/);
      expect(c.p.read('/f').toString()).toBe('version two, longer');
      expect(c.p.exists('/gone')).toBe(false);
    } finally {
      await close(c);
    }

    // The same edit by someone holding the user's key (re-sealed): served as the index says —
    // the seal is what stands between the edit and a wrong answer.
    rollEntriesBack(join(chainDir, 'index'), oldIndex);
    sealIndex(join(chainDir, 'index'), indexSealKey(session, LOCAL_CHAIN_ID)!);
    c = await open(chainDir, configDir);
    try {
      expect(c.chain.view.openReport.mode).toBe('tail');
      expect(c.p.read('/f').toString()).toBe('version one');
    } finally {
      await close(c);
    }
  });

  it('random bytes flipped in the index file: rebuilt, right content', async () => {
    const chainDir = join(base, 'flip');
    const configDir = join(base, 'flip-config');
    let c = await open(chainDir, configDir);
    for (let i = 0; i < 50; i++) c.p.writeFile(`/f${i}`, Buffer.from(`content ${i}`));
    await c.fs.sync();
    await close(c);
    const data = join(chainDir, 'index', 'data.mdb');
    for (let round = 0; round < 4; round++) {
      const b = readFileSync(data);
      for (let k = 0; k < 8; k++) b[randomInt(0, b.length)]! ^= 1 << randomInt(0, 8);
      writeFileSync(data, b);
      c = await open(chainDir, configDir);
      try {
        expect(c.chain.view.openReport.mode, `round ${round}`).toBe('rebuild');
        for (let i = 0; i < 50; i++) expect(c.p.read(`/f${i}`).toString()).toBe(`content ${i}`);
      } finally {
        await close(c);
      }
    }
    // Read-only (a writer may be using the index): an unsealed index is left alone, a private one built.
    const b = readFileSync(data);
    b[randomInt(0, b.length)]! ^= 0x80;
    writeFileSync(data, b);
    const ro = await openLocalChain({ chainDir, configDir, session, readOnly: true, deferCompaction: false, compactMode: 'never' });
    try {
      expect(ro.view.openReport.mode).toBe('rebuild');
      const p = new PathFs(await Filesystem.open(ro.store, { readOnly: true }));
      expect(p.read('/f7').toString()).toBe('content 7');
      await p.fs.destroy();
    } finally {
      await ro.close();
    }
    expect(readFileSync(data).equals(b)).toBe(true);
    c = await open(chainDir, configDir);
    expect(c.chain.view.openReport.mode).toBe('rebuild');
    await close(c);
    // Closed cleanly and untouched: the index is used as it is.
    c = await open(chainDir, configDir);
    expect(c.chain.view.openReport.mode).toBe('tail');
    await close(c);
  });

  it('the seal (a Poly1305 tag under a fresh nonce) fails on any changed byte of the file, nonce or tag; an HMAC seal of before is still accepted', () => {
    const dir = mkdtempSync(join(base, 'seal-'));
    const key = indexSealKey(session, LOCAL_CHAIN_ID)!;
    const data = join(dir, 'data.mdb');
    const seal = join(dir, INDEX_SEAL);
    const file = randomBytes((5 << 20) + 12345); // more than one read chunk, not a multiple of it
    writeFileSync(data, file);
    sealIndex(dir, key);
    const s1 = readFileSync(seal);
    expect(s1.length).toBe(29);
    sealIndex(dir, key);
    expect(readFileSync(seal).subarray(1, 13).equals(s1.subarray(1, 13)), 'a fresh nonce per seal').toBe(false);
    expect(takeIndexSeal(dir, key, true)).toBeNull();
    writeFileSync(seal, s1);
    expect(takeIndexSeal(dir, key, true)).toBeNull();
    const bad = (why: string, edit: () => void) => {
      writeFileSync(data, file);
      writeFileSync(seal, s1);
      edit();
      expect(takeIndexSeal(dir, key, true), why).toMatch(/does not match/);
    };
    bad('a bit of the first chunk', () => { const b = Buffer.from(file); b[7]! ^= 1; writeFileSync(data, b); });
    bad('a bit of the last chunk', () => { const b = Buffer.from(file); b[b.length - 1]! ^= 0x80; writeFileSync(data, b); });
    bad('one byte more', () => writeFileSync(data, Buffer.concat([file, Buffer.alloc(1)])));
    bad('a bit of the nonce', () => { const b = Buffer.from(s1); b[5]! ^= 1; writeFileSync(seal, b); });
    bad('a bit of the tag', () => { const b = Buffer.from(s1); b[28]! ^= 1; writeFileSync(seal, b); });
    bad('a truncated seal', () => writeFileSync(seal, s1.subarray(0, 28)));
    bad("another user's key", () => {
      const other = indexSealKey(Session.of(createIdentity('mallory')), LOCAL_CHAIN_ID)!;
      sealIndex(dir, other);
    });
    // v1 (an index sealed by the version before): HMAC-SHA-256 of the file under the same key.
    writeFileSync(data, file);
    writeFileSync(seal, createHmac('sha256', key).update(file).digest());
    expect(takeIndexSeal(dir, key, true)).toBeNull();
    writeFileSync(seal, createHmac('sha256', key).update(file.subarray(1)).digest());
    expect(takeIndexSeal(dir, key, true)).toMatch(/does not match/);
    // Taken (a writer's open): the seal is gone, so a crash before the next close is never trusted.
    writeFileSync(seal, s1);
    expect(takeIndexSeal(dir, key)).toBeNull();
    expect(takeIndexSeal(dir, key)).toMatch(/not sealed/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('v3 seals name the watermark; the tag is checked on a worker (same answers), the hint is not trusted', async () => {
    const dir = mkdtempSync(join(base, 'seal3-'));
    const key = indexSealKey(session, LOCAL_CHAIN_ID)!;
    const data = join(dir, 'data.mdb');
    const seal = join(dir, INDEX_SEAL);
    const file = randomBytes((5 << 20) + 777);
    writeFileSync(data, file);
    sealIndex(dir, key, { seq: 1234, bytes: 98765 });
    const s3 = readFileSync(seal);
    expect(s3.length).toBe(45);
    const pool = defaultPool();
    let check = startIndexSealCheck(dir, key, pool, true);
    expect(check.hint).toEqual({ seq: 1234, bytes: 98765 });
    expect(await check.result).toBeNull();
    expect(takeIndexSeal(dir, key, true), 'the synchronous check agrees').toBeNull();
    // The hint is outside the tag: changing it changes no verdict (the opener then verifies the
    // slow way), changing the file or the tag does.
    const hinted = Buffer.from(s3);
    hinted[36]! ^= 1;
    writeFileSync(seal, hinted);
    check = startIndexSealCheck(dir, key, pool, true);
    expect(check.hint!.seq).not.toBe(1234);
    expect(await check.result).toBeNull();
    const tag = Buffer.from(s3);
    tag[20]! ^= 1;
    writeFileSync(seal, tag);
    expect(await startIndexSealCheck(dir, key, pool, true).result).toMatch(/does not match/);
    writeFileSync(seal, s3);
    const b = Buffer.from(file);
    b[b.length - 3]! ^= 4;
    writeFileSync(data, b);
    expect(await startIndexSealCheck(dir, key, pool, true).result).toMatch(/does not match/);
    // Taken by a writer: gone.
    expect(await startIndexSealCheck(dir, key, pool).result).toMatch(/does not match/);
    expect(await startIndexSealCheck(dir, key, pool).result).toMatch(/not sealed/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a closed chain carries a v3 seal; a lying hint only costs the slow check (same content, no rebuild)', async () => {
    const chainDir = join(base, 'hint');
    const configDir = join(base, 'hint-config');
    let c = await open(chainDir, configDir);
    for (let i = 0; i < 5; i++) {
      c.p.writeFile(`/f${i}`, Buffer.from(`content ${i}`));
      await c.fs.sync();
    }
    await close(c);
    const seal = join(chainDir, 'index', INDEX_SEAL);
    const s3 = readFileSync(seal);
    expect(s3.length).toBe(45);
    c = await open(chainDir, configDir);
    expect(c.chain.view.openReport.mode).toBe('tail');
    expect(c.chain.view.openReport.overlapped, 'the honest hint: log verified while the seal was checked').toBe(true);
    await close(c);
    for (const seq of [0n, 1n, s3.readBigUInt64BE(29) - 1n, 1n << 40n]) {
      const lie = readFileSync(seal); // each close seals afresh
      lie.writeBigUInt64BE(seq, 29);
      writeFileSync(seal, lie);
      c = await open(chainDir, configDir);
      try {
        expect(c.chain.view.openReport.mode, `hint seq ${seq}: ${c.chain.view.openReport.reason}`).toBe('tail');
        expect(c.chain.view.openReport.overlapped).toBe(false);
        for (let i = 0; i < 5; i++) expect(c.p.read(`/f${i}`).toString()).toBe(`content ${i}`);
      } finally {
        await close(c);
      }
    }
  });
});
