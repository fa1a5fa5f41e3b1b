import type { Attr, DirEntry, StatFs, Timespec } from '../core/api.js';

/**
 * fuse-native's wire shapes: a stat is a Uint32Array(18) that its C side reads field by field
 * (index.js getStatArray / fuse-native.c populate_stat). Building the array directly skips the
 * library's object -> array conversion. Times cross as 64-bit *milliseconds*, so nanoseconds are
 * truncated to ms on this transport (the kernel transport keeps them), and times before 1970
 * cannot be represented (uint32 halves): they are clamped to 0.
 */

const TWO32 = 4294967296;

function setU64(a: Uint32Array, i: number, n: number): void {
  if (!(n > 0)) { a[i] = 0; a[i + 1] = 0; return; }
  const lo = n % TWO32;
  a[i] = lo;
  a[i + 1] = (n - lo) / TWO32;
}

function ms(t: Timespec): number {
  return t.sec * 1000 + Math.floor(t.nsec / 1e6);
}

/**
 * st_ino through fuse-native's 32-bit slot: numbers below 2^32 as they are; a remote mount's
 * per-machine ranges (fs/remote/ino-space.ts: machine * 2^32 + n) folded so that machines do not
 * all map onto the same small numbers (a collision stays possible, one in 2^32 per pair).
 */
export function foldIno(ino: number): number {
  if (ino < 0x1_0000_0000) return ino;
  const machine = Math.floor(ino / 0x1_0000_0000);
  return ((ino >>> 0) ^ Math.imul(machine, 0x9e3779b1)) >>> 0;
}

export function statArray(attr: Attr): Uint32Array {
  const a = new Uint32Array(18);
  a[0] = attr.mode;
  a[1] = attr.uid;
  a[2] = attr.gid;
  setU64(a, 3, attr.size);
  // a[5] st_dev: the kernel fills it in.
  a[6] = attr.nlink;
  a[7] = foldIno(attr.ino);   // used as st_ino because the mount passes use_ino
  a[8] = attr.rdev;
  a[9] = attr.blksize;
  setU64(a, 10, attr.blocks);
  setU64(a, 12, ms(attr.atime));
  setU64(a, 14, ms(attr.mtime));
  setU64(a, 16, ms(attr.ctime));
  return a;
}

/** libfuse 2's readdir filler only uses st_ino (with use_ino) and the type bits of st_mode. */
export function direntStat(e: DirEntry): Uint32Array {
  const a = new Uint32Array(18);
  a[0] = e.type;
  a[6] = 1;
  a[7] = foldIno(e.ino);
  return a;
}

export function statfsArray(s: StatFs): Uint32Array {
  const clamp = (n: number) => (n >= TWO32 ? TWO32 - 1 : n > 0 ? n : 0);
  const a = new Uint32Array(11);
  a[0] = clamp(s.bsize);
  a[1] = clamp(s.frsize);
  a[2] = clamp(s.blocks);
  a[3] = clamp(s.bfree);
  a[4] = clamp(s.bavail);
  a[5] = clamp(s.files);
  a[6] = clamp(s.ffree);
  a[7] = clamp(s.favail);
  // a[8] fsid, a[9] flag: the kernel ignores both for FUSE.
  a[10] = clamp(s.namemax);
  return a;
}

/**
 * utimens through this stack (measured, and read in the sources):
 *  - libfuse 2.9's fuse_lib_setattr passes UTIME_OMIT / UTIME_NOW through to utimens only when the
 *    filesystem sets fuse_operations.flag_utime_omit_ok, which fuse-native does not; otherwise it
 *    calls utimens only when the kernel sets *both* times (real values: the kernel resolves
 *    UTIME_NOW itself) and silently succeeds without calling us when one is UTIME_OMIT (tar's
 *    [OMIT, mtime], `touch -m`, `touch -a`);
 *  - fuse-native.c's utimens converts both timespecs to ms but passes l->atime in both argument
 *    slots (FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)): the mtime never reaches JavaScript.
 * So on this transport mtime := atime, ms precision, and one-sided changes are lost; only a patched
 * and rebuilt addon could fix it (pass l->mtime, set flag_utime_omit_ok). Times past 2^31 and 2^32
 * s cross intact (64-bit ms; tested). The kernel transport has none of these limits.
 */
export function timespecOfMs(msTotal: number): Timespec {
  const sec = Math.floor(msTotal / 1000);
  return { sec, nsec: (msTotal - sec * 1000) * 1e6 };
}
