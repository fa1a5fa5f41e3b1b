// Sessions as keyrings: keys of the user and of group roles are found by the ids the chain uses;
// a group role's KEM key opens data keys wrapped for the group.
import { describe, expect, test } from 'vitest';
import { DataKeyCache, publicKeyId, readKeyId, wrapDataKey, newDataKey, MemoryAuthorityState, dataKeyId } from '../../src/chain/index.js';
import { Session, createGroupRole, createIdentity, principalIds, readersOfPrincipal } from '../../src/session/index.js';

describe('Session', () => {
  const user = createIdentity('u');
  const role = createGroupRole('acme', 'contributor');
  const observer = createGroupRole('acme', 'observer', { write: false });

  test('finds every key by its chain id; merges without duplicates', () => {
    const s = Session.of(user, role);
    expect(s.user).toBe(user);
    expect(s.writeKeyIds()).toEqual([publicKeyId(user.signing.publicKey), publicKeyId(role.signing!.publicKey)]);
    expect(s.readKey(readKeyId(role.readKey!))).toBe(role.readKey);
    expect(s.kemSecretKey(publicKeyId(user.kem.publicKey))).toBe(user.kem.secretKey);
    expect(s.kemPublicKey(publicKeyId(role.kem!.publicKey))).toBe(role.kem!.publicKey);
    expect(s.readKey(readKeyId(observer.readKey!))).toBeUndefined();
    s.merge(Session.of(user, observer));
    expect(s.writeKeyIds()).toHaveLength(2);
    expect(s.roles()).toHaveLength(2);
    expect(s.readKey(readKeyId(observer.readKey!))).toBe(observer.readKey);
    expect(principalIds(observer).signing).toBeUndefined();
    expect(s.chainReaders()).toEqual([{ kind: 'sym', id: readKeyId(user.readKey) }]);
    expect(s.userWriteAcl()).toEqual({ mode: 'any', keys: [publicKeyId(user.signing.publicKey)] });
  });

  test('a data key wrapped for a group role opens for a member session holding the role, not for others', () => {
    const writer = Session.of(user);
    const dk = newDataKey();
    // A non-member can't wrap for the role's symmetric key, only for its published KEM key.
    expect(() => wrapDataKey(dk, readersOfPrincipal(role), writer, () => undefined)).toThrow(expect.objectContaining({ name: 'NoReadKey' }));
    const grant = wrapDataKey(dk, readersOfPrincipal(role, { sym: false, kem: true }), writer, (id) => (id === publicKeyId(role.kem!.publicKey) ? role.kem!.publicKey : undefined));
    expect(grant.wraps).toHaveLength(1);
    const state = new MemoryAuthorityState();
    state.dataKeys.set(grant.id, { id: grant.id, owner: null, wraps: grant.wraps });
    const member = new DataKeyCache(Session.of(createIdentity('m'), role));
    expect(member.get(state, grant.id).equals(dk)).toBe(true);
    expect(dataKeyId(dk)).toBe(grant.id);
    const outsider = new DataKeyCache(Session.of(createIdentity('o')));
    expect(() => outsider.get(state, grant.id)).toThrow(expect.objectContaining({ name: 'NoReadKey' }));
  });
});
