// Lying servers: a man in the middle holding the real server's key rewrites history; two servers
// sharing one key show two clients different histories. The client detects each and applies
// nothing of it.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { assembleCommit, decodeCommit, hashCommitParts, makeEvent, type CommitBuilder } from '../../src/chain/index.js';
import { openLog } from '../../src/log/index.js';
import { type Message, RemoteChain } from '../../src/net/index.js';
import { Session, createIdentity } from '../../src/session/index.js';
import { lyingProxy, sleep, startSolo, tempDir } from './atedb/harness.js';

const alice = createIdentity('alice');
const opened: RemoteChain[] = [];
afterEach(async () => {
  for (const c of opened.splice(0)) await c.close().catch(() => undefined);
});

const put = (v: string) => (b: CommitBuilder) => { b.put({ payload: Buffer.from(v) }); };

async function openAt(port: number, name: string, o: { create?: boolean; dir?: string | null } = {}): Promise<RemoteChain> {
  const c = await RemoteChain.open({
    url: `tcp://127.0.0.1:${port}/${name}`, session: Session.of(alice), dir: o.dir ?? null, create: o.create ? { openRoot: true } : false,
    knownHosts: join(await tempDir('kh-'), 'known_hosts'), backoff: { minMs: 50, maxMs: 200 }, confirmTimeoutMs: 3000,
  });
  opened.push(c);
  return c;
}

/** A server holding a chain with 5 commits after its genesis. */
async function seeded(name: string) {
  const solo = await startSolo();
  const writer = await openAt(solo.port, name, { create: true });
  for (let i = 0; i < 5; i++) await writer.commit(put(`v${i}`), { wait: 'confirmed' });
  await writer.close();
  return solo;
}

function refusedOrFailed(c: Promise<RemoteChain>): Promise<string> {
  return c.then(
    (rc) => new Promise<string>((resolve) => {
      if (rc.refusal) resolve(rc.refusal.message);
      rc.once('refused', (e) => resolve(e.message));
    }),
    (e: Error) => e.message,
  );
}

type Hist = Extract<Message, { t: 'hist' }>;
const histOnly = (f: (m: Hist) => Hist) => (m: Message): Message[] => [m.t === 'hist' ? f(m) : m];

