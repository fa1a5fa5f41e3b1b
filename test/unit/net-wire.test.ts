// The wire layer over real sockets on 127.0.0.1: handshake, record layer, pinning, abuse.
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BulkCryptoPool, generateSigningKeyPair } from '../../src/crypto/index.js';
import { HandshakeError, HostKeyMismatch, ProtocolError } from '../../src/net/errors.js';
import { FrameCipher, FrameReader, lengthPrefix } from '../../src/net/frames.js';
import { type ClientSession, type ServerSession, acceptClient, connectClient } from '../../src/net/handshake.js';
import { checkHostKey, hostFingerprint } from '../../src/net/known-hosts.js';
import { decodeMessage, encodeAppendParts, encodeMessage } from '../../src/net/messages.js';

const hostKey = generateSigningKeyPair();
let server: net.Server;
let port = 0;
let dir = '';
const sessions: ServerSession[] = [];
const serverErrors: Error[] = [];
let serverVersions: [number, number] = [1, 1];

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'atedb-wire-'));
  server = net.createServer((socket) => {
    acceptClient(socket, { hostKey, timeoutMs: 1000, versions: serverVersions }).then((s) => {
      sessions.push(s);
      s.conn.on('message', (m) => {
        if (m.t === 'ping') s.conn.send({ t: 'pong', id: m.id, time: 42 });
      });
      s.conn.on('close', (e) => { if (e) serverErrors.push(e); });
    }, (e: Error) => serverErrors.push(e));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  for (const s of sessions) s.conn.close();
  await new Promise<void>((r) => server.close(() => r()));
  await fsp.rm(dir, { recursive: true, force: true });
});

const kh = () => join(dir, 'known_hosts');

function waitClose(sock: net.Socket, ms = 6000): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket stayed open')), ms);
    sock.on('close', () => { clearTimeout(timer); resolve(Date.now() - t0); });
    sock.on('error', () => undefined);
  });
}

describe('record layer', () => {
  it('seals and opens in order; a flipped bit, a flipped length byte, a replay each fail', () => {
    const k = Buffer.alloc(32, 7);
    const tx = new FrameCipher(k);
    const rx = new FrameCipher(k);
    const frames = [0, 1, 2, 3].map((i) => Buffer.concat(tx.seal(Buffer.from(`msg ${i}`), 1024)));
    const open = (c: FrameCipher, f: Buffer) => c.open(f.subarray(0, 4), f.subarray(4));
    expect(open(rx, frames[0]!).toString()).toBe('msg 0');
    const flipped = Buffer.from(frames[1]!);
    flipped[6]! ^= 1;
    expect(() => open(new FrameCipher(k), flipped)).toThrow(ProtocolError);
    // A length byte is authenticated data.
    const rx2 = new FrameCipher(k);
    const badLen = Buffer.from(frames[0]!);
    badLen[0]! ^= 0x80;
    expect(() => open(rx2, badLen)).toThrow(ProtocolError);
    // Replaying frame 0 at counter 1, or skipping frame 1 (a gap), fails.
    expect(() => open(rx, frames[0]!)).toThrow(ProtocolError);
    const rx3 = new FrameCipher(k);
    open(rx3, frames[0]!);
    expect(() => open(rx3, frames[2]!)).toThrow(ProtocolError);
  });

  it('an oversize length is refused from its 4 bytes alone, before any body exists', () => {
    const r = new FrameReader(1 << 20);
    r.push(lengthPrefix(0xfffffff0));
    expect(() => r.next()).toThrow(/maximum/);
    const ok = new FrameReader(1 << 20);
    ok.push(Buffer.concat([lengthPrefix(3), Buffer.from('ab')]));
    expect(ok.next()).toBeNull();
    ok.push(Buffer.from('c'));
    expect(ok.next()!.body.toString()).toBe('abc');
  });

  it('an append encoded from a commit\'s pieces is byte for byte the message encoded whole, and seals to the same frame', () => {
    // Sizes across msgpack's bin8 / bin16 / bin32 headers; pieces small (joined before sealing) and large.
    for (const size of [0, 1, 255, 256, 65535, 65536, 3 << 20]) {
      const whole = Buffer.alloc(size);
      for (let i = 0; i < size; i++) whole[i] = (i * 31 + size) & 0xff;
      const cuts = [0, Math.floor(size / 3), Math.floor(size / 3) + 7, size - 1, size].filter((c) => c >= 0 && c <= size).sort((a, b) => a - b);
      const pieces = cuts.slice(1).map((c, i) => whole.subarray(cuts[i]!, c));
      const parts = encodeAppendParts({ id: 77, chain: 'team/docs' }, pieces, size);
      const expected = encodeMessage({ t: 'append', id: 77, chain: 'team/docs', commit: whole });
      expect(Buffer.concat(parts).equals(expected), `size ${size}`).toBe(true);
      const k = Buffer.alloc(32, 9);
      const a = Buffer.concat(new FrameCipher(k).sealParts(parts, 64 << 20));
      const b = Buffer.concat(new FrameCipher(k).seal(expected, 64 << 20));
      expect(a.equals(b), `sealed, size ${size}`).toBe(true);
      // Sealed in steps (Connection's large messages): the same frame, cut anywhere.
      const stepped = Buffer.concat([...new FrameCipher(k).sealPartsInSteps(parts, 64 << 20, 100_000)].flat());
      expect(stepped.equals(b), `sealed in steps, size ${size}`).toBe(true);
      const m = decodeMessage(new FrameCipher(k).open(a.subarray(0, 4), a.subarray(4)));
      expect(m).toMatchObject({ t: 'append', id: 77, chain: 'team/docs' });
      expect((m as { commit: Buffer }).commit.equals(whole)).toBe(true);
    }
    // The frame maximum counts every piece.
    expect(() => new FrameCipher(Buffer.alloc(32)).sealParts([Buffer.alloc(600), Buffer.alloc(600)], 1024)).toThrow(/exceeds the frame maximum/);
  });

  it('messages: unknown type, wrong version, wrong field are protocol errors', () => {
    const m = decodeMessage(encodeMessage({ t: 'ping', id: 1, time: 5 }));
    expect(m).toMatchObject({ t: 'ping', id: 1, time: 5, v: 1 });
    expect(() => decodeMessage(encodeMessage({ t: 'nope' } as never))).toThrow(/unknown message type/);
    expect(() => decodeMessage(encodeMessage({ t: 'ping', id: -1, time: 5 }))).toThrow(/field 'id'/);
    const p = encodeMessage({ t: 'ping', id: 1, time: 5 });
    expect(() => decodeMessage(Buffer.concat([p.subarray(0, 3)]))).toThrow(ProtocolError);
  });
});

