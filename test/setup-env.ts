// Every test file gets its own XDG directories, so tests (and the daemons they spawn, which inherit
// the environment) never read or write the developer's real identity, pins or chains.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const home = mkdtempSync(join(tmpdir(), 'atefs-test-home-'));
for (const [k, d] of [['XDG_CONFIG_HOME', 'config'], ['XDG_DATA_HOME', 'data'], ['XDG_STATE_HOME', 'state']] as const) {
  process.env[k] = join(home, d);
}
afterAll(() => rmSync(home, { recursive: true, force: true }));
