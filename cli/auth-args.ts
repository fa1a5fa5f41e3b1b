// What the commands that talk to the auth service share: --auth (default $ATEFS_AUTH), the token
// file (--token-path, default $XDG_CONFIG_HOME/atefs/token), its passcode, reading passwords
// (hidden prompt on a terminal, one line per read from stdin with --password-stdin), and turning
// the service's and the token layer's errors into one line.
import * as path from 'node:path';
import * as readline from 'node:readline';
import { AuthRefused, ClaimsRefused, NetError, type Credentials } from '../src/net/index.js';
import { SessionError, type Token, defaultConfigDir, readTokenFile } from '../src/session/index.js';
import { UserError } from './errors.js';

export interface AuthArgs {
  auth?: string;
  tokenPath?: string;
  passcode?: string;
  json: boolean;
  passwordStdin: boolean;
}

export function authOptions<T>(y: import('yargs').Argv<T>) {
  return y
    .option('auth', { type: 'string', describe: 'auth server, tcp://host[:port] (default $ATEFS_AUTH)' })
    .option('token-path', { type: 'string', describe: 'token file (default $XDG_CONFIG_HOME/atefs/token)' })
    .option('passcode', { type: 'string', describe: 'passphrase of an encrypted token file (or $ATEFS_PASSCODE)' })
    .option('password-stdin', { type: 'boolean', default: false, describe: 'read the password (and other answers) from stdin, one line each' })
    .option('json', { type: 'boolean', default: false, describe: 'JSON output' });
}

export function authArgs(v: Record<string, unknown>): AuthArgs {
  const s = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  const passcode = s('passcode') ?? process.env.ATEFS_PASSCODE;
  return {
    ...(s('auth') ? { auth: s('auth') } : {}), ...(s('tokenPath') ? { tokenPath: s('tokenPath') } : {}), ...(passcode !== undefined ? { passcode } : {}),
    json: !!v.json, passwordStdin: !!v.passwordStdin,
  };
}

export function authUrl(a: AuthArgs): string {
  const url = a.auth ?? process.env.ATEFS_AUTH;
  if (!url) throw new UserError('say which auth server: --auth tcp://host[:port] (or set ATEFS_AUTH)');
  return url;
}

export function defaultTokenPath(): string {
  return path.join(defaultConfigDir(), 'token');
}

export function tokenPathOf(a: AuthArgs): string {
  return path.resolve(a.tokenPath ?? defaultTokenPath());
}

export async function readToken(a: AuthArgs): Promise<Token & { file: string }> {
  const file = tokenPathOf(a);
  try {
    const t = await readTokenFile(file, a.passcode !== undefined ? { passphrase: a.passcode } : {});
    if (!t.claims) throw new UserError(`${file} is not a token of an auth service (atefs create-token makes one)`);
    return { ...t, file };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`no token at ${file}: run atefs create-token first (or give --token-path)`);
    throw e;
  }
}

export function credentialsOf(t: Token): Credentials {
  if (!t.claims) throw new UserError('the token carries no claims of an auth service');
  return { session: t.session, claims: t.claims };
}

/** Lines of stdin, read one at a time (--password-stdin). */
let stdinLines: AsyncIterator<string> | null = null;

async function stdinLine(what: string): Promise<string> {
  stdinLines ??= readline.createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]();
  const r = await stdinLines.next();
  if (r.done) throw new UserError(`stdin ended before the ${what}`);
  return r.value;
}

/** Asks without echo on a terminal; one line of stdin otherwise (or with --password-stdin). */
export async function ask(question: string, o: { hidden: boolean; stdin: boolean }): Promise<string> {
  if (o.stdin || !process.stdin.isTTY) return stdinLine(question.replace(/:\s*$/, '').toLowerCase());
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    if (o.hidden) {
      // Echo nothing of what is typed (the prompt itself is written once, below).
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => undefined;
    }
    process.stderr.write(question);
    rl.question('', (answer) => {
      if (o.hidden) process.stderr.write('\n');
      rl.close();
      resolve(answer);
    });
    rl.on('SIGINT', () => {
      rl.close();
      reject(new UserError('interrupted', 130));
    });
  });
}

export async function askEmail(given: string | undefined, a: AuthArgs): Promise<string> {
  return given ?? (await ask('Email: ', { hidden: false, stdin: a.passwordStdin })).trim();
}

/** Parses --expires: 30d, 12h, 45m, 90s, 2w. */
export function parseDuration(s: string): number {
  const m = /^(\d+)\s*([smhdw])$/.exec(s.trim());
  if (!m) throw new UserError(`--expires ${s}: give a number and a unit (s, m, h, d, w), e.g. 30d`);
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2] as 's'];
  const ms = Number(m[1]) * unit;
  if (ms <= 0) throw new UserError(`--expires ${s}: must be more than 0`);
  return ms;
}

/** Runs a command body; refusals of the service and token errors become one line. */
export async function oneLine<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (e instanceof AuthRefused || e instanceof ClaimsRefused || e instanceof SessionError) throw new UserError(e.message);
    if (e instanceof NetError) throw new UserError(`auth server: ${e.message}`);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND') throw new UserError(`auth server unreachable: ${(e as Error).message}`);
    throw e;
  }
}

export function print(a: { json: boolean }, json: unknown, lines: string[]): void {
  process.stdout.write(a.json ? `${JSON.stringify(json)}\n` : `${lines.join('\n')}\n`);
}
