// atefs create-token, atefs token view, atefs token gather.
import * as path from 'node:path';
import { decodeSignedClaims, gather, login, verifyClaims } from '../src/net/index.js';
import { ensurePrivateConfigDir, writeTokenFile } from '../src/session/index.js';
import { type AuthArgs, ask, askEmail, authUrl, credentialsOf, defaultTokenPath, oneLine, parseDuration, print, readToken, tokenPathOf } from './auth-args.js';

export async function runCreateToken(a: AuthArgs & { email?: string; sudo: boolean; expires?: string; out?: string; code?: string }): Promise<void> {
  await oneLine(async () => {
    const url = authUrl(a);
    const ttlMs = a.expires ? parseDuration(a.expires) : undefined;
    const email = await askEmail(a.email, a);
    const pw = await ask('Password: ', { hidden: true, stdin: a.passwordStdin });
    const code = a.sudo ? (a.code ?? (await ask('TOTP code: ', { hidden: false, stdin: a.passwordStdin })).trim()) : undefined;
    const r = await login(url, email, pw, {
      sudo: a.sudo, ...(code ? { code } : {}), ...(ttlMs ? { ttlMs } : {}),
      onNewHost: (addr, fp) => process.stderr.write(`new server ${addr}: ${fp} (pinned)\n`),
    });
    const file = path.resolve(a.out ?? a.tokenPath ?? defaultTokenPath());
    if (!a.out && !a.tokenPath) await ensurePrivateConfigDir(path.dirname(file));
    await writeTokenFile(file, r.session, {
      ttlMs: null, expiresAt: r.decoded.expiresAt, claims: r.claims, ...(a.passcode !== undefined ? { passphrase: a.passcode } : {}),
    });
    const c = r.decoded;
    print(a, { file, email: c.email, uid: c.uid, sudo: c.sudo, expiresAt: new Date(c.expiresAt).toISOString() }, [
      `token for ${c.email} (uid ${c.uid}${c.sudo ? ', sudo' : ''}) written to ${file}, expires ${new Date(c.expiresAt).toISOString()}`,
    ]);
  });
}

export async function runTokenView(a: AuthArgs): Promise<void> {
  await oneLine(async () => {
    const t = await readToken(a);
    const s = decodeSignedClaims(t.claims!);
    const c = verifyClaims(s);
    const roles = t.session.roles().map((p) => `${p.name}:${p.purpose}`);
    const out = { file: t.file, ...c, issuedAt: new Date(c.issuedAt).toISOString(), expiresAt: new Date(c.expiresAt).toISOString(), keys: roles };
    print(a, out, [
      `file: ${t.file}`, `email: ${c.email}`, `uid: ${c.uid}`, `gids: ${c.gids.join(', ') || 'none'}`, `roles: ${c.roles.join(', ') || 'none'}`,
      `sudo: ${c.sudo ? 'yes' : 'no'}`, `issued: ${out.issuedAt}`, `expires: ${out.expiresAt}`, `issuer: ${c.issuer}`, `audience: ${c.audience}`,
      `user key: ${c.key}`, `group keys held: ${roles.join(', ') || 'none'}`,
    ]);
  });
}

export async function runTokenGather(a: AuthArgs & { group: string }): Promise<void> {
  await oneLine(async () => {
    const t = await readToken(a);
    const g = await gather(authUrl(a), credentialsOf(t), a.group);
    const have = new Set(t.session.roles().map((p) => `${p.name}:${p.purpose}`));
    const added = g.roles.filter((p) => !have.has(`${p.name}:${p.purpose}`));
    for (const p of added) t.session.add(p);
    await writeTokenFile(tokenPathOf(a), t.session, {
      ttlMs: null, ...(t.expiresAt !== null ? { expiresAt: t.expiresAt } : {}), claims: t.claims!, ...(a.passcode !== undefined ? { passphrase: a.passcode } : {}),
    });
    print(a, { group: a.group, gid: g.gid, role: g.role, added: added.map((p) => p.purpose) }, [
      `group ${a.group} (gid ${g.gid}): ${g.role}; ${added.length} new key${added.length === 1 ? '' : 's'} added to ${t.file}`,
    ]);
  });
}
