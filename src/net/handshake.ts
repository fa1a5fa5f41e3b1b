// The handshake, shaped like SSH's hybrid post-quantum key exchange (mlkem768x25519-sha256) as
// protocol-notes.md describes; no new primitive:
//   C -> S  hello  { proto, versions [min, max], formats, nonce, X-Wing ephemeral public key }
//   S -> C  hello  { body: { version, format, nonce, X-Wing ciphertext, host public key, time },
//                    sig: hybrid ML-DSA-65 + Ed25519 signature of the transcript hash }
//   transcript hash H = domainHash(label, client hello bytes, server hello body bytes) = session id
//   keys: HKDF-SHA256(ikm = X-Wing shared secret, salt = H, info = per-direction label)
//   C -> S  (encrypted) auth { pk, sig over domainHash(label, H) } or { null, null }
//   S -> C  (encrypted) ready { server time, the identity the server now knows the client by }
// The transcript covers every byte of both hellos, version lists included, so a downgrade of the
// version or format choice breaks the host signature. No common version: the server answers a
// plaintext `{ error }` naming both sides' ranges and closes.
import * as net from 'node:net';
import { Packr } from 'msgpackr';
import {
  type CryptoPool, type SigningKeyPair, domainHash, generateKemKeyPair, hkdfSha256, kemDecapsulate, kemEncapsulate,
  randomBytes, signMessage, verifySignature,
} from '../crypto/index.js';
import { Connection } from './connection.js';
import { HandshakeError, ProtocolError } from './errors.js';
import type { ReceiveBudget } from './frames.js';
import { checkHostKey, hostFingerprint } from './known-hosts.js';

export const PROTOCOL = 'atedb';
export const PROTOCOL_VERSIONS: [number, number] = [1, 1];
export const WIRE_FORMATS = ['msgpack-1'];
const TRANSCRIPT = 'atedb/v1/handshake-transcript';
const C2S = 'atedb/v1/keys/client-to-server';
const S2C = 'atedb/v1/keys/server-to-client';
const CLIENT_AUTH = 'atedb/v1/client-auth';
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

function unpack(b: Buffer, what: string): Record<string, unknown> {
  try {
    const m = packr.unpack(b) as Record<string, unknown>;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new Error('not a map');
    return m;
  } catch (e) {
    throw new HandshakeError(`${what} does not decode: ${(e as Error).message}`);
  }
}

const bytes = (x: unknown, what: string): Buffer => {
  if (!(x instanceof Uint8Array)) throw new HandshakeError(`${what} is not bytes`);
  return Buffer.from(x);
};

function range(x: unknown): [number, number] {
  if (!Array.isArray(x) || x.length !== 2 || !x.every((n) => Number.isSafeInteger(n))) throw new HandshakeError('version range malformed');
  return [x[0] as number, x[1] as number];
}

function keys(sharedSecret: Buffer, transcript: Buffer): { c2s: Buffer; s2c: Buffer } {
  return { c2s: hkdfSha256(sharedSecret, transcript, C2S, 32), s2c: hkdfSha256(sharedSecret, transcript, S2C, 32) };
}

function withTimeout<T>(p: Promise<T>, ms: number, conn: Connection, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new HandshakeError(`${what}: no handshake within ${ms} ms`);
      conn.close(e);
      reject(e);
    }, ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function nextMessage(conn: Connection): Promise<import('./messages.js').Message> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: import('./messages.js').Message) => {
      conn.off('close', onClose);
      resolve(m);
    };
    const onClose = (e: Error | null) => {
      conn.off('message', onMsg);
      reject(e ?? new HandshakeError('connection closed during the handshake'));
    };
    conn.once('message', onMsg);
    conn.once('close', onClose);
  });
}

// ------------------------------------------------------------------------------------- client

