import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (bin: string, args: string[]) =>
  spawnSync(process.execPath, [`${root}/dist/cli/${bin}.js`, ...args], { encoding: 'utf8' });

describe('CLI entry points (built)', () => {
  it('atefs --help lists the commands', () => {
    const r = run('atefs', ['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/mount <dir>/);
  });
  it('an unknown command is one clear line and a non-zero exit, no stack trace', () => {
    const r = run('atefs', ['frobnicate']);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });
  it('atedb --help lists solo', () => {
    const r = run('atedb', ['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/solo/);
  });
});
