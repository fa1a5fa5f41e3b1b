// The client of the auth service (server/auth): one connection to an atedb server, requests as
// 'areq' messages. Everything secret is made and opened here: the password is stretched here
// (login-keys.ts), the keyring is sealed and opened here, group role keys are generated here and
// sealed to members' KEM public keys here. Only public keys, sealed bytes and signatures go out,
// and each request carries only the public keys it needs.
import { publicKeyId, readKeyId } from '../chain/ids.js';
import type { ReaderRef } from '../chain/types.js';
import { type SigningKeyPair, decodeScryptParams, keyFingerprint } from '../crypto/index.js';
import {
  type AuthOp, AuthRefused, ROLES, type Role, decodeSignedClaims, packBody, rolesHeldBy, signLogin, unpackBody, verifyClaims, type Claims,
} from './auth-protocol.js';
import { NetError } from './errors.js';
import { type ClientSession, connectClient } from './handshake.js';
import type { Message } from './messages.js';
import { DEFAULT_PORT } from './remote-options.js';
import {
  type Identity, type Principal, Session, createGroupRole, createIdentity, deriveLoginKeys, openKeyring, openRoleKeys, sealKeyring, sealRoleKeys,
} from '../session/index.js';

type Body = Record<string, unknown>;

export function parseAuthUrl(url: string): { host: string; port: number } {
  const m = /^tcp:\/\/([^/:]+|\[[^\]]+\])(?::(\d+))?(\/.*)?$/i.exec(url);
  if (!m) throw new NetError(`'${url}' is not an auth server URL (tcp://host[:port])`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : DEFAULT_PORT };
}

export interface AuthConnectOptions {
  knownHosts?: string;
  serverKey?: string;
  /** Prove this key in the handshake (the token's user key, for operations that need a user). */
  identity?: SigningKeyPair;
  onNewHost?: (address: string, fingerprint: string) => void;
  timeoutMs?: number;
}

export class AuthClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();

  private constructor(readonly s: ClientSession) {
    s.conn.on('message', (m) => {
      if ((m.t === 'ares' || m.t === 'err') && typeof m.id === 'number') {
        const w = this.waiting.get(m.id);
        if (w) {
          this.waiting.delete(m.id);
          w.resolve(m);
        }
      }
    });
    s.conn.on('close', (e) => {
      for (const w of this.waiting.values()) w.reject(e ?? new NetError('the auth server closed the connection'));
      this.waiting.clear();
    });
  }

  static async connect(url: string, o: AuthConnectOptions = {}): Promise<AuthClient> {
    const { host, port } = parseAuthUrl(url);
    const s = await connectClient({
      host, port, ...(o.knownHosts ? { knownHosts: o.knownHosts } : {}), ...(o.serverKey ? { serverKey: o.serverKey } : {}),
      ...(o.identity ? { identity: o.identity } : {}), ...(o.onNewHost ? { onNewHost: o.onNewHost } : {}), ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    });
    return new AuthClient(s);
  }

  get sessionId(): Buffer {
    return this.s.sessionId;
  }

  async request<T = Body>(op: AuthOp, body: Body): Promise<T> {
    const id = this.nextId++;
    const reply = await new Promise<Message>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (!this.s.conn.send({ t: 'areq', id, op, body: packBody(body) })) {
        this.waiting.delete(id);
        reject(new NetError('the connection to the auth server is closed'));
      }
    });
    if (reply.t === 'err') throw new AuthRefused(reply.code, reply.code === 'no-auth' ? 'this server runs no auth service' : reply.detail);
    if (reply.t !== 'ares') throw new NetError(`unexpected '${reply.t}' from the auth server`);
    const out = unpackBody(reply.body);
    if (!reply.ok) throw new AuthRefused(String(out.code), String(out.message));
    return out as T;
  }

  close(): void {
    this.s.conn.close();
  }
}

