// Issue 13 (smaller findings): pins are keyed by the chain directory's real path, and an existing
// chain this user never pinned is refused unless trusted on purpose (trustChain / --trust-chain).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filesystem } from '../../fs/core/index.js';
import { openLocalChain, type OpenLocalChainOptions } from '../../fs/chain-store/index.js';
import { ChainNotPinned } from '../../src/chain/index.js';
import { PINS_FILE, Session, createIdentity } from '../../src/session/index.js';

let base: string;
beforeAll(() => { base = mkdtempSync(join(tmpdir(), 'atefs-pins-')); });
afterAll(() => { rmSync(base, { recursive: true, force: true }); });

const pinsOf = (configDir: string): Record<string, string> => JSON.parse(readFileSync(join(configDir, PINS_FILE), 'utf8')) as Record<string, string>;

/** Opens, makes sure the root exists, closes; returns the genesis hash and the warnings. */
async function use(o: OpenLocalChainOptions): Promise<{ hash: string; warnings: string[] }> {
  const warnings: string[] = [];
  const chain = await openLocalChain({ ...o, onWarning: (m) => warnings.push(m) });
  const fs = await Filesystem.open(chain.store, { readOnly: !!o.readOnly });
  await fs.destroy();
  await chain.close();
  return { hash: chain.genesisHash, warnings };
}

describe('pins by real path', () => {
  it('a symlinked --log-path and its target share one pin', async () => {
    const config = join(base, 'sym-config');
    const real = join(base, 'sym-real');
    const link = join(base, 'sym-link');
    mkdirSync(real);
    symlinkSync(real, link);
    // Created through the link: pinned under the target's real path.
    const a = await use({ chainDir: link, configDir: config });
    expect(pinsOf(config)).toEqual({ [realpathSync(real)]: a.hash });
    // Opened through the target and the link again: the same pin, no trust asked, no new entry.
    expect((await use({ chainDir: real, configDir: config })).warnings).toEqual([]);
    expect((await use({ chainDir: link, configDir: config })).warnings).toEqual([]);
    expect(pinsOf(config)).toEqual({ [realpathSync(real)]: a.hash });

    // The link re-pointed at another user's chain: that directory has no pin here, so it is refused.
    const other = join(base, 'sym-other');
    await use({ chainDir: other, configDir: join(base, 'sym-other-config'), session: Session.of(createIdentity('mallory')) });
    unlinkSync(link);
    symlinkSync(other, link);
    await expect(openLocalChain({ chainDir: link, configDir: config })).rejects.toBeInstanceOf(ChainNotPinned);
    expect(pinsOf(config)).toEqual({ [realpathSync(real)]: a.hash });
  });

  it('a pin an older atefs wrote under the path as given still binds, and moves to the real path', async () => {
    const config = join(base, 'legacy-config');
    const real = join(base, 'legacy-real');
    const link = join(base, 'legacy-link');
    symlinkSync(real, link);
    const a = await use({ chainDir: real, configDir: config });
    writeFileSync(join(config, PINS_FILE), JSON.stringify({ [link]: a.hash }));
    expect((await use({ chainDir: link, configDir: config })).warnings).toEqual([]);
    expect(pinsOf(config)).toEqual({ [link]: a.hash, [realpathSync(real)]: a.hash });
    // A legacy pin of another genesis is a mismatch, not "unpinned".
    writeFileSync(join(config, PINS_FILE), JSON.stringify({ [link]: 'ab'.repeat(32) }));
    await expect(openLocalChain({ chainDir: link, configDir: config })).rejects.toThrow(/genesis/i);
  });
});

describe('an unpinned existing chain', () => {
  it('is refused (nothing pinned, nothing written) until trusted; then it is pinned', async () => {
    const me = Session.of(createIdentity('me'));
    const dir = join(base, 'unpinned');
    const made = await use({ chainDir: dir, configDir: join(base, 'unpinned-maker'), session: me });
    // The same chain seen from a config directory without its pin (copied here, pins lost).
    const config = join(base, 'unpinned-config');
    const refused = openLocalChain({ chainDir: dir, configDir: config, session: me });
    await expect(refused).rejects.toBeInstanceOf(ChainNotPinned);
    await expect(refused).rejects.toThrow(`the chain at ${dir} holds commits (up to seq `);
    await expect(refused).rejects.toThrow(/--trust-chain/);
    expect(existsSync(join(config, PINS_FILE))).toBe(false);
    await expect(openLocalChain({ chainDir: dir, configDir: config, session: me, readOnly: true })).rejects.toBeInstanceOf(ChainNotPinned);

    const trusted = await use({ chainDir: dir, configDir: config, session: me, trustChain: true });
    expect(trusted.hash).toBe(made.hash);
    expect(trusted.warnings.join('\n')).toMatch(/trusting the unpinned chain .*--trust-chain/);
    expect(pinsOf(config)).toEqual({ [realpathSync(dir)]: made.hash });
    expect((await use({ chainDir: dir, configDir: config, session: me })).warnings).toEqual([]);
  });

  it("this user's own creation interrupted before the pin (a lone genesis of their keys) is pinned; anyone else's is refused", async () => {
    const me = Session.of(createIdentity('me'));
    const dir = join(base, 'lone-genesis');
    const config = join(base, 'lone-config');
    // Opened and closed without creating the root: the log holds the genesis only.
    const chain = await openLocalChain({ chainDir: dir, configDir: config, session: me });
    expect(chain.log.nextSeq).toBe(2);
    await chain.close();
    const copy = join(base, 'lone-genesis-copy');
    cpSync(dir, copy, { recursive: true });
    rmSync(join(config, PINS_FILE)); // the crash came before the pin was written
    expect((await use({ chainDir: dir, configDir: config, session: me })).hash).toBe(chain.genesisHash);
    expect(pinsOf(config)).toEqual({ [realpathSync(dir)]: chain.genesisHash });
    // The same lone genesis opened by another user is someone else's chain: refused.
    await expect(openLocalChain({ chainDir: copy, configDir: join(base, 'lone-other'), session: Session.of(createIdentity('other')) }))
      .rejects.toBeInstanceOf(ChainNotPinned);
  });
});

describe('atefs mount --at (a read-only view of the history) follows the same rule', () => {
  it('an unpinned chain is refused in one line; --trust-chain shows it', async () => {
    const { openHistoricStore } = await import('../../cli/mount-store.js');
    const { toMountArgs } = await import('../../cli/mount-args.js');
    const { defaultConfigDir, loadOrCreateLocalIdentity } = await import('../../src/session/index.js');
    // This user's keys (the default identity), pinned in another config directory only.
    const me = (await loadOrCreateLocalIdentity(defaultConfigDir())).session;
    const dir = join(base, 'history');
    await use({ chainDir: dir, configDir: join(base, 'history-config'), session: me });
    const args = (trust: boolean) => toMountArgs({ dir: join(base, 'mnt'), logPath: dir, at: '2', trustChain: trust, transport: 'kernel' });
    const refused = openHistoricStore(args(false));
    await expect(refused).rejects.toThrow(/^refusing an unpinned chain: the chain at .* holds commits \(up to seq \d+\) but is not pinned .*--trust-chain/);
    await expect(refused).rejects.toHaveProperty('name', 'UserError');
    const shown = await openHistoricStore(args(true));
    expect(shown.mode).toBe('history (read-only, seq 2)');
    await shown.close();
  });
});
