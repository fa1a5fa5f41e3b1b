/** Linux constants the core needs, numeric so the hot path never touches `fs.constants` lookups. */

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_ISVTX = 0o1000;
export const S_IXGRP = 0o010;
export const S_IXUGO = 0o111;

export const O_ACCMODE = 3;
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

/** access(2) mask bits. */
export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;
export const F_OK = 0;

export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

export const FALLOC_FL_KEEP_SIZE = 1;
export const FALLOC_FL_PUNCH_HOLE = 2;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** Largest offset a POSIX lock may reach ("to end of file"). */
export const OFFSET_MAX = Number.MAX_SAFE_INTEGER;

export const NAME_MAX = 255;
export const SYMLINK_MAX = 4095;
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;
export const LINK_MAX = 65000;
/** Largest file size: keeps every byte offset a safe integer with room for arithmetic. */
export const MAX_FILE_SIZE = 2 ** 50;
