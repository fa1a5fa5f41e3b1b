// The auth service's state: users, groups and the uid/gid counters, kept in a chain of its own
// (<data-dir>/auth/state), signed by the service key and encrypted for the service's read key
// (the chain layer's guarantees: validated on load, tamper-evident, never plaintext on disk). Each
// record is a root-level DAO at a named key; a registry DAO lists them and holds the counters.
// Every change is one transaction (record + registry), made one at a time; the in-memory maps are
// updated only after the commit is durable.
import * as path from 'node:path';
import { type Chain, openChain } from '../../src/api/index.js';
import type { Role } from '../../src/net/auth-protocol.js';
import type { Session } from '../../src/session/index.js';

export const FIRST_ID = 1000;

export interface UserRecord {
  email: string;
  uid: number;
  createdAt: number;
  /** Public keys, published to anyone (the advert). */
  signPk: Buffer;
  kemPk: Buffer;
  /** Public half of the password-derived login key: verifies logins, cannot log in. */
  loginPk: Buffer;
  /** scrypt parameters and salt (encodeScryptParams). */
  kdf: Buffer;
  /** The user's keyring, sealed client-side under the password-derived key-encryption key. */
  keyring: Buffer;
  /** TOTP secret (base32) for sudo tokens, or null. A second factor, not password-derived. */
  totp: string | null;
  /** Last TOTP time step accepted (a code is good once). */
  totpLastStep: number;
}

/** One generation of a role's keys: public halves, and the secrets sealed to each member. */
export interface RoleGen {
  gen: number;
  signPk: Buffer;
  kemPk: Buffer;
  readKeyId: string;
  /** email -> sealed box of the role's secrets to that member's KEM key (made by a client). */
  wraps: Record<string, Buffer>;
}

export interface GroupRecord {
  name: string;
  gid: number;
  createdAt: number;
  createdBy: string;
  members: Record<string, Role>;
  /** Every generation of every role, oldest first (old ones read old data). */
  roles: Record<Role, RoleGen[]>;
}

interface Registry {
  nextUid: number;
  nextGid: number;
  users: string[];
  groups: string[];
}

const b = (x: unknown): Buffer => Buffer.from(x as Uint8Array);

function fixUser(u: UserRecord): UserRecord {
  return { ...u, signPk: b(u.signPk), kemPk: b(u.kemPk), loginPk: b(u.loginPk), kdf: b(u.kdf), keyring: b(u.keyring) };
}

function fixGroup(g: GroupRecord): GroupRecord {
  const roles = {} as Record<Role, RoleGen[]>;
  for (const [r, gens] of Object.entries(g.roles)) {
    roles[r as Role] = gens.map((x) => ({
      ...x, signPk: b(x.signPk), kemPk: b(x.kemPk),
      wraps: Object.fromEntries(Object.entries(x.wraps).map(([e, w]) => [e, b(w)])),
    }));
  }
  return { ...g, roles };
}

export class AuthStore {
  readonly users = new Map<string, UserRecord>();
  readonly groups = new Map<string, GroupRecord>();
  /** signing-key fingerprint -> email */
  readonly bySigningKey = new Map<string, string>();
  private registry: Registry = { nextUid: FIRST_ID, nextGid: FIRST_ID, users: [], groups: [] };
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly chain: Chain, private readonly fingerprint: (pk: Buffer) => string) {}

  static async open(dir: string, session: Session, fingerprint: (pk: Buffer) => string): Promise<AuthStore> {
    const chain = await openChain('auth-state', { dir: path.join(dir, 'state'), configDir: dir, session });
    const s = new AuthStore(chain, fingerprint);
    const reg = chain.tryLoad<Registry>(chain.namedKey('registry'));
    if (reg) s.registry = reg.value;
    for (const email of s.registry.users) {
      const u = fixUser(chain.load<UserRecord>(chain.namedKey(`user:${email}`)).value);
      s.users.set(email, u);
      s.bySigningKey.set(fingerprint(u.signPk), email);
    }
    for (const name of s.registry.groups) s.groups.set(name, fixGroup(chain.load<GroupRecord>(chain.namedKey(`group:${name}`)).value));
    return s;
  }

  /** Runs `fn` alone (no other change interleaves between its reads and its commit). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  allocateUid(): number {
    return this.registry.nextUid;
  }

  allocateGid(): number {
    return this.registry.nextGid;
  }

  async putUser(u: UserRecord): Promise<void> {
    const isNew = !this.users.has(u.email);
    const reg = isNew ? { ...this.registry, users: [...this.registry.users, u.email], nextUid: Math.max(this.registry.nextUid, u.uid + 1) } : this.registry;
    await this.chain.transact((tx) => {
      tx.store(u, { key: this.chain.namedKey(`user:${u.email}`), type: 'user' });
      if (isNew) tx.store(reg, { key: this.chain.namedKey('registry'), type: 'registry' });
    });
    this.registry = reg;
    this.users.set(u.email, u);
    this.bySigningKey.set(this.fingerprint(u.signPk), u.email);
  }

  async putGroup(g: GroupRecord): Promise<void> {
    const isNew = !this.groups.has(g.name);
    const reg = isNew ? { ...this.registry, groups: [...this.registry.groups, g.name], nextGid: Math.max(this.registry.nextGid, g.gid + 1) } : this.registry;
    await this.chain.transact((tx) => {
      tx.store(g, { key: this.chain.namedKey(`group:${g.name}`), type: 'group' });
      if (isNew) tx.store(reg, { key: this.chain.namedKey('registry'), type: 'registry' });
    });
    this.registry = reg;
    this.groups.set(g.name, g);
  }

  async close(): Promise<void> {
    await this.queue;
    await this.chain.close();
  }
}
