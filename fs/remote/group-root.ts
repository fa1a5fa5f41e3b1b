// The group root of a group chain (`tcp://host/<group>/<db>`): the DAO its inodes hang under.
//
// Inodes of other chains are root-level DAOs. A new root-level DAO needs a root key of the genesis,
// and a group chain is rooted at the group's owner or delegate keys (the auth policy), so a
// contributor could edit the files whose write ACL admits them but never create one. Under the
// group root — a root-level DAO an owner or delegate writes — a contributor's new inodes (and its
// machine's inode counter) are children of a node their key may create under.
//
// The group root carries two ACLs (src/chain/authority.ts): its write ACL admits only the group's
// owner and delegate keys (who may change the group root itself: its ACLs, its parent, a
// tombstone), its children ACL admits contributors, delegates and owners (who may create entries
// under it; what inheriting descendants get). With one ACL for both, a contributor could rewrite
// the group root — drop everyone else's keys from it, lock the group out of creating files, take
// it over — and every validator would have accepted it. Directories inherit the children ACL;
// files set their own by mode bits (ChainStore.aclFor). Its read ACL inherits the genesis root
// data key (the group's observers), so what inherits from it stays readable by every member.
import { NoWriteAuthority, type View } from '../../src/view/index.js';
import type { KeyId, ParentLink, WriteAcl } from '../../src/chain/index.js';
import { GROUP_ROOT_KEY, INODES, inodeKey } from '../chain-store/keys.js';
import { ROOT_INO } from '../core/inode-table.js';

/** Where inodes hang in a chain that has a group root. */
export const UNDER_GROUP_ROOT: ParentLink = Object.freeze({ key: GROUP_ROOT_KEY, collection: INODES });

/** Whether `view`'s keyring holds one of `managers` (an owner or delegate key of the group). */
export function holdsManagerKey(view: View, managers: readonly KeyId[]): boolean {
  return view.keyring.signingKeys().some((k) => managers.includes(k.id));
}

/** Payload of the group root: a format byte (it holds nothing else; the ACL is the point). */
const GROUP_ROOT_RECORD = Buffer.from([1]);

/** Who may change the group root (`managers`: owner and delegate keys) and who may create under it (`writers`). */
export interface GroupRootKeys {
  writers: KeyId[];
  managers: KeyId[];
}

/** Writes the group root with `keys` (a new version when it exists), durably. */
async function writeGroupRoot(view: View, keys: GroupRootKeys): Promise<void> {
  const dio = view.begin('durable');
  try {
    dio.store(GROUP_ROOT_RECORD, {
      key: GROUP_ROOT_KEY, parent: null, type: 'group-root',
      write: { mode: 'any', keys: keys.managers }, children: { mode: 'any', keys: keys.writers },
    });
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
 * The parent of a group chain's inodes: the group root if the chain has one (an owner's or
 * delegate's writable mount brings it to `keys` first: see renewGroupRoot); for a chain with no
 * files yet, a new group root with `keys` (needs an owner or delegate key, which signs it); null
 * for a group chain whose files were made before group roots existed (root-level inodes: only
 * owners and delegates create files there). `onWarning` hears about the last case and about a
 * group root that could not be renewed.
 */
export async function groupRootOf(view: View, keys: GroupRootKeys, o: { readOnly: boolean; onWarning?: (m: string) => void }): Promise<ParentLink | null> {
  if (view.exists(GROUP_ROOT_KEY)) {
    if (!o.readOnly) {
      await renewGroupRoot(view, keys, holdsManagerKey(view, keys.managers)).catch((e: Error) => {
        o.onWarning?.(`could not bring the group root to the group's current keys: ${e.message}`);
      });
    }
    return UNDER_GROUP_ROOT;
  }
  if (view.exists(inodeKey(ROOT_INO))) {
    o.onWarning?.('this group chain has files made before group roots: only its owners and delegates can create files in it');
    return null;
  }
  if (o.readOnly) throw new GroupRootMissing('the group chain has no files yet: an owner or delegate of the group mounts it writable first');
  try {
    await writeGroupRoot(view, keys);
  } catch (e) {
    if (e instanceof NoWriteAuthority || (e as Error).name === 'NoWriteAuthority') {
      throw new GroupRootMissing('the group chain has no files yet and this token holds no owner or delegate key of the group: an owner or delegate mounts it first');
    }
    throw e;
  }
  return UNDER_GROUP_ROOT;
}

/**
 * Keeps the group root on the group's current keys: after a member's removal (new key
 * generations) its children ACL admits the new writer keys instead of the old ones, so the
 * removed member's old contributor key no longer creates files or changes directories (which
 * inherit it), and its write ACL the current owner and delegate keys. A group root written before
 * the two ACLs were split (one write ACL admitting every writer role, no children ACL) is split
 * here too. Files keep the ACLs they were written with. Only a mount that holds an owner or
 * delegate key does this (`manager`); a no-op when the group root already has exactly these
 * keys or the chain has none. Returns whether it changed.
 */
export async function renewGroupRoot(view: View, keys: GroupRootKeys, manager: boolean): Promise<boolean> {
  if (!manager || keys.managers.length === 0) return false;
  const node = view.node(GROUP_ROOT_KEY);
  if (!node || node.deleted) return false;
  const same = (a: WriteAcl | undefined, b: readonly string[]) => a?.mode === 'any' && a.keys.length === b.length && [...a.keys].sort().join() === [...b].sort().join();
  if (same(node.write, keys.managers) && same(node.children, keys.writers)) return false;
  await writeGroupRoot(view, keys);
  return true;
}
