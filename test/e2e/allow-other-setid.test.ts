// Issue 13 (smaller findings): on fuse-native, which cannot see who calls (libfuse 2's context is
// not bound: every request runs as the mounting user), a mount with --allow-other lets other users
// create files that the chain records as the mounting user's. Those must never carry setuid or
// setgid: a root-owned setuid file made by anyone would be a privilege escalation wherever the
// chain is mounted or copied out. The bits are stripped on create, mknod, mkdir and chmod there.
// The kernel transport sees the caller and needs none of this (its files belong to their creator).
import { afterAll, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OTHER_GID, OTHER_UID, availableTransports, mountForTest, shOk, unmountAll } from './harness.js';

afterAll(async () => { await unmountAll(); });

const modeOf = (p: string) => (statSync(p).mode & 0o7777).toString(8).padStart(4, '0');
const asOther = { uid: OTHER_UID, gid: OTHER_GID };
// perl's sysopen/mkdir pass the mode as given (less the umask), setuid and setgid bits included.
const perlCreate = (p: string, mode: string) => `perl -MFcntl -e 'sysopen(my $f, $ARGV[0], O_CREAT|O_WRONLY, ${mode}) or die "$!"; print $f "#!/bin/sh\\nid\\n"; close $f' ${p}`;
const perlTouch = (p: string, mode: string) => `perl -MFcntl -e 'sysopen(my $f, $ARGV[0], O_CREAT|O_WRONLY, ${mode}) or die "$!"; close $f' ${p}`;

describe.runIf(availableTransports().includes('fuse-native') && process.getuid?.() === 0)('fuse-native --allow-other: no setuid/setgid files by others', () => {
  it('a file another user creates with mode 6755 is owned by the mounting user but has no setuid/setgid bit', async () => {
    const m = await mountForTest({ transport: 'fuse-native', allowOther: true });
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    const line = mountinfo.split('\n').find((l) => l.split(' ')[4] === m.dir);
    expect(line).toBeDefined();
    await shOk(`chmod 1777 ${m.dir}`);
    await shOk(`umask 022; ${perlCreate(join(m.dir, 'written'), '06755')} && ${perlTouch(join(m.dir, 'empty'), '06755')} && perl -e 'mkdir($ARGV[0], 07775) or die "$!"' ${join(m.dir, 'dir')}`, asOther);
    try {
      const st = statSync(join(m.dir, 'written'));
      expect(st.uid).toBe(0); // fuse-native cannot tell who created it
      expect(modeOf(join(m.dir, 'written'))).toBe('0755');
      expect(modeOf(join(m.dir, 'empty'))).toBe('0755');
      expect(Number.parseInt(modeOf(join(m.dir, 'dir')), 8) & 0o4000).toBe(0);
      // The mounting user's own chmod cannot be told apart from another user's: stripped too.
      await shOk(`chmod 4755 ${join(m.dir, 'written')} && chmod g+s ${join(m.dir, 'empty')} && chmod 6775 ${join(m.dir, 'dir')}`);
      expect(modeOf(join(m.dir, 'written'))).toBe('0755');
      expect(modeOf(join(m.dir, 'empty'))).toBe('0755');
      // setgid on a directory only passes its group on (nothing to gain here): kept; setuid is not.
      expect(modeOf(join(m.dir, 'dir'))).toBe('2775');
      // The mount is nosuid,nodev as well (libfuse's default): this is about what the chain keeps.
      expect(line).toMatch(/ rw,nosuid,nodev[, ]/);
      expect((await shOk(`${join(m.dir, 'written')}`, asOther)).trim()).toMatch(new RegExp(`^uid=${OTHER_UID}\\b`));
    } finally {
      await m.unmount();
    }
  });

  it('without --allow-other the mounting user keeps setuid and setgid (only they can reach the mount)', async () => {
    const m = await mountForTest({ transport: 'fuse-native' });
    try {
      await shOk(`umask 022; ${perlTouch(join(m.dir, 'f'), '06755')} && chmod 4711 ${join(m.dir, 'f')} && touch ${join(m.dir, 'g')} && chmod 2755 ${join(m.dir, 'g')}`);
      expect(modeOf(join(m.dir, 'f'))).toBe('4711');
      expect(modeOf(join(m.dir, 'g'))).toBe('2755');
    } finally {
      await m.unmount();
    }
  });
});
