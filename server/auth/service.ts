// The user/group/token service: the operations of src/net/auth-protocol.ts over the AuthStore.
// It never receives a password, a password-equivalent or an unwrapped private key: logins are
// signatures with a password-derived key whose public half is all it stores; keyrings and group
// role keys arrive sealed by clients (under a password-derived key, or to members' KEM keys).
// Callers of the operations that need a user are the user whose signing key the connection proved
// in its handshake, holding a token of this service (claims it signed, not expired).
import * as path from 'node:path';
import {
  PRODUCTION_SCRYPT, type ScryptParams, type SigningKeyPair, decodeScryptParams, encodeScryptParams, hmacSha256, keyFingerprint, randomBytes,
  verifySignature, KEM_PUBLIC_KEY_LEN, SIGNING_PUBLIC_KEY_LEN,
} from '../../src/crypto/index.js';
import {
  type ChainRoots, type Claims, ClaimsRefused, encodeChainRoots, LOGIN_FAILED, ROLES, type Role, decodeSignedClaims, encodeSignedClaims, isGroupName, isRole, loginMessage,
  managerRolesOf, normalizeEmail, rolesHeldBy, signClaims, verifyClaims,
} from '../../src/net/auth-protocol.js';
import { loadOrCreateLocalIdentity } from '../../src/session/index.js';
import { chainRootsOf } from './chain-roots.js';
import { CreationLimiter, DEFAULT_LIMITS, type LimitOptions, LoginLimiter } from './rate-limit.js';
import { AuthStore, FIRST_ID, type GroupRecord, type RoleGen, type UserRecord } from './store.js';
import { checkTotp, newTotpSecret, totpUrl } from './totp.js';

/** A refusal: code for scripts, message for people (one line). */
export class AuthFailure extends Error {
  override name = 'AuthFailure';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface AuthServiceOptions {
  /** Where the service key and state chain live (<data-dir>/auth). */
  dir: string;
  /** scrypt cost handed to new users (default: production). */
  scrypt?: ScryptParams;
  limits?: Partial<LimitOptions>;
  /** Longest token lifetime (default 365 days; sudo tokens at most 12 hours). */
  maxTokenMs?: number;
  /** Accounts one address may create per 10 minutes (default 20). */
  maxNewUsers?: number;
}

/** What a request knows about its connection. */
export interface CallerContext {
  sessionId: Buffer;
  /** The signing public key the client proved in the handshake, or null. */
  clientKey: Buffer | null;
  address: string;
  /** One-time login challenge of this connection (set by 'salt', used by 'login'). */
  challenge: Buffer | null;
}

type Body = Record<string, unknown>;

const DAY = 86_400_000;
const MAX_SUDO_MS = 12 * 3_600_000;
const MAX_KEYRING_BYTES = 16 << 10;
const MAX_WRAP_BYTES = 8 << 10;

const bytes = (b: Body, k: string, max = 1 << 16): Buffer => {
  const v = b[k];
  if (!(v instanceof Uint8Array) || v.length > max) throw new AuthFailure('malformed', `request field '${k}' is not bytes`);
  return Buffer.from(v);
};
const str = (b: Body, k: string): string => {
  const v = b[k];
  if (typeof v !== 'string' || v.length > 1024) throw new AuthFailure('malformed', `request field '${k}' is not a string`);
  return v;
};
const role = (b: Body, k: string): Role => {
  const v = b[k];
  if (!isRole(v)) throw new AuthFailure('malformed', `'${String(v)}' is not a role (${ROLES.join(', ')})`);
  return v;
};

export class AuthService {
  readonly limiter: LoginLimiter;
  private readonly creations: CreationLimiter;
  private constructor(
    private readonly o: AuthServiceOptions,
    readonly key: SigningKeyPair,
    readonly store: AuthStore,
    private readonly saltSecret: Buffer,
  ) {
    this.limiter = new LoginLimiter({ ...DEFAULT_LIMITS, ...(o.limits ?? {}) });
    this.creations = new CreationLimiter(o.maxNewUsers ?? 20);
  }

