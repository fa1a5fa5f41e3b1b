// The user's atefs config directory ($XDG_CONFIG_HOME/atefs) holds secrets and trust anchors: the
// local identity, the pinned genesis hashes (and, later, chain heads and known hosts). Another
// user who could write there could swap a pin; one who could read there learns which chains exist.
// So: directory 0700, every file in it 0600, tightened whenever atefs writes there.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

async function tighten(p: string, mode: number): Promise<void> {
  const st = await fsp.lstat(p).catch(() => null);
  if (!st || (st.mode & 0o077) === 0 || !(st.isFile() || st.isDirectory())) return;
  await fsp.chmod(p, (st.mode & 0o7000) | mode).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPERM') throw e; // not ours: leave it
  });
}

/** Creates the config directory (0700) when missing and makes it and the files in it private. */
export async function ensurePrivateConfigDir(configDir: string): Promise<void> {
  await fsp.mkdir(configDir, { recursive: true, mode: 0o700 });
  await tighten(configDir, 0o700);
  for (const name of await fsp.readdir(configDir)) await tighten(path.join(configDir, name), 0o600);
}