export interface ClientHandshakeOptions {
  host: string;
  port: number;
  /** known_hosts file (default $XDG_CONFIG_HOME/atefs/known_hosts). */
  knownHosts?: string;
  /** Demanded host key fingerprint (--server-key). */
  serverKey?: string;
  /** Prove this identity to the server (its public key and a signature over the session id). */
  identity?: SigningKeyPair;
  versions?: [number, number];
  formats?: string[];
  timeoutMs?: number;
  /** Called with the fingerprint when a host is seen for the first time (print it). */
  onNewHost?: (address: string, fingerprint: string) => void;
}

export interface ClientSession {
  conn: Connection;
  version: number;
  format: string;
  sessionId: Buffer;
  serverKey: Buffer;
  serverFingerprint: string;
  /** Server clock minus ours, ms (half the handshake round trip is not corrected for). */
  clockOffsetMs: number;
  /** The identity the server knows this connection by. */
  identity: string | null;
}

export async function connectClient(o: ClientHandshakeOptions): Promise<ClientSession> {
  const socket = net.connect({ host: o.host, port: o.port });
  const conn = new Connection(socket);
  const timeout = o.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  await withTimeout(new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    conn.once('close', (e) => reject(e ?? new HandshakeError('connection closed')));
  }), timeout, conn, `connect to ${o.host}:${o.port}`);
  try {
    return await withTimeout(clientSide(conn, o), timeout, conn, `server ${o.host}:${o.port}`);
  } catch (e) {
    conn.close(e as Error);
    throw e;
  }
}

async function clientSide(conn: Connection, o: ClientHandshakeOptions): Promise<ClientSession> {
  const versions = o.versions ?? PROTOCOL_VERSIONS;
  const formats = o.formats ?? WIRE_FORMATS;
  const eph = generateKemKeyPair();
  const hello = packr.pack({ proto: PROTOCOL, versions, formats, nonce: randomBytes(32), kem: eph.publicKey });
  conn.sendPlain(hello);
  const reply = unpack(await conn.nextPlain(), 'server hello');
  if (typeof reply.error === 'string') throw new HandshakeError(`server ${o.host}:${o.port} refused: ${reply.error}`);
  const body = bytes(reply.body, 'server hello body');
  const sig = bytes(reply.sig, 'server hello signature');
  const sh = unpack(body, 'server hello body');
  const version = sh.version as number;
  const format = sh.format as string;
  if (!Number.isSafeInteger(version) || version < versions[0] || version > versions[1]) {
    throw new HandshakeError(`server chose protocol version ${String(version)}, this client speaks ${versions[0]}-${versions[1]}`);
  }
  if (typeof format !== 'string' || !formats.includes(format)) throw new HandshakeError(`server chose wire format ${String(format)}, this client speaks ${formats.join(', ')}`);
  const hostKey = bytes(sh.hostKey, 'host key');
  const transcript = domainHash(TRANSCRIPT, hello, body);
  if (!verifySignature(hostKey, transcript, sig)) throw new HandshakeError(`server ${o.host}:${o.port}: host signature over the handshake does not verify`);
  // Pin only after the server proved it holds the key's secret half.
  const address = `${o.host}:${o.port}`;
  const check = await checkHostKey(address, hostKey, { ...(o.knownHosts ? { file: o.knownHosts } : {}), ...(o.serverKey ? { expected: o.serverKey } : {}) });
  if (check.result === 'added') o.onNewHost?.(address, check.fingerprint);
  const ss = kemDecapsulate(eph.secretKey, bytes(sh.kem, 'KEM ciphertext'));
  const k = keys(ss, transcript);
  ss.fill(0);
  conn.startEncryption(k.c2s, k.s2c);
  const proof = o.identity ? { pk: o.identity.publicKey, sig: signMessage(o.identity.secretKey, domainHash(CLIENT_AUTH, transcript)) } : { pk: null, sig: null };
  conn.send({ t: 'auth', ...proof });
  const ready = await nextMessage(conn);
  if (ready.t !== 'ready') throw new ProtocolError(`expected 'ready', got '${ready.t}'`);
  return {
    conn, version, format, sessionId: transcript, serverKey: hostKey, serverFingerprint: check.fingerprint,
    clockOffsetMs: ready.time - Date.now(), identity: ready.identity,
  };
}

// ------------------------------------------------------------------------------------- server