  static async open(o: AuthServiceOptions): Promise<AuthService> {
    const id = await loadOrCreateLocalIdentity(o.dir);
    const store = await AuthStore.open(o.dir, id.session, (pk) => keyFingerprint(pk));
    // Salts for unknown emails are derived from a secret of the service, so asking for one does
    // not tell whether an account exists (the same email always gets the same salt).
    const saltSecret = hmacSha256(id.identity.readKey, Buffer.from('atefs/auth/unknown-user-salt/v1'));
    return new AuthService(o, id.identity.signing, store, saltSecret);
  }

  get fingerprint(): string {
    return keyFingerprint(this.key.publicKey);
  }

  get stateDir(): string {
    return path.join(this.o.dir, 'state');
  }

  private get scrypt(): ScryptParams {
    return this.o.scrypt ?? PRODUCTION_SCRYPT;
  }

  async handle(op: string, b: Body, ctx: CallerContext): Promise<Body> {
    switch (op) {
      case 'info': return { servicePk: this.key.publicKey, fingerprint: this.fingerprint, kdf: encodeScryptParams(this.scrypt, randomBytes(32)) };
      case 'create-user': return this.createUser(b, ctx);
      case 'salt': return this.salt(b, ctx);
      case 'login': return this.login(b, ctx);
      case 'query': return this.query(b);
      case 'user-details': return this.userDetails(b, ctx);
      case 'group-create': return this.groupCreate(b, ctx);
      case 'group-details': return this.groupDetails(b, ctx);
      case 'group-add': return this.groupAdd(b, ctx);
      case 'group-remove': return this.groupRemove(b, ctx);
      case 'gather': return this.gather(b, ctx);
      case 'chain-roots': return encodeChainRoots(this.chainRoots(str(b, 'chain')));
      default: throw new AuthFailure('unknown-op', `unknown auth operation '${op}'`);
    }
  }

  // ------------------------------------------------------------------------------ users

  private email(b: Body): string {
    const e = normalizeEmail(str(b, 'email'));
    if (!e) throw new AuthFailure('invalid-email', `'${String(b.email)}' is not a valid email (letters, digits, '.', '_', '-' before the '@', a dotted domain)`);
    return e;
  }

  private async createUser(b: Body, ctx: CallerContext): Promise<Body> {
    const email = this.email(b);
    const signPk = bytes(b, 'signPk');
    const kemPk = bytes(b, 'kemPk');
    const loginPk = bytes(b, 'loginPk');
    const kdf = bytes(b, 'kdf', 256);
    const keyring = bytes(b, 'keyring', MAX_KEYRING_BYTES);
    if (signPk.length !== SIGNING_PUBLIC_KEY_LEN || loginPk.length !== SIGNING_PUBLIC_KEY_LEN) throw new AuthFailure('malformed', 'signing keys have the wrong length');
    if (kemPk.length !== KEM_PUBLIC_KEY_LEN) throw new AuthFailure('malformed', 'the KEM key has the wrong length');
    // The registered signing key is the one this connection proved: nobody registers a key they
    // do not hold.
    if (!ctx.clientKey || !ctx.clientKey.equals(signPk)) throw new AuthFailure('not-proven', 'create-user: connect with the new user\'s signing key (it proves holding it)');
    let params: ScryptParams;
    try {
      params = decodeScryptParams(kdf).params;
    } catch (e) {
      throw new AuthFailure('malformed', `kdf: ${(e as Error).message}`);
    }
    const wait = this.creations.take(ctx.address);
    if (wait > 0) throw new AuthFailure('too-many-users', `too many accounts created from this address: try again in ${Math.ceil(wait / 1000)} s`);
    const want = this.scrypt;
    if (params.N * params.r * params.p < want.N * want.r * want.p) throw new AuthFailure('weak-kdf', `scrypt cost below this service's (N=${want.N}, r=${want.r}, p=${want.p})`);
    return this.store.exclusive(async () => {
      if (this.store.users.has(email)) throw new AuthFailure('exists', `user ${email} already exists`);
      if (this.store.bySigningKey.has(keyFingerprint(signPk))) throw new AuthFailure('exists', 'that signing key belongs to another user');
      const totp = b.totp === true ? newTotpSecret() : null;
      const u: UserRecord = {
        email, uid: Math.max(FIRST_ID, this.store.allocateUid()), createdAt: Date.now(), signPk, kemPk, loginPk, kdf, keyring, totp, totpLastStep: 0,
      };
      await this.store.putUser(u);
      return { email, uid: u.uid, fingerprint: keyFingerprint(signPk), ...(totp ? { totpSecret: totp, totpUrl: totpUrl(totp, email) } : {}) };
    });
  }

