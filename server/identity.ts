// The server's long-term identity: a hybrid ML-DSA-65 + Ed25519 signing key in
// <data-dir>/server.key (mode 0600, created on first start). Clients pin its fingerprint.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type SigningKeyPair, generateSigningKeyPair, signingPublicKeyOf } from '../src/crypto/index.js';
import { hostFingerprint } from '../src/net/index.js';

export const IDENTITY_FILE = 'server.key';
const MAGIC = 'atedb-server-key-v1';

export interface ServerIdentity {
  keys: SigningKeyPair;
  fingerprint: string;
  file: string;
  created: boolean;
}

export async function loadOrCreateServerIdentity(dataDir: string): Promise<ServerIdentity> {
  const file = path.join(dataDir, IDENTITY_FILE);
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
  try {
    const text = await fsp.readFile(file, 'utf8');
    const [magic, b64] = text.trim().split(/\s+/);
    if (magic !== MAGIC || !b64) throw new Error(`${file} is not an atedb server key`);
    const st = await fsp.stat(file);
    if ((st.mode & 0o077) !== 0) throw new Error(`${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    const secretKey = Buffer.from(b64, 'base64');
    const publicKey = signingPublicKeyOf(secretKey);
    return { keys: { publicKey, secretKey }, fingerprint: hostFingerprint(publicKey), file, created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const keys = generateSigningKeyPair();
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, `${MAGIC} ${keys.secretKey.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  const fh = await fsp.open(tmp, 'r');
  await fh.sync();
  await fh.close();
  // link (not rename) so two first starts racing cannot replace each other's key.
  try {
    await fsp.link(tmp, file);
  } finally {
    await fsp.unlink(tmp).catch(() => undefined);
  }
  return { keys, fingerprint: hostFingerprint(keys.publicKey), file, created: true };
}
