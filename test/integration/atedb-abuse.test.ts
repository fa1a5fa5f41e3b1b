// Protocol abuse against a real atedb solo: 10,000 random, truncated, oversized-length and
// bit-flipped frames and handshakes, 1,000 connections that never finish the handshake, a
// subscriber that never reads. A well-behaved client is served throughout; the server's RSS stays
// bounded (printed).
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lengthPrefix } from '../../src/net/frames.js';
import { RawClient, TestChain, sleep, startSolo, tempDir } from './atedb/harness.js';

async function rssMiB(pid: number): Promise<number> {
  const s = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 1024;
}

const rnd = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256)));

function junk(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = () => { s.destroy(); resolve(); };
    s.on('error', done);
    s.on('close', done);
    s.once('connect', () => { s.end(bytes); });
    setTimeout(done, 3000);
  });
}

describe('atedb under abuse', () => {
  it('keeps serving a good client through 10,000 bad frames, 1,000 silent connections and a subscriber that never reads', async () => {
    const solo = await startSolo({ args: ['--handshake-timeout', '2000', '--max-connections', '1500', '--subscriber-buffer', String(1 << 20), '--receive-budget', String(4 << 20)] });
    const kh = join(await tempDir('atedb-abuse-kh-'), 'known_hosts');
    const ch = await TestChain.create('abuse/main');
    const good = await RawClient.connect(solo.port, kh);
    expect(await good.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok', seq: 1 });
    const rss0 = await rssMiB(solo.pid);
    let confirmed = 1;
    const goodWork = async () => {
      const c = await ch.build();
      const r = await good.append(ch.name, c.bytes);
      expect(r.t).toBe('ok');
      ch.apply(c.bytes);
      confirmed++;
    };

    // 1,000 connections that never say anything.
    const silent: net.Socket[] = [];
    for (let i = 0; i < 1000; i++) {
      const s = net.connect({ host: '127.0.0.1', port: solo.port });
      s.on('error', () => undefined);
      silent.push(s);
    }
    await goodWork();

    // 10,000 bad frames and handshakes, 100 at a time, a good append between batches.
    const kinds = [
      () => rnd(1 + Math.floor(Math.random() * 200)), // random bytes
      () => lengthPrefix(0xfffffff0), // oversized length
      () => Buffer.concat([lengthPrefix(4000), rnd(50)]), // truncated frame
      () => { const b = Buffer.concat([lengthPrefix(64), rnd(64)]); b[5]! ^= 0xff; return b; }, // garbage handshake record
    ];
    for (let batch = 0; batch < 100; batch++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => junk(solo.port, kinds[(batch + i) % kinds.length]!())));
      if (batch % 10 === 0) await goodWork();
    }
    // Bit-flipped frames after a real handshake.
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.connect(solo.port, kh);
      const frame = Buffer.concat([lengthPrefix(80), rnd(80)]);
      c.s.conn.socket.write(frame);
      for (let k = 0; k < 50 && !c.closed; k++) await sleep(20);
      expect(c.closed).toBe(true);
    }
    await goodWork();

    // Authenticated connections that each announce a maximum-size frame and send part of it: the
    // server-wide receive budget (4 MiB here) closes them before their sum grows past it.
    const hogs = await Promise.all(Array.from({ length: 8 }, () => RawClient.connect(solo.port, kh)));
    for (const h of hogs) {
      h.s.conn.socket.write(lengthPrefix(60 << 20));
      h.s.conn.socket.write(Buffer.alloc(1 << 20, 7));
    }
    for (let k = 0; k < 100 && hogs.filter((h) => !h.closed).length > 4; k++) await sleep(20);
    expect(hogs.filter((h) => h.closed).length).toBeGreaterThanOrEqual(4);
    for (const h of hogs) h.close();
    await sleep(100);
    await goodWork();

    // A subscriber that never reads: bounded, then disconnected.
    const lazy = await RawClient.connect(solo.port, kh);
    await lazy.subscribe(ch.name, ch.genesis.hash);
    lazy.s.conn.socket.pause();
    const big = Buffer.alloc(60_000, 1);
    for (let i = 0; i < 200 && !lazy.closed; i++) {
      const c = await ch.build({ payload: big });
      expect((await good.append(ch.name, c.bytes)).t).toBe('ok');
      ch.apply(c.bytes);
      confirmed++;
      if (i % 20 === 0) await sleep(20);
    }
    lazy.s.conn.socket.resume();
    for (let k = 0; k < 100 && !lazy.closed; k++) await sleep(50);
    expect(lazy.closed).toBe(true);

    // The silent ones were timed out.
    await sleep(2500);
    expect(silent.filter((s) => !s.destroyed && !s.readableEnded).length).toBe(0);
    for (const s of silent) s.destroy();

    await goodWork();
    const fresh = await RawClient.connect(solo.port, kh);
    const h = await fresh.subscribe(ch.name, ch.genesis.hash);
    expect(h.commits).toHaveLength(confirmed);
    const rss1 = await rssMiB(solo.pid);
    console.log(`atedb RSS: ${rss0.toFixed(0)} MiB before, ${rss1.toFixed(0)} MiB after the abuse (${confirmed} good commits confirmed meanwhile)`);
    expect(rss1).toBeLessThan(512);
    good.close();
    fresh.close();
    expect((await solo.kill('SIGTERM')).code).toBe(0);
  }, 300_000);
});