  private fakeKdf(email: string): Buffer {
    return encodeScryptParams(this.scrypt, hmacSha256(this.saltSecret, Buffer.from(email, 'utf8')));
  }

  private salt(b: Body, ctx: CallerContext): Body {
    const email = normalizeEmail(str(b, 'email')) ?? str(b, 'email');
    const u = this.store.users.get(email);
    ctx.challenge = randomBytes(32);
    return { kdf: u ? u.kdf : this.fakeKdf(email), challenge: ctx.challenge };
  }

  private async login(b: Body, ctx: CallerContext): Promise<Body> {
    const email = normalizeEmail(str(b, 'email')) ?? str(b, 'email');
    const proof = bytes(b, 'proof');
    const keys = this.limiter.keys(email, ctx.address);
    const locked = this.limiter.lockedFor(keys);
    if (locked > 0) throw new AuthFailure('locked', `too many failed logins for this account or address: try again in ${Math.ceil(locked / 1000)} s`);
    const challenge = ctx.challenge;
    ctx.challenge = null;
    if (!challenge) throw new AuthFailure('no-challenge', "login: ask for the salt first (the challenge is good for one attempt)");
    const u = this.store.users.get(email);
    // An unknown user costs the same verification as a known one and gets the same answer.
    const pk = u?.loginPk ?? this.key.publicKey;
    let good = false;
    try {
      good = verifySignature(pk, loginMessage(ctx.sessionId, challenge, email), proof);
    } catch {
      good = false;
    }
    if (!u || !good) {
      this.limiter.failed(email, ctx.address);
      throw new AuthFailure('login-failed', LOGIN_FAILED);
    }
    const sudo = b.sudo === true;
    return this.store.exclusive(async () => {
      const cur = this.store.users.get(email)!;
      let step = cur.totpLastStep;
      if (sudo) {
        if (!cur.totp) throw new AuthFailure('no-totp', `${email} has no TOTP: sudo tokens need one (create the user with --totp)`);
        const code = typeof b.code === 'string' ? b.code : '';
        const s = checkTotp(cur.totp, email, code, cur.totpLastStep);
        if (s === null) {
          this.limiter.failed(email, ctx.address);
          throw new AuthFailure('wrong-code', 'login failed: the TOTP code is wrong or already used');
        }
        step = s;
      }
      this.limiter.succeeded(email);
      if (step !== cur.totpLastStep) await this.store.putUser({ ...cur, totpLastStep: step });
      const now = Date.now();
      const asked = typeof b.ttlMs === 'number' && b.ttlMs > 0 ? b.ttlMs : 30 * DAY;
      const ttl = Math.min(asked, sudo ? MAX_SUDO_MS : (this.o.maxTokenMs ?? 365 * DAY));
      const m = this.memberships(email);
      const claims: Claims = {
        email, uid: cur.uid, gids: m.map((x) => x.gid), roles: m.map((x) => `${x.name}:${x.role}`), issuedAt: now, expiresAt: now + ttl,
        issuer: this.fingerprint, audience: 'atedb', sudo, key: keyFingerprint(cur.signPk),
      };
      return { claims: encodeSignedClaims(signClaims(claims, this.key)), keyring: cur.keyring, uid: cur.uid };
    });
  }