async function withClient<T>(url: string, o: AuthConnectOptions, fn: (c: AuthClient) => Promise<T>): Promise<T> {
  const c = await AuthClient.connect(url, o);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

// ------------------------------------------------------------------------------ users, tokens

export interface CreateUserResult {
  email: string;
  uid: number;
  fingerprint: string;
  totpSecret?: string;
  totpUrl?: string;
}

export async function createUser(url: string, email: string, password: string, o: AuthConnectOptions & { totp?: boolean } = {}): Promise<CreateUserResult> {
  const id: Identity = createIdentity(email.trim().toLowerCase());
  return withClient(url, { ...o, identity: id.signing }, async (c) => {
    const info = await c.request<{ kdf: Uint8Array }>('info', {});
    const { params, salt } = decodeScryptParams(Buffer.from(info.kdf));
    const keys = await deriveLoginKeys(password, salt, params);
    const keyring = sealKeyring(keys.kek, id);
    keys.kek.fill(0);
    return c.request<CreateUserResult>('create-user', {
      email: id.name, signPk: id.signing.publicKey, kemPk: id.kem.publicKey, loginPk: keys.login.publicKey, kdf: Buffer.from(info.kdf), keyring,
      totp: !!o.totp,
    });
  });
}

export interface LoginResult {
  session: Session;
  /** Encoded signed claims (for the token file and for requests). */
  claims: Buffer;
  decoded: Claims;
  servicePk: Buffer;
}

export async function login(
  url: string, email: string, password: string, o: AuthConnectOptions & { sudo?: boolean; code?: string; ttlMs?: number } = {},
): Promise<LoginResult> {
  return withClient(url, o, async (c) => {
    const e = email.trim().toLowerCase();
    const s = await c.request<{ kdf: Uint8Array; challenge: Uint8Array }>('salt', { email: e });
    const { params, salt } = decodeScryptParams(Buffer.from(s.kdf));
    const keys = await deriveLoginKeys(password, salt, params);
    const proof = signLogin(keys.login.secretKey, c.sessionId, Buffer.from(s.challenge), e);
    let r: { claims: Uint8Array; keyring: Uint8Array };
    try {
      r = await c.request('login', { email: e, proof, sudo: !!o.sudo, ...(o.code ? { code: o.code } : {}), ...(o.ttlMs ? { ttlMs: o.ttlMs } : {}) });
    } catch (err) {
      keys.kek.fill(0);
      throw err;
    }
    const identity = openKeyring(keys.kek, Buffer.from(r.keyring), e);
    keys.kek.fill(0);
    const signed = decodeSignedClaims(r.claims);
    // Signed by the service key they carry, for the user whose keyring just opened (a token asked
    // for a very short life may have expired already: that is for its readers to refuse).
    const decoded = verifyClaims(signed, { allowExpired: true });
    if (decoded.email !== e || keyFingerprint(identity.signing.publicKey) !== decoded.key) throw new NetError('the auth server issued claims for another user');
    return { session: Session.of(identity), claims: Buffer.from(r.claims), decoded, servicePk: signed.servicePk };
  });
}

/** A token's session and claims, as the authenticated operations need them. */
export interface Credentials {
  session: Session;
  claims: Buffer;
}

function userOf(c: Credentials): Identity {
  const u = c.session.user;
  if (!u) throw new NetError('the token holds no user identity');
  return u;
}

async function asUser<T>(url: string, cred: Credentials, o: AuthConnectOptions, fn: (c: AuthClient) => Promise<T>): Promise<T> {
  return withClient(url, { ...o, identity: userOf(cred).signing }, fn);
}

export async function userDetails(url: string, cred: Credentials, o: AuthConnectOptions = {}): Promise<Body> {
  return asUser(url, cred, o, (c) => c.request('user-details', { claims: cred.claims }));
}

// ------------------------------------------------------------------------------ groups

/** Purpose string of one generation of a role, as token files store it. */
export function rolePurpose(role: Role, gen: number): string {
  return `${role}#${gen}`;
}

export function parseRolePurpose(p: string | undefined): { role: Role; gen: number } | null {
  const m = /^(owner|delegate|contributor|observer)#(\d+)$/.exec(p ?? '');
  return m ? { role: m[1] as Role, gen: Number(m[2]) } : null;
}

/** The role principals of `group` a session holds, by role and generation. */
export function groupRoles(session: Session, group: string): Map<string, Principal> {
  const out = new Map<string, Principal>();
  for (const p of session.roles()) if (p.name === group && parseRolePurpose(p.purpose)) out.set(p.purpose!, p);
  return out;
}

/** The newest generation of `role` in `group` the session holds. */
export function currentRole(session: Session, group: string, role: Role): Principal | undefined {
  let best: Principal | undefined;
  let bestGen = -1;
  for (const p of session.roles()) {
    const r = p.name === group ? parseRolePurpose(p.purpose) : null;
    if (r && r.role === role && r.gen > bestGen) {
      best = p;
      bestGen = r.gen;
    }
  }
  return best;
}

export async function groupCreate(url: string, cred: Credentials, name: string, o: AuthConnectOptions = {}): Promise<{ name: string; gid: number; roles: Principal[] }> {
  const me = userOf(cred);
  const roles = ROLES.map((r) => ({ ...createGroupRole(name, rolePurpose(r, 0)), purpose: rolePurpose(r, 0) }));
  const body: Record<string, Body> = {};
  ROLES.forEach((r, i) => {
    const p = roles[i]!;
    body[r] = { signPk: p.signing!.publicKey, kemPk: p.kem!.publicKey, readKeyId: readKeyId(p.readKey!), wrap: sealRoleKeys(me.kem.publicKey, p, 0) };
  });
  const r = await asUser(url, cred, o, (c) => c.request<{ name: string; gid: number }>('group-create', { claims: cred.claims, name, roles: body }));
  return { ...r, roles };
}

export interface GroupDetails {
  name: string;
  gid: number;
  roles: Record<Role, { gens: Array<{ gen: number; signPk: Buffer; kemPk: Buffer; readKeyId: string }> }>;
  members: Array<{ email: string; role: Role; uid: number; kemPk: Buffer | null }> | null;
  hidden: boolean;
  you: Role | null;
}

export async function groupDetails(url: string, name: string, cred: Credentials | null, o: AuthConnectOptions = {}): Promise<GroupDetails> {
  const run = (c: AuthClient) => c.request<GroupDetails>('group-details', { name, ...(cred ? { claims: cred.claims } : {}) });
  return cred ? asUser(url, cred, o, run) : withClient(url, o, run);
}

/** Unwraps the caller's role keys of `name` (every generation it may hold). */
export async function gather(url: string, cred: Credentials, name: string, o: AuthConnectOptions = {}): Promise<{ gid: number; role: Role; roles: Principal[] }> {
  const me = userOf(cred);
  const r = await asUser(url, cred, o, (c) => c.request<{ gid: number; role: Role; keys: Array<{ role: Role; gen: number; sealed: Uint8Array }> }>('gather', { claims: cred.claims, name }));
  const roles = r.keys.map((k) => {
    const p = openRoleKeys(me.kem.secretKey, Buffer.from(k.sealed), name, rolePurpose(k.role, k.gen), k.gen);
    return p;
  });
  return { gid: r.gid, role: r.role, roles };
}

export async function groupAdd(url: string, cred: Credentials, name: string, role: Role, email: string, o: AuthConnectOptions = {}): Promise<void> {
  await asUser(url, cred, o, async (c) => {
    const target = await c.request<{ kemPk: Uint8Array }>('query', { email });
    const g = await c.request<{ keys: Array<{ role: Role; gen: number; sealed: Uint8Array }> }>('gather', { claims: cred.claims, name });
    const me = userOf(cred);
    const wraps = g.keys.filter((k) => rolesHeldBy(role).includes(k.role)).map((k) => {
      const p = openRoleKeys(me.kem.secretKey, Buffer.from(k.sealed), name, rolePurpose(k.role, k.gen), k.gen);
      return { role: k.role, gen: k.gen, sealed: sealRoleKeys(Buffer.from(target.kemPk), p, k.gen) };
    });
    await c.request('group-add', { claims: cred.claims, name, role, email, wraps });
  });
}

/** Removes a member and rotates every role they held: new keys, wrapped to the remaining holders. */
export async function groupRemove(url: string, cred: Credentials, name: string, email: string, o: AuthConnectOptions = {}): Promise<{ role: Role; rotated: Role[] }> {
  return asUser(url, cred, o, async (c) => {
    const d = await c.request<GroupDetails>('group-details', { name, claims: cred.claims });
    if (!d.members) throw new AuthRefused('no-access', `only owners and delegates of '${name}' may remove members`);
    const who = email.trim().toLowerCase();
    const target = d.members.find((m) => m.email === who);
    if (!target) throw new AuthRefused('not-member', `${who} is not a member of '${name}'`);
    const rotate: Record<string, Body> = {};
    for (const r of rolesHeldBy(target.role)) {
      const gen = d.roles[r].gens.length;
      const p = { ...createGroupRole(name, rolePurpose(r, gen)) };
      const wraps: Record<string, Buffer> = {};
      for (const m of d.members) {
        if (m.email === who || !rolesHeldBy(m.role).includes(r)) continue;
        if (!m.kemPk) throw new NetError(`no KEM key for member ${m.email}`);
        wraps[m.email] = sealRoleKeys(Buffer.from(m.kemPk), p, gen);
      }
      rotate[r] = { signPk: p.signing!.publicKey, kemPk: p.kem!.publicKey, readKeyId: readKeyId(p.readKey!), wraps };
    }
    return c.request<{ role: Role; rotated: Role[] }>('group-remove', { claims: cred.claims, name, email: who, rotate });
  });
}

/**
 * How a group chain `<group>/<db>` is created with a session holding the group's keys: rooted at
 * the newest owner key it holds (else the delegate key; the auth policy accepts only those), read
 * by the newest observer generation (every member holds it), not by the creator's personal key.
 * null when the session holds no owner or delegate key of the group.
 */
export function groupChainCreateOptions(session: Session, group: string): { rootKeys: Buffer[]; readers: ReaderRef[]; creatorReads: false } | null {
  const root = currentRole(session, group, 'owner') ?? currentRole(session, group, 'delegate');
  const observer = currentRole(session, group, 'observer');
  if (!root?.signing || !observer?.readKey) return null;
  return { rootKeys: [root.signing.publicKey], readers: [{ kind: 'sym', id: readKeyId(observer.readKey) }], creatorReads: false };
}

/**
 * The keys mode bits map to in a group chain, from what a session holds (newest generations):
 * group-readable content is sealed for `groupRead` (the observer role: every member), group-writable
 * content admits `groupWrite` (contributor, delegate and owner signing keys the session knows of);
 * owner-only content is sealed for `ownerRead` (the user's own read key) and admits `ownerWrite`.
 * Roles the session does not hold are missing from the lists (gather them first).
 */
export function groupAccess(session: Session, group: string): {
  groupRead: ReaderRef[]; groupWrite: string[]; ownerRead: ReaderRef[]; ownerWrite: string[];
} {
  const u = session.user;
  if (!u) throw new NetError('the session holds no user identity');
  const observer = currentRole(session, group, 'observer');
  const writers = (['contributor', 'delegate', 'owner'] as const).map((r) => currentRole(session, group, r)).filter((p) => p?.signing);
  return {
    groupRead: observer?.readKey ? [{ kind: 'sym', id: readKeyId(observer.readKey) }] : [],
    groupWrite: writers.map((p) => publicKeyId(p!.signing!.publicKey)),
    ownerRead: [{ kind: 'sym', id: readKeyId(u.readKey) }],
    ownerWrite: [publicKeyId(u.signing.publicKey)],
  };
}

/** The claims a token carries (uid, gids, roles...), checked for their signature; null if none. */
export function claimsOfToken(t: { claims: Buffer | null }, o: { allowExpired?: boolean } = {}): Claims | null {
  return t.claims ? verifyClaims(decodeSignedClaims(t.claims), o) : null;
}
