/**
 * The FUSE kernel header as the compiler sees it: a small C program compiled against
 * /usr/include/linux/fuse.h prints sizeof/offsetof of every structure the kernel transport encodes
 * or decodes, and the values of the constants it uses (opcodes, FATTR_* bits). Tests compare the
 * code with this, never with a copy of the numbers. scripts/setup installs gcc and the header; where
 * they are missing the tests that need them fail (they must not be skipped on a fresh machine).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HEADER = '/usr/include/linux/fuse.h';

export const FIELDS: Record<string, string[]> = {
  fuse_in_header: ['len', 'opcode', 'unique', 'nodeid', 'uid', 'gid', 'pid', 'total_extlen'],
  fuse_out_header: ['len', 'error', 'unique'],
  fuse_attr: ['ino', 'size', 'blocks', 'atime', 'mtime', 'ctime', 'atimensec', 'mtimensec', 'ctimensec', 'mode', 'nlink',
    'uid', 'gid', 'rdev', 'blksize', 'flags'],
  fuse_entry_out: ['nodeid', 'generation', 'entry_valid', 'attr_valid', 'entry_valid_nsec', 'attr_valid_nsec', 'attr'],
  fuse_attr_out: ['attr_valid', 'attr_valid_nsec', 'attr'],
  fuse_open_out: ['fh', 'open_flags'],
  fuse_kstatfs: ['blocks', 'bfree', 'bavail', 'files', 'ffree', 'bsize', 'namelen', 'frsize'],
  fuse_file_lock: ['start', 'end', 'type', 'pid'],
  fuse_dirent: ['ino', 'off', 'namelen', 'type', 'name'],
  fuse_direntplus: ['entry_out', 'dirent'],
  fuse_init_in: ['major', 'minor', 'max_readahead', 'flags', 'flags2'],
  fuse_init_out: ['major', 'minor', 'max_readahead', 'flags', 'max_background', 'congestion_threshold', 'max_write',
    'time_gran', 'max_pages', 'map_alignment', 'flags2'],
  fuse_setattr_in: ['valid', 'fh', 'size', 'lock_owner', 'atime', 'mtime', 'ctime', 'atimensec', 'mtimensec', 'ctimensec',
    'mode', 'uid', 'gid'],
  fuse_read_in: ['fh', 'offset', 'size', 'read_flags', 'lock_owner', 'flags'],
  fuse_write_in: ['fh', 'offset', 'size', 'write_flags', 'lock_owner', 'flags'],
  fuse_release_in: ['fh', 'flags', 'release_flags', 'lock_owner'],
  fuse_flush_in: ['fh', 'lock_owner'],
  fuse_lk_in: ['fh', 'owner', 'lk', 'lk_flags'],
  fuse_create_in: ['flags', 'mode', 'umask', 'open_flags'],
  fuse_mknod_in: ['mode', 'rdev', 'umask'],
  fuse_mkdir_in: ['mode', 'umask'],
  fuse_rename2_in: ['newdir', 'flags'],
  fuse_link_in: ['oldnodeid'],
  fuse_getxattr_in: ['size'],
  fuse_setxattr_in: ['size', 'flags'],
  fuse_fsync_in: ['fh', 'fsync_flags'],
  fuse_fallocate_in: ['fh', 'offset', 'length', 'mode'],
  fuse_lseek_in: ['fh', 'offset', 'whence'],
  fuse_copy_file_range_in: ['fh_in', 'off_in', 'nodeid_out', 'fh_out', 'off_out', 'len', 'flags'],
  fuse_batch_forget_in: ['count'],
  fuse_forget_one: ['nodeid', 'nlookup'],
  fuse_interrupt_in: ['unique'],
  fuse_notify_inval_inode_out: ['ino', 'off', 'len'],
  fuse_notify_inval_entry_out: ['parent', 'namelen', 'flags'],
  fuse_notify_delete_out: ['parent', 'child', 'namelen'],
};

/** Constants of the header (enum values and #defines). */
export const CONSTANTS = [
  'FUSE_LOOKUP', 'FUSE_SETATTR', 'FUSE_MKNOD', 'FUSE_MKDIR', 'FUSE_LINK', 'FUSE_READ', 'FUSE_WRITE', 'FUSE_RELEASE',
  'FUSE_FSYNC', 'FUSE_SETXATTR', 'FUSE_GETXATTR', 'FUSE_FLUSH', 'FUSE_CREATE', 'FUSE_FALLOCATE', 'FUSE_RENAME2',
  'FUSE_LSEEK', 'FUSE_COPY_FILE_RANGE', 'FUSE_GETLK', 'FUSE_SETLK',
  'FATTR_MODE', 'FATTR_UID', 'FATTR_GID', 'FATTR_SIZE', 'FATTR_ATIME', 'FATTR_MTIME', 'FATTR_FH', 'FATTR_CTIME',
  'FUSE_COMPAT_SETXATTR_IN_SIZE', 'FUSE_COMPAT_WRITE_IN_SIZE',
];

export type Layout = Record<string, Record<string, number>> & { const: Record<string, number> };

/** Compiles and runs the layout program; throws (with what to install) when gcc or the header is missing. */
export function loadFuseLayout(): Layout {
  if (spawnSync('gcc', ['--version']).status !== 0 || !existsSync(HEADER)) {
    throw new Error(`gcc and ${HEADER} are needed to check the kernel protocol layout: run scripts/setup (apt-get install gcc libc6-dev linux-libc-dev)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'atefs-fusehdr-'));
  try {
    const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/fuse.h>', 'int main(void) {'];
    for (const [s, fields] of Object.entries(FIELDS)) {
      lines.push(`printf("${s} sizeof %zu\\n", sizeof(struct ${s}));`);
      for (const f of fields) lines.push(`printf("${s} ${f} %zu\\n", offsetof(struct ${s}, ${f}));`);
    }
    for (const c of CONSTANTS) lines.push(`printf("const ${c} %lld\\n", (long long)(${c}));`);
    lines.push('return 0; }');
    writeFileSync(join(dir, 'l.c'), lines.join('\n'));
    const cc = spawnSync('gcc', ['-o', join(dir, 'l'), join(dir, 'l.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(cc.stderr);
    const out = spawnSync(join(dir, 'l'), { encoding: 'utf8' }).stdout;
    const layout = { const: {} } as Layout;
    for (const line of out.trim().split('\n')) {
      const [s, f, v] = line.split(' ');
      (layout[s!] ??= {})[f!] = Number(v);
    }
    return layout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