  private memberships(email: string): Array<{ name: string; gid: number; role: Role }> {
    const out: Array<{ name: string; gid: number; role: Role }> = [];
    for (const g of this.store.groups.values()) {
      const r = g.members[email];
      if (r) out.push({ name: g.name, gid: g.gid, role: r });
    }
    return out;
  }

  private query(b: Body): Body {
    const email = normalizeEmail(str(b, 'email')) ?? '';
    const u = this.store.users.get(email);
    if (!u) throw new AuthFailure('not-found', `no user ${String(b.email)}`);
    return { email, uid: u.uid, signPk: u.signPk, kemPk: u.kemPk, fingerprint: keyFingerprint(u.signPk) };
  }

  /** Verifies a request's token claims and that the connection proved the same user's key. */
  caller(b: Body, ctx: CallerContext, o: { sudo?: boolean } = {}): { user: UserRecord; claims: Claims } {
    if (!(b.claims instanceof Uint8Array)) throw new AuthFailure('no-token', 'this needs a token: run atefs create-token first (or give --token-path)');
    let c: Claims;
    try {
      c = verifyClaims(decodeSignedClaims(b.claims), { trusted: this.key.publicKey });
    } catch (e) {
      if (e instanceof ClaimsRefused) throw new AuthFailure(e.code === 'expired' ? 'token-expired' : 'token-invalid', e.message);
      throw e;
    }
    const user = this.store.users.get(c.email);
    if (!user || !ctx.clientKey || keyFingerprint(ctx.clientKey) !== c.key || !user.signPk.equals(ctx.clientKey)) {
      throw new AuthFailure('token-invalid', 'token refused: the connection did not prove the token\'s user key');
    }
    if (o.sudo && !c.sudo) throw new AuthFailure('sudo-required', 'this needs a sudo token: atefs create-token --sudo (asks for the TOTP code)');
    return { user, claims: c };
  }

  private userDetails(b: Body, ctx: CallerContext): Body {
    const { user, claims } = this.caller(b, ctx);
    return {
      email: user.email, uid: user.uid, fingerprint: keyFingerprint(user.signPk), totp: !!user.totp,
      groups: this.memberships(user.email), expiresAt: claims.expiresAt, sudo: claims.sudo,
    };
  }

  // ------------------------------------------------------------------------------ groups

  private group(name: string): GroupRecord {
    const g = this.store.groups.get(name);
    if (!g) throw new AuthFailure('group-not-found', `no group '${name}'`);
    return g;
  }

  private roleGen(b: unknown, what: string): Omit<RoleGen, 'wraps' | 'gen'> {
    const r = b as Body;
    if (typeof r !== 'object' || r === null) throw new AuthFailure('malformed', `${what}: missing`);
    const signPk = bytes(r, 'signPk');
    const kemPk = bytes(r, 'kemPk');
    if (signPk.length !== SIGNING_PUBLIC_KEY_LEN || kemPk.length !== KEM_PUBLIC_KEY_LEN) throw new AuthFailure('malformed', `${what}: keys have the wrong length`);
    const readKeyId = str(r, 'readKeyId');
    if (!/^[0-9a-f]{64}$/.test(readKeyId)) throw new AuthFailure('malformed', `${what}: read key id`);
    return { signPk, kemPk, readKeyId };
  }

