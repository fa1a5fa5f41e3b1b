// The pure parts of the JetStream store and of cluster URLs: chain names as subject tokens, the
// --store URL list, the batch framing of commits in one message, and tcp://h1,h2/chain.
import { describe, expect, it } from 'vitest';
import { isChainName } from '../../server/chain-host.js';
import { frameCommits, unframeCommits } from '../../server/store/jetstream-batch.js';
import { StoreUnavailable, chainOfToken, parseStoreUrl, subjectToken } from '../../server/store/jetstream-store.js';
import { parseRemoteUrl } from '../../src/net/index.js';

describe('JetStream store names', () => {
  it('a chain name becomes one subject token, reversibly, with nothing NATS gives a meaning to', () => {
    const names = ['acme/docs', 'a.b_c-d/E.f', 'x', 'team/alice/db.v2', 'a_2F/b', 'A/a'];
    for (const n of names) {
      expect(isChainName(n), n).toBe(true);
      const t = subjectToken(n);
      expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(chainOfToken(t)).toBe(n);
    }
    // Distinct names, distinct tokens (an escaped '_' cannot be read as an escape of something else).
    const tokens = new Set(names.map(subjectToken));
    expect(tokens.size).toBe(names.length);
    expect(subjectToken('a_2F/b')).not.toBe(subjectToken('a//b'));
  });

  it('--store takes nats://host[:port],... and nothing else', () => {
    expect(parseStoreUrl('nats://h1:4222,h2:4223,h3')).toEqual(['h1:4222', 'h2:4223', 'h3:4222']);
    expect(parseStoreUrl('nats://127.0.0.1:1234/')).toEqual(['127.0.0.1:1234']);
    for (const bad of ['h1:4222', 'nats://', 'nats://h1,,h2', 'nats://h 1', 'tcp://h1']) expect(() => parseStoreUrl(bad), bad).toThrow(StoreUnavailable);
  });

  it('several commits frame into one message and come back byte for byte; a cut batch is refused', () => {
    const commits = [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(70_000, 7)];
    const framed = frameCommits(commits);
    expect(unframeCommits(framed)).toEqual(commits);
    expect(() => unframeCommits(framed.subarray(0, framed.length - 1))).toThrow(/truncated/);
    expect(() => unframeCommits(framed.subarray(0, 2))).toThrow(/truncated/);
  });

  it('a remote URL lists several atedb nodes of a cluster', () => {
    const u = parseRemoteUrl('tcp://h1:5001,h2,[::1]:5003/team/db');
    expect(u.name).toBe('team/db');
    expect(u.nodes).toEqual([{ host: 'h1', port: 5001 }, { host: 'h2', port: 5000 }, { host: '::1', port: 5003 }]);
    expect([u.host, u.port]).toEqual(['h1', 5001]);
    expect(parseRemoteUrl('tcp://solo/x').nodes).toEqual([{ host: 'solo', port: 5000 }]);
    for (const bad of ['tcp://h1,/x', 'tcp://h1:70000/x', 'tcp:///x', 'tcp://h1']) expect(() => parseRemoteUrl(bad), bad).toThrow(/not a remote chain URL/);
  });
});
