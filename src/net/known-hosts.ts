// Server pinning, as SSH does it: `$XDG_CONFIG_HOME/atefs/known_hosts`, one `host:port fingerprint`
// per line, fingerprints `SHA256:` + unpadded base64 of the SHA-256 of the encoded host public key.
// First contact with an address stores its key (trust on first use, the caller prints the
// fingerprint); a different key for a known address is a hard error naming the file and line.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sha256 } from '../crypto/index.js';
import { HostKeyMismatch } from './errors.js';

export function hostFingerprint(publicKey: Uint8Array): string {
  return `SHA256:${sha256(publicKey).toString('base64').replace(/=+$/, '')}`;
}

export function defaultKnownHostsPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config');
  return path.join(base, 'atefs', 'known_hosts');
}

export interface HostCheck {
  /** 'pinned': matched a stored line or the demanded key; 'added': first contact, now stored. */
  result: 'pinned' | 'added';
  fingerprint: string;
}

/**
 * Checks a server's host key for `address` (host:port). `expected` (a --server-key fingerprint)
 * overrides the file: the key must be that one, and it is stored when the address is new.
 */
export async function checkHostKey(
  address: string,
  publicKey: Uint8Array,
  opts: { file?: string; expected?: string } = {},
): Promise<HostCheck> {
  const file = opts.file ?? defaultKnownHostsPath();
  const fingerprint = hostFingerprint(publicKey);
  if (opts.expected && opts.expected !== fingerprint) {
    throw new HostKeyMismatch(`server ${address} presented key ${fingerprint}, but ${opts.expected} was demanded (--server-key)`);
  }
  let text = '';
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const [addr, fp] = lines[i]!.trim().split(/\s+/);
    if (addr !== address || !fp) continue;
    if (fp === fingerprint) return { result: 'pinned', fingerprint };
    throw new HostKeyMismatch(
      `HOST KEY CHANGED for ${address}: it presented ${fingerprint}, but ${file}:${i + 1} pins ${fp}. ` +
        `Someone may be intercepting the connection; if the server's key really changed, remove line ${i + 1} of ${file}.`,
    );
  }
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fsp.appendFile(file, `${address} ${fingerprint}\n`, { mode: 0o600 });
  return { result: 'added', fingerprint };
}

/** The fingerprint `file` pins for `address` (host:port), or null: a lookup that never writes. */
export async function pinnedFingerprint(address: string, file: string = defaultKnownHostsPath()): Promise<string | null> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  for (const line of text.split('\n')) {
    const [addr, fp] = line.trim().split(/\s+/);
    if (addr === address && fp) return fp;
  }
  return null;
}
