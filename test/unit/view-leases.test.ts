import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexStore } from '../../src/view/index-store.js';
import { LeaseHeld, LeaseNotOwner, Leases } from '../../src/view/index.js';

describe('view: leases', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atefs-leases-'));
  let store = new IndexStore({ path: dir });
  let t = 1_000_000;
  let leases = new Leases(store, () => t);
  const k = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  afterAll(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('contention: a second owner is refused while the lease lives; the owner renews', () => {
    const l = leases.acquire(k, 'alice', 1000);
    expect(l.owner).toBe('alice');
    expect(l.expiresAt).toBe(t + 1000);
    expect(() => leases.acquire(k, 'bob', 1000)).toThrow(LeaseHeld);
    expect(leases.tryAcquire(k, 'bob', 1000)).toBeNull();
    t += 500;
    expect(leases.acquire(k, 'alice', 1000).expiresAt).toBe(t + 1000);
    expect(leases.get(k)!.owner).toBe('alice');
  });

  it('release by a non-owner is refused; the owner releases', () => {
    expect(() => leases.release(k, 'bob')).toThrow(LeaseNotOwner);
    expect(leases.get(k)!.owner).toBe('alice');
    leases.release(k, 'alice');
    expect(leases.get(k)).toBeNull();
    expect(() => leases.release(k, 'alice')).toThrow(LeaseNotOwner);
  });

  it('expiry frees a lease without a release; a stale owner cannot release it later', () => {
    leases.acquire(k, 'alice', 100);
    t += 99;
    expect(() => leases.acquire(k, 'bob', 100)).toThrow(LeaseHeld);
    t += 1;
    expect(leases.get(k)).toBeNull();
    leases.acquire(k, 'bob', 100);
    expect(() => leases.release(k, 'alice')).toThrow(LeaseNotOwner);
    t += 1000;
    expect(leases.sweep()).toBe(1);
    expect(leases.get(k)).toBeNull();
  });

  it('leases survive a reopen of the index; hex DAO keys work as lease keys', async () => {
    leases.acquire(k, 'carol', 10_000);
    // Closed and opened again from its files: nothing carried over in memory.
    await store.close();
    store = new IndexStore({ path: dir });
    const again = new Leases(store, () => t);
    leases = again;
    expect(again.get(k)!.owner).toBe('carol');
    expect(again.get(k.toString('hex'))!.owner).toBe('carol');
    expect(() => again.acquire(k.toString('hex'), 'dave', 10)).toThrow(LeaseHeld);
    expect(() => leases.acquire(k, '', 1)).toThrow(RangeError);
    expect(() => leases.acquire(k, 'x', 0)).toThrow(RangeError);
  });
});
