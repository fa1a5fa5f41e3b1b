// Reads of the remote-mount core tests (remote-fs-resync, remote-fs-compacted): a whole file through
// a fresh handle, and a directory's names.
import type { Ctx, Filesystem } from '../../fs/core/index.js';

export const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };

export function readAll(fs: Filesystem, ino: number): Buffer {
  const { fh } = fs.open(ROOT, ino, 0);
  const size = fs.getattr(ROOT, ino).size;
  const out = Buffer.from(fs.read(ROOT, ino, fh, 0, size + 1));
  fs.release(ino, fh);
  return out;
}

/** The names in a directory (without . and ..), sorted. */
export function names(fs: Filesystem, dir: number): string[] {
  const { fh } = fs.opendir(ROOT, dir, 0);
  const out = fs.readdir(ROOT, dir, fh, 0, 100).map((e) => e.name.toString()).filter((n) => n !== '.' && n !== '..');
  fs.releasedir(dir, fh);
  return out.sort();
}
