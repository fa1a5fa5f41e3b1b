// The chain's files on disk are private to the user who owns the chain: files 0600, directories
// 0700. The bytes are encrypted and signed, but sizes, times, record counts and the very existence
// of a chain are not everyone's business, and a world-writable or group-writable log invites
// tampering. New files are created with these modes (whatever the umask); files and directories
// left looser (a chain written before this rule, a --log-path created by the user with mkdir)
// are tightened when a writer opens the chain. Read-only opens change nothing.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** chmod when any group/other bit is set; a path owned by someone else is left alone (EPERM). */
function tighten(p: string, mode: number, st: fs.Stats): void {
  if ((st.mode & 0o077) === 0) return;
  try {
    fs.chmodSync(p, (st.mode & 0o7000) | mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
  }
}

/**
 * Creates `dir` (0700, parents too) when missing, and makes it and every regular file and
 * subdirectory directly in it private: a directory atefs owns (a chain's log/ or index/).
 * Symlinks are never followed or changed.
 */
export function makeDirPrivate(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  tighten(dir, PRIVATE_DIR_MODE, fs.statSync(dir));
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isFile()) tighten(p, PRIVATE_FILE_MODE, st);
    else if (st.isDirectory()) tighten(p, PRIVATE_DIR_MODE, st);
  }
}

/**
 * A chain directory (the parent of log/ and index/): created 0700 when missing. An existing one
 * that holds nothing but `own` entries (log, index) is the chain's own directory and is tightened
 * to 0700. One that also holds other things (a --log-path pointed at a home directory, a synced
 * folder) is left as it is — changing its mode could break whatever else lives there — and
 * `onLoose` is told, so the user can decide; log/ and index/ inside are 0700 either way, so only
 * their names show. Returns what it did.
 */
export function makeChainDirPrivate(dir: string, own: readonly string[], onLoose?: (msg: string) => void): 'created' | 'private' | 'tightened' | 'left' {
  const before = fs.statSync(dir, { throwIfNoEntry: false });
  if (!before) {
    fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    tighten(dir, PRIVATE_DIR_MODE, fs.statSync(dir)); // mkdir's mode is masked by the umask
    return 'created';
  }
  if ((before.mode & 0o077) === 0) return 'private';
  const others = fs.readdirSync(dir).filter((n) => !own.includes(n));
  if (others.length === 0) {
    tighten(dir, PRIVATE_DIR_MODE, before);
    return 'tightened';
  }
  onLoose?.(`${dir} is accessible to other users (mode ${(before.mode & 0o777).toString(8).padStart(4, '0')}) and holds more than the chain ` +
    `(${others.slice(0, 3).join(', ')}${others.length > 3 ? ', ...' : ''}), so atefs leaves its mode alone; the chain's own log/ and index/ inside are 0700. ` +
    `'chmod 700 ${dir}' hides even their names`);
  return 'left';
}
