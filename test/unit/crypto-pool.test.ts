import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CryptoPool,
  CryptoError,
  defaultPool,
  generateSigningKeyPair,
  MalformedEncoding,
  signMessage,
  verifySignature,
} from '../../src/crypto/index.js';
import { flip } from './crypto-helpers.js';

describe('CryptoPool', () => {
  const pool = new CryptoPool({ size: 2 });
  afterAll(() => pool.close());
  const kp = generateSigningKeyPair();

  it('signs in a worker; the signature verifies on the main thread', async () => {
    const msg = Buffer.from('sign me off-thread');
    const sig = await pool.sign(kp.secretKey, msg);
    expect(verifySignature(kp.publicKey, msg, sig)).toBe(true);
    expect(verifySignature(kp.publicKey, flip(msg, 0), sig)).toBe(false);
  });

  it('signs many concurrently with different keys (small Buffers from the shared slab stay intact)', async () => {
    const keys = [kp, generateSigningKeyPair(), generateSigningKeyPair()];
    const msgs = Array.from({ length: 9 }, (_, i) => Buffer.from(`message ${i}`));
    const copies = msgs.map((m) => Buffer.from(m));
    const sigs = await Promise.all(msgs.map((m, i) => pool.sign(keys[i % 3]!.secretKey, m)));
    sigs.forEach((s, i) => expect(verifySignature(keys[i % 3]!.publicKey, msgs[i]!, s)).toBe(true));
    expect(msgs).toEqual(copies);
    expect(keys[0]!.secretKey.subarray(0, 2)).toEqual(Buffer.from([0x11, 1]));
  });

  it('verifyMany: main-thread signatures, a mix of good and bad, order preserved', async () => {
    const other = generateSigningKeyPair();
    const items: Array<{ publicKey: Uint8Array; message: Uint8Array; signature: Uint8Array }> = Array.from({ length: 12 }, (_, i) => {
      const message = Buffer.from(`item ${i}`);
      return { publicKey: kp.publicKey, message, signature: signMessage(kp.secretKey, message) };
    });
    const expected = items.map(() => true);
    items[1] = { ...items[1]!, message: Buffer.from('tampered') };
    expected[1] = false;
    items[4] = { ...items[4]!, signature: flip(items[4]!.signature, 10) }; // Ed25519 half
    expected[4] = false;
    items[5] = { ...items[5]!, signature: flip(items[5]!.signature, 2000) }; // ML-DSA half
    expected[5] = false;
    items[7] = { ...items[7]!, publicKey: other.publicKey };
    expected[7] = false;
    items[8] = { ...items[8]!, signature: items[8]!.signature.subarray(0, 100) }; // malformed
    expected[8] = false;
    items[10] = { ...items[10]!, publicKey: new Uint8Array(3) }; // malformed
    expected[10] = false;
    expect(await pool.verifyMany(items)).toEqual(expected);
    expect(await pool.verifyMany([])).toEqual([]);
  });

  it('rejects a malformed secret key with a typed error', async () => {
    await expect(pool.sign(kp.publicKey, Buffer.from('x'))).rejects.toBeInstanceOf(MalformedEncoding);
  });

  it('refuses work after close', async () => {
    const p = new CryptoPool({ size: 1 });
    const sig = await p.sign(kp.secretKey, Buffer.from('a'));
    expect((await p.verifyMany([{ publicKey: kp.publicKey, message: Buffer.from('a'), signature: sig }]))[0]).toBe(true);
    await p.close();
    await expect(p.sign(kp.secretKey, Buffer.from('a'))).rejects.toBeInstanceOf(CryptoError);
  });

  it('defaultPool is shared', async () => {
    expect(defaultPool()).toBe(defaultPool());
    const sig = await defaultPool().sign(kp.secretKey, Buffer.from('shared'));
    expect(verifySignature(kp.publicKey, Buffer.from('shared'), sig)).toBe(true);
    await defaultPool().close();
    expect(defaultPool().isClosed).toBe(false);
  });
});

describe('CryptoPool from compiled JavaScript (the dist/ situation)', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atefs-crypto-pool-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('signs and verifies through workers, and the process exits on its own afterwards', () => {
    const tsc = spawnSync(
      process.execPath,
      [
        path.join(root, 'node_modules/typescript/bin/tsc'),
        path.join(root, 'src/crypto/index.ts'),
        '--outDir', dir, '--rootDir', path.join(root, 'src/crypto'),
        '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
        '--strict', '--skipLibCheck', '--types', 'node',
      ],
      { encoding: 'utf8', cwd: root },
    );
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    fs.writeFileSync(
      path.join(dir, 'main.js'),
      `import * as c from './index.js';
const kp = c.generateSigningKeyPair();
const m = Buffer.from('top-level await on a pooled signature');
const sig = await c.defaultPool().sign(kp.secretKey, m);
const [good, bad] = await c.defaultPool().verifyMany([
  { publicKey: kp.publicKey, message: m, signature: sig },
  { publicKey: kp.publicKey, message: Buffer.from('x'), signature: sig },
]);
await c.selfTest();
console.log(JSON.stringify({ main: c.verifySignature(kp.publicKey, m, sig), good, bad }));
// no close(): idle workers must not keep the process alive
`,
    );
    // The timeout only guards against a hang (a ref'd idle worker); it is not a speed assertion.
    const run = spawnSync(process.execPath, [path.join(dir, 'main.js')], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
    expect(run.signal, 'process had to be killed: idle workers kept it alive').toBeNull();
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.trim())).toEqual({ main: true, good: true, bad: false });
  });
});
