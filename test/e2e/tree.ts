import { chmodSync, linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shOk } from './harness.js';

/**
 * A deterministic file tree (same names, sizes, bytes, modes, links and times on every run),
 * written with plain fs calls to a directory that is NOT a mount (tmpfs /dev/shm).
 */
export interface TreeSpec { files: number; dirs: number; symlinks: number; hardlinks: number; seed: number }

/** xorshift32: reproducible, fast; nothing here is security-related. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

export function makeTree(root: string, spec: TreeSpec): { files: string[] } {
  const rnd = prng(spec.seed);
  mkdirSync(root, { recursive: true });
  const dirs = ['.'];
  for (let i = 0; i < spec.dirs; i++) {
    const parent = dirs[rnd() % dirs.length]!;
    const d = join(parent, `dir-${i}`);
    mkdirSync(join(root, d));
    dirs.push(d);
  }
  const modes = [0o644, 0o644, 0o644, 0o600, 0o755, 0o640, 0o700, 0o664];
  const files: string[] = [];
  for (let i = 0; i < spec.files; i++) {
    const dir = dirs[rnd() % dirs.length]!;
    const r = rnd() % 100;
    // Mostly small files (inline in the inode), some around the 64 KiB block size, a few large.
    const size = r < 60 ? rnd() % 4096 : r < 90 ? rnd() % 65536 : r < 98 ? 65536 + (rnd() % 200_000) : 300_000 + (rnd() % 700_000);
    const buf = Buffer.allocUnsafe(size);
    for (let j = 0; j + 4 <= size; j += 4) buf.writeUInt32LE(rnd(), j);
    for (let j = size - (size % 4); j < size; j++) buf[j] = rnd() & 0xff;
    const name = join(dir, `file-${i}${i % 7 === 0 ? '.txt' : ''}`);
    writeFileSync(join(root, name), buf);
    chmodSync(join(root, name), modes[rnd() % modes.length]!);
    const t = 1_500_000_000 + (rnd() % 100_000_000);
    utimesSync(join(root, name), t, t);
    files.push(name);
  }
  for (let i = 0; i < spec.symlinks; i++) {
    const dir = dirs[rnd() % dirs.length]!;
    const target = i % 5 === 0 ? `missing-${i}` : i % 2 === 0 ? `../${files[rnd() % files.length]!}` : files[rnd() % files.length]!;
    symlinkSync(target, join(root, dir, `link-${i}`));
  }
  for (let i = 0; i < spec.hardlinks; i++) {
    const src = files[rnd() % files.length]!;
    const dir = dirs[rnd() % dirs.length]!;
    linkSync(join(root, src), join(root, dir, `hard-${i}`));
  }
  for (let i = 0; i < 5; i++) mkdirSync(join(root, dirs[rnd() % dirs.length]!, `empty-${i}`));
  return { files };
}

/**
 * One line per entry: path, type, mode, and size/nlink for files and directories, the target for
 * symlinks, and the mtime in seconds when `times` (fuse-native cannot set mtime independently).
 */
export async function describeTree(dir: string, o: { times: boolean }): Promise<string> {
  const t = o.times ? ' %Ts' : '';
  return shOk(
    `cd ${dir} && find . -mindepth 1 \\( -type d -printf '%p d %m %n\\n' \\) -o \\( -type f -printf '%p f %m %s %n${t}\\n' \\) ` +
    `-o \\( -type l -printf '%p l %l\\n' \\) -o -printf '%p other %y %m\\n' | LC_ALL=C sort`,
  );
}

export async function checksums(dir: string): Promise<string> {
  return shOk(`cd ${dir} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum`, { timeout: 300_000 });
}
