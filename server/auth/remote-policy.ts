// `--policy auth --auth-url tcp://host[:port]`: the auth policy of a node whose auth service is a
// separate `atedb auth`. Each genesis that arrives asks the service ('chain-roots') over a fresh
// connection with the usual handshake, which pins the service's host key (--auth-server-key, or
// trust on first use in the node's own known_hosts file), so the answer is the service's. Nothing
// is cached: a manager removed from a group a moment ago cannot create chains with the old answer.
// A service that does not answer (down, slow, another key) refuses the creation as unavailable,
// which the client may retry; it never lets one through.
import { AuthClient, type AuthConnectOptions, parseAuthUrl } from '../../src/net/auth-client.js';
import { type ChainRoots, decodeChainRoots } from '../../src/net/auth-protocol.js';
import type { CreationPolicy } from '../chain-host.js';
import { rootsPolicy } from './policy.js';

/** The remote auth service could not answer. */
export class AuthServiceUnavailable extends Error {
  override name = 'AuthServiceUnavailable';
}

export interface RemoteAuthOptions {
  /** tcp://host[:port] of the `atedb auth` (or `atedb solo`) running the service. */
  url: string;
  /** The known_hosts file the service's host key is pinned in (trust on first use). */
  knownHosts: string;
  /** Demand this host key fingerprint (SHA256:...) instead of trusting the first one seen. */
  serverKey?: string;
  /** ms for the connection and for the answer (default 5000). */
  timeoutMs?: number;
  /** Told when the host key is pinned on first contact. */
  onNewHost?: (address: string, fingerprint: string) => void;
}

export class RemoteAuthService {
  private readonly timeoutMs: number;

  constructor(private readonly o: RemoteAuthOptions) {
    parseAuthUrl(o.url);
    this.timeoutMs = o.timeoutMs ?? 5000;
  }

  get url(): string {
    return this.o.url;
  }

  /** Runs `fn` on a fresh connection within the timeout; any failure is AuthServiceUnavailable. */
  private async ask<T>(what: string, fn: (c: AuthClient) => Promise<T>): Promise<T> {
    const co: AuthConnectOptions = {
      knownHosts: this.o.knownHosts, timeoutMs: this.timeoutMs,
      ...(this.o.serverKey ? { serverKey: this.o.serverKey } : {}), ...(this.o.onNewHost ? { onNewHost: this.o.onNewHost } : {}),
    };
    let client: AuthClient | null = null;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = (async () => {
        const c = await AuthClient.connect(this.o.url, co);
        // Connected after the timeout: nobody waits for it any more.
        if (finished) c.close();
        client = c;
        return fn(c);
      })();
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      });
      return await Promise.race([work, late]);
    } catch (e) {
      throw new AuthServiceUnavailable(`the auth service at ${this.o.url} is unavailable (${what}: ${(e as Error).message}); try again later`);
    } finally {
      finished = true;
      clearTimeout(timer);
      (client as AuthClient | null)?.close();
    }
  }

  chainRoots(chain: string): Promise<ChainRoots> {
    return this.ask('chain-roots', async (c) => decodeChainRoots(await c.request('chain-roots', { chain }), chain));
  }

  /** The service's host key fingerprint and its own signing key's (a check at start-up; pins the host key). */
  info(): Promise<{ host: string; service: string }> {
    return this.ask('info', async (c) => {
      const r = await c.request<{ fingerprint: string }>('info', {});
      return { host: c.s.serverFingerprint, service: String(r.fingerprint) };
    });
  }
}

export function remoteAuthPolicy(remote: RemoteAuthService): CreationPolicy {
  return rootsPolicy('auth', (chain) => remote.chainRoots(chain));
}
