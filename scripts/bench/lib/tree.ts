/**
 * The benchmark's fixed file tree: generated deterministically from a seed (same names, sizes,
 * modes, links and bytes on every machine), written to tmpfs, tarred once with normalised metadata
 * and cached between runs. Also keeps the md5 list of its regular files, to check that every
 * filesystem under test returned the right bytes.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync, symlinkSync, linkSync, chmodSync, readFileSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { run, sh } from './proc.js';

export interface TreeSpec { files: number; seed: number }
export interface Tree {
  tar: string;
  /** Sorted `md5  ./path` lines of every regular file (hard links listed under each name). */
  md5: string;
  files: number; dirs: number; symlinks: number; hardlinks: number; bytes: number; tarSha256: string;
}

const VERSION = 1;

/** sfc32: small, fast, seedable; not for anything but reproducible test data. */
function prng(seed: number): () => number {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = (): number => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    const t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    const r = (t + d) | 0;
    c = (c + r) | 0;
    return (r >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

const EXT = ['.c', '.h', '.ts', '.js', '.json', '.md', '.txt', '.py', '.go', '.rs', '.html', '.css', '.png', '.o', ''];
const SYL = ['ka', 'to', 'ri', 'ne', 'su', 'mo', 'la', 'vi', 'de', 'po', 'xe', 'qu', 'zo', 'bi', 'fa', 'gu', 'ny', 'wh'];

export async function prepareTree(workDir: string, spec: TreeSpec): Promise<Tree> {
  const tag = `tree-v${VERSION}-n${spec.files}-s${spec.seed}`;
  const tar = join(workDir, `${tag}.tar`);
  const metaFile = join(workDir, `${tag}.json`);
  if (existsSync(tar) && existsSync(metaFile)) return JSON.parse(readFileSync(metaFile, 'utf8')) as Tree;

  const rnd = prng(spec.seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const name = (): string => {
    let s = '';
    for (let i = int(1, 4); i > 0; i--) s += SYL[int(0, SYL.length - 1)];
    return s;
  };

  // Directories: a few top-level trees, up to 5 levels deep, ~1 directory per 20 files.
  const dirs: string[] = ['.'];
  const nDirs = Math.max(8, Math.round(spec.files / 20));
  const depth = new Map<string, number>([['.', 0]]);
  const used = new Set<string>();
  const unique = (dir: string, base: string): string => {
    let p = join(dir, base);
    for (let k = 2; used.has(p); k++) p = join(dir, `${base}-${k}`);
    used.add(p);
    return p;
  };
  while (dirs.length < nDirs) {
    const parent = dirs.length < 9 ? '.' : dirs[int(0, dirs.length - 1)]!;
    if (depth.get(parent)! >= 5) continue;
    const d = unique(parent, name());
    depth.set(d, depth.get(parent)! + 1);
    dirs.push(d);
  }

  // Regular files: 10% tiny (0-1 KiB), 85.5% small (1-16 KiB), 4.25% medium (16-128 KiB), 0.25% large (256 KiB-1 MiB).
  const files: Array<{ path: string; size: number; mode: number }> = [];
  let bytes = 0;
  for (let i = 0; i < spec.files; i++) {
    const r = rnd();
    const size = r < 0.10 ? int(0, 1024) : r < 0.955 ? int(1024, 16384) : r < 0.9975 ? int(16384, 131072) : int(262144, 1048576);
    const ext = EXT[int(0, EXT.length - 1)]!;
    files.push({ path: unique(dirs[int(0, dirs.length - 1)]!, name() + ext), size, mode: rnd() < 0.05 ? 0o755 : 0o644 });
    bytes += size;
  }
  const nSym = Math.round(spec.files * 0.02);
  const nHard = Math.round(spec.files * 0.005);

  const src = join(workDir, `${tag}-src`);
  rmSync(src, { recursive: true, force: true });
  for (const d of dirs) mkdirSync(join(src, d), { recursive: true });
  // One deterministic keystream for all file bytes: incompressible, so no filesystem gains from compression.
  const key = createHash('sha256').update(`atefs-bench-tree-${spec.seed}`).digest().subarray(0, 16);
  const stream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes));
  let off = 0;
  for (const f of files) {
    writeFileSync(join(src, f.path), stream.subarray(off, off + f.size));
    chmodSync(join(src, f.path), f.mode);
    off += f.size;
  }
  for (let i = 0; i < nSym; i++) {
    const from = unique(dirs[int(0, dirs.length - 1)]!, name() + '.lnk');
    const to = rnd() < 0.8 ? files[int(0, files.length - 1)]!.path : dirs[int(0, dirs.length - 1)]!;
    symlinkSync(relative(dirname(from), to) || '.', join(src, from));
  }
  for (let i = 0; i < nHard; i++) {
    const target = files[int(0, files.length - 1)]!;
    const p = unique(dirs[int(0, dirs.length - 1)]!, name() + '.hl');
    linkSync(join(src, target.path), join(src, p));
  }
  await run(`tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='2024-01-01 00:00:00 UTC' --format=gnu -cf ${sh(tar)} -C ${sh(src)} .`);
  const md5 = (await run(`cd ${sh(src)} && find . -type f -print0 | xargs -0 md5sum | LC_ALL=C sort`)).stdout;
  const tarSha256 = createHash('sha256').update(readFileSync(tar)).digest('hex');
  rmSync(src, { recursive: true, force: true });
  const tree: Tree = { tar, md5, files: spec.files, dirs: dirs.length - 1, symlinks: nSym, hardlinks: nHard, bytes, tarSha256 };
  writeFileSync(metaFile, JSON.stringify(tree));
  return tree;
}
