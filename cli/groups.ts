// atefs group create | details | add-user | remove-user.
import { type Role, groupAdd, groupCreate, groupDetails, groupRemove, isRole, ROLES } from '../src/net/index.js';
import { type AuthArgs, authUrl, credentialsOf, oneLine, print, readToken } from './auth-args.js';
import { UserError } from './errors.js';

function roleArg(r: string): Role {
  if (!isRole(r)) throw new UserError(`'${r}' is not a role: ${ROLES.join(', ')}`);
  return r;
}

export async function runGroupCreate(a: AuthArgs & { group: string }): Promise<void> {
  await oneLine(async () => {
    const t = await readToken(a);
    const g = await groupCreate(authUrl(a), credentialsOf(t), a.group);
    print(a, { group: g.name, gid: g.gid }, [`created group ${g.name} gid ${g.gid} (you are its owner; atefs token gather ${g.name} adds its keys to your token)`]);
  });
}

export async function runGroupDetails(a: AuthArgs & { group: string }): Promise<void> {
  await oneLine(async () => {
    const t = await readToken(a).catch((e) => (e instanceof UserError && /no token at/.test(e.message) ? null : Promise.reject(e)));
    const d = await groupDetails(authUrl(a), a.group, t ? credentialsOf(t) : null);
    const lines = [`group: ${d.name}`, `gid: ${d.gid}`];
    for (const r of ROLES) lines.push(`${r}: generation ${d.roles[r].gens.length - 1}`);
    if (d.members) for (const m of d.members) lines.push(`member: ${m.email} (${m.role}, uid ${m.uid})`);
    else lines.push('members: hidden (shown to owners and delegates)');
    print(a, { name: d.name, gid: d.gid, you: d.you, members: d.members?.map((m) => ({ email: m.email, role: m.role, uid: m.uid })) ?? null, hidden: d.hidden }, lines);
  });
}

export async function runGroupAddUser(a: AuthArgs & { group: string; role: string; email: string }): Promise<void> {
  await oneLine(async () => {
    const role = roleArg(a.role);
    const t = await readToken(a);
    await groupAdd(authUrl(a), credentialsOf(t), a.group, role, a.email);
    print(a, { group: a.group, email: a.email, role }, [`added ${a.email} to ${a.group} as ${role}`]);
  });
}

export async function runGroupRemoveUser(a: AuthArgs & { group: string; role: string; email: string }): Promise<void> {
  await oneLine(async () => {
    const role = roleArg(a.role);
    const t = await readToken(a);
    const cred = credentialsOf(t);
    const d = await groupDetails(authUrl(a), a.group, cred);
    const m = d.members?.find((x) => x.email === a.email.trim().toLowerCase());
    if (d.members && !m) throw new UserError(`${a.email} is not a member of ${a.group}`);
    if (m && m.role !== role) throw new UserError(`${a.email} is ${m.role} of ${a.group}, not ${role}`);
    const r = await groupRemove(authUrl(a), cred, a.group, a.email);
    print(a, { group: a.group, email: a.email, role: r.role, rotated: r.rotated }, [
      `removed ${a.email} (${r.role}) from ${a.group}; new keys for ${r.rotated.join(', ')} (members gather them: atefs token gather ${a.group})`,
    ]);
  });
}
