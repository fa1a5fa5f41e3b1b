import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, MAX_FILE_SIZE } from './constants.js';
import type { FileContent } from './content.js';
import { fsErr } from './errors.js';
import type { Inode } from './inode.js';

/**
 * fallocate(2) over the block model. Supported modes, as Linux defines them:
 *  - 0 / KEEP_SIZE: allocate (zero) blocks over the range; 0 grows the file to cover it;
 *  - PUNCH_HOLE | KEEP_SIZE: the range reads as zeros and blocks wholly inside it are freed (holes:
 *    SEEK_HOLE finds them, st_blocks drops); the size never changes;
 *  - ZERO_RANGE [| KEEP_SIZE]: the range reads as zeros and stays allocated (zero blocks, like
 *    mode 0); without KEEP_SIZE the file grows to cover it.
 * COLLAPSE_RANGE, INSERT_RANGE and UNSHARE_RANGE are EOPNOTSUPP (as on many filesystems).
 */

const SUPPORTED = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;

/** The argument checks of vfs_fallocate, in its order (before any permission or file-type check). */
export function checkFallocateArgs(mode: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) throw fsErr('EINVAL');
  if ((mode & ~SUPPORTED) !== 0) throw fsErr('EOPNOTSUPP');
  const punch = (mode & FALLOC_FL_PUNCH_HOLE) !== 0;
  // Punch and zero are exclusive, and a punched hole never changes the size (Linux refuses both).
  if (punch && (mode & FALLOC_FL_ZERO_RANGE) !== 0) throw fsErr('EOPNOTSUPP');
  if (punch && (mode & FALLOC_FL_KEEP_SIZE) === 0) throw fsErr('EOPNOTSUPP');
  if (offset + length > MAX_FILE_SIZE) throw fsErr('EFBIG');
}

/** Applies a checked fallocate to a regular file's content. Returns true when bytes read differently (mtime). */
export function applyFallocate(content: FileContent, inode: Inode, mode: number, offset: number, length: number): boolean {
  const keepSize = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
  const end = offset + length;
  if ((mode & FALLOC_FL_PUNCH_HOLE) !== 0) {
    // Past the end it still frees blocks preallocated there (KEEP_SIZE); nothing reads differently.
    const inside = offset < inode.size;
    content.clear(inode, offset, end);
    return inside;
  }
  if ((mode & FALLOC_FL_ZERO_RANGE) !== 0) {
    const oldSize = inode.size;
    // Allocate first: it refuses (ENOSPC) before anything changed, and fills the holes with
    // zero blocks; then what held data is zeroed in place.
    content.allocate(inode, offset, length, keepSize);
    content.clear(inode, offset, Math.min(end, oldSize), true);
    return offset < oldSize || inode.size !== oldSize;
  }
  const oldSize = inode.size;
  content.allocate(inode, offset, length, keepSize);
  return inode.size !== oldSize;
}
