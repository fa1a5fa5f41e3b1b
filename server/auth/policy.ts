// `--policy auth`: who may create which chain, decided by the auth service when the genesis
// arrives (the chain then pins its root keys in the genesis for good):
//   <domain>/<local>/<db>  a personal chain: its one root key is that user's signing key;
//   <group>/<db>           a group chain: its root keys are keys of the group's owner or delegate
//                          role (any generation); holding one proves the creator manages the group.
// The genesis must be signed by its root keys (the chain layer checks that), so nobody creates a
// chain rooted at keys they do not hold. Any other name is refused.
import { decodeCommit } from '../../src/chain/index.js';
import { normalizeEmail } from '../../src/net/auth-protocol.js';
import type { CreationPolicy } from '../chain-host.js';
import type { AuthService } from './service.js';

export function authPolicy(service: AuthService): CreationPolicy {
  return {
    name: 'auth',
    mayCreate(chain: string, _client: string | null, genesis?: Buffer): string | null {
      if (!genesis) return 'the auth policy needs the genesis to check its root keys';
      let roots: Buffer[];
      try {
        const g = decodeCommit(genesis).header.genesis;
        if (!g) return 'not a genesis';
        roots = g.rootKeys.map((k) => Buffer.from(k));
      } catch (e) {
        return `the genesis does not decode: ${(e as Error).message}`;
      }
      const parts = chain.split('/');
      if (parts.length === 3) {
        const email = normalizeEmail(`${parts[1]}@${parts[0]}`);
        const u = email ? service.userRecord(email) : undefined;
        if (!u) return `'${chain}' is a personal chain of ${parts[1]}@${parts[0]}, who is not a user of this service`;
        if (roots.length !== 1 || !roots[0]!.equals(u.signPk)) return `'${chain}' must be rooted at ${email}'s signing key`;
        return null;
      }
      if (parts.length === 2) {
        const g = service.groupRecord(parts[0]!);
        if (!g) return `'${chain}' is a chain of group '${parts[0]}', which does not exist`;
        const allowed = [...g.roles.owner, ...g.roles.delegate].map((x) => x.signPk);
        if (roots.length === 0 || !roots.every((r) => allowed.some((a) => a.equals(r)))) {
          return `'${chain}' must be rooted at the owner or delegate key of group '${parts[0]}'`;
        }
        return null;
      }
      return `'${chain}': under the auth policy chains are <domain>/<user>/<db> (personal) or <group>/<db>`;
    },
  };
}

/** `atedb auth`: the service alone, hosting no chains. */
export const NO_CHAINS_POLICY: CreationPolicy = { name: 'auth-only', mayCreate: () => 'this server runs the auth service only; it hosts no chains' };