  private async groupCreate(b: Body, ctx: CallerContext): Promise<Body> {
    const { user } = this.caller(b, ctx);
    const name = str(b, 'name');
    if (!isGroupName(name)) throw new AuthFailure('invalid-group', `'${name}' is not a group name (lower-case letters, digits, '_', '-'; up to 63)`);
    if (name.includes('.')) throw new AuthFailure('invalid-group', 'group names have no dots (those are email domains)');
    const rolesIn = b.roles as Record<string, Body>;
    if (typeof rolesIn !== 'object' || rolesIn === null) throw new AuthFailure('malformed', 'roles missing');
    const roles = {} as Record<Role, RoleGen[]>;
    for (const r of ROLES) {
      const pub = this.roleGen(rolesIn[r], `role ${r}`);
      const wrap = bytes(rolesIn[r]!, 'wrap', MAX_WRAP_BYTES);
      roles[r] = [{ gen: 0, ...pub, wraps: { [user.email]: wrap } }];
    }
    return this.store.exclusive(async () => {
      if (this.store.groups.has(name)) throw new AuthFailure('exists', `group '${name}' already exists`);
      const g: GroupRecord = { name, gid: Math.max(FIRST_ID, this.store.allocateGid()), createdAt: Date.now(), createdBy: user.email, members: { [user.email]: 'owner' }, roles };
      await this.store.putGroup(g);
      return { name, gid: g.gid };
    });
  }

  /** Public view of a group: current keys of every role (the chain policy and writers use them);
   *  members only to its owners and delegates. */
  private groupDetails(b: Body, ctx: CallerContext): Body {
    const g = this.group(str(b, 'name'));
    let viewer: Role | null = null;
    if (b.claims instanceof Uint8Array) {
      const { user } = this.caller(b, ctx);
      viewer = g.members[user.email] ?? null;
    }
    const roles: Record<string, Body> = {};
    for (const r of ROLES) {
      const gens = g.roles[r];
      roles[r] = { gens: gens.map((x) => ({ gen: x.gen, signPk: x.signPk, kemPk: x.kemPk, readKeyId: x.readKeyId })) };
    }
    const manager = viewer === 'owner' || viewer === 'delegate';
    const members = manager
      ? Object.entries(g.members).map(([email, r]) => ({ email, role: r, uid: this.store.users.get(email)?.uid ?? -1, kemPk: this.store.users.get(email)?.kemPk ?? null }))
      : null;
    return { name: g.name, gid: g.gid, roles, members, hidden: !manager, you: viewer };
  }

  private authority(g: GroupRecord, email: string, target: Role): void {
    const mine = g.members[email];
    if (!mine || !managerRolesOf(target).includes(mine)) {
      throw new AuthFailure('no-access', `${email} may not manage ${target}s of '${g.name}' (needs ${managerRolesOf(target).join(' or ')}${mine ? `, is ${mine}` : ', is not a member'})`);
    }
  }

  /** Ownership changes need an elevated token (a login that gave a TOTP code). */
  private ownershipNeedsSudo(r: Role, claims: Claims): void {
    if (r === 'owner' && !claims.sudo) throw new AuthFailure('sudo-required', 'changing the owners of a group needs a sudo token: atefs create-token --sudo (asks for the TOTP code)');
  }

  private async groupAdd(b: Body, ctx: CallerContext): Promise<Body> {
    const r = role(b, 'role');
    const { user, claims } = this.caller(b, ctx);
    const name = str(b, 'name');
    const who = this.email(b);
    const wrapsIn = b.wraps as Array<{ role: string; gen: number; sealed: Uint8Array }>;
    if (!Array.isArray(wrapsIn)) throw new AuthFailure('malformed', 'wraps missing');
    return this.store.exclusive(async () => {
      const g = this.group(name);
      this.authority(g, user.email, r);
      this.ownershipNeedsSudo(r, claims);
      if (!this.store.users.has(who)) throw new AuthFailure('not-found', `no user ${who}`);
      if (g.members[who]) throw new AuthFailure('exists', `${who} is already ${g.members[who]} of '${name}' (remove first to change roles)`);
      // Every generation of every role the new member holds must be wrapped to them.
      const next: GroupRecord = { ...g, members: { ...g.members, [who]: r }, roles: { ...g.roles } };
      for (const held of rolesHeldBy(r)) {
        next.roles[held] = g.roles[held].map((gen) => {
          const w = wrapsIn.find((x) => x.role === held && x.gen === gen.gen);
          if (!w || !(w.sealed instanceof Uint8Array) || w.sealed.length > MAX_WRAP_BYTES) throw new AuthFailure('malformed', `missing the ${held} keys (generation ${gen.gen}) for ${who}`);
          return { ...gen, wraps: { ...gen.wraps, [who]: Buffer.from(w.sealed) } };
        });
      }
      await this.store.putGroup(next);
      return { name, email: who, role: r };
    });
  }

