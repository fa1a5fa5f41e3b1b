// Failed-login limits, per account and per client address: after `maxFailures` failures in a
// row a key is locked for `lockoutMs`, doubling with each further lockout (up to `maxLockoutMs`).
// A locked key refuses every attempt, right password or not, until the lock ends. Unknown emails
// are counted like known ones, so a lockout says nothing about whether an account exists.
// Kept in memory: a restart forgives, which a patient attacker gains little from (each lockout
// still costs the attacker `maxFailures` scrypt-priced guesses' worth of time).

export interface LimitOptions {
  maxFailures: number;
  /** Failures allowed per address before it is locked (many accounts from one place). */
  maxAddressFailures: number;
  lockoutMs: number;
  maxLockoutMs: number;
}

export const DEFAULT_LIMITS: LimitOptions = { maxFailures: 5, maxAddressFailures: 20, lockoutMs: 60_000, maxLockoutMs: 3_600_000 };

interface Entry {
  fails: number;
  lockedUntil: number;
  lockouts: number;
  lastSeen: number;
}

export class LoginLimiter {
  private readonly entries = new Map<string, Entry>();

  constructor(readonly o: LimitOptions = DEFAULT_LIMITS) {}

  /** ms until every key is free (0: the attempt may go ahead). */
  lockedFor(keys: string[], now = Date.now()): number {
    let ms = 0;
    for (const k of keys) {
      const e = this.entries.get(k);
      if (e && e.lockedUntil > now) ms = Math.max(ms, e.lockedUntil - now);
    }
    return ms;
  }

  failed(account: string, address: string, now = Date.now()): void {
    this.bump(`a:${account}`, this.o.maxFailures, now);
    this.bump(`ip:${address}`, this.o.maxAddressFailures, now);
    if (this.entries.size > 100_000) this.prune(now);
  }

  succeeded(account: string): void {
    this.entries.delete(`a:${account}`);
  }

  keys(account: string, address: string): string[] {
    return [`a:${account}`, `ip:${address}`];
  }

  private bump(key: string, max: number, now: number): void {
    const e = this.entries.get(key) ?? { fails: 0, lockedUntil: 0, lockouts: 0, lastSeen: now };
    e.fails++;
    e.lastSeen = now;
    if (e.fails >= max) {
      e.lockedUntil = now + Math.min(this.o.maxLockoutMs, this.o.lockoutMs * 2 ** e.lockouts);
      e.lockouts++;
      e.fails = 0;
    }
    this.entries.set(key, e);
  }

  private prune(now: number): void {
    for (const [k, e] of this.entries) if (e.lockedUntil < now && now - e.lastSeen > this.o.maxLockoutMs) this.entries.delete(k);
  }
}

/** At most `max` accounts created per address per `windowMs` (a fixed window): account creation
 *  is unauthenticated, and each one is a durable write of the service's state. */
export class CreationLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(readonly max = 20, readonly windowMs = 600_000) {}

  /** ms until `address` may create again (0: now; the attempt is counted). */
  take(address: string, now = Date.now()): number {
    let w = this.windows.get(address);
    if (!w || now - w.start >= this.windowMs) {
      w = { start: now, count: 0 };
      this.windows.set(address, w);
      if (this.windows.size > 100_000) for (const [k, v] of this.windows) if (now - v.start >= this.windowMs) this.windows.delete(k);
    }
    if (w.count >= this.max) return w.start + this.windowMs - now;
    w.count++;
    return 0;
  }
}
