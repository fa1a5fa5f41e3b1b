// The auth service as atedb runs it: the service, its per-connection endpoint, its chain policy.
import type { Connection, ServerSession } from '../../src/net/index.js';
import { AuthEndpoint } from './endpoint.js';
import type { AuthService } from './service.js';

export { AuthService, AuthFailure, type AuthServiceOptions, type CallerContext } from './service.js';
export { authPolicy, rootsPolicy, NO_CHAINS_POLICY } from './policy.js';
export { AuthServiceUnavailable, RemoteAuthService, remoteAuthPolicy, type RemoteAuthOptions } from './remote-policy.js';
export { chainRootsOf, checkGenesisRoots, genesisRootKeys } from './chain-roots.js';
export { LoginLimiter, DEFAULT_LIMITS, type LimitOptions } from './rate-limit.js';

export function authHandler(service: AuthService, log: (line: string) => void): { connect(s: ServerSession, c: Connection): AuthEndpoint } {
  return { connect: (s, c) => new AuthEndpoint(service, c, s, log) };
}
