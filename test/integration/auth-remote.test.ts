// `atedb solo --policy auth --auth-url tcp://...`: a node whose auth service is a separate `atedb
// auth` (issue 16). Real processes on 127.0.0.1: the node asks the service ('chain-roots') when a
// genesis arrives, over a handshake that pins the service's host key. Personal and group chains
// are checked by the same rule as in-process; a stopped service refuses creations as
// 'unavailable' (never allows them) while existing chains keep working; it answers again once
// restarted; a service presenting another host key than the demanded one is refused too.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openChain } from '../../src/api/index.js';
import { DataKeyCache, createGenesis } from '../../src/chain/index.js';
import { AuthClient, type Credentials, currentRole, gather, groupAdd, groupCreate } from '../../src/net/index.js';
import { type Identity, Session } from '../../src/session/index.js';
import { RawClient, authRefusal, startSolo, tempDir, usersAt } from './atedb/harness.js';

/** A genesis of `name` created and signed by `by`, rooted at `by`'s signing key. */
async function genesisOf(name: string, by: Identity): Promise<Buffer> {
  const s = Session.of(by);
  return (await createGenesis({ name, keyring: s, rootKeys: [by.signing.publicKey], chainReaders: s.chainReaders(), keys: new DataKeyCache(s) })).bytes;
}

