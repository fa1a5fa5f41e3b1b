/**
 * Mounting without root: the setuid `fusermount` (Debian's `fuse` package) opens /dev/fuse, calls
 * mount(2) and hands the descriptor back over the Unix socket named in `_FUSE_COMMFD` (SCM_RIGHTS),
 * the way libfuse and go-fuse mount as an ordinary user. Node has no API to receive a descriptor
 * over a socket, so socketpair(2) and recvmsg(2) are called through koffi (an FFI shipping prebuilt
 * binaries). Everything else (spawning fusermount, closing descriptors) is plain Node.
 */
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { KernelMountError } from './mount-syscall.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
/** CMSG_SPACE(sizeof(int)) on 64-bit Linux is 24; room for a few in case fusermount sends more. */
const CONTROL_BYTES = 64;

interface Libc {
  socketpair(domain: number, type: number, protocol: number, sv: number[]): number;
  recvmsg(fd: number, msg: Record<string, unknown>, flags: number): number | bigint;
  koffi: typeof import('koffi');
}

let libc: Libc | null = null;

/** libc through koffi, loaded on first use (a root mount never needs it). */
function loadLibc(): Libc {
  if (libc) return libc;
  if (process.platform !== 'linux') throw new KernelMountError('mounting through fusermount is implemented for Linux only');
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  const msghdr = koffi.struct('atefs_msghdr', {
    msg_name: 'void *',
    msg_namelen: 'uint32_t',
    msg_iov: 'void *',
    msg_iovlen: 'size_t',
    msg_control: 'void *',
    msg_controllen: 'size_t',
    msg_flags: 'int',
  });
  const socketpair = lib.func('int socketpair(int, int, int, _Out_ int *sv)');
  const recvmsg = lib.func('recvmsg', 'long', ['int', koffi.pointer(msghdr), 'int']);
  libc = {
    koffi,
    socketpair: (d, t, p, sv) => socketpair(d, t, p, sv) as number,
    recvmsg: (fd, msg, flags) => recvmsg(fd, msg, flags) as number | bigint,
  };
  return libc;
}

/**
 * Receives one descriptor sent with SCM_RIGHTS on `sock` (blocking; fusermount has already sent
 * it and exited when we get here). Returns null when the peer closed without sending one.
 */
function receiveFd(sock: number): number | null {
  const { koffi, recvmsg } = loadLibc();
  const data = koffi.alloc('uint8_t', 8);
  const control = koffi.alloc('uint8_t', CONTROL_BYTES);
  const iov = koffi.alloc('uint8_t', 16);
  try {
    koffi.encode(control, 'uint8_t', new Array(CONTROL_BYTES).fill(0), CONTROL_BYTES);
    // struct iovec { void *iov_base; size_t iov_len; }
    koffi.encode(iov, 0, 'void *', data);
    koffi.encode(iov, 8, 'size_t', 1);
    const msg = {
      msg_name: null, msg_namelen: 0, msg_iov: iov, msg_iovlen: 1,
      msg_control: control, msg_controllen: CONTROL_BYTES, msg_flags: 0,
    };
    let n: number;
    for (;;) {
      n = Number(recvmsg(sock, msg, MSG_CMSG_CLOEXEC));
      if (n >= 0 || koffi.errno() !== 4 /* EINTR */) break;
    }
    if (n < 0) throw new KernelMountError(`receiving the /dev/fuse descriptor from fusermount failed (errno ${koffi.errno()})`);
    if (n === 0) return null;
    // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; unsigned char data[]; }
    const len = Number(koffi.decode(control, 0, 'size_t'));
    const level = koffi.decode(control, 8, 'int') as number;
    const type = koffi.decode(control, 12, 'int') as number;
    if (len < 20 || level !== SOL_SOCKET || type !== SCM_RIGHTS) return null;
    return koffi.decode(control, 16, 'int') as number;
  } finally {
    koffi.free(data);
    koffi.free(control);
    koffi.free(iov);
  }
}

export interface FusermountArgs {
  mountpoint: string;
  /** Comma-separated mount options fusermount accepts (it adds fd, rootmode, user_id, group_id). */
  options: string;
}

/**
 * Mounts through fusermount and returns the /dev/fuse descriptor of the new connection.
 * fusermount refuses what the user may not do (allow_other without user_allow_other in
 * /etc/fuse.conf, a mountpoint the user does not own, no access to /dev/fuse); its message is
 * passed on.
 */
export async function fusermountMount(a: FusermountArgs): Promise<number> {
  const { socketpair } = loadLibc();
  const sv = [-1, -1];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) !== 0) {
    throw new KernelMountError(`socketpair failed (errno ${loadLibc().koffi.errno()})`);
  }
  const [ours, theirs] = sv as [number, number];
  let stderr = '';
  let code: number;
  try {
    code = await new Promise<number>((res) => {
      const child = spawn('fusermount', ['-o', a.options, '--', a.mountpoint], {
        stdio: ['ignore', 'ignore', 'pipe', theirs],
        env: { ...process.env, _FUSE_COMMFD: '3' },
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      child.on('error', (e) => { stderr += e.message; res(-1); });
      child.on('close', (c) => res(c ?? -1));
    });
  } finally {
    closeSync(theirs);
  }
  try {
    const msg = stderr.trim().replace(/^fusermount: /, '');
    if (code !== 0) throw new KernelMountError(`fusermount could not mount ${a.mountpoint}: ${msg || `exit ${code}`}`);
    const fd = receiveFd(ours);
    if (fd === null) throw new KernelMountError(`fusermount mounted ${a.mountpoint} but sent no /dev/fuse descriptor`);
    return fd;
  } finally {
    closeSync(ours);
  }
}

/** `fusermount -u` (or -uz: lazy, for a busy mount). */
export function fusermountUnmount(dir: string, lazy = false): Promise<{ code: number; stderr: string }> {
  return new Promise((res) => {
    const child = spawn('fusermount', [lazy ? '-uz' : '-u', '--', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (e) => res({ code: -1, stderr: e.message }));
    child.on('close', (c) => res({ code: c ?? -1, stderr: stderr.trim() }));
  });
}
