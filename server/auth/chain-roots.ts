// The one rule of `--policy auth`, whichever service answers (in-process or a remote `atedb auth`):
//   <domain>/<local>/<db>  a personal chain: its one root key is that user's signing key;
//   <group>/<db>           a group chain: its root keys are keys of the group's owner or delegate
//                          role, current generation; holding one proves the creator manages the
//                          group now (a delegate removed since holds only the rotated-out key).
// `chainRootsOf` is the service's half (which keys a name may be rooted at, from its records);
// `checkGenesisRoots` is the node's half (does this genesis name them). The genesis must also be
// signed by its root keys (the chain layer checks that), so nobody creates a chain rooted at keys
// they do not hold.
import { decodeCommit } from '../../src/chain/index.js';
import { type ChainRoots, normalizeEmail } from '../../src/net/auth-protocol.js';
import type { GroupRecord, RoleGen, UserRecord } from './store.js';

/** The keys a chain of this name may be rooted at, from the service's users and groups. */
export function chainRootsOf(
  chain: string,
  records: { user(email: string): UserRecord | undefined; group(name: string): GroupRecord | undefined },
): ChainRoots {
  const parts = chain.split('/');
  if (parts.length === 3) {
    const email = normalizeEmail(`${parts[1]}@${parts[0]}`);
    const u = email ? records.user(email) : undefined;
    if (!email || !u) return { kind: 'refused', chain, reason: `'${chain}' is a personal chain of ${parts[1]}@${parts[0]}, who is not a user of this service` };
    return { kind: 'personal', chain, email, keys: [u.signPk] };
  }
  if (parts.length === 2) {
    const g = records.group(parts[0]!);
    if (!g) return { kind: 'refused', chain, reason: `'${chain}' is a chain of group '${parts[0]}', which does not exist` };
    const current = (gens: readonly RoleGen[]) => (gens.length ? [gens.reduce((a, b) => (b.gen > a.gen ? b : a))] : []);
    return { kind: 'group', chain, group: g.name, keys: [...current(g.roles.owner), ...current(g.roles.delegate)].map((x) => x.signPk) };
  }
  return { kind: 'refused', chain, reason: `'${chain}': under the auth policy chains are <domain>/<user>/<db> (personal) or <group>/<db>` };
}

/** The root keys a genesis names, or why they cannot be read. */
export function genesisRootKeys(genesis: Buffer | undefined): Buffer[] | string {
  if (!genesis) return 'the auth policy needs the genesis to check its root keys';
  try {
    const g = decodeCommit(genesis).header.genesis;
    if (!g) return 'not a genesis';
    return g.rootKeys.map((k) => Buffer.from(k));
  } catch (e) {
    return `the genesis does not decode: ${(e as Error).message}`;
  }
}

/** null when a genesis rooted at `roots` may create the chain `allowed` describes; else the refusal. */
export function checkGenesisRoots(allowed: ChainRoots, roots: Buffer[]): string | null {
  const { chain } = allowed;
  switch (allowed.kind) {
    case 'refused':
      return allowed.reason;
    case 'personal':
      if (roots.length !== 1 || allowed.keys.length !== 1 || !allowed.keys[0]!.equals(roots[0]!)) return `'${chain}' must be rooted at ${allowed.email}'s signing key`;
      return null;
    case 'group':
      if (roots.length === 0 || !roots.every((r) => allowed.keys.some((a) => a.equals(r)))) {
        return `'${chain}' must be rooted at the owner or delegate key of group '${allowed.group}' (the current generation: \`atefs token gather ${allowed.group}\` fetches it)`;
      }
      return null;
  }
}
