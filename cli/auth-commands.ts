// Registers the commands of the auth service on the atefs yargs instance.
import type { Argv } from 'yargs';
import { authArgs, authOptions } from './auth-args.js';

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

export function authCommands<T>(y: Argv<T>): Argv<T> {
  return y
    .command('create-user [email]', 'create a user on an auth server (asks the password twice)', (y) => authOptions(y)
      .positional('email', { type: 'string' })
      .option('totp', { type: 'boolean', default: false, describe: 'set up TOTP (needed for sudo tokens): shows a QR code and the secret' }), async (v) => {
      const { runCreateUser } = await import('./users.js');
      await runCreateUser({ ...authArgs(v), ...(str(v.email) ? { email: str(v.email) } : {}), totp: !!v.totp });
    })
    .command('create-token [email]', 'log in and write a token file (mode 0600)', (y) => authOptions(y)
      .positional('email', { type: 'string' })
      .option('sudo', { type: 'boolean', default: false, describe: 'an elevated token (asks for the TOTP code; lives at most 12 h)' })
      .option('code', { type: 'string', describe: 'the TOTP code for --sudo (otherwise asked)' })
      .option('expires', { type: 'string', describe: 'lifetime: 30d, 12h, 45m... (default 30d)' })
      .option('out', { type: 'string', describe: 'where to write the token (default --token-path)' }), async (v) => {
      const { runCreateToken } = await import('./tokens.js');
      await runCreateToken({
        ...authArgs(v), ...(str(v.email) ? { email: str(v.email) } : {}), sudo: !!v.sudo,
        ...(str(v.code) ? { code: str(v.code) } : {}), ...(str(v.expires) ? { expires: str(v.expires) } : {}), ...(str(v.out) ? { out: str(v.out) } : {}),
      });
    })
    .command('user <command>', 'the user of a token', (y) => y
      .command('details', "the token's user as the service knows it", (y) => authOptions(y), async (v) => {
        const { runUserDetails } = await import('./users.js');
        await runUserDetails(authArgs(v));
      })
      .demandCommand(1, 'say which user command (see --help)'))
    .command('token <command>', 'token files', (y) => y
      .command('view', 'the claims and expiry of a token (never a private key)', (y) => authOptions(y), async (v) => {
        const { runTokenView } = await import('./tokens.js');
        await runTokenView(authArgs(v));
      })
      .command('gather <group>', "add the keys of the group's roles you hold to the token", (y) => authOptions(y).positional('group', { type: 'string', demandOption: true }), async (v) => {
        const { runTokenGather } = await import('./tokens.js');
        await runTokenGather({ ...authArgs(v), group: String(v.group) });
      })
      .demandCommand(1, 'say which token command (see --help)'))
    .command('group <command>', 'groups: roles owner, delegate, contributor, observer', (y) => y
      .command('create <group>', 'create a group (you become its owner)', (y) => authOptions(y).positional('group', { type: 'string', demandOption: true }), async (v) => {
        const { runGroupCreate } = await import('./groups.js');
        await runGroupCreate({ ...authArgs(v), group: String(v.group) });
      })
      .command('details <group>', 'gid, role keys, and members (to owners and delegates)', (y) => authOptions(y).positional('group', { type: 'string', demandOption: true }), async (v) => {
        const { runGroupDetails } = await import('./groups.js');
        await runGroupDetails({ ...authArgs(v), group: String(v.group) });
      })
      .command('add-user <group> <role> <email>', 'add a member (owners add owners and delegates, with a sudo token for owners; delegates add contributors and observers)', (y) => authOptions(y)
        .positional('group', { type: 'string', demandOption: true }).positional('role', { type: 'string', demandOption: true }).positional('email', { type: 'string', demandOption: true }), async (v) => {
        const { runGroupAddUser } = await import('./groups.js');
        await runGroupAddUser({ ...authArgs(v), group: String(v.group), role: String(v.role), email: String(v.email) });
      })
      .command('remove-user <group> <role> <email>', 'remove a member; the keys of the roles they held are replaced', (y) => authOptions(y)
        .positional('group', { type: 'string', demandOption: true }).positional('role', { type: 'string', demandOption: true }).positional('email', { type: 'string', demandOption: true }), async (v) => {
        const { runGroupRemoveUser } = await import('./groups.js');
        await runGroupRemoveUser({ ...authArgs(v), group: String(v.group), role: String(v.role), email: String(v.email) });
      })
      .demandCommand(1, 'say which group command (see --help)'));
}
