// Groups of the auth service on a real `atedb solo --policy auth`: roles and who manages whom,
// details as a manager and as an outsider, a group chain members read, and a removed member who
// cannot read what is written after the removal (old data stays readable with their old token).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openChain } from '../../src/api/index.js';
import { readKeyId } from '../../src/chain/ids.js';
import {
  AuthClient, type Credentials, claimsOfToken, createUser, currentRole, gather, groupAccess, groupAdd, groupCreate, groupDetails, groupRemove, login,
} from '../../src/net/index.js';
import { totpCode } from '../../server/auth/totp.js';
import { authRefusal as refusal, sleep, startSolo, tempDir, usersAt } from './atedb/harness.js';

describe('auth groups', () => {
  it('roles, details, group chain, removal with key rotation', async () => {
    const solo = await startSolo({ args: ['--policy', 'auth', '--auth-kdf', 'test'] });
    const url = `tcp://127.0.0.1:${solo.port}`;
    const config = await tempDir('auth-groups-config-');
    const kh = { knownHosts: join(config, 'known_hosts') };
    const users = ['alice', 'bob', 'carol', 'dave', 'eve'];
    const totp = new Map<string, string>();
    for (const u of users) totp.set(u, (await createUser(url, `${u}@example.org`, `pw ${u}`, { ...kh, totp: true })).totpSecret!);
    const cred = async (u: string, sudo = false): Promise<Credentials> => {
      const r = await login(url, `${u}@example.org`, `pw ${u}`, { ...kh, ...(sudo ? { sudo: true, code: totpCode(totp.get(u)!, `${u}@example.org`) } : {}) });
      return { session: r.session, claims: r.claims };
    };
    const alice = await cred('alice');
    const bob = await cred('bob');
    const carol = await cred('carol');
    const dave = await cred('dave');
    const eve = await cred('eve');

    // Creating a group needs a token.
    const raw = await AuthClient.connect(url, kh);
    expect((await refusal(raw.request('group-create', { name: 'acme', roles: {} }))).code).toBe('no-token');
    raw.close();
    const g = await groupCreate(url, alice, 'acme', kh);
    expect(g.gid).toBeGreaterThanOrEqual(1000);
    expect((await refusal(groupCreate(url, bob, 'acme', kh))).message).toMatch(/already exists/);

    await groupAdd(url, alice, 'acme', 'contributor', 'bob@example.org', kh);
    await groupAdd(url, alice, 'acme', 'observer', 'carol@example.org', kh);
    await groupAdd(url, alice, 'acme', 'delegate', 'eve@example.org', kh);
    // Owners change only with a sudo token; a delegate never adds an owner; a contributor manages nobody.
    expect((await refusal(groupAdd(url, alice, 'acme', 'owner', 'dave@example.org', kh))).code).toBe('sudo-required');
    const eveSudo = await cred('eve', true);
    expect((await refusal(groupAdd(url, eveSudo, 'acme', 'owner', 'dave@example.org', kh))).message).toMatch(/may not manage owners/);
    expect((await refusal(groupAdd(url, bob, 'acme', 'observer', 'dave@example.org', kh))).message).toMatch(/may not manage observers/);

    // Details: members to the owner, hidden from an outsider (who still sees the public keys).
    const asOwner = await groupDetails(url, 'acme', alice, kh);
    expect(asOwner.members!.map((m) => `${m.email}:${m.role}`).sort()).toEqual([
      'alice@example.org:owner', 'bob@example.org:contributor', 'carol@example.org:observer', 'eve@example.org:delegate',
    ]);
    const asOutsider = await groupDetails(url, 'acme', dave, kh);
    expect(asOutsider.hidden).toBe(true);
    expect(asOutsider.members).toBeNull();
    expect(asOutsider.roles.observer.gens).toHaveLength(1);

    // Gather: each member unwraps the keys of their role and the weaker ones; an outsider gets none.
    const ga = await gather(url, alice, 'acme', kh);
    expect(ga.roles.map((r) => r.purpose).sort()).toEqual(['contributor#0', 'delegate#0', 'observer#0', 'owner#0']);
    const gb = await gather(url, bob, 'acme', kh);
    expect(gb.roles.map((r) => r.purpose).sort()).toEqual(['contributor#0', 'observer#0']);
    expect((await refusal(gather(url, dave, 'acme', kh))).code).toBe('no-access');
    for (const r of ga.roles) alice.session.add(r);
    for (const r of gb.roles) bob.session.add(r);
    for (const r of (await gather(url, carol, 'acme', kh)).roles) carol.session.add(r);

    // Chain roots: only an owner/delegate key roots a group chain.
    const chainUrl = `${url}/acme/docs`;
    await expect(openChain(chainUrl, { session: dave.session, dir: await tempDir('auth-g-'), configDir: config })).rejects.toThrow(/owner or delegate key of group 'acme'/);
    const contributorKey = currentRole(bob.session, 'acme', 'contributor')!.signing!.publicKey;
    await expect(openChain(chainUrl, { session: bob.session, dir: await tempDir('auth-g-'), configDir: config, rootKeys: [contributorKey] }))
      .rejects.toThrow(/owner or delegate key of group 'acme'/);

    // Alice creates the group chain: rooted at the owner key, readable by the observer role.
    const observer0 = currentRole(alice.session, 'acme', 'observer')!;
    const a = await openChain(chainUrl, {
      session: alice.session, dir: await tempDir('auth-ga-'), configDir: config,
      rootKeys: [currentRole(alice.session, 'acme', 'owner')!.signing!.publicKey],
      readers: [{ kind: 'sym', id: readKeyId(observer0.readKey!) }], creatorReads: false,
    });
    const before = await a.transact((tx) => tx.store({ note: 'before the removal' }));
    const b = await openChain(chainUrl, { session: bob.session, dir: await tempDir('auth-gb-'), configDir: join(config, 'bob') });
    expect(b.load<{ note: string }>(before).value.note).toBe('before the removal');

    // Bob is removed: contributor and observer keys rotate, wrapped to the remaining holders.
    const rm = await groupRemove(url, alice, 'acme', 'bob@example.org', kh);
    expect(rm.rotated).toEqual(['contributor', 'observer']);
    expect((await refusal(gather(url, bob, 'acme', kh))).message).toMatch(/not a member/);
    for (const r of (await gather(url, alice, 'acme', kh)).roles) alice.session.add(r);
    const observer1 = currentRole(alice.session, 'acme', 'observer')!;
    expect(observer1.purpose).toBe('observer#1');
    const after = await a.transact((tx) => tx.store({ note: 'after the removal' }, { read: { mode: 'readers', readers: [{ kind: 'sym', id: readKeyId(observer1.readKey!) }] } }));
    const seq = a.view.log.nextSeq;
    for (let i = 0; i < 500 && b.view.log.nextSeq < seq; i++) await sleep(20);
    expect(b.view.log.nextSeq).toBe(seq);
    // Old data stays readable with the old token; the new data is not.
    expect(b.load<{ note: string }>(before).value.note).toBe('before the removal');
    let err: Error | null = null;
    try {
      b.load(after);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.name).toBe('NoReadKey');
    // Carol, who stayed, gathers the new generation and reads it.
    for (const r of (await gather(url, carol, 'acme', kh)).roles) carol.session.add(r);
    const c = await openChain(chainUrl, { session: carol.session, dir: await tempDir('auth-gc-'), configDir: join(config, 'carol'), readOnly: true });
    expect(c.load<{ note: string }>(after).value.note).toBe('after the removal');
    expect(c.load<{ note: string }>(before).value.note).toBe('before the removal');
    // Without options, a group chain opened with the group's keys is rooted at and read by them.
    const w = await openChain(`${url}/acme/wiki`, { session: alice.session, dir: await tempDir('auth-gw-'), configDir: config });
    const page = await w.transact((tx) => tx.store({ page: 'home' }));
    const cw = await openChain(`${url}/acme/wiki`, { session: carol.session, dir: await tempDir('auth-gcw-'), configDir: join(config, 'carol'), readOnly: true });
    for (let i = 0; i < 500 && !cw.tryLoad(page); i++) await sleep(20);
    expect(cw.load<{ page: string }>(page).value.page).toBe('home');
    await Promise.all([w.close(), cw.close()]);
    // A delegate removed from the group keeps the rotated-out delegate key, which roots no new
    // group chain; the owner's current key still does.
    const eveRoles = await gather(url, eve, 'acme', kh);
    for (const r of eveRoles.roles) eve.session.add(r);
    const eveDelegate0 = currentRole(eve.session, 'acme', 'delegate')!.signing!.publicKey;
    expect((await groupRemove(url, alice, 'acme', 'eve@example.org', kh)).rotated).toContain('delegate');
    await expect(openChain(`${url}/acme/eves`, { session: eve.session, dir: await tempDir('auth-ge-'), configDir: join(config, 'eve'), rootKeys: [eveDelegate0] }))
      .rejects.toThrow(/owner or delegate key of group 'acme' \(the current generation/);
    const own = await openChain(`${url}/acme/after-eve`, { session: alice.session, dir: await tempDir('auth-gae-'), configDir: config });
    await own.close();
    // The last owner cannot be removed.
    const aliceSudo = await cred('alice', true);
    expect((await refusal(groupRemove(url, aliceSudo, 'acme', 'alice@example.org', kh))).code).toBe('last-owner');
    await Promise.all([a.close(), b.close(), c.close()]);
    await solo.kill('SIGTERM');
  });

  it('the e2e scenario at library level: a contributor reads and edits group-readable data, owner-only data is NoReadKey to them', async () => {
    const solo = await startSolo({ args: ['--policy', 'auth', '--auth-kdf', 'test'] });
    const url = `tcp://127.0.0.1:${solo.port}`;
    const config = await tempDir('auth-e2e-config-');
    const kh = { knownHosts: join(config, 'known_hosts') };
    const [alice, bob] = await usersAt(url, ['alice', 'bob'], kh) as [Credentials, Credentials];
    await groupCreate(url, alice, 'acme', kh);
    await groupAdd(url, alice, 'acme', 'contributor', 'bob@example.org', kh);
    // A token made after joining names the group in its claims (uid, gids: what files get).
    const bobAgain = await login(url, 'bob@example.org', 'pw bob', kh);
    const claims = claimsOfToken({ claims: bobAgain.claims })!;
    expect(claims.roles).toEqual(['acme:contributor']);
    expect(claims.gids).toHaveLength(1);
    expect(claims.uid).toBeGreaterThanOrEqual(1000);
    for (const r of (await gather(url, alice, 'acme', kh)).roles) alice.session.add(r);
    for (const r of (await gather(url, bob, 'acme', kh)).roles) bob.session.add(r);

    const a = await openChain(`${url}/acme/docs`, { session: alice.session, dir: await tempDir('auth-e2e-a-'), configDir: config });
    // 0660: sealed for the group's readers, writable by contributors and up. 0600: sealed for the
    // owner's own key only, writable by the owner only.
    const acc = groupAccess(alice.session, 'acme');
    expect(acc.groupWrite).toHaveLength(3);
    const shared = await a.transact((tx) => tx.store({ text: 'shared v1' }, { read: { mode: 'readers', readers: acc.groupRead }, write: { mode: 'any', keys: acc.groupWrite } }));
    const secret = await a.transact((tx) => tx.store({ text: 'owner only' }, { read: { mode: 'readers', readers: acc.ownerRead }, write: { mode: 'any', keys: acc.ownerWrite } }));

    const b = await openChain(`${url}/acme/docs`, { session: bob.session, dir: await tempDir('auth-e2e-b-'), configDir: join(config, 'bob') });
    expect(b.load<{ text: string }>(shared).value.text).toBe('shared v1');
    let err: Error | null = null;
    try {
      b.load(secret);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.name).toBe('NoReadKey');
    // Bob edits the shared record (his contributor key signs); alice sees the edit.
    await b.transact((tx) => tx.store({ text: 'shared v2 by bob' }, { key: shared }));
    for (let i = 0; i < 500 && a.load<{ text: string }>(shared).value.text !== 'shared v2 by bob'; i++) await sleep(20);
    expect(a.load<{ text: string }>(shared).value.text).toBe('shared v2 by bob');
    // Bob holds no key the owner-only record's write ACL admits: his commit is refused.
    await expect(b.transact((tx) => tx.store({ text: 'bob was here' }, { key: secret }))).rejects.toThrow(/no write authority/);
    expect(a.load<{ text: string }>(secret).value.text).toBe('owner only');
    await Promise.all([a.close(), b.close()]);
    await solo.kill('SIGTERM');
  });
});
