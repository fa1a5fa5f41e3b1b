/**
 * Constants of the FUSE kernel protocol (Linux include/uapi/linux/fuse.h, protocol 7.38 as shipped by
 * Debian's linux-libc-dev). The kernel here speaks 7.45; we answer with the minor we implement and the
 * kernel falls back to it. Offsets of the structures live in codec.ts next to the code that uses them.
 */

export const FUSE_KERNEL_VERSION = 7;
/** The minor we implement: every structure below is laid out as in 7.38. */
export const FUSE_KERNEL_MINOR_VERSION = 38;
export const FUSE_ROOT_ID = 1;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
} as const;

/** Names for counters and debug output, indexed by opcode. */
export const OP_NAMES: Record<number, string> = {
  1: 'LOOKUP', 2: 'FORGET', 3: 'GETATTR', 4: 'SETATTR', 5: 'READLINK', 6: 'SYMLINK', 8: 'MKNOD',
  9: 'MKDIR', 10: 'UNLINK', 11: 'RMDIR', 12: 'RENAME', 13: 'LINK', 14: 'OPEN', 15: 'READ', 16: 'WRITE',
  17: 'STATFS', 18: 'RELEASE', 20: 'FSYNC', 21: 'SETXATTR', 22: 'GETXATTR', 23: 'LISTXATTR',
  24: 'REMOVEXATTR', 25: 'FLUSH', 26: 'INIT', 27: 'OPENDIR', 28: 'READDIR', 29: 'RELEASEDIR',
  30: 'FSYNCDIR', 31: 'GETLK', 32: 'SETLK', 33: 'SETLKW', 34: 'ACCESS', 35: 'CREATE', 36: 'INTERRUPT',
  37: 'BMAP', 38: 'DESTROY', 39: 'IOCTL', 40: 'POLL', 41: 'NOTIFY_REPLY', 42: 'BATCH_FORGET',
  43: 'FALLOCATE', 44: 'READDIRPLUS', 45: 'RENAME2', 46: 'LSEEK', 47: 'COPY_FILE_RANGE',
  48: 'SETUPMAPPING', 49: 'REMOVEMAPPING', 50: 'SYNCFS', 51: 'TMPFILE', 52: 'STATX',
};

export const Notify = {
  POLL: 1,
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
  STORE: 4,
  RETRIEVE: 5,
  DELETE: 6,
} as const;

/** fuse_init_in/out.flags (bits 0..31) */
export const INIT = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  SPLICE_WRITE: 1 << 7,
  SPLICE_MOVE: 1 << 8,
  SPLICE_READ: 1 << 9,
  FLOCK_LOCKS: 1 << 10,
  HAS_IOCTL_DIR: 1 << 11,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  POSIX_ACL: 1 << 20,
  ABORT_ERROR: 1 << 21,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  EXPLICIT_INVAL_DATA: 1 << 25,
  MAP_ALIGNMENT: 1 << 26,
  SUBMOUNTS: 1 << 27,
  HANDLE_KILLPRIV_V2: 1 << 28,
  SETXATTR_EXT: 1 << 29,
  INIT_EXT: 1 << 30,
} as const;

/** fuse_setattr_in.valid */
export const FATTR = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11,
} as const;

/** fuse_open_out.open_flags */
export const FOPEN = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
} as const;

export const FUSE_WRITE_CACHE = 1 << 0;
export const FUSE_WRITE_LOCKOWNER = 1 << 1;
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
export const FUSE_GETATTR_FH = 1 << 0;
export const FUSE_FSYNC_FDATASYNC = 1 << 0;
export const FUSE_LK_FLOCK = 1 << 0;
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 128;
export const ATTR_OUT_SIZE = 104;
export const OPEN_OUT_SIZE = 16;
export const INIT_OUT_SIZE = 64;
export const KSTATFS_SIZE = 80;
export const FILE_LOCK_SIZE = 24;
export const DIRENT_HEADER_SIZE = 24;
export const DIRENTPLUS_HEADER_SIZE = ENTRY_OUT_SIZE + DIRENT_HEADER_SIZE;
export const NOTIFY_INVAL_INODE_SIZE = 24;
export const NOTIFY_INVAL_ENTRY_SIZE = 16;
export const NOTIFY_DELETE_SIZE = 24;

/** Read buffer the kernel requires: at least 8 KiB and header + fuse_write_in + max_write. */
export const FUSE_MIN_READ_BUFFER = 8192;
export const PAGE_SIZE = 4096;
/** Largest lock offset the kernel uses (OFFSET_MAX): "to the end of the file". */
export const OFFSET_MAX_HI = 0x7fffffff;
