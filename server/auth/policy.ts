// `--policy auth`: who may create which chain, decided when the genesis arrives from what the
// auth service says about the chain's name (chain-roots.ts holds the rule; the chain then pins
// its root keys in the genesis for good). The service is in this process (`authPolicy`) or a
// separate `atedb auth` asked over the network (`remoteAuthPolicy`, remote-policy.ts).
import type { ChainRoots } from '../../src/net/auth-protocol.js';
import type { CreationPolicy } from '../chain-host.js';
import { checkGenesisRoots, genesisRootKeys } from './chain-roots.js';
import type { AuthService } from './service.js';

/** The auth policy over any source of chain roots (a source that cannot answer throws: the
 *  creation is then refused as unavailable by the chain store, never allowed). */
export function rootsPolicy(name: string, rootsOf: (chain: string) => ChainRoots | Promise<ChainRoots>): CreationPolicy {
  return {
    name,
    async mayCreate(chain: string, _client: string | null, genesis?: Buffer): Promise<string | null> {
      // The genesis is read first: one that names no root keys costs the service no question.
      const roots = genesisRootKeys(genesis);
      if (typeof roots === 'string') return roots;
      return checkGenesisRoots(await rootsOf(chain), roots);
    },
  };
}

export function authPolicy(service: AuthService): CreationPolicy {
  return rootsPolicy('auth', (chain) => service.chainRoots(chain));
}

/** `atedb auth`: the service alone, hosting no chains. */
export const NO_CHAINS_POLICY: CreationPolicy = { name: 'auth-only', mayCreate: () => 'this server runs the auth service only; it hosts no chains' };
