// atedb solo as a real process, driven at the protocol level: chain creation, confirmation and
// relay, signed heads, every rejection reason (never stored, never relayed), leases, abuse,
// graceful shutdown.
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createIdentity } from '../../src/session/index.js';
import { lengthPrefix } from '../../src/net/frames.js';
import { ZERO_CHAIN_HASH, nextChainHash, verifyHead, type Message } from '../../src/net/index.js';
import { assembleCommit, decodeCommit, signatureMessage } from '../../src/chain/index.js';
import { signMessage } from '../../src/crypto/index.js';
import { type Solo, RawClient, TestChain, sleep, startSolo, tempDir } from './atedb/harness.js';

let solo: Solo;
let kh = '';
let serverKey: Buffer;

beforeAll(async () => {
  solo = await startSolo({ args: ['--max-commit-bytes', '65536', '--handshake-timeout', '2500'] });
  kh = join(await tempDir('atedb-kh-'), 'known_hosts');
  const c = await RawClient.connect(solo.port, kh);
  serverKey = c.s.serverKey;
  expect(c.s.serverFingerprint).toBe(solo.fingerprint);
  c.close();
});

function chainHashOf(commits: Buffer[]): Buffer {
  let h: Buffer = ZERO_CHAIN_HASH;
  for (const b of commits) h = nextChainHash(h, decodeCommit(b).hash);
  return h;
}

