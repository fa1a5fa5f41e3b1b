// Failed-login limits and TOTP checks of the auth service (pure logic, given clocks).
import { describe, expect, it } from 'vitest';
import { CreationLimiter, LoginLimiter } from '../../server/auth/rate-limit.js';
import { checkTotp, newTotpSecret, totpCode } from '../../server/auth/totp.js';

describe('LoginLimiter', () => {
  it('locks an account after N failures, doubles each further lockout, forgives on success', () => {
    const l = new LoginLimiter({ maxFailures: 3, maxAddressFailures: 100, lockoutMs: 1000, maxLockoutMs: 3000 });
    const keys = l.keys('a@x.org', '1.2.3.4');
    let t = 0;
    for (let i = 0; i < 2; i++) l.failed('a@x.org', '1.2.3.4', t);
    expect(l.lockedFor(keys, t)).toBe(0);
    l.failed('a@x.org', '1.2.3.4', t);
    expect(l.lockedFor(keys, t)).toBe(1000);
    t = 1000;
    expect(l.lockedFor(keys, t)).toBe(0);
    for (let i = 0; i < 3; i++) l.failed('a@x.org', '1.2.3.4', t);
    expect(l.lockedFor(keys, t)).toBe(2000);
    t = 3000;
    for (let i = 0; i < 3; i++) l.failed('a@x.org', '1.2.3.4', t);
    expect(l.lockedFor(keys, t)).toBe(3000); // capped
    l.succeeded('a@x.org');
    expect(l.lockedFor(keys, t)).toBe(0);
  });

  it('locks an address after its own count, whatever the accounts', () => {
    const l = new LoginLimiter({ maxFailures: 3, maxAddressFailures: 5, lockoutMs: 1000, maxLockoutMs: 3000 });
    for (let i = 0; i < 5; i++) l.failed(`u${i}@x.org`, '9.9.9.9', 0);
    expect(l.lockedFor(l.keys('other@x.org', '9.9.9.9'), 0)).toBe(1000);
    expect(l.lockedFor(l.keys('other@x.org', '8.8.8.8'), 0)).toBe(0);
  });
});

describe('CreationLimiter', () => {
  it('allows max accounts per address per window', () => {
    const c = new CreationLimiter(2, 1000);
    expect(c.take('a', 0)).toBe(0);
    expect(c.take('a', 10)).toBe(0);
    expect(c.take('a', 20)).toBe(980);
    expect(c.take('b', 20)).toBe(0);
    expect(c.take('a', 1000)).toBe(0);
  });
});

describe('TOTP', () => {
  it('accepts the current code once, a neighbour step, and nothing further away', () => {
    const s = newTotpSecret();
    const now = 1_800_000_000_000;
    const code = totpCode(s, 'a@x.org', now);
    const step = checkTotp(s, 'a@x.org', code, 0, now);
    expect(step).toBe(Math.floor(now / 30_000));
    expect(checkTotp(s, 'a@x.org', code, step!, now)).toBeNull();
    expect(checkTotp(s, 'a@x.org', totpCode(s, 'a@x.org', now - 30_000), 0, now)).toBe(step! - 1);
    expect(checkTotp(s, 'a@x.org', totpCode(s, 'a@x.org', now - 90_000), 0, now)).toBeNull();
    expect(checkTotp(s, 'a@x.org', 'abcdef', 0, now)).toBeNull();
  });
});
