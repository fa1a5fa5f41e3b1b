// The server's lease table: one holder per key, renew/release by the holder only, expiry by TTL,
// everything of a connection dropped when it disconnects.
import { describe, expect, it } from 'vitest';
import { LeaseTable, MAX_LEASE_TTL_MS } from '../../server/leases.js';

describe('LeaseTable', () => {
  it('expires leases after their TTL and caps the TTL', () => {
    let t = 1000;
    const table = new LeaseTable(() => t);
    const a = {};
    const b = {};
    expect(table.request('acquire', 'c', 'k', 500, 'alice', a)).toMatchObject({ ok: true, expires: 1500 });
    expect(table.request('acquire', 'c', 'k', 500, 'bob', b)).toMatchObject({ ok: false, holder: 'alice' });
    t = 1400;
    expect(table.request('renew', 'c', 'k', 500, 'alice', a)).toMatchObject({ ok: true, expires: 1900 });
    t = 1901;
    expect(table.request('renew', 'c', 'k', 500, 'alice', a)).toMatchObject({ ok: false });
    expect(table.request('acquire', 'c', 'k', 10 * MAX_LEASE_TTL_MS, 'bob', b)).toMatchObject({ ok: true, expires: 1901 + MAX_LEASE_TTL_MS });
    // The same identity on another connection is another holder.
    expect(table.request('release', 'c', 'k', 0, 'bob', a)).toMatchObject({ ok: false, holder: 'bob' });
    expect(table.request('acquire', 'c', 'other', 100, 'bob', b).ok).toBe(true);
    expect(table.releaseAll(b)).toBe(2);
    expect(table.size).toBe(0);
  });
});
