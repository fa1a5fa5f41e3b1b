// Pinned genesis hashes: kept in the user's config directory, apart from the chains' data, so a
// log swapped on disk for another chain (other root keys) is refused instead of silently adopted.
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

export async function writePin(configDir: string, chainDir: string, hash: string): Promise<void> {
  await ensurePrivateConfigDir(configDir);
  const pins = await readPins(configDir);
  pins[chainDir] = hash;
  await writeSecretFile(path.join(configDir, PINS_FILE), Buffer.from(JSON.stringify(pins, null, 2)));
}