describe('atedb solo', () => {
  it('prints its identity once, keeps it 0600 and keeps the fingerprint across restarts', async () => {
    expect(solo.stdout()).toMatch(/created server identity .*server\.key/);
    const st = await fsp.stat(join(solo.dataDir, 'server.key'));
    expect(st.mode & 0o777).toBe(0o600);
    const dataDir = await tempDir('atedb-restart-');
    const a = await startSolo({ dataDir });
    expect((await a.kill('SIGTERM')).code).toBe(0);
    const b = await startSolo({ dataDir });
    expect(b.stdout()).not.toMatch(/created server identity/);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect((await b.kill('SIGINT')).code).toBe(0);
  });

  it('--json prints one JSON object with the address and the fingerprint', async () => {
    const { spawn } = await import('node:child_process');
    const { ATEDB } = await import('./atedb/harness.js');
    const dataDir = await tempDir('atedb-json-');
    const p = spawn(process.execPath, [ATEDB, 'solo', '--data-dir', dataDir, '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    for (let i = 0; i < 500 && !out.includes('\n'); i++) await sleep(20);
    const j = JSON.parse(out.split('\n')[0]!);
    expect(j.listening).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(j.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(j.identityCreated).toBe(true);
    const exit = new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
    p.kill('SIGTERM');
    expect(await exit).toBe(0);
  });

  it('creates a chain from its genesis, confirms in order, relays live, signs heads the client can check', async () => {
    const ch = await TestChain.create('acme/docs');
    const a = await RawClient.connect(solo.port, kh);
    const b = await RawClient.connect(solo.port, kh);
    expect(await a.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok', seq: 1 });
    const sub = await b.subscribe(ch.name, ch.genesis.hash);
    expect(sub.commits.map((c) => decodeCommit(c).hash.toString('hex'))).toEqual([ch.genesis.hash.toString('hex')]);
    expect(sub.eoh.head.seq).toBe(1);
    expect(verifyHead(serverKey, ch.genesis.hash, sub.eoh.head)).toBe(true);
    const sent: Buffer[] = [ch.genesis.bytes];
    for (let i = 0; i < 5; i++) {
      const c = await ch.build({ by: ch.writers[i % 2]! });
      expect(await a.append(ch.name, c.bytes)).toMatchObject({ t: 'ok', seq: i + 2 });
      ch.apply(c.bytes);
      sent.push(c.bytes);
    }
    const last = (await b.waitFor((m) => m.t === 'head' && m.head.seq === 6)) as Extract<Message, { t: 'head' }>;
    const live = b.inbox.filter((m): m is Extract<Message, { t: 'live' }> => m.t === 'live');
    expect(live.map((m) => m.seq)).toEqual([2, 3, 4, 5, 6]);
    expect(live.map((m) => m.commit.equals(sent[m.seq - 1]!))).toEqual([true, true, true, true, true]);
    expect(last.head.chainHash.equals(chainHashOf(sent))).toBe(true);
    expect(verifyHead(serverKey, ch.genesis.hash, last.head)).toBe(true);
    // A fresh subscriber resuming from seq 4 gets exactly 4..6.
    const c3 = await RawClient.connect(solo.port, kh);
    const r = await c3.subscribe(ch.name, ch.genesis.hash, 4);
    expect(r.commits.map((x) => x.equals(sent[3]!) || x.equals(sent[4]!) || x.equals(sent[5]!))).toEqual([true, true, true]);
    for (const c of [a, b, c3]) c.close();
  });

  it('rejects each bad commit with its reason; none is stored or relayed', async () => {
    const ch = await TestChain.create('acme/strict', undefined, { openRoot: false });
    const a = await RawClient.connect(solo.port, kh);
    const watcher = await RawClient.connect(solo.port, kh);
    expect(await a.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok', seq: 1 });
    await watcher.subscribe(ch.name, ch.genesis.hash);
    const good = await ch.build();
    expect(await a.append(ch.name, good.bytes)).toMatchObject({ t: 'ok', seq: 2 });
    ch.apply(good.bytes);
    const rej = async (bytes: Buffer) => {
      const r = await a.append(ch.name, bytes);
      expect(r.t).toBe('rej');
      return r as Extract<Message, { t: 'rej' }>;
    };
    // forged signature: a flipped byte inside the (last) signature
    const c1 = await ch.build();
    const forged = Buffer.from(c1.bytes);
    forged[forged.length - 100]! ^= 1;
    expect((await rej(forged)).reason).toBe('bad-signature');
    // tampered payload: a flipped byte in the middle of the record
    const tampered = Buffer.from(c1.bytes);
    const at = tampered.indexOf(c1.events[0]!.payload!);
    expect(at).toBeGreaterThan(0);
    tampered[at + 20]! ^= 1;
    expect((await rej(tampered)).reason).toBe('hash');
    // replay of a confirmed commit: refused, and the seq it has is named
    expect(await rej(good.bytes)).toMatchObject({ reason: 'replay', seq: 2 });
    // wrong genesis: a commit of another chain
    const other = await TestChain.create('acme/other');
    expect((await rej((await other.build()).bytes)).reason).toBe('wrong-genesis');
    // a second genesis for an existing chain
    expect((await rej(other.genesis.bytes)).reason).toBe('wrong-genesis');
    // oversize (this server: 64 KiB)
    expect((await rej((await ch.build({ payload: Buffer.alloc(100_000, 7) })).bytes)).reason).toBe('too-large');
    // future timestamp
    expect((await rej((await ch.build({ now: () => Date.now() + 3_600_000 })).bytes)).reason).toBe('future-timestamp');
    // a signer the root ACL does not admit
    const byOwner = await ch.build();
    const bob = ch.writers[1]!;
    const resigned = assembleCommit(byOwner.header, byOwner.headerBytes, byOwner.hash, byOwner.events, [
      { publicKey: bob.signing.publicKey, signature: signMessage(bob.signing.secretKey, signatureMessage(byOwner.hash)) },
    ]);
    expect((await rej(resigned.bytes)).reason).toBe('unauthorized');
    // conflict: two writes of the same DAO from the same version
    const key = (await (async () => { const c = await ch.build({ n: 1 }); expect(await a.append(ch.name, c.bytes)).toMatchObject({ t: 'ok', seq: 3 }); ch.apply(c.bytes); return decodeCommit(c.bytes).events[0]!.meta.key; })());
    const v2a = await ch.build({ key });
    const v2b = await ch.build({ key });
    expect(await a.append(ch.name, v2a.bytes)).toMatchObject({ t: 'ok', seq: 4 });
    expect((await rej(v2b.bytes)).reason).toBe('conflict');
    // unknown chain
    const unknown = await a.request({ t: 'append', id: 0, chain: 'nobody/here', commit: (await ch.build()).bytes });
    expect(unknown).toMatchObject({ t: 'rej', reason: 'unknown-chain' });
    await sleep(200);
    const relayed = watcher.inbox.filter((x): x is Extract<Message, { t: 'live' }> => x.t === 'live').map((x) => x.seq);
    expect(relayed).toEqual([2, 3, 4]);
    // nothing rejected was stored: a fresh history is exactly the 4 confirmed commits
    const fresh = await RawClient.connect(solo.port, kh);
    const h = await fresh.subscribe(ch.name, ch.genesis.hash);
    expect(h.commits).toHaveLength(4);
    expect(h.eoh.head.seq).toBe(4);
    for (const c of [a, watcher, fresh]) c.close();
  });

  it('a history larger than a frame arrives in batches that fit the frames --max-commit-bytes sets', async () => {
    // The server's frames are a commit + 64 KiB here (128 KiB); a history batch of 1 MiB did not fit,
    // so a fresh client could not sync more than ~128 KiB of history.
    const ch = await TestChain.create('acme/big-history');
    const a = await RawClient.connect(solo.port, kh);
    expect(await a.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok', seq: 1 });
    const sent: Buffer[] = [ch.genesis.bytes];
    for (let i = 0; i < 8; i++) {
      const c = await ch.build({ payload: Buffer.alloc(40 << 10, i) });
      expect(await a.append(ch.name, c.bytes)).toMatchObject({ t: 'ok', seq: i + 2 });
      ch.apply(c.bytes);
      sent.push(c.bytes);
    }
    const fresh = await RawClient.connect(solo.port, kh);
    const sub = await fresh.subscribe(ch.name, ch.genesis.hash);
    expect(sub.commits.map((c) => c.toString('hex'))).toEqual(sent.map((c) => c.toString('hex')));
    expect(sub.eoh.head.seq).toBe(9);
    expect(sub.eoh.head.chainHash.toString('hex')).toBe(chainHashOf(sent).toString('hex'));
    const batches = fresh.inbox.filter((m) => m.t === 'hist' && m.chain === ch.name).length;
    expect(batches).toBeGreaterThan(2); // ~330 KiB of history in frames of 128 KiB
    a.close();
    fresh.close();
  });

  it('subscribe with a wrong genesis or to an unknown chain is refused', async () => {
    const ch = await TestChain.create('acme/pinned');
    const a = await RawClient.connect(solo.port, kh);
    await a.append(ch.name, ch.genesis.bytes);
    await expect(a.subscribe(ch.name, Buffer.alloc(32, 1))).rejects.toThrow(/wrong-genesis/);
    await expect(a.subscribe('no/such', null)).rejects.toThrow(/unknown-chain/);
    a.close();
  });

  it('keeps at most --max-open-chains idle chains open and reopens the others on demand', async () => {
    const s = await startSolo({ args: ['--max-open-chains', '2'] });
    const c = await RawClient.connect(s.port, kh + '-lru');
    const chains = await Promise.all([0, 1, 2, 3, 4].map((i) => TestChain.create(`lru/c${i}`)));
    for (const ch of chains) {
      expect(await c.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok', seq: 1 });
      const x = await ch.build();
      expect(await c.append(ch.name, x.bytes)).toMatchObject({ t: 'ok', seq: 2 });
      ch.apply(x.bytes);
    }
    const openLogs = async () => {
      const fds = await fsp.readdir(`/proc/${s.pid}/fd`);
      const targets = await Promise.all(fds.map((f) => fsp.readlink(`/proc/${s.pid}/fd/${f}`).catch(() => '')));
      return new Set(targets.filter((t) => t.includes('/chains/')).map((t) => t.split('/chains/')[1]!.split('/')[0])).size;
    };
    expect(await openLogs()).toBeLessThanOrEqual(2);
    // Every chain still answers, with its state: an evicted one reopens from its log.
    for (const ch of chains) {
      const x = await ch.build();
      expect(await c.append(ch.name, x.bytes)).toMatchObject({ t: 'ok', seq: 3 });
      ch.apply(x.bytes);
      const r = await c.subscribe(ch.name, ch.genesis.hash, 1);
      expect(r.eoh.head.seq).toBe(3);
      c.s.conn.send({ t: 'unsub', chain: ch.name });
    }
    await sleep(100);
    expect(await openLogs()).toBeLessThanOrEqual(3);
    c.close();
    expect((await s.kill('SIGTERM')).code).toBe(0);
  });

  it('leases: one holder, only the holder releases, released on disconnect', async () => {
    const alice = createIdentity('alice');
    const bob = createIdentity('bob');
    const a = await RawClient.connect(solo.port, kh, alice);
    const b = await RawClient.connect(solo.port, kh, bob);
    const lease = (c: RawClient, op: 'acquire' | 'renew' | 'release') => c.request({ t: 'lease', id: 0, op, chain: 'acme/docs', key: 'k1', ttl: 60_000 });
    expect(await lease(a, 'acquire')).toMatchObject({ ok: true, holder: a.s.identity });
    expect(await lease(b, 'acquire')).toMatchObject({ ok: false, holder: a.s.identity });
    expect(await lease(b, 'release')).toMatchObject({ ok: false });
    expect(await lease(a, 'renew')).toMatchObject({ ok: true });
    a.close();
    await sleep(200);
    expect(await lease(b, 'acquire')).toMatchObject({ ok: true, holder: b.s.identity });
    b.close();
  });

  it('random, truncated, oversized and bit-flipped frames and silent connections do not stop a good client', async () => {
    const ch = await TestChain.create('acme/abuse');
    const good = await RawClient.connect(solo.port, kh);
    expect(await good.append(ch.name, ch.genesis.bytes)).toMatchObject({ t: 'ok' });
    const silent: net.Socket[] = [];
    for (let i = 0; i < 50; i++) {
      const s = net.connect({ host: '127.0.0.1', port: solo.port });
      s.on('error', () => undefined);
      silent.push(s);
    }
    const junk = async (bytes: Buffer) => {
      const s = net.connect({ host: '127.0.0.1', port: solo.port });
      s.on('error', () => undefined);
      await new Promise((r) => s.once('connect', r));
      s.write(bytes);
      await new Promise((r) => { s.once('close', r); setTimeout(r, 1500); });
      s.destroy();
    };
    const rnd = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256)));
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 60; i++) {
      const kind = i % 4;
      if (kind === 0) jobs.push(junk(rnd(1 + Math.floor(Math.random() * 300))));
      if (kind === 1) jobs.push(junk(lengthPrefix(0xfffffff0)));
      if (kind === 2) jobs.push(junk(Buffer.concat([lengthPrefix(500), rnd(100)])));
      if (kind === 3) {
        // a real handshake, then a bit-flipped encrypted frame
        jobs.push((async () => {
          const c = await RawClient.connect(solo.port, kh);
          c.s.conn.socket.write(Buffer.concat([lengthPrefix(64), rnd(64)]));
          await new Promise((r) => { c.s.conn.once('close', r); setTimeout(r, 1500); });
          expect(c.closed).toBe(true);
        })());
      }
      if (i % 10 === 0) {
        const c = await ch.build();
        expect(await good.append(ch.name, c.bytes)).toMatchObject({ t: 'ok' });
        ch.apply(c.bytes);
      }
    }
    await Promise.all(jobs);
    // silent connections are closed by the handshake timeout (2.5 s here: loaded CI machines)
    await sleep(3500);
    expect(silent.every((s) => s.destroyed || s.readableEnded)).toBe(true);
    const pong = await good.request({ t: 'ping', id: 0, time: Date.now() });
    expect(pong.t).toBe('pong');
    for (const s of silent) s.destroy();
    good.close();
  });

  it('graceful shutdown under appends: exit 0, every confirmed commit there after restart', async () => {
    const dataDir = await tempDir('atedb-graceful-');
    const s = await startSolo({ dataDir });
    const ch = await TestChain.create('acme/graceful');
    const c = await RawClient.connect(s.port, kh + '2');
    await c.append(ch.name, ch.genesis.bytes);
    const commits = await Promise.all(Array.from({ length: 20 }, (_, i) => ch.build({ by: ch.writers[i % 2]! })));
    const replies = commits.map((x) => c.append(ch.name, x.bytes).catch(() => null));
    await sleep(30);
    const exit = s.kill('SIGTERM');
    const rs = await Promise.all(replies);
    const ex = await exit;
    expect({ code: ex.code, stderr: s.stderr() }).toEqual({ code: 0, stderr: '' });
    const confirmed = rs.filter((r) => r?.t === 'ok').length;
    const s2 = await startSolo({ dataDir });
    const c2 = await RawClient.connect(s2.port, kh + '2');
    const h = await c2.subscribe(ch.name, ch.genesis.hash);
    expect(h.commits.length).toBeGreaterThanOrEqual(1 + confirmed);
    c2.close();
    expect((await s2.kill('SIGTERM')).code).toBe(0);
    // The chain left a signed checkpoint; a wrong one is ignored (full validation), never trusted.
    const cpFile = join(dataDir, 'chains', 'acme+graceful', 'checkpoint');
    const cp = JSON.parse(await fsp.readFile(cpFile, 'utf8'));
    expect(cp.seq).toBe(h.commits.length);
    await fsp.writeFile(cpFile, JSON.stringify({ ...cp, chainHash: '00'.repeat(32) }));
    const s3 = await startSolo({ dataDir });
    const c3 = await RawClient.connect(s3.port, kh + '2');
    const h3 = await c3.subscribe(ch.name, ch.genesis.hash);
    expect(h3.commits.length).toBe(h.commits.length);
    expect(h3.eoh.head.chainHash.toString('hex')).not.toBe('00'.repeat(32));
    const more = await ch.build();
    expect(await c3.append(ch.name, more.bytes)).toMatchObject({ t: 'ok', seq: h.commits.length + 1 });
    c3.close();
    expect((await s3.kill('SIGTERM')).code).toBe(0);
  });
});
