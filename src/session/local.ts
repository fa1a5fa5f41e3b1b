// The local identity: created on first use in the user's XDG config directory, so that a local
// mount needs no server and asks no questions. Directory mode 0700, file mode 0600.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Identity, createIdentity } from './identity.js';
import { Session } from './session.js';
import { encodeToken, readTokenFile, writeSyncedSecretTemp } from './token.js';
import { TokenInvalid } from './errors.js';
import { ensurePrivateConfigDir } from './config-dir.js';

export const LOCAL_IDENTITY_FILE = 'identity.token';

export function defaultConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config');
  return path.join(base, 'atefs');
}

export interface LocalIdentity {
  identity: Identity;
  session: Session;
  file: string;
  created: boolean;
}

/**
 * Loads the local identity from `configDir/identity.token`, creating it (and the directory) when
 * absent. Safe against two processes creating it at once: the file is linked into place only if
 * absent, and the loser loads the winner's identity. Permissions that are too open are tightened.
 */
export async function loadOrCreateLocalIdentity(configDir: string = defaultConfigDir()): Promise<LocalIdentity> {
  await ensurePrivateConfigDir(configDir);
  const file = path.join(configDir, LOCAL_IDENTITY_FILE);
  const load = async (): Promise<LocalIdentity> => {
    const st = await fsp.stat(file);
    if ((st.mode & 0o077) !== 0) await fsp.chmod(file, 0o600);
    const tok = await readTokenFile(file);
    const identity = tok.session.user;
    if (!identity) throw new TokenInvalid(`${file} holds no user identity`);
    return { identity, session: tok.session, file, created: false };
  };
  try {
    return await load();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const identity = createIdentity(`${os.userInfo().username}@${os.hostname()}`);
  const session = Session.of(identity);
  const tmp = await writeSyncedSecretTemp(file, await encodeToken(session, { ttlMs: null }));
  try {
    await fsp.link(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return load();
    throw e;
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  return { identity, session, file, created: true };
}
