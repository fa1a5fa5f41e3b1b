// The keys a remote mount uses with an auth service's token (`--token-path`, default
// $XDG_CONFIG_HOME/atefs/token), by the kind of chain its URL names:
//   <domain>/<user>/<db>  a personal chain: created rooted at the token user's signing key alone
//                         (what the auth policy demands; a token holding group keys would
//                         otherwise root it at all of them);
//   <group>/<db>          a group chain when the token's user is a member: the group's keys are
//                         gathered from the service into the mount's session (in memory; the token
//                         file is not changed), mode bits map to them (ChainStore's `group`), new
//                         files get the token's uid and the group's gid, and the chain is created
//                         rooted at the owner or delegate key and read by the observer role.
import * as path from 'node:path';
import { publicKeyId, type KeyId, type ReaderRef } from '../src/chain/index.js';
import {
  AuthRefused, type Credentials, NetError, claimsOfToken, currentRole, gather, groupAccess, groupChainCreateOptions, groupDetails, parseRemoteUrl,
  type Claims, type Role,
} from '../src/net/index.js';
import type { Token } from '../src/session/index.js';

export interface RemoteMountKeys {
  /** How the first mount creates the chain. */
  create?: { rootKeys?: Buffer[]; readers?: ReaderRef[]; creatorReads?: boolean };
  /**
   * A group chain's keys (see fs/remote/remote-store.ts): `writers` are the contributor, delegate
   * and owner keys (group-writable content, creating files), `managers` the delegate and owner
   * keys alone (changing the group root: fs/remote/group-root.ts).
   */
  group?: { name: string; readers: ReaderRef[]; writers: KeyId[]; managers: KeyId[] };
  /** Owner ids of new files (a group chain: the token's uid, the group's gid). */
  creator?: { uid: number; gid: number };
}

const WRITER_ROLES: readonly Role[] = ['contributor', 'delegate', 'owner'];
const MANAGER_ROLES: readonly Role[] = ['delegate', 'owner'];

/** The gid of `group` in the token's claims (claims list gids and `group:role` in step). */
function gidInClaims(c: Claims, group: string): number | undefined {
  const i = c.roles.findIndex((r) => r.slice(0, r.lastIndexOf(':')) === group);
  return i >= 0 ? c.gids[i] : undefined;
}

/**
 * Plans a remote mount with `token` (its session gains the group's keys when the URL names a
 * group chain of the token's user). Talks to the auth service of the mount's server for a group
 * chain; offline, it keeps to what the token holds and says so through `onWarning`.
 */
export async function remoteMountKeys(
  url: string, token: Pick<Token, 'session' | 'claims'>,
  o: { configDir: string; serverKey?: string; onWarning?: (m: string) => void; timeoutMs?: number },
): Promise<RemoteMountKeys> {
  const u = parseRemoteUrl(url);
  const user = token.session.user;
  if (!user?.signing) return {};
  const personal: RemoteMountKeys = { create: { rootKeys: [user.signing.publicKey] } };
  const parts = u.name.split('/');
  const claims = token.claims ? claimsOfToken(token) : null;
  if (parts.length !== 2 || !claims) return personal;
  const group = parts[0]!;
  const cred: Credentials = { session: token.session, claims: token.claims! };
  const auth = `tcp://${u.host}:${u.port}`;
  const conn = { knownHosts: path.join(o.configDir, 'known_hosts'), ...(o.serverKey ? { serverKey: o.serverKey } : {}), timeoutMs: o.timeoutMs ?? 10_000 };
  let gid = gidInClaims(claims, group);
  let writers: KeyId[] = [];
  const managers: KeyId[] = [];
  const unreachable = (e: unknown) => e instanceof NetError && !(e instanceof AuthRefused) || typeof (e as NodeJS.ErrnoException).code === 'string';
  let offline: Error | null = null;
  try {
    // Every writer role's newest public key, also those this user does not hold: a file one
    // contributor makes group-writable must admit the owners' and delegates' signatures too.
    // (Public: shown to anyone who asks.) Asked before gathering: keys only move on, so the
    // readers gathered next are never older than these writers (a removal between the two
    // shows as new readers now and new writers at the next refresh, never the other way round).
    const d = await groupDetails(auth, group, cred, conn);
    for (const r of WRITER_ROLES) {
      const gens = d.roles[r]?.gens ?? [];
      const newest = gens[gens.length - 1];
      if (!newest) continue;
      const id = publicKeyId(Buffer.from(newest.signPk));
      writers.push(id);
      if (MANAGER_ROLES.includes(r)) managers.push(id);
    }
  } catch (e) {
    if (unreachable(e)) offline = e as Error;
    else if (!(e instanceof AuthRefused)) throw e;
  }
  try {
    // Unreachable a moment ago: do not wait for the connection timeout twice.
    if (offline) throw offline;
    const g = await gather(auth, cred, group, conn);
    gid = g.gid;
    const held = new Set(token.session.roles().map((p) => `${p.name}:${p.purpose}`));
    for (const p of g.roles) if (!held.has(`${p.name}:${p.purpose}`)) token.session.add(p);
  } catch (e) {
    // Not a group of this user (or no such group): a plain chain of that name, if the server's
    // policy allows one. A member removed since keeps the keys the token (or the mount) holds.
    if (!currentRole(token.session, group, 'observer')) {
      if (e instanceof AuthRefused || unreachable(e)) return personal;
      throw e;
    }
    if (e instanceof AuthRefused) o.onWarning?.(`the auth service refused the keys of group '${group}' (${e.message}): using the keys the token holds`);
    // Unreachable (or refusing) right now: the mount itself says more if it cannot go on.
    else if (unreachable(e)) o.onWarning?.(`could not ask the auth service for the keys of group '${group}' (${(e as Error).message}): using the keys the token holds`);
    else throw e;
  }
  const access = groupAccess(token.session, group);
  if (access.groupRead.length === 0) return personal;
  for (const w of access.groupWrite) if (!writers.includes(w)) writers.push(w);
  writers = [...new Set(writers)];
  // The manager keys this token holds itself (offline, the service's list above is missing).
  for (const r of MANAGER_ROLES) {
    const p = currentRole(token.session, group, r);
    if (p?.signing) {
      const id = publicKeyId(p.signing.publicKey);
      if (!managers.includes(id)) managers.push(id);
    }
  }
  const create = groupChainCreateOptions(token.session, group);
  return {
    ...(create ? { create } : {}),
    group: { name: group, readers: access.groupRead, writers, managers },
    ...(gid !== undefined ? { creator: { uid: claims.uid, gid } } : {}),
  };
}