describe('a node asking a separate auth service', () => {
  it('personal and group chains checked remotely; a stopped service refuses creations as unavailable', async () => {
    const authSrv = await startSolo({ command: 'auth', args: ['--auth-kdf', 'test'] });
    const authUrl = `tcp://127.0.0.1:${authSrv.port}`;
    const node = await startSolo({ args: ['--policy', 'auth', '--auth-url', authUrl] });
    // The node pinned the service's host key at start and names the service it asks.
    const service = /auth service: (\S+) policy: auth-only/.exec(authSrv.stdout())![1]!;
    expect(node.stdout()).toContain(`auth service: ${service} at ${authUrl} (host key ${authSrv.fingerprint}) policy: auth\n`);
    const url = `tcp://127.0.0.1:${node.port}`;
    const config = await tempDir('auth-remote-config-');
    const kh = { knownHosts: join(config, 'known_hosts') };
    // The node runs no service of its own: users are made at the auth service.
    const onNode = await AuthClient.connect(url, kh);
    expect((await authRefusal(onNode.request('info', {}))).code).toBe('no-auth');
    onNode.close();
    const [alice, bob] = await usersAt(authUrl, ['alice', 'bob'], kh) as [Credentials, Credentials];
    // What the service answers anyone: public keys (alice's signing key), or a refusal.
    const ask = await AuthClient.connect(authUrl, kh);
    const roots = await ask.request<{ kind: string; keys: Uint8Array[] }>('chain-roots', { chain: 'example.org/alice/notes' });
    expect(roots.kind).toBe('personal');
    expect(roots.keys.map((k) => Buffer.from(k))).toEqual([alice.session.user!.signing.publicKey]);
    expect(await ask.request('chain-roots', { chain: 'a/b/c/d' })).toMatchObject({ kind: 'refused', reason: expect.stringContaining('<domain>/<user>/<db>') });
    ask.close();

    // Alice creates her personal chain on the node; bob cannot create one of hers, nor one of a non-user.
    const a = await openChain(`${url}/example.org/alice/notes`, { session: alice.session, dir: await tempDir('auth-remote-a-'), configDir: config });
    const note = await a.transact((tx) => tx.store({ text: 'mine' }));
    const bobConfig = join(config, 'bob');
    await expect(openChain(`${url}/example.org/alice/forged`, { session: bob.session, dir: await tempDir('auth-remote-b-'), configDir: bobConfig }))
      .rejects.toThrow(/policy: 'example.org\/alice\/forged' must be rooted at alice@example.org's signing key/);
    await expect(openChain(`${url}/example.org/carol/x`, { session: bob.session, dir: await tempDir('auth-remote-b-'), configDir: bobConfig }))
      .rejects.toThrow(/carol@example.org, who is not a user of this service/);

    // A group chain: rooted at the owner key, accepted; at a contributor's key, refused.
    await groupCreate(authUrl, alice, 'acme', kh);
    await groupAdd(authUrl, alice, 'acme', 'contributor', 'bob@example.org', kh);
    for (const r of (await gather(authUrl, alice, 'acme', kh)).roles) alice.session.add(r);
    for (const r of (await gather(authUrl, bob, 'acme', kh)).roles) bob.session.add(r);
    const contributorKey = currentRole(bob.session, 'acme', 'contributor')!.signing!.publicKey;
    await expect(openChain(`${url}/acme/bobs`, { session: bob.session, dir: await tempDir('auth-remote-g-'), configDir: bobConfig, rootKeys: [contributorKey] }))
      .rejects.toThrow(/policy: 'acme\/bobs' must be rooted at the owner or delegate key of group 'acme'/);
    const g = await openChain(`${url}/acme/docs`, { session: alice.session, dir: await tempDir('auth-remote-g-'), configDir: config });
    await g.transact((tx) => tx.store({ page: 'home' }));
    await g.close();

    // The service stops: a creation is refused as unavailable (the client may retry), naming the
    // service; the existing chain keeps taking commits.
    expect((await authSrv.kill('SIGTERM')).code).toBe(0);
    const raw = await RawClient.connect(node.port, kh.knownHosts);
    const later = await genesisOf('example.org/alice/later', alice.session.user!);
    const down = await raw.append('example.org/alice/later', later);
    expect(down).toMatchObject({ t: 'rej', reason: 'unavailable' });
    expect((down as { detail: string }).detail).toContain(`the auth service at ${authUrl} is unavailable`);
    const again = await a.transact((tx) => tx.store({ text: 'still here' }));
    expect(a.load<{ text: string }>(again).value.text).toBe('still here');
    expect(a.load<{ text: string }>(note).value.text).toBe('mine');

    // Restarted on its port (same data, same host key): the same genesis is accepted now.
    const back = await startSolo({ command: 'auth', dataDir: authSrv.dataDir, port: authSrv.port, args: ['--auth-kdf', 'test'] });
    expect(back.fingerprint).toBe(authSrv.fingerprint);
    expect(await raw.append('example.org/alice/later', later)).toMatchObject({ t: 'ok', seq: 1 });
    // A service that accepts connections but does not answer (stopped by SIGSTOP): refused as
    // unavailable after the node's 5 s timeout, not waited for forever.
    process.kill(back.pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const hung = await raw.append('example.org/alice/hung', await genesisOf('example.org/alice/hung', alice.session.user!));
      expect(hung).toMatchObject({ t: 'rej', reason: 'unavailable' });
      expect((hung as { detail: string }).detail).toContain(`the auth service at ${authUrl} is unavailable`);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(4_500);
    } finally {
      process.kill(back.pid, 'SIGCONT');
    }
    raw.close();
    await a.close();

    // A node demanding another host key for the service refuses every creation (the key named).
    const wrongKey = `SHA256:${'A'.repeat(43)}`;
    const strict = await startSolo({ args: ['--policy', 'auth', '--auth-url', authUrl, '--auth-server-key', wrongKey] });
    expect(strict.stdout()).toMatch(/not answering now .*but SHA256:A{43} was demanded/);
    const raw2 = await RawClient.connect(strict.port, kh.knownHosts);
    const refused = await raw2.append('example.org/alice/notes', await genesisOf('example.org/alice/notes', alice.session.user!));
    expect(refused).toMatchObject({ t: 'rej', reason: 'unavailable' });
    expect((refused as { detail: string }).detail).toMatch(/presented key SHA256:\S+, but SHA256:A{43} was demanded/);
    raw2.close();
    await Promise.all([strict.kill('SIGTERM'), node.kill('SIGTERM'), back.kill('SIGTERM')]);
  });

  it('flags: --auth-url needs --policy auth and a tcp URL; --auth-server-key needs --auth-url', async () => {
    await expect(startSolo({ args: ['--auth-url', 'tcp://127.0.0.1:1'] })).rejects.toThrow(/--auth-url is where --policy auth asks/);
    await expect(startSolo({ args: ['--policy', 'auth', '--auth-url', 'http://x'] })).rejects.toThrow(/--auth-url: 'http:\/\/x' is not an auth server URL/);
    await expect(startSolo({ args: ['--policy', 'auth', '--auth-server-key', 'SHA256:x'] })).rejects.toThrow(/--auth-server-key pins the service of --auth-url/);
  });
});
