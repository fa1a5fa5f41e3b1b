// The group root of a group chain (`tcp://host/<group>/<db>`): the DAO its inodes hang under.
//
// Inodes of other chains are root-level DAOs. A new root-level DAO needs a root key of the genesis,
// and a group chain is rooted at the group's owner or delegate keys (the auth policy), so a
// contributor could edit the files whose write ACL admits them but never create one. Under the
// group root — a root-level DAO an owner or delegate writes once, whose write ACL admits the
// group's contributors, delegates and owners — a contributor's new inodes (and its machine's inode
// counter) are children of a node their key may write under. Directories inherit that ACL; files
// set their own by mode bits (ChainStore.aclFor). Its read ACL inherits the genesis root data key
// (the group's observers), so what inherits from it stays readable by every member.
import { NoWriteAuthority, type View } from '../../src/view/index.js';
import type { KeyId, ParentLink } from '../../src/chain/index.js';
import { GROUP_ROOT_KEY, INODES, inodeKey } from '../chain-store/keys.js';
import { ROOT_INO } from '../core/inode-table.js';

/** Where inodes hang in a chain that has a group root. */
export const UNDER_GROUP_ROOT: ParentLink = Object.freeze({ key: GROUP_ROOT_KEY, collection: INODES });

/** Payload of the group root: a format byte (it holds nothing else; the ACL is the point). */
const GROUP_ROOT_RECORD = Buffer.from([1]);

/** The group's members hold no owner or delegate key, and the chain has no group root yet. */
/** Writes the group root admitting `writers` (a new version when it exists), durably. */
async function writeGroupRoot(view: View, writers: KeyId[]): Promise<void> {
  const dio = view.begin('durable');
  try {
    dio.store(GROUP_ROOT_RECORD, { key: GROUP_ROOT_KEY, parent: null, type: 'group-root', write: { mode: 'any', keys: writers } });
    await dio.commit('durable');
  } catch (e) {
    dio.cancel();
    throw e;
  }
}

export class GroupRootMissing extends Error {
  override name = 'GroupRootMissing';
}

/**
 * The parent of a group chain's inodes: the group root if the chain has one; for a chain with no
 * files yet, a new group root admitting `writers` (needs an owner or delegate key, which signs
 * it); null for a group chain whose files were made before group roots existed (root-level
 * inodes: only owners and delegates create files there). `onWarning` hears about the last case.
 */
export async function groupRootOf(view: View, writers: KeyId[], o: { readOnly: boolean; onWarning?: (m: string) => void }): Promise<ParentLink | null> {
  if (view.exists(GROUP_ROOT_KEY)) return UNDER_GROUP_ROOT;
  if (view.exists(inodeKey(ROOT_INO))) {
    o.onWarning?.('this group chain has files made before group roots: only its owners and delegates can create files in it');
    return null;
  }
  if (o.readOnly) throw new GroupRootMissing('the group chain has no files yet: an owner or delegate of the group mounts it writable first');
  try {
    await writeGroupRoot(view, writers);
  } catch (e) {
    if (e instanceof NoWriteAuthority || (e as Error).name === 'NoWriteAuthority') {
      throw new GroupRootMissing('the group chain has no files yet and this token holds no owner or delegate key of the group: an owner or delegate mounts it first');
    }
    throw e;
  }
  return UNDER_GROUP_ROOT;
}

/**
 * After a member's removal (new key generations), the group root admits the new writer keys
 * instead of the old ones, so the removed member's old contributor key no longer creates files
 * or changes directories (which inherit its ACL). Files keep the ACLs they were written with.
 * Only a mount that holds an owner or delegate key does this (`manager`); a no-op when the
 * group root already admits exactly `writers` or the chain has none. Returns whether it changed.
 */
export async function renewGroupRoot(view: View, writers: KeyId[], manager: boolean): Promise<boolean> {
  if (!manager) return false;
  const node = view.node(GROUP_ROOT_KEY);
  if (!node || node.deleted) return false;
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();
  if (node.write.mode === 'any' && same(node.write.keys, writers)) return false;
  await writeGroupRoot(view, writers);
  return true;
}
