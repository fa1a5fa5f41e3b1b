// Every example in examples/ runs as a user would run it (node, after the build, importing the
// package by its name) and prints what it promises. Remote examples run against a real atedb in
// their own suite.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

describe('examples (local chains)', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'ate-examples-'));
    env = { ...process.env, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
  });
  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });
  const example = async (file: string, ...args: string[]) => {
    const r = await run(process.execPath, [join(ROOT, 'examples', file), ...args], { cwd: ROOT, env, timeout: 60_000 });
    return r.stdout;
  };

  it('hello world: prints "Hello world!" and keeps the chain "universe" between runs', async () => {
    expect(await example('hello-world.mjs')).toBe('Hello world!\n');
    expect(await example('hello-world.mjs')).toBe('Hello world!\n');
    expect(await example('hello-world.mjs', '--temp')).toBe('Hello world!\n');
  });

  it('WORM archive: the rewrite and the delete are refused by the validator', async () => {
    const out = await example('worm-archive.mjs');
    expect(out).toMatch(/rewrite: refused \(NoWriteAuthority\)/);
    expect(out).toMatch(/delete: refused \(NoWriteAuthority\)/);
    expect(out).toMatch(/still: .*"199\.00 EUR"/);
    expect(out).not.toMatch(/ACCEPTED/);
  });

  it('vault: a removed reader keeps what they could read and cannot read later secrets', async () => {
    const out = await example('vault.mjs');
    expect(out.trim().split('\n')).toEqual([
      'bob reads the secret written before carol left: wifi=correct horse',
      'bob reads the secret written after carol left: vpn=battery staple',
      'carol reads the secret written before carol left: wifi=correct horse',
      'carol cannot read the secret written after carol left (NoReadKey)',
    ]);
  });

  it('cache: entries expire, a sweep deletes them, a kept cache finds its root again', async () => {
    for (const args of [[], ['--keep'], ['--keep']]) {
      const out = await example('cache.mjs', ...args);
      expect(out).toMatch(/^greeting = "hello"\nsession:42 = \{"user":"ada"\}\nafter 1\.2 s: session:42 = undefined, greeting = "hello"\nswept 1 expired/);
    }
  });

  it('cross-chain references: the order names a customer of another chain', async () => {
    expect(await example('cross-chain-refs.mjs')).toMatch(/^order of 'analytical engine' for Ada Lovelace <ada@example\.org> \(chain crm, version 1\)\n$/);
  });
});
