import { randomInt } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Ino } from '../core/api.js';

/**
 * Inode numbers of a chain shared by several machines. Every machine allocates from its own
 * range — machine number M (1 .. 2^20-1) owns [M * 2^32, (M + 1) * 2^32) — and keeps its counter
 * in its own superblock DAO, so two machines never hand out the same number and never write the
 * same counter (one shared counter would make every pair of concurrent creates a conflict).
 * The root (1) is the only number outside the ranges.
 *
 * A machine picks M at random the first time it mounts a chain and keeps it beside its replica
 * (machine.json); a number whose superblock already exists in the chain is someone else's and is
 * not taken. Two machines that pick the same number while neither has committed yet would share a
 * range: one chance in about a million per pair, accepted (see the README).
 *
 * The kernel transport passes all 64 bits as st_ino; fuse-native (libfuse 2 through fuse-native's
 * 32-bit stat array) shows only the low 32 bits.
 */
export const MACHINE_BITS = 20;
export const RANGE = 2 ** 32;

export interface InoSpace {
  machine: number;
  /** The machine's superblock DAO key. */
  key: string;
  /** First inode number of its range. */
  first: Ino;
}

export function superblockKeyOf(machine: number): string {
  return '00' + machine.toString(16).padStart(30, '0');
}

export function inoSpaceOf(machine: number): InoSpace {
  return { machine, key: superblockKeyOf(machine), first: machine * RANGE };
}

/** The machine whose range `ino` is in (0: the root, or a local chain's numbering). */
export function machineOfIno(ino: Ino): number {
  return Math.floor(ino / RANGE);
}

/**
 * This machine's number for the chain whose local state is in `dir` (null: a --temp mount, a
 * fresh number each time). `taken(key)`: the chain already has that superblock.
 */
export async function loadInoSpace(dir: string | null, taken: (key: string) => boolean): Promise<InoSpace> {
  const file = dir ? path.join(dir, 'machine.json') : null;
  if (file) {
    try {
      const j = JSON.parse(await fsp.readFile(file, 'utf8')) as { machine?: unknown };
      if (typeof j.machine === 'number' && Number.isInteger(j.machine) && j.machine > 0 && j.machine < 2 ** MACHINE_BITS) return inoSpaceOf(j.machine);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  let machine = 0;
  for (let i = 0; i < 64; i++) {
    const m = randomInt(1, 2 ** MACHINE_BITS);
    if (!taken(superblockKeyOf(m))) { machine = m; break; }
  }
  if (machine === 0) throw new Error('no free machine number in this chain (64 random picks were taken)');
  if (file) {
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await fsp.writeFile(`${file}.tmp`, JSON.stringify({ machine }), { mode: 0o600 });
    await fsp.rename(`${file}.tmp`, file);
  }
  return inoSpaceOf(machine);
}
