import type { Ino } from '../core/api.js';

/**
 * DAO keys of filesystem records. Inodes and blocks get deterministic keys (kind byte, inode
 * number, block index) so a read needs no index beyond the view's own: getBlock(ino, i) is one
 * keyed load. They reveal only counts and sizes, which a block store cannot hide anyway; page
 * deltas (block-delta.ts) add which blocks were rewritten in part and in how many pages (their
 * payload sizes), the granularity a page-level store shows anyway. Dentries
 * use the view's keyed-name DAO keys (HMAC of the name under the directory's key), so the index
 * never holds a plaintext name.
 */

const KIND_SUPER = '00';
const KIND_INODE = '01';
const KIND_BLOCK = '02';
const KIND_GROUP_ROOT = '03';
const KIND_DELTA = '04';
const KIND_RECENT = '05';

/** Collections under an inode DAO: a directory's entries, a file's blocks, their page deltas. */
export const DENTRIES = 0;
export const BLOCKS = 1;
export const DELTAS = 3;
/** Collection under the group root (group chains): the inode and inode-counter DAOs. */
export const INODES = 2;

const hex = (n: number, digits: number): string => n.toString(16).padStart(digits, '0');

export const SUPERBLOCK_KEY = KIND_SUPER + '0'.repeat(30);

/**
 * The group root of a group chain: a DAO the inodes hang under (collection INODES) whose write
 * ACL admits the group's contributors and up. Inodes of other chains are root-level DAOs, and a
 * new root-level DAO needs a root key of the genesis, which in a group chain only owners and
 * delegates hold: without it a contributor could not create a file.
 */
export const GROUP_ROOT_KEY = KIND_GROUP_ROOT + '0'.repeat(30);

export function inodeKey(ino: Ino): string {
  return KIND_INODE + hex(ino, 14) + '0'.repeat(16);
}

export function blockKey(ino: Ino, index: number): string {
  return KIND_BLOCK + hex(ino, 14) + hex(index, 16);
}

/** The page delta of block `index` (block-delta.ts): same layout as its block's key, its own kind. */
export function deltaKey(ino: Ino, index: number): string {
  return KIND_DELTA + hex(ino, 14) + hex(index, 16);
}

/** The recent page delta of block `index`, read over its delta (block-delta.ts). */
export function recentDeltaKey(ino: Ino, index: number): string {
  return KIND_RECENT + hex(ino, 14) + hex(index, 16);
}

/** The block index of a block (or delta) DAO key (children of an inode in the BLOCKS collection). */
export function blockIndexOf(key: string): number {
  return parseInt(key.slice(16), 16);
}
