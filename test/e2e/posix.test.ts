import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  OTHER_GID, OTHER_UID, availableTransports, haveTool, mountForTest, run, settleLinks, sh, shOk, transportCaps, type TestMount,
} from './harness.js';
import { mountOnLog, remountAndCompare, type LogMount } from './remount.js';

/** The POSIX behaviour of DESIGN.md §7, through a real mount (allow_other, so another uid can enter). */

async function errCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
  return 'no error';
}

describe.each(availableTransports())('POSIX semantics through a %s mount', (transport) => {
  const caps = transportCaps(transport);
  let m: TestMount;
  let n = 0;
  /** A fresh directory per test, so tests do not see each other's files. */
  let d: string;
  const fresh = async () => {
    d = join(m.dir, `t${++n}`);
    await fsp.mkdir(d);
    await fsp.chmod(d, 0o777);
    return d;
  };

  let lm: LogMount | undefined;
  beforeAll(async () => { lm = await mountOnLog({ transport, allowOther: true }); m = lm.m; });
  afterAll(async () => { await remountAndCompare(lm); }, 300_000);

  it('rename replaces a file and an empty directory; ENOTEMPTY, EINVAL, EISDIR, ENOTDIR', async () => {
    await fresh();
    await fsp.writeFile(join(d, 'a'), 'AAA');
    await fsp.writeFile(join(d, 'b'), 'BBBBBB');
    await fsp.rename(join(d, 'a'), join(d, 'b'));
    expect(await fsp.readFile(join(d, 'b'), 'utf8')).toBe('AAA');
    expect(await errCode(fsp.stat(join(d, 'a')))).toBe('ENOENT');

    await fsp.mkdir(join(d, 'x'));
    await fsp.writeFile(join(d, 'x', 'inside'), '1');
    await fsp.mkdir(join(d, 'empty'));
    await fsp.rename(join(d, 'x'), join(d, 'empty'));
    expect(await fsp.readdir(join(d, 'empty'))).toEqual(['inside']);
    expect(await errCode(fsp.stat(join(d, 'x')))).toBe('ENOENT');

    await fsp.mkdir(join(d, 'y'));
    expect(await errCode(fsp.rename(join(d, 'y'), join(d, 'empty')))).toBe('ENOTEMPTY');
    expect(await errCode(fsp.rename(join(d, 'empty'), join(d, 'empty', 'sub')))).toBe('EINVAL');
    expect(await errCode(fsp.rename(join(d, 'b'), join(d, 'y')))).toBe('EISDIR');
    expect(await errCode(fsp.rename(join(d, 'y'), join(d, 'b')))).toBe('ENOTDIR');
    // Renaming into another directory, then reading through the new path.
    await fsp.rename(join(d, 'b'), join(d, 'y', 'moved'));
    expect(await fsp.readFile(join(d, 'y', 'moved'), 'utf8')).toBe('AAA');
  });

  it('EEXIST, EISDIR, ENOTDIR, ENOTEMPTY and ENOENT where POSIX says', async () => {
    await fresh();
    await fsp.mkdir(join(d, 'dir'));
    await fsp.writeFile(join(d, 'file'), 'x');
    expect(await errCode(fsp.mkdir(join(d, 'dir')))).toBe('EEXIST');
    expect(await errCode(fsp.mkdir(join(d, 'file')))).toBe('EEXIST');
    expect(await errCode(fsp.symlink('t', join(d, 'file')))).toBe('EEXIST');
    expect(await errCode(fsp.link(join(d, 'file'), join(d, 'dir')))).toBe('EEXIST');
    expect(await errCode(fsp.open(join(d, 'file'), 'wx'))).toBe('EEXIST'); // O_CREAT|O_EXCL
    expect(await errCode(fsp.open(join(d, 'dir'), 'w'))).toBe('EISDIR');
    expect(await errCode(fsp.unlink(join(d, 'dir')))).toBe('EISDIR');
    expect(await errCode(fsp.rmdir(join(d, 'file')))).toBe('ENOTDIR');
    expect(await errCode(fsp.stat(join(d, 'file', 'below')))).toBe('ENOTDIR');
    await fsp.writeFile(join(d, 'dir', 'f'), '');
    expect(await errCode(fsp.rmdir(join(d, 'dir')))).toBe('ENOTEMPTY');
    expect(await errCode(fsp.readFile(join(d, 'missing')))).toBe('ENOENT');
    expect(await errCode(fsp.link(join(d, 'dir'), join(d, 'dirlink')))).toBe('EPERM'); // no hard links to directories
  });

  it('names up to 255 bytes; 256 is ENAMETOOLONG', async () => {
    await fresh();
    const ok = 'n'.repeat(255);
    await fsp.writeFile(join(d, ok), 'long');
    expect(await fsp.readdir(d)).toEqual([ok]);
    expect(await fsp.readFile(join(d, ok), 'utf8')).toBe('long');
    expect(await errCode(fsp.writeFile(join(d, 'n'.repeat(256)), ''))).toBe('ENAMETOOLONG');
    expect(await errCode(fsp.mkdir(join(d, 'é'.repeat(128))))).toBe('ENAMETOOLONG'); // 256 bytes of UTF-8
  });

  it('symlink targets of 4095 bytes round-trip', async () => {
    await fresh();
    const target = `${'t/'.repeat(2047)}x`; // 4095 bytes
    expect(Buffer.byteLength(target)).toBe(4095);
    await fsp.symlink(target, join(d, 'long'));
    expect(await fsp.readlink(join(d, 'long'))).toBe(target);
    const st = await fsp.lstat(join(d, 'long'));
    expect(st.isSymbolicLink()).toBe(true);
    expect(st.size).toBe(4095);
    await fsp.symlink('../t1', join(d, 'rel'));
    expect(await fsp.readlink(join(d, 'rel'))).toBe('../t1');
  });

  it('nlink: directories count 2 + subdirectories, files count their names', async () => {
    await fresh();
    expect((await fsp.stat(d)).nlink).toBe(2);
    await fsp.mkdir(join(d, 's1'));
    await fsp.mkdir(join(d, 's2'));
    await fsp.writeFile(join(d, 'f'), 'x');
    expect((await fsp.stat(d)).nlink).toBe(4);
    await fsp.rmdir(join(d, 's2'));
    expect((await fsp.stat(d)).nlink).toBe(3);
    await fsp.rename(join(d, 's1'), join(d, 'f2'));
    expect((await fsp.stat(d)).nlink).toBe(3);

    await fsp.link(join(d, 'f'), join(d, 'g'));
    await fsp.link(join(d, 'f'), join(d, 'f2', 'h'));
    await settleLinks(transport);
    expect((await fsp.stat(join(d, 'f'))).nlink).toBe(3);
    expect((await fsp.stat(join(d, 'f2', 'h'))).nlink).toBe(3);
    expect((await fsp.stat(join(d, 'g'))).ino).toBe((await fsp.stat(join(d, 'f'))).ino);
    await fsp.unlink(join(d, 'f'));
    await settleLinks(transport);
    expect((await fsp.stat(join(d, 'g'))).nlink).toBe(2);
    await fsp.appendFile(join(d, 'g'), 'yz');
    await settleLinks(transport);
    expect(await fsp.readFile(join(d, 'f2', 'h'), 'utf8')).toBe('xyz');
  });

  it('unlinked files stay readable and writable through open descriptors', async () => {
    await fresh();
    const p = join(d, 'open-then-unlinked');
    await fsp.writeFile(p, 'still here');
    const fh = await fsp.open(p, 'r+');
    await fsp.unlink(p);
    expect(await errCode(fsp.stat(p))).toBe('ENOENT');
    const buf = Buffer.alloc(10);
    await fh.read(buf, 0, 10, 0);
    expect(buf.toString()).toBe('still here');
    await fh.write('STILL', 0);
    await fh.read(buf, 0, 10, 0);
    expect(buf.toString()).toBe('STILL here');
    await fh.close();
  });

  it('setgid directories pass their group (and the bit, to subdirectories) on', async () => {
    await fresh();
    const g = join(d, 'shared');
    await fsp.mkdir(g);
    await fsp.chown(g, 0, OTHER_GID);
    await fsp.chmod(g, 0o2775);
    expect((await fsp.stat(g)).mode & 0o7777).toBe(0o2775);
    await fsp.writeFile(join(g, 'f'), 'x');
    await fsp.mkdir(join(g, 'sub'));
    const f = await fsp.stat(join(g, 'f'));
    const sub = await fsp.stat(join(g, 'sub'));
    expect(f.gid).toBe(OTHER_GID);
    expect(sub.gid).toBe(OTHER_GID);
    expect(sub.mode & 0o2000).toBe(0o2000);
    expect(f.mode & 0o2000).toBe(0);
  });

  it('chmod/chown rules: owner or root only, chown clears suid/sgid, writes by others clear suid', async () => {
    await fresh();
    const f = join(d, 'rootfile');
    await fsp.writeFile(f, 'x');
    await fsp.chmod(f, 0o644);
    let r = await sh(`chmod 666 ${f}`, { uid: OTHER_UID });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
    r = await sh(`chown ${OTHER_UID} ${f}`, { uid: OTHER_UID });
    expect(r.stderr).toMatch(/Operation not permitted/);

    const s = join(d, 'suid');
    await fsp.writeFile(s, '#!/bin/sh\n');
    await fsp.chmod(s, 0o6755);
    if (!caps.setIdWithAllowOther) {
      // This mount has --allow-other: fuse-native strips setuid/setgid (allow-other-setid.test.ts).
      expect((await fsp.stat(s)).mode & 0o7777).toBe(0o755);
      return;
    }
    expect((await fsp.stat(s)).mode & 0o7777).toBe(0o6755);
    await fsp.chown(s, OTHER_UID, OTHER_GID);
    expect((await fsp.stat(s)).mode & 0o7777).toBe(0o755);

    // The owner may chmod; a non-root write to a suid file clears the bit.
    await fsp.chmod(s, 0o4777);
    await shOk(`chmod 4757 ${s} && echo more >> ${s}`, { uid: OTHER_UID });
    expect((await fsp.stat(s)).mode & 0o7777).toBe(0o757);
  });

  it('utimensat: explicit times, UTIME_NOW, and the ctime rule', async () => {
    await fresh();
    const f = join(d, 't');
    await fsp.writeFile(f, 'x');
    await shOk(`touch -d '2021-03-04 05:06:07.123456789 UTC' ${f}`);
    const out = (await shOk(`stat -c '%y|%x' ${f}`)).trim().split('|');
    const want = caps.nsTimestamps ? '2021-03-04 05:06:07.123456789' : '2021-03-04 05:06:07.123000000';
    expect(out[0]).toContain(want);
    expect(out[1]).toContain(want);
    const before = await fsp.stat(f);
    expect(before.ctimeMs).toBeGreaterThan(Date.UTC(2022, 0, 1)); // ctime is never set from outside
    await shOk(`touch ${f}`); // UTIME_NOW for both
    const after = await fsp.stat(f);
    expect(after.mtimeMs).toBeGreaterThan(Date.UTC(2022, 0, 1));
    expect(Math.abs(after.mtimeMs - Date.now())).toBeLessThan(600_000);
  });

  it.skipIf(!caps.separateTimes)('utimensat with UTIME_OMIT and nanoseconds (not expressible through fuse-native)', async () => {
    await fresh();
    const f = join(d, 't');
    await fsp.writeFile(f, 'x');
    await shOk(`touch -d '2001-01-01 00:00:00.5 UTC' ${f}`);
    await shOk(`touch -m -d '2010-10-10 10:10:10.000000007 UTC' ${f}`); // atime UTIME_OMIT
    const [mt, at] = (await shOk(`stat -c '%y|%x' ${f}`)).trim().split('|');
    expect(mt).toContain('2010-10-10 10:10:10.000000007');
    expect(at).toContain('2001-01-01 00:00:00.500000000');
    await fsp.utimes(f, 1_600_000_000.25, 1_500_000_000.75);
    const st = await fsp.stat(f, { bigint: true });
    expect(st.atimeNs).toBe(1_600_000_000_250_000_000n);
    expect(st.mtimeNs).toBe(1_500_000_000_750_000_000n);
  });

  it.skipIf(!caps.nsTimestamps)('times the filesystem sets itself (create, write) have nanoseconds', async () => {
    await fresh();
    await shOk(`cd ${d} && for i in $(seq 20); do echo $i > f$i; done`);
    const times = (await shOk(`cd ${d} && stat -c '%.9Y %.9Z' f*`)).trim().split(/\s+/);
    expect(times).toHaveLength(40);
    // Millisecond clocks end every time in 000000: twenty files all doing so would be a 1e-80 chance.
    expect(times.some((t) => !t.endsWith('000000'))).toBe(true);
  });

  it.skipIf(!caps.fallocate || !haveTool('fallocate'))('fallocate -p (PUNCH_HOLE) frees blocks and makes holes; fallocate -z (ZERO_RANGE) zeroes and may grow', async () => {
    await fresh();
    const f = join(d, 'img');
    await shOk(`head -c 1000000 /dev/urandom > ${f}`);
    const blocks0 = (await fsp.stat(f)).blocks;
    await shOk(`fallocate -p -o 100000 -l 500000 ${f}`);
    let st = await fsp.stat(f);
    expect(st.size).toBe(1_000_000);
    expect(st.blocks).toBeLessThan(blocks0 - 700); // at least the whole 64 KiB blocks inside the range
    const probe = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
d = os.pread(fd, 2000000, 0)
print(len(d), d[100000:600000] == bytes(500000), d[99000:100000] != bytes(1000), d[600000:601000] != bytes(1000))
print(os.lseek(fd, 0, os.SEEK_HOLE), os.lseek(fd, 131072, os.SEEK_DATA))
`;
    let out = (await shOk(`python3 -c '${probe}' ${f}`)).trim().split('\n');
    expect(out[0]).toBe('1000000 True True True');
    const [hole, data] = out[1]!.split(' ').map(Number);
    expect(hole).toBeGreaterThanOrEqual(100000); // the first hole starts inside the punched range...
    expect(hole).toBeLessThan(600000);
    expect(data).toBeGreaterThan(hole!); // ...and data comes back after it
    await shOk(`fallocate -z -o 990000 -l 100000 ${f}`);
    st = await fsp.stat(f);
    expect(st.size).toBe(1_090_000);
    out = (await shOk(`python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); print(d[990000:] == bytes(100000), d[980000:990000] != bytes(10000))' ${f}`)).trim().split('\n');
    expect(out[0]).toBe('True True');
    await shOk(`fallocate -z -n -o 2000000 -l 100000 ${f}`); // KEEP_SIZE
    expect((await fsp.stat(f)).size).toBe(1_090_000);
  });

  it.skipIf(!caps.callerOwnership)('supplementary groups count: chgrp by the owner, group permissions, S_ISGID on chmod and in setgid directories', async () => {
    await fresh();
    const SUPP = 4242; // a group the user is in only as a supplementary group
    const ALIEN = 4343; // one it is not in at all
    const asMember = (script: string) => run('setpriv', ['--reuid', String(OTHER_UID), '--regid', String(OTHER_GID), '--groups', String(SUPP), 'bash', '-c', script]);
    const ok = async (script: string) => {
      const r = await asMember(script);
      if (r.code !== 0) throw new Error(`as uid ${OTHER_UID} with group ${SUPP}: ${script}\n${r.stderr}`);
    };
    const f = join(d, 'mine');
    await ok(`touch ${f} && chgrp ${SUPP} ${f}`);
    expect((await fsp.stat(f)).gid).toBe(SUPP);
    await ok(`chown ${OTHER_GID} ${f} && chown :${SUPP} ${f}`); // chown(f, -1, SUPP) too
    expect((await fsp.stat(f)).gid).toBe(SUPP);
    const refused = await asMember(`chgrp ${ALIEN} ${f}`);
    expect(refused.stderr).toMatch(/Operation not permitted/);
    // chmod g+s keeps S_ISGID for a member of the file's group, clears it for anyone else.
    await ok(`chmod 2755 ${f}`);
    expect((await fsp.stat(f)).mode & 0o7777).toBe(0o2755);
    await fsp.chown(f, OTHER_UID, ALIEN);
    await ok(`chmod 2755 ${f}`);
    expect((await fsp.stat(f)).mode & 0o7777).toBe(0o755);
    // Group permission bits apply through a supplementary group.
    const g = join(d, 'group-readable');
    await fsp.writeFile(g, 'for the group');
    await fsp.chown(g, 0, SUPP);
    await fsp.chmod(g, 0o640);
    await ok(`test "$(cat ${g})" = 'for the group' && echo more >> ${g} 2>/dev/null; test $? -ne 0`);
    const shared = join(d, 'shared');
    await fsp.mkdir(shared);
    await fsp.chown(shared, 0, SUPP);
    await fsp.chmod(shared, 0o2770);
    // A file created with S_ISGID in a setgid directory of a group the creator is in keeps it.
    await ok(`python3 -c 'import os; os.umask(0); os.close(os.open("${join(shared, 'sg')}", os.O_CREAT | os.O_WRONLY, 0o2755)); os.mkdir("${join(shared, 'sub')}")'`);
    const sg = await fsp.stat(join(shared, 'sg'));
    expect([sg.gid, sg.mode & 0o7777]).toEqual([SUPP, 0o2755]);
    const sub = await fsp.stat(join(shared, 'sub'));
    expect([sub.gid, sub.mode & 0o2000]).toEqual([SUPP, 0o2000]);
    // A non-member loses S_ISGID on a group-executable file there, and keeps it without group x (Linux).
    await fsp.chmod(shared, 0o2777);
    await shOk(`python3 -c 'import os; os.umask(0); [os.close(os.open("${shared}/" + n, os.O_CREAT | os.O_WRONLY, m)) for n, m in (("x", 0o2755), ("nx", 0o2644))]'`, { uid: OTHER_UID, gid: OTHER_GID });
    expect((await fsp.stat(join(shared, 'x'))).mode & 0o7777).toBe(0o755);
    expect((await fsp.stat(join(shared, 'nx'))).mode & 0o7777).toBe(0o2644);
  });

  it('times past 2^31 and 2^32 seconds are kept, not clamped', async () => {
    await fresh();
    const f = join(d, 'future');
    await fsp.writeFile(f, 'x');
    // fuse-native gets one value for both times (see separateTimes): the same one is set for both there.
    for (const [a, m] of [[2 ** 31, 2 ** 31 + 5], [2 ** 32 + 7, 2 ** 33], [8_000_000_000, 9_000_000_000]] as const) {
      const mtime = caps.separateTimes ? m : a;
      await shOk(`python3 -c 'import os, sys; os.utime(sys.argv[1], ns=(${a}000000000, ${mtime}000000000))' ${f}`);
      const [at, mt] = (await shOk(`stat -c '%X %Y' ${f}`)).trim().split(' ').map(Number);
      expect([at, mt]).toEqual([a, mtime]);
    }
  });

  it('O_APPEND writes at the end; O_EXCL creates only once', async () => {
    await fresh();
    const f = join(d, 'log');
    await fsp.writeFile(f, 'start\n');
    const a = await fsp.open(f, 'a');
    const b = await fsp.open(f, 'a');
    await a.write('one\n');
    await b.write('two\n');
    await a.write('three\n');
    await a.close();
    await b.close();
    expect(await fsp.readFile(f, 'utf8')).toBe('start\none\ntwo\nthree\n');
    const x = await fsp.open(join(d, 'excl'), 'wx');
    await x.close();
    expect(await errCode(fsp.open(join(d, 'excl'), 'wx'))).toBe('EEXIST');
  });

  it('truncate and ftruncate grow with zeros and shrink', async () => {
    await fresh();
    const f = join(d, 'tr');
    await fsp.writeFile(f, 'abcdefghij');
    await fsp.truncate(f, 4);
    expect(await fsp.readFile(f, 'utf8')).toBe('abcd');
    await fsp.truncate(f, 8);
    expect(await fsp.readFile(f)).toEqual(Buffer.from('abcd\0\0\0\0'));
    const fh = await fsp.open(f, 'r+');
    await fh.truncate(2);
    await fh.write('Z', 6);
    await fh.close();
    expect(await fsp.readFile(f)).toEqual(Buffer.from('ab\0\0\0\0Z'));
    // Across a block boundary (blocks are 64 KiB): shrink into the middle of a block, regrow.
    const big = Buffer.alloc(200_000, 7);
    await fsp.writeFile(f, big);
    await fsp.truncate(f, 70_000);
    await fsp.truncate(f, 150_000);
    const back = await fsp.readFile(f);
    expect(back.length).toBe(150_000);
    expect(back.subarray(0, 70_000).every((b) => b === 7)).toBe(true);
    expect(back.subarray(70_000).every((b) => b === 0)).toBe(true);
  });

  it('mkfifo, mknod and sockets', async () => {
    await fresh();
    await shOk(`mkfifo ${join(d, 'fifo')} && mknod ${join(d, 'null')} c 1 3`);
    const types = (await shOk(`stat -c '%n %F %t:%T' ${join(d, 'fifo')} ${join(d, 'null')}`)).trim().split('\n');
    expect(types[0]).toMatch(/fifo 0:0$/);
    expect(types[1]).toMatch(/character special file 1:3$/);
    // A FIFO in the mount works between two processes (the kernel implements the pipe).
    expect((await shOk(`cd ${d} && (echo through-fifo > fifo &) && cat fifo`)).trim()).toBe('through-fifo');
    const sock = join(d, 'sock');
    const server = createServer();
    await new Promise<void>((ok) => server.listen(sock, ok));
    expect((await fsp.lstat(sock)).isSocket()).toBe(true);
    await new Promise((ok) => server.close(ok));
  });

  it.skipIf(!haveTool('setfattr'))('user.* xattrs: set, get, list, replace, remove', async () => {
    await fresh();
    const f = join(d, 'x');
    await fsp.writeFile(f, '');
    await shOk(`setfattr -n user.color -v blue ${f} && setfattr -n user.empty ${f} && setfattr -n user.bin -v 0x00ff10 ${f}`);
    const dump = await shOk(`getfattr -d -e hex ${f}`);
    expect(dump).toContain('user.color=0x626c7565');
    expect(dump).toContain('user.bin=0x00ff10');
    expect(dump).toContain('user.empty');
    await shOk(`setfattr -n user.color -v red ${f}`);
    expect((await shOk(`getfattr --only-values -n user.color ${f}`))).toBe('red');
    await shOk(`setfattr -x user.color ${f}`);
    const missing = await sh(`getfattr -n user.color ${f}`);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/No such attribute/);
    const big = 'v'.repeat(4000);
    await shOk(`setfattr -n user.big -v ${big} ${f}`);
    expect(await shOk(`getfattr --only-values -n user.big ${f}`)).toBe(big);
    // Directories carry xattrs too.
    await shOk(`setfattr -n user.dir -v yes ${d} && getfattr -n user.dir ${d}`);
  });

  it('statfs for df; st_blocks in 512-byte units', async () => {
    await fresh();
    const df = (await shOk(`df -B1 --output=size,avail,itotal ${m.dir} | tail -1`)).trim().split(/\s+/).map(Number);
    expect(df[0]).toBeGreaterThan(0);
    expect(df[1]).toBeGreaterThan(0);
    expect(df[2]).toBeGreaterThan(0);
    expect((await shOk(`stat -f -c '%l' ${m.dir}`)).trim()).toBe('255');
    const f = join(d, 'mib');
    await fsp.writeFile(f, Buffer.alloc(1024 * 1024, 1));
    const [blocks, unit] = (await shOk(`stat -c '%b %B' ${f}`)).trim().split(' ').map(Number);
    expect(unit).toBe(512);
    expect(blocks).toBeGreaterThanOrEqual(2048);
    expect(blocks).toBeLessThan(2048 + 256);
    await fsp.writeFile(join(d, 'small'), 'abc');
    const small = Number((await shOk(`stat -c '%b' ${join(d, 'small')}`)).trim());
    expect(small).toBeGreaterThanOrEqual(1);
    expect(small).toBeLessThanOrEqual(8);
  });

  it('another uid gets EACCES on a root-owned 0600 file and cannot write a root-owned 0755 directory', async () => {
    await fresh();
    const secret = join(d, 'secret');
    await fsp.writeFile(secret, 'top secret');
    await fsp.chmod(secret, 0o600);
    await fsp.writeFile(join(d, 'public'), 'hello');
    await fsp.chmod(join(d, 'public'), 0o644);
    let r = await sh(`cat ${secret}`, { uid: OTHER_UID });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Permission denied/);
    r = await sh(`cat ${join(d, 'public')}`, { uid: OTHER_UID });
    expect(r.stdout).toBe('hello');
    const locked = join(d, 'locked');
    await fsp.mkdir(locked, 0o755);
    r = await sh(`touch ${join(locked, 'nope')}`, { uid: OTHER_UID });
    expect(r.stderr).toMatch(/Permission denied/);
    r = await sh(`echo x >> ${join(d, 'public')}`, { uid: OTHER_UID });
    expect(r.stderr).toMatch(/Permission denied/);
    // Sticky /tmp-like directory: others may create but not remove root's files.
    const sticky = join(d, 'sticky');
    await fsp.mkdir(sticky);
    await fsp.chmod(sticky, 0o1777);
    await fsp.writeFile(join(sticky, 'roots'), 'r');
    await shOk(`echo mine > ${join(sticky, 'theirs')}`, { uid: OTHER_UID });
    r = await sh(`rm -f ${join(sticky, 'roots')}`, { uid: OTHER_UID });
    expect(r.stderr).toMatch(/Operation not permitted/);
  });

  it.skipIf(!caps.callerOwnership)('files are owned by the uid/gid that created them (fuse-native cannot see the caller)', async () => {
    await fresh();
    await shOk(`touch ${join(d, 'by-other')} && mkdir ${join(d, 'dir-by-other')}`, { uid: OTHER_UID });
    for (const p of ['by-other', 'dir-by-other']) {
      const st = await fsp.stat(join(d, p));
      expect([st.uid, st.gid]).toEqual([OTHER_UID, OTHER_GID]);
    }
  });
});
