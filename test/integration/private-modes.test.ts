// Issue 13 (smaller findings): a chain's log and index are private to its user — files 0600,
// directories 0700, whatever the umask, also under a --log-path that existed before with looser
// modes and for a chain written before this rule — and so is the config directory (identity,
// pins). A --log-path shared with other things is left alone, with a warning.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem, type Ctx } from '../../fs/core/index.js';
import { openLocalChain } from '../../fs/chain-store/index.js';

const ROOT: Ctx = { uid: 0, gid: 0, pid: 1 };
let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-modes-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

const mode = (p: string) => (lstatSync(p).mode & 0o7777).toString(8).padStart(4, '0');

/** Every path under dir (dir included) with its mode, e.g. { 'log/MANIFEST': '0600' }. */
function modes(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = { [rel || '.']: mode(dir) };
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    const r = rel ? `${rel}/${n}` : n;
    if (lstatSync(p).isDirectory()) Object.assign(out, modes(p, r));
    else out[r] = mode(p);
  }
  return out;
}

/** Opens the chain, writes a file, compacts (new segments), closes; returns the warnings. */
async function useChain(chainDir: string, configDir: string, opts: { whileOpen?: () => void } = {}): Promise<string[]> {
  const warnings: string[] = [];
  const chain = await openLocalChain({ chainDir, configDir, onWarning: (m) => warnings.push(m), deferCompaction: false });
  const fs = await Filesystem.open(chain.store);
  const { entry, open } = fs.create(ROOT, 1, Buffer.from(`f${Date.now()}`), 0o644, 2);
  fs.write(ROOT, entry.ino, open.fh, 0, Buffer.alloc(300_000, 7));
  fs.release(entry.ino, open.fh);
  await fs.sync();
  await chain.view.compact('manual');
  opts.whileOpen?.();
  await fs.destroy();
  await chain.close();
  return warnings;
}

function expectPrivate(tree: Record<string, string>): void {
  const loose = Object.entries(tree).filter(([, m]) => m !== '0600' && m !== '0700');
  expect(loose).toEqual([]);
}

describe('private chain files', () => {
  it('a new chain: every directory 0700, every file 0600 (the lock too), whatever the umask', async () => {
    const chainDir = join(base, 'new', 'chain');
    const configDir = join(base, 'new', 'config');
    let whileOpen: Record<string, string> = {};
    const warnings = await useChain(chainDir, configDir, { whileOpen: () => { whileOpen = modes(chainDir); } });
    expect(warnings).toEqual([]);
    expect(Object.keys(whileOpen)).toContain('log/LOCK');
    expectPrivate(whileOpen);
    const tree = modes(chainDir);
    expect(Object.keys(tree).some((k) => k.startsWith('log/') && k.endsWith('.seg'))).toBe(true);
    expect(Object.keys(tree).some((k) => k.startsWith('index/'))).toBe(true);
    expectPrivate(tree);
    expect(modes(configDir)).toEqual({ '.': '0700', 'chain-heads.json': '0600', 'identity.token': '0600', 'pinned-chains.json': '0600' });
  });

  it('a --log-path made beforehand with mode 0755 (and an older chain with loose files) is tightened', async () => {
    const chainDir = join(base, 'old', 'chain');
    const configDir = join(base, 'old', 'config');
    mkdirSync(chainDir, { recursive: true });
    chmodSync(chainDir, 0o755);
    expect(await useChain(chainDir, configDir)).toEqual([]);
    expect(mode(chainDir)).toBe('0700');
    // What an older atefs (or a careless copy) left: everything group/other readable or writable.
    const loosen = (dir: string) => {
      chmodSync(dir, 0o775);
      for (const n of readdirSync(dir)) {
        const p = join(dir, n);
        if (statSync(p).isDirectory()) loosen(p);
        else chmodSync(p, 0o664);
      }
    };
    loosen(chainDir);
    loosen(configDir);
    expect(modes(chainDir)['log/MANIFEST']).toBe('0664');
    expect(await useChain(chainDir, configDir)).toEqual([]);
    expectPrivate(modes(chainDir));
    expect(modes(configDir)).toEqual({ '.': '0700', 'chain-heads.json': '0600', 'identity.token': '0600', 'pinned-chains.json': '0600' });
  });

  it('a --log-path that also holds other things keeps its mode, with a warning; log/ and index/ are private', async () => {
    const chainDir = join(base, 'shared');
    mkdirSync(chainDir, { recursive: true });
    writeFileSync(join(chainDir, 'notes.txt'), 'not the chain\n');
    chmodSync(chainDir, 0o755);
    const warnings = await useChain(chainDir, join(base, 'shared-config'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${chainDir} is accessible to other users (mode 0755)`);
    expect(warnings[0]).toContain('notes.txt');
    expect(mode(chainDir)).toBe('0755');
    expect(mode(join(chainDir, 'notes.txt'))).toBe('0644');
    const { '.': _top, 'notes.txt': _notes, ...chain } = modes(chainDir);
    expectPrivate(chain);
    expect(chain.log).toBe('0700');
    expect(chain.index).toBe('0700');
  });
});
