// atefs create-user, atefs user details.
import { createUser, userDetails } from '../src/net/index.js';
import { type AuthArgs, ask, askEmail, authUrl, credentialsOf, oneLine, print, readToken } from './auth-args.js';
import { UserError } from './errors.js';

async function qr(text: string): Promise<string> {
  const m = await import('qrcode-terminal');
  // A method call: generate() reads its error-correction level from `this`.
  const q = (m as unknown as { default?: typeof m }).default ?? m;
  return new Promise((resolve) => q.generate(text, { small: true }, resolve));
}

export async function runCreateUser(a: AuthArgs & { email?: string; totp: boolean }): Promise<void> {
  await oneLine(async () => {
    const url = authUrl(a);
    const email = await askEmail(a.email, a);
    const pw = await ask('Password: ', { hidden: true, stdin: a.passwordStdin });
    if (!a.passwordStdin && process.stdin.isTTY) {
      const again = await ask('Password again: ', { hidden: true, stdin: false });
      if (again !== pw) throw new UserError('the passwords do not match');
    }
    if (pw.length < 8) throw new UserError('the password is shorter than 8 characters');
    const r = await createUser(url, email, pw, {
      totp: a.totp, onNewHost: (addr, fp) => process.stderr.write(`new server ${addr}: ${fp} (pinned)\n`),
    });
    const lines = [`created user ${r.email} uid ${r.uid} fingerprint ${r.fingerprint}`];
    if (r.totpUrl && r.totpSecret && !a.json) {
      lines.push('', 'TOTP for sudo tokens: scan this with an authenticator app (or type the secret)', await qr(r.totpUrl), `secret: ${r.totpSecret}`, `url: ${r.totpUrl}`);
    }
    print(a, r, lines);
  });
}

export async function runUserDetails(a: AuthArgs): Promise<void> {
  await oneLine(async () => {
    const t = await readToken(a);
    const d = await userDetails(authUrl(a), credentialsOf(t)) as {
      email: string; uid: number; fingerprint: string; totp: boolean; groups: Array<{ name: string; gid: number; role: string }>;
    };
    print(a, d, [
      `email: ${d.email}`, `uid: ${d.uid}`, `fingerprint: ${d.fingerprint}`, `totp: ${d.totp ? 'yes' : 'no'}`,
      `groups: ${d.groups.length ? d.groups.map((g) => `${g.name} (gid ${g.gid}, ${g.role})`).join(', ') : 'none'}`,
    ]);
  });
}
