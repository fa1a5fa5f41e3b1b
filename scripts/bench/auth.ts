// npm run bench:auth — the auth service of a real `atedb solo` (production scrypt cost), with the
// reference measured in the same run:
//   - one scrypt derivation at the production cost (what every login costs its client);
//   - logins/s, one client after another and two at once (each: salt, scrypt, proof, claims,
//     keyring opened) and the ratio of one login's time to one scrypt (goal: close to 1, i.e. a
//     login is bounded by the password cost, not by the service);
//   - token verification/s: the service's check of signed claims in-process, and authenticated
//     requests/s ('user-details': claims verified, handshake key compared) over one connection.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRODUCTION_SCRYPT, deriveKeyFromPassword, randomBytes } from '../../src/crypto/index.js';
import { AuthClient, createUser, decodeSignedClaims, login, verifyClaims } from '../../src/net/index.js';
import { startAtedb } from './lib/atedb.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const out = path.join(repo, '.bench-out', 'auth');
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const LOGINS = Number(process.env.BENCH_LOGINS ?? 6);

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
const line = (label: string, ours: string, ref = '', ratio = '') => console.log(`${label.padEnd(48)} ${ours.padStart(18)} ${ref.padStart(18)} ${ratio.padStart(8)}`);

function startServer(): Promise<{ proc: ChildProcess; port: number }> {
  return startAtedb(repo, path.join(out, 'server'), ['--policy', 'auth']);
}

async function main(): Promise<void> {
  const { proc, port } = await startServer();
  const url = `tcp://127.0.0.1:${port}`;
  const kh = { knownHosts: path.join(out, 'known_hosts') };
  try {
    console.log(`bench:auth — atedb solo --policy auth on 127.0.0.1:${port}, scrypt N=2^${Math.log2(PRODUCTION_SCRYPT.N)} r=${PRODUCTION_SCRYPT.r} p=${PRODUCTION_SCRYPT.p}`);
    line('', 'ours', 'reference', 'ratio');
    const emails = ['bench-a@example.org', 'bench-b@example.org'];
    for (const e of emails) await createUser(url, e, 'bench password', kh);

    const scryptMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await deriveKeyFromPassword('bench password', randomBytes(32), PRODUCTION_SCRYPT);
      scryptMs.push(performance.now() - t);
    }
    const scrypt = Math.min(...scryptMs);

    const loginMs: number[] = [];
    let claims: Buffer = Buffer.alloc(0);
    let session = null as Awaited<ReturnType<typeof login>>['session'] | null;
    for (let i = 0; i < LOGINS; i++) {
      const t = performance.now();
      const r = await login(url, emails[0]!, 'bench password', kh);
      loginMs.push(performance.now() - t);
      claims = r.claims;
      session = r.session;
    }
    const oneLogin = loginMs.sort((a, b) => a - b)[Math.floor(loginMs.length / 2)]!;
    line('one login, p50 (ms) vs one scrypt (ms)', fmt(oneLogin), fmt(scrypt), `${(oneLogin / scrypt).toFixed(2)}x`);
    line('logins/s, sequential vs scrypts/s', fmt(1000 / oneLogin), fmt(1000 / scrypt), `${(scrypt / oneLogin).toFixed(2)}x`);
    const t2 = performance.now();
    await Promise.all(Array.from({ length: LOGINS }, (_, i) => login(url, emails[i % 2]!, 'bench password', kh)));
    const par = LOGINS / ((performance.now() - t2) / 1000);
    line('logins/s, two clients at once vs scrypts/s', fmt(par), fmt(1000 / scrypt), `${(par * scrypt / 1000).toFixed(2)}x`);

    const signed = decodeSignedClaims(claims);
    const N = 300;
    let t = performance.now();
    for (let i = 0; i < N; i++) verifyClaims(signed, { trusted: signed.servicePk });
    const inProc = N / ((performance.now() - t) / 1000);
    line('token verifications/s (the service check)', fmt(inProc));

    const c = await AuthClient.connect(url, { ...kh, identity: session!.user!.signing });
    await c.request('user-details', { claims });
    t = performance.now();
    const M = 300;
    await Promise.all(Array.from({ length: M }, () => c.request('user-details', { claims })));
    const rps = M / ((performance.now() - t) / 1000);
    c.close();
    line('authenticated requests/s, one connection', fmt(rps), fmt(inProc), `${(rps / inProc).toFixed(2)}x`);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    fs.rmSync(out, { recursive: true, force: true });
  }
}

await main();