describe('a lying server is caught', () => {
  it('drops a confirmed commit from history', async () => {
    const solo = await seeded('lie/drop');
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), histOnly((m) => ({ ...m, commits: m.commits.filter((_, i) => i !== 3) })));
    const msg = await refusedOrFailed(openAt(proxy.port, 'lie/drop'));
    expect(msg).toMatch(/gap/);
    await proxy.close();
    await solo.kill('SIGTERM');
  });

  it('reorders two commits', async () => {
    const solo = await seeded('lie/reorder');
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), histOnly((m) => {
      const c = [...m.commits];
      [c[2], c[3]] = [c[3]!, c[2]!];
      return { ...m, commits: c };
    }));
    const msg = await refusedOrFailed(openAt(proxy.port, 'lie/reorder'));
    expect(msg).toMatch(/does not match the history/);
    await proxy.close();
    await solo.kill('SIGTERM');
  });

  it('serves a commit whose payload was forged and its hash recomputed', async () => {
    const solo = await seeded('lie/forge');
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), histOnly((m) => {
      const c = [...m.commits];
      const orig = decodeCommit(c[2]!);
      const ev = orig.events[0]!;
      const payload = Buffer.from(ev.payload!);
      payload[payload.length - 1]! ^= 1;
      const events = [makeEvent(ev.meta, payload), ...orig.events.slice(1)];
      const { headerBytes, hash } = hashCommitParts(orig.header, events);
      c[2] = assembleCommit(orig.header, headerBytes, hash, events, orig.signatures).bytes;
      return { ...m, commits: c };
    }));
    const msg = await refusedOrFailed(openAt(proxy.port, 'lie/forge'));
    expect(msg).toMatch(/bad signature/);
    await proxy.close();
    await solo.kill('SIGTERM');
  });

  // The client verifies the signatures of a message as it arrives, before earlier ones are
  // applied: what it applies and what it reports must still follow the history's order.
  const oneCommitPerMessage = (change: (seq: number, commit: Buffer) => Buffer | null) => (m: Message): Message[] => {
    if (m.t !== 'hist') return [m];
    const out: Message[] = [];
    m.commits.forEach((c, i) => {
      const x = change(m.from + i, c);
      if (x) out.push({ ...m, from: m.from + i, commits: [x] });
    });
    return out;
  };
  const forged = (bytes: Buffer): Buffer => {
    const orig = decodeCommit(bytes);
    const ev = orig.events[0]!;
    const payload = Buffer.from(ev.payload!);
    payload[payload.length - 1]! ^= 1;
    const events = [makeEvent(ev.meta, payload), ...orig.events.slice(1)];
    const { headerBytes, hash } = hashCommitParts(orig.header, events);
    return assembleCommit(orig.header, headerBytes, hash, events, orig.signatures).bytes;
  };
  const replicaSeq = async (dir: string, chainId: string) => {
    const log = await openLog({ dir: join(dir, 'replica'), chainId });
    try {
      return log.nextSeq - 1;
    } finally {
      await log.close();
    }
  };

  it('a forged commit at seq 4 of a history sent one commit per message: seqs 1-3 are applied, nothing from seq 4 on', async () => {
    const solo = await seeded('lie/forge-split');
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), oneCommitPerMessage((seq, c) => (seq === 4 ? forged(c) : c)));
    const dir = await tempDir('atedb-lie-split-');
    const msg = await refusedOrFailed(openAt(proxy.port, 'lie/forge-split', { dir }));
    expect(msg).toMatch(/commit at seq 4 with a bad signature/);
    expect(await replicaSeq(dir, 'lie/forge-split')).toBe(3);
    await proxy.close();
    await solo.kill('SIGTERM');
  });

  it('a gap at seq 3 followed by a forged commit: the gap is what is reported (history order), nothing past seq 2 applied', async () => {
    const solo = await seeded('lie/gap-then-forge');
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), oneCommitPerMessage((seq, c) => (seq === 3 ? null : seq === 5 ? forged(c) : c)));
    const dir = await tempDir('atedb-lie-split-');
    const msg = await refusedOrFailed(openAt(proxy.port, 'lie/gap-then-forge', { dir }));
    expect(msg).toMatch(/sent seq 4 while this client holds up to 2: a gap/);
    expect(await replicaSeq(dir, 'lie/gap-then-forge')).toBe(2);
    await proxy.close();
    await solo.kill('SIGTERM');
  });

  it('replays an old signed head to a client that has seen more (rollback)', async () => {
    const solo = await startSolo();
    const writer = await openAt(solo.port, 'lie/replay', { create: true });
    for (let i = 0; i < 3; i++) await writer.commit(put(`v${i}`), { wait: 'confirmed' });
    // A genuine head the server signed when the chain was at seq 4.
    const early = await openAt(solo.port, 'lie/replay');
    const oldHead = early.head!;
    expect(oldHead.seq).toBe(4);
    for (let i = 0; i < 2; i++) await writer.commit(put(`w${i}`), { wait: 'confirmed' });
    const dir = await tempDir('atedb-lie-replica-');
    const c = await openAt(solo.port, 'lie/replay', { dir });
    expect(c.head!.seq).toBe(6);
    await c.close();
    // The liar answers with its genuine but old head (as a server restored from a backup would).
    const proxy = await lyingProxy(solo.port, join(solo.dataDir, 'server.key'), (m) => [m.t === 'eoh' ? { ...m, head: oldHead } : m]);
    const again = await openAt(proxy.port, 'lie/replay', { dir });
    const msg = await refusedOrFailed(Promise.resolve(again));
    expect(msg).toMatch(/shorter history \(seq 4\) than the signed head this client holds \(seq 6\)/);
    expect(again.lastSeq).toBe(6);
    await proxy.close();
    await solo.kill('SIGTERM');
  });

  it('two servers with one key show two clients different histories: comparing heads catches the fork', async () => {
    const dataDir = await tempDir('atedb-fork-');
    const one = await startSolo({ dataDir });
    const creator = await openAt(one.port, 'lie/fork', { create: true });
    await creator.commit(put('shared'), { wait: 'confirmed' });
    await creator.close();
    await one.kill('SIGTERM');
    const copy = await tempDir('atedb-fork-copy-');
    await fsp.cp(dataDir, copy, { recursive: true });
    const s1 = await startSolo({ dataDir });
    const s2 = await startSolo({ dataDir: copy });
    expect(s2.fingerprint).toBe(s1.fingerprint);
    const a = await openAt(s1.port, 'lie/fork');
    const b = await openAt(s2.port, 'lie/fork');
    await a.commit(put('only on one'), { wait: 'confirmed' });
    await b.commit(put('only on two'), { wait: 'confirmed' });
    for (let i = 0; i < 40 && (a.head?.seq !== 3 || b.head?.seq !== 3); i++) await sleep(50);
    expect(() => a.checkPeerHead(b.head!)).toThrow(/fork/);
    expect(() => b.checkPeerHead(a.head!)).toThrow(/fork/);
    // Honest case: a third client of server one agrees with a.
    const a2 = await openAt(s1.port, 'lie/fork');
    expect(a.checkPeerHead(a2.head!)).toBe('consistent');
    await s1.kill('SIGTERM');
    await s2.kill('SIGTERM');
  });
});
