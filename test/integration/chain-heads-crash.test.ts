// Issue 13: the freshness head is never ahead of what is durable. A writer (another process:
// test/fixtures/chain/head-child.mjs, on the built module) commits durably and compacts while it
// is SIGKILLed at random points, again and again; every next open must accept the chain (no
// ChainRolledBack, no ChainHistoryBroken) and hold every file the writer was told is durable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Filesystem } from '../../fs/core/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';
import { HEADS_FILE } from '../../src/session/index.js';
import { PathFs } from './fs-path-ops.js';
import { ensureBuilt } from '../e2e/harness.js';

const repo = resolve(__dirname, '../..');
const child = join(repo, 'test/fixtures/chain/head-child.mjs');
let base: string;
beforeAll(async () => {
  // The child imports dist/: built once, never rewritten while other files' daemons load it.
  await ensureBuilt();
  base = mkdtempSync(join(tmpdir(), 'atefs-heads-crash-'));
}, 300_000);
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

/** Runs the child until it has acked `acks` files (plus a random delay), SIGKILLs it; returns the last ack. */
function runAndKill(chainDir: string, configDir: string, first: number, acks: number, extraMs: number): Promise<number> {
  return new Promise((done, fail) => {
    const c = spawn(process.execPath, [child, chainDir, configDir, String(first)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let last = first - 1;
    let seen = 0;
    let killed = false;
    let err = '';
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) {
        const m = /^ack (\d+)$/.exec(line);
        if (!m) continue;
        last = Number(m[1]);
        if (++seen === acks && !killed) {
          killed = true;
          setTimeout(() => c.kill('SIGKILL'), extraMs);
        }
      }
    });
    c.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') done(last);
      else fail(new Error(`child exited ${code}: ${err}`));
    });
  });
}

describe('SIGKILL never makes the next open refuse the chain', () => {
  it('kills at random points of durable commits, head writes and compactions', async () => {
    const chainDir = join(base, 'chain');
    const configDir = join(base, 'config');
    let next = 0;
    for (let round = 0; round < 8; round++) {
      const last = await runAndKill(chainDir, configDir, next, 1 + (round % 4) * 2, Math.floor(Math.random() * 400));
      const warnings: string[] = [];
      const chain = await openLocalChain({ chainDir, configDir, onWarning: (m) => warnings.push(m), deferCompaction: false, compactMode: 'never' });
      const fs = await Filesystem.open(chain.store, {});
      const p = new PathFs(fs);
      for (let i = 0; i <= last; i++) expect(p.read(`/f${i}`).toString(), `round ${round}: f${i}`).toBe(`content ${i}`);
      expect(warnings.filter((w) => /accept|certified/.test(w))).toEqual([]);
      let n = last + 1;
      while (p.exists(`/f${n}`)) n++; // committed but killed before its ack was read
      next = n;
      await fs.destroy();
      await chain.close();
    }
    expect(next).toBeGreaterThan(8);
    const heads = JSON.parse(readFileSync(join(configDir, HEADS_FILE), 'utf8')) as Record<string, { seq: number }>;
    expect(Object.values(heads)[0]!.seq).toBeGreaterThan(0);
  }, 300_000);
});