describe('handshake over 127.0.0.1', () => {
  it('round trip: pinned on first use, identity proven, ping/pong carries the server time', async () => {
    const me = generateSigningKeyPair();
    let printed = '';
    const c = await connectClient({ host: '127.0.0.1', port, knownHosts: kh(), identity: me, onNewHost: (_a, fp) => { printed = fp; } });
    expect(printed).toBe(hostFingerprint(hostKey.publicKey));
    expect(c.identity).toBe(hostFingerprint(me.publicKey));
    expect(await fsp.readFile(kh(), 'utf8')).toBe(`127.0.0.1:${port} ${printed}\n`);
    const pong = new Promise((r) => c.conn.once('message', r));
    c.conn.send({ t: 'ping', id: 9, time: Date.now() });
    expect(await pong).toMatchObject({ t: 'pong', id: 9, time: 42 });
    // Second contact: pinned, nothing printed.
    printed = '';
    const c2 = await connectClient({ host: '127.0.0.1', port, knownHosts: kh() });
    expect(printed).toBe('');
    expect(c2.identity).toBeNull();
    c.conn.close();
    c2.conn.close();
  });

  /** A client, and what the server receives from it, once the server has its session. */
  async function connectListened(): Promise<{ c: ClientSession; got: Array<{ t: string; id: number; commit?: Buffer }> }> {
    const before = sessions.length;
    const c = await connectClient({ host: '127.0.0.1', port, knownHosts: kh() });
    for (let i = 0; sessions.length === before && i < 200; i++) await new Promise((r) => setTimeout(r, 10));
    const got: Array<{ t: string; id: number; commit?: Buffer }> = [];
    sessions[sessions.length - 1]!.conn.on('message', (m) => got.push(m as never));
    return { c, got };
  }

  const body = (n: number, seed: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i += 4096) b[i] = (i / 4096 + seed) & 0xff;
    return b;
  };

  /**
   * A 9 MiB append in two pieces, a ping, a 5 MiB append and a small one, sent at once (`afterFirst`
   * runs right after the first); resolves once the server has all four, checking order and bodies.
   */
  async function burstArrivesInOrder(c: ClientSession, got: Array<{ t: string; id: number; commit?: Buffer }>, afterFirst: (a: Buffer) => void = () => undefined): Promise<void> {
    const a = body(9 << 20, 1);
    const b = body(5 << 20, 2);
    c.conn.sendEncoded(encodeAppendParts({ id: 1, chain: 'x/y' }, [a.subarray(0, 3 << 20), a.subarray(3 << 20)], a.length));
    afterFirst(a);
    c.conn.send({ t: 'ping', id: 2, time: 1 });
    c.conn.sendEncoded(encodeAppendParts({ id: 3, chain: 'x/y' }, [b], b.length));
    c.conn.sendEncoded(encodeAppendParts({ id: 4, chain: 'x/y' }, [Buffer.from('small')], 5));
    for (let i = 0; got.length < 4 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got.map((m) => [m.t, m.id])).toEqual([['append', 1], ['ping', 2], ['append', 3], ['append', 4]]);
    expect(got[0]!.commit!.equals(a)).toBe(true);
    expect(got[2]!.commit!.equals(b)).toBe(true);
    expect(got[3]!.commit!.toString()).toBe('small');
  }

  it('a large message is sealed and written in steps; messages sent meanwhile follow it whole, in order', async () => {
    const { c, got } = await connectListened();
    await burstArrivesInOrder(c, got, (a) => {
      // Not sealed and written in one go: the rest follows on later turns of the event loop.
      expect(c.conn.stats.bytesOut).toBeLessThan(a.length);
    });
    c.conn.close();
  });

  it('with the GCM offload (a bulk worker), large messages are the same frames, in order with those sent meanwhile; a failed offload closes the connection', async () => {
    const pool = new BulkCryptoPool({ size: 1 });
    try {
      // The worker's stream, cut into steps anywhere, is the frame sealed here.
      const k = Buffer.alloc(32, 5);
      const parts = encodeAppendParts({ id: 8, chain: 'x/y' }, [Buffer.alloc(300_001, 3), Buffer.alloc(70_000, 4)], 370_001);
      const here = Buffer.concat(new FrameCipher(k).sealParts(parts, 64 << 20));
      const f = new FrameCipher(k).nextFrame(parts.reduce((n, p) => n + p.length, 0), 64 << 20);
      const cts: Buffer[] = [];
      const tag = await pool.sealStream(f.key, f.iv, f.header, parts, 100_000, (ct) => cts.push(ct));
      expect(cts.length).toBe(4);
      expect(Buffer.concat([f.header, ...cts, tag]).equals(here)).toBe(true);

      const { c, got } = await connectListened();
      c.conn.gcmOffload = (key, iv, aad, ps, step, onStep) => pool.sealStream(key, iv, aad, ps, step, onStep);
      await burstArrivesInOrder(c, got);
      expect(c.conn.stats.framesOffloaded).toBe(2);
      // The worker fails halfway through a frame: nothing can follow it on this connection.
      const closed = new Promise<Error | null>((r) => c.conn.once('close', r));
      c.conn.gcmOffload = async () => { throw new Error('worker gone'); };
      c.conn.sendEncoded(encodeAppendParts({ id: 5, chain: 'x/y' }, [body(5 << 20, 3)], 5 << 20));
      expect((await closed)?.message).toBe('worker gone');
    } finally {
      await pool.close();
    }
  });

  it('a tampered frame after the handshake closes the connection', async () => {
    const c = await connectClient({ host: '127.0.0.1', port, knownHosts: kh() });
    const before = serverErrors.length;
    const closed = waitClose(c.conn.socket);
    c.conn.socket.write(Buffer.concat([lengthPrefix(40), Buffer.alloc(40, 1)]));
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    expect(serverErrors.slice(before).some((e) => /authentication failed/.test(e.message))).toBe(true);
  });

  it('an oversize length closes the connection without waiting for the body', async () => {
    const c = await connectClient({ host: '127.0.0.1', port, knownHosts: kh() });
    const closed = waitClose(c.conn.socket);
    c.conn.socket.write(lengthPrefix(0x7fffffff));
    expect(await closed).toBeLessThan(2000);
  });

  it('a wrong host key is refused, naming the known_hosts file; --server-key too', async () => {
    const other = join(dir, 'kh-other');
    await fsp.writeFile(other, `127.0.0.1:${port} SHA256:AAAAbogus\n`);
    await expect(connectClient({ host: '127.0.0.1', port, knownHosts: other })).rejects.toThrow(HostKeyMismatch);
    await expect(connectClient({ host: '127.0.0.1', port, knownHosts: other })).rejects.toThrow(new RegExp(`${other}:1`));
    await expect(connectClient({ host: '127.0.0.1', port, knownHosts: join(dir, 'kh3'), serverKey: 'SHA256:nope' })).rejects.toThrow(/--server-key/);
    await expect(checkHostKey('x:1', hostKey.publicKey, { file: join(dir, 'kh4') })).resolves.toMatchObject({ result: 'added' });
  });

  it('a version mismatch fails with both sides named', async () => {
    await expect(connectClient({ host: '127.0.0.1', port, knownHosts: kh(), versions: [2, 3] }))
      .rejects.toThrow(/client speaks 2-3, the server speaks 1-1/);
    await expect(connectClient({ host: '127.0.0.1', port, knownHosts: kh(), formats: ['json-9'] }))
      .rejects.toThrow(HandshakeError);
    // Overlapping ranges agree on the highest common version.
    serverVersions = [1, 4];
    const c = await connectClient({ host: '127.0.0.1', port, knownHosts: kh(), versions: [0, 3] });
    expect(c.version).toBe(3);
    c.conn.close();
    serverVersions = [1, 1];
  });

  it('a client that connects and says nothing is timed out; garbage handshakes are closed', async () => {
    const silent = net.connect({ host: '127.0.0.1', port });
    expect(await waitClose(silent)).toBeLessThan(4000);
    const junk = net.connect({ host: '127.0.0.1', port });
    const jc = waitClose(junk);
    junk.write(Buffer.concat([lengthPrefix(10), Buffer.alloc(10, 0xc1)]));
    await jc;
    // Still serving.
    const c = await connectClient({ host: '127.0.0.1', port, knownHosts: kh() });
    c.conn.close();
  });
});