export interface ServerHandshakeOptions {
  hostKey: SigningKeyPair;
  /** Largest frame accepted after the handshake (the largest commit plus the envelope). */
  maxFrame?: number;
  /** Receive buffering shared by all connections (see ReceiveBudget). */
  budget?: ReceiveBudget;
  pool?: CryptoPool | null;
  versions?: [number, number];
  formats?: string[];
  timeoutMs?: number;
}

export interface ServerSession {
  conn: Connection;
  version: number;
  sessionId: Buffer;
  /** Fingerprint of the key the client proved, or null (anonymous). */
  clientIdentity: string | null;
  clientKey: Buffer | null;
}

export async function acceptClient(socket: net.Socket, o: ServerHandshakeOptions): Promise<ServerSession> {
  const conn = new Connection(socket, o.budget ?? null);
  if (o.maxFrame) conn.maxFrame = o.maxFrame;
  try {
    return await withTimeout(serverSide(conn, o), o.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, conn, `client ${conn.remote}`);
  } catch (e) {
    conn.close(e as Error);
    throw e;
  }
}

async function serverSide(conn: Connection, o: ServerHandshakeOptions): Promise<ServerSession> {
  const versions = o.versions ?? PROTOCOL_VERSIONS;
  const formats = o.formats ?? WIRE_FORMATS;
  const hello = await conn.nextPlain();
  const ch = unpack(hello, 'client hello');
  if (ch.proto !== PROTOCOL) throw new HandshakeError('not an atedb client');
  const cv = range(ch.versions);
  const lo = Math.max(cv[0], versions[0]);
  const hi = Math.min(cv[1], versions[1]);
  const refuse = (msg: string): never => {
    conn.sendPlain(packr.pack({ error: msg }));
    const e = new HandshakeError(msg);
    conn.close(e, { flush: true });
    throw e;
  };
  if (lo > hi) refuse(`no common protocol version: the client speaks ${cv[0]}-${cv[1]}, the server speaks ${versions[0]}-${versions[1]}`);
  const cf = Array.isArray(ch.formats) ? (ch.formats as unknown[]).filter((f): f is string => typeof f === 'string') : [];
  const format = cf.find((f) => formats.includes(f));
  if (!format) refuse(`no common wire format: the client speaks ${cf.join(', ') || 'none'}, the server speaks ${formats.join(', ')}`);
  let enc: { ciphertext: Buffer; sharedSecret: Buffer };
  try {
    enc = kemEncapsulate(bytes(ch.kem, 'client KEM key'));
  } catch (e) {
    throw new HandshakeError(`client KEM key rejected: ${(e as Error).message}`);
  }
  const body = packr.pack({ version: hi, format, nonce: randomBytes(32), kem: enc.ciphertext, hostKey: o.hostKey.publicKey, time: Date.now() });
  const transcript = domainHash(TRANSCRIPT, hello, body);
  const sig = o.pool ? await o.pool.sign(o.hostKey.secretKey, transcript) : signMessage(o.hostKey.secretKey, transcript);
  const k = keys(enc.sharedSecret, transcript);
  enc.sharedSecret.fill(0);
  conn.startEncryption(k.s2c, k.c2s);
  conn.sendPlain(packr.pack({ body, sig }));
  const auth = await nextMessage(conn);
  if (auth.t !== 'auth') throw new ProtocolError(`expected 'auth', got '${auth.t}'`);
  let clientIdentity: string | null = null;
  if (auth.pk && auth.sig) {
    const msg = domainHash(CLIENT_AUTH, transcript);
    const good = o.pool
      ? (await o.pool.verifyMany([{ publicKey: auth.pk, message: msg, signature: auth.sig }]))[0]
      : verifySignature(auth.pk, msg, auth.sig);
    if (!good) throw new HandshakeError('client identity proof does not verify');
    clientIdentity = hostFingerprint(auth.pk);
  }
  conn.send({ t: 'ready', time: Date.now(), identity: clientIdentity });
  return { conn, version: hi, sessionId: transcript, clientIdentity, clientKey: auth.pk ?? null };
}