  private async groupRemove(b: Body, ctx: CallerContext): Promise<Body> {
    const name = str(b, 'name');
    const who = this.email(b);
    const g0 = this.group(name);
    const target = g0.members[who];
    if (!target) throw new AuthFailure('not-member', `${who} is not a member of '${name}'`);
    const { user, claims } = this.caller(b, ctx);
    const rot = b.rotate as Record<string, Body>;
    if (typeof rot !== 'object' || rot === null) throw new AuthFailure('malformed', 'rotate missing');
    return this.store.exclusive(async () => {
      const g = this.group(name);
      if (g.members[who] !== target) throw new AuthFailure('conflict', `the membership of ${who} changed meanwhile; try again`);
      this.authority(g, user.email, target);
      this.ownershipNeedsSudo(target, claims);
      const members = { ...g.members };
      delete members[who];
      if (!Object.values(members).includes('owner')) throw new AuthFailure('last-owner', `${who} is the last owner of '${name}'`);
      const next: GroupRecord = { ...g, members, roles: { ...g.roles } };
      // The removed member's wraps go from every generation; each role they held gets a new
      // generation, wrapped to exactly the remaining holders (the client made the keys and wraps).
      for (const r of ROLES) {
        const gens = g.roles[r].map((x) => {
          const wraps = { ...x.wraps };
          delete wraps[who];
          return { ...x, wraps };
        });
        if (rolesHeldBy(target).includes(r)) {
          const pub = this.roleGen(rot[r], `rotated ${r}`);
          const wraps = (rot[r] as Body).wraps as Record<string, Uint8Array>;
          const holders = Object.entries(members).filter(([, m]) => rolesHeldBy(m).includes(r)).map(([e]) => e);
          if (typeof wraps !== 'object' || wraps === null) throw new AuthFailure('malformed', `rotated ${r}: wraps missing`);
          const got = Object.keys(wraps).sort();
          if (got.join(',') !== [...holders].sort().join(',')) throw new AuthFailure('malformed', `rotated ${r}: wraps must be for ${holders.join(', ')} exactly`);
          gens.push({ gen: gens.length, ...pub, wraps: Object.fromEntries(Object.entries(wraps).map(([e, w]) => [e, Buffer.from(w)])) });
        }
        next.roles[r] = gens;
      }
      await this.store.putGroup(next);
      return { name, email: who, role: target, rotated: rolesHeldBy(target) };
    });
  }

  private gather(b: Body, ctx: CallerContext): Body {
    const { user } = this.caller(b, ctx);
    const g = this.group(str(b, 'name'));
    const r = g.members[user.email];
    if (!r) throw new AuthFailure('no-access', `${user.email} is not a member of '${g.name}'`);
    const keys: Array<{ role: Role; gen: number; sealed: Buffer }> = [];
    for (const held of rolesHeldBy(r)) for (const gen of g.roles[held]) {
      const w = gen.wraps[user.email];
      if (w) keys.push({ role: held, gen: gen.gen, sealed: w });
    }
    return { name: g.name, gid: g.gid, role: r, keys };
  }

  /** The keys a chain of this name may be rooted at under `--policy auth` (public keys only:
   *  anyone may ask, in this process or over the network). */
  chainRoots(chain: string): ChainRoots {
    return chainRootsOf(chain, { user: (e) => this.store.users.get(e), group: (g) => this.store.groups.get(g) });
  }

  /** Records as the service holds them (tests and tools; the policy asks chainRoots). */
  groupRecord(name: string): GroupRecord | undefined {
    return this.store.groups.get(name);
  }

  userRecord(email: string): UserRecord | undefined {
    return this.store.users.get(email);
  }

  async close(): Promise<void> {
    await this.store.close();
  }
}

export { AuthStore };
