// A remote mount on an atedb cluster (issue 20): two real `atedb node --store nats://...` processes
// on a real 3-node nats-server JetStream cluster, a real mount listing both nodes. SIGKILL of the
// node the mount talks to: the mount keeps working, uploads through the other node, and what it
// wrote before and after reaches a second machine mounted through the surviving node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableTransports, mountForTest, sleep, unmountAll, type TestMount } from './harness.js';
import { type Solo, startSolo } from '../integration/atedb/harness.js';
import { NATS_SERVER, NatsCluster } from '../integration/nats/cluster.js';

const transport = availableTransports().includes('kernel') ? 'kernel' : 'fuse-native';

let root: string;
let config: string;
let cluster: NatsCluster;
const nodes: Solo[] = [];

async function until(what: string, fn: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

const read = (p: string) => fsp.readFile(p, 'utf8').catch(() => null);

describe.skipIf(!NATS_SERVER)(`a remote mount on an atedb cluster (${transport})`, () => {
  beforeAll(async () => {
    root = await fsp.mkdtemp(join(tmpdir(), 'atefs-remote-cluster-'));
    config = join(root, 'config');
    cluster = await NatsCluster.start();
    // Every node of one stream shares one server key: clients check signed heads against it.
    const first = await startSolo({ dataDir: join(root, 'n1'), args: ['--store', cluster.url] });
    nodes.push(first);
    await fsp.mkdir(join(root, 'n2'), { recursive: true });
    await fsp.copyFile(join(root, 'n1', 'server.key'), join(root, 'n2', 'server.key'));
    nodes.push(await startSolo({ dataDir: join(root, 'n2'), args: ['--store', cluster.url] }));
  }, 90_000);

  afterAll(async () => {
    await unmountAll();
    for (const n of nodes.splice(0)) await n.kill('SIGKILL').catch(() => undefined);
    await cluster?.destroy();
    await fsp.rm(root, { recursive: true, force: true });
  });

  it('SIGKILL of the node a mount talks to: the mount stays usable, and its writes reach a mount on the other node', async () => {
    const [n1, n2] = [nodes[0]!, nodes[1]!];
    const both = `tcp://127.0.0.1:${n1.port},127.0.0.1:${n2.port}/team/failover`;
    const A: TestMount = await mountForTest({
      transport, temp: false, extraArgs: [both, '--log-path', join(root, 'state-alpha')],
      env: { XDG_CONFIG_HOME: config, ATEFS_MACHINE: 'alpha', ATEFS_UPLOAD_TIMEOUT_MS: '15000' },
    });
    await fsp.writeFile(join(A.dir, 'before.txt'), 'written before the node died\n');
    await fsp.mkdir(join(A.dir, 'dir'));
    await n1.kill('SIGKILL');
    // The mount never waits for the network (async): these are staged, then uploaded through n2.
    await fsp.writeFile(join(A.dir, 'after.txt'), 'written after the node died\n');
    await fsp.writeFile(join(A.dir, 'dir', 'inner.txt'), 'inside\n');
    await fsp.rename(join(A.dir, 'before.txt'), join(A.dir, 'kept.txt'));
    const B: TestMount = await mountForTest({
      transport, temp: false, extraArgs: [`tcp://127.0.0.1:${n2.port}/team/failover`, '--log-path', join(root, 'state-beta')],
      env: { XDG_CONFIG_HOME: config, ATEFS_MACHINE: 'beta' },
    });
    await until('A\'s work on B', async () =>
      (await read(join(B.dir, 'kept.txt'))) === 'written before the node died\n' &&
      (await read(join(B.dir, 'after.txt'))) === 'written after the node died\n' &&
      (await read(join(B.dir, 'dir', 'inner.txt'))) === 'inside\n' &&
      (await read(join(B.dir, 'before.txt'))) === null, 45_000);
    // And back, B -> A, through the surviving node.
    await fsp.writeFile(join(B.dir, 'from-beta.txt'), 'hello alpha\n');
    await until('B\'s file on A', async () => (await read(join(A.dir, 'from-beta.txt'))) === 'hello alpha\n', 20_000);
    expect((await fsp.readdir(A.dir)).sort()).toEqual((await fsp.readdir(B.dir)).sort());
    await B.unmount();
    await A.unmount();
  }, 180_000);
});
