// Pinned genesis hashes: kept in the user's config directory, apart from the chains' data, so a
// log swapped on disk for another chain (other root keys) is refused instead of silently adopted.
// A chain is pinned under its directory's real path (symlinks resolved): a symlinked --log-path
// and its target are one chain with one pin, and re-pointing a symlink at another directory
// reaches that directory's pin (or none), never the old one's.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeSecretFile } from './token.js';
import { ensurePrivateConfigDir } from './config-dir.js';

export const PINS_FILE = 'pinned-chains.json';

export async function readPins(configDir: string): Promise<Record<string, string>> {
  try {
    return JSON.parse(await fsp.readFile(path.join(configDir, PINS_FILE), 'utf8')) as Record<string, string>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
}

export async function writePin(configDir: string, key: string, hash: string): Promise<void> {
  await ensurePrivateConfigDir(configDir);
  const pins = await readPins(configDir);
  pins[key] = hash;
  await writeSecretFile(path.join(configDir, PINS_FILE), Buffer.from(JSON.stringify(pins, null, 2)));
}

/** The key a chain directory is pinned under: its real path, or the absolute path while it does not exist. */
export async function pinKeyOf(chainDir: string): Promise<string> {
  try {
    return await fsp.realpath(chainDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return path.resolve(chainDir);
    throw e;
  }
}

export interface PinLookup {
  /** What the pin is (to be) stored under: `prefix` + the real path. */
  key: string;
  /** The pinned genesis hash (hex), if any. */
  hash: string | undefined;
  /** True when it was found only under the path as given (a pin written before pins used real paths). */
  legacy: boolean;
}

/**
 * The pin of a chain directory: under its real path, else under the absolute path as given
 * (older atefs versions keyed pins that way; such a pin still binds — it is only more to check).
 * `prefix` separates namespaces (the library's chains use 'ate:').
 */
export async function findPin(configDir: string, chainDir: string, prefix = ''): Promise<PinLookup> {
  const key = prefix + (await pinKeyOf(chainDir));
  const pins = await readPins(configDir);
  if (pins[key]) return { key, hash: pins[key], legacy: false };
  const given = prefix + path.resolve(chainDir);
  if (pins[given]) return { key, hash: pins[given], legacy: true };
  return { key, hash: undefined, legacy: false };
}
