// Issue 13 through the library: openChain refuses a chain older than the head this user has seen
// (ChainRolledBack) and opens it with { acceptRollback: true }, re-pinning the head.
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainRolledBack, NotFound, Session, createIdentity, openChain } from '../../src/api/index.js';

describe('library API: freshness', () => {
  let work: string;
  beforeAll(async () => { work = await mkdtemp(join(tmpdir(), 'ate-api-fresh-')); });
  afterAll(async () => { await rm(work, { recursive: true, force: true }); });

  it('an older copy is refused; acceptRollback opens it and re-pins the head', async () => {
    const o = { dir: join(work, 'notes'), configDir: join(work, 'config'), session: Session.of(createIdentity('bob')) };
    let chain = await openChain('notes', o);
    let tx = chain.begin();
    const a = tx.store({ text: 'first' });
    await tx.commit();
    await chain.close();
    await cp(o.dir, join(work, 'older'), { recursive: true, filter: (p) => !p.endsWith('LOCK') });
    chain = await openChain('notes', o);
    tx = chain.begin();
    tx.delete(a);
    await tx.commit();
    await chain.close();
    await rm(o.dir, { recursive: true });
    await cp(join(work, 'older'), o.dir, { recursive: true });

    await expect(openChain('notes', o)).rejects.toBeInstanceOf(ChainRolledBack);
    await expect(openChain('notes', o)).rejects.toThrow(/acceptRollback/);
    chain = await openChain('notes', { ...o, acceptRollback: true });
    expect(chain.load<{ text: string }>(a).value.text).toBe('first');
    await chain.close();
    chain = await openChain('notes', o);
    tx = chain.begin();
    tx.delete(a);
    await tx.commit();
    expect(() => chain.load(a)).toThrow(NotFound);
    await chain.close();
  });
});
