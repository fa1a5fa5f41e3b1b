// Source of the crypto pool's worker, as a self-contained CommonJS string evaluated with
// `new Worker(code, { eval: true })`. A string (not a file) because tests run the .ts sources
// through vitest, where no .js file exists next to this module, while production runs dist/.
// The worker imports only node:crypto, @noble/post-quantum and @noble/hashes (by absolute file URLs
// the parent resolves), and does only primitive work: decoding, key derivation and encoding stay on the main
// thread in signatures.ts, so there is a single implementation of the hybrid format.
//
// Protocol (all byte fields packed into one transferred ArrayBuffer per request):
//   sign:   { id, op: 'sign', buf = edSeed(32) | mlSeed(32) | message }  ->  { id, sig = ed(64) | ml }
//   verify: { id, op: 'verify', buf, offsets: Uint32Array(10 per item: start/end of edPk, mlPk,
//             message, edSig, mlSig) }  ->  { id, results: Uint8Array (1 = valid) }
//   polyFile: { id, op: 'polyFile', path, key (32), nonce (12) }  ->  { id, sig = Poly1305 tag (16) }
//   errors: { id, error: string }

import { MLDSA65_PREPARED_SOURCE } from './mldsa65-prepared-source.js';

export const WORKER_SOURCE = String.raw`
'use strict';
${MLDSA65_PREPARED_SOURCE}
const { parentPort, workerData } = require('node:worker_threads');
const nodeCrypto = require('node:crypto');
const PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const keyCache = new Map();
let mlDsa = null;
let prepared = null;
const u = workerData.urls;
const ready = Promise.all([import(u.mlDsa), import(u.crystals), import(u.utils), import(u.sha3)]).then(([m, c, ut, h]) => {
  mlDsa = m.ml_dsa65;
  prepared = createMlDsa65Verifier({ genCrystals: c.genCrystals, XOF128: c.XOF128, shake256: h.shake256, equalBytes: ut.equalBytes });
});

// Verification keys, prepared once per public key: building the Ed25519 KeyObject and expanding
// the ML-DSA matrix cost more than the verification itself, and a chain has few signers.
const verifyKeys = new Map();
const VERIFY_KEYS_MAX = 64;
function verifyKey(edPk, mlPk) {
  const k = Buffer.from(edPk.buffer, edPk.byteOffset, edPk.length).toString('latin1') +
    Buffer.from(mlPk.buffer, mlPk.byteOffset, mlPk.length).toString('latin1');
  let e = verifyKeys.get(k);
  if (e) {
    verifyKeys.delete(k);
    verifyKeys.set(k, e);
    return e;
  }
  let ed = null;
  try {
    ed = nodeCrypto.createPublicKey({ key: Buffer.concat([SPKI, edPk]), format: 'der', type: 'spki' });
  } catch (err) {
    ed = null;
  }
  let ml = null;
  try {
    ml = prepared.prepare(Uint8Array.from(mlPk));
  } catch (err) {
    ml = null;
  }
  e = { ed, ml };
  verifyKeys.set(k, e);
  if (verifyKeys.size > VERIFY_KEYS_MAX) verifyKeys.delete(verifyKeys.keys().next().value);
  return e;
}

function signingKeys(edSeed, mlSeed) {
  const k = nodeCrypto.createHash('sha256').update(edSeed).update(mlSeed).digest('base64');
  let e = keyCache.get(k);
  if (e) return e;
  const der = Buffer.concat([PKCS8, edSeed]);
  e = { ed: nodeCrypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
        ml: mlDsa.keygen(mlSeed).secretKey };
  der.fill(0);
  keyCache.set(k, e);
  if (keyCache.size > 32) keyCache.delete(keyCache.keys().next().value);
  return e;
}

function sign(buf) {
  const b = new Uint8Array(buf);
  const edSeed = b.subarray(0, 32), mlSeed = b.subarray(32, 64), m = b.subarray(64);
  const keys = signingKeys(edSeed, mlSeed);
  b.fill(0, 0, 64);
  const ed = nodeCrypto.sign(null, m, keys.ed);
  const ml = mlDsa.sign(m, keys.ml);
  const out = new Uint8Array(ed.length + ml.length);
  out.set(ed, 0);
  out.set(ml, ed.length);
  return out;
}

function verifyOne(b, o, i) {
  const f = (j) => b.subarray(o[i * 10 + j * 2], o[i * 10 + j * 2 + 1]);
  const edPk = f(0), mlPk = f(1), m = f(2), edSig = f(3), mlSig = f(4);
  try {
    const key = verifyKey(edPk, mlPk);
    if (!key.ed || !key.ml) return 0;
    if (!nodeCrypto.verify(null, m, key.ed, edSig)) return 0;
    return prepared.verify(key.ml, mlSig, m) ? 1 : 0;
  } catch (e) {
    return 0;
  }
}

// Poly1305 tag of a whole file (ChaCha20-Poly1305 with the file as associated data): the index
// seal's check, run here so the main thread can verify the log meanwhile. Needs no import.
function polyOfFile(path, key, nonce) {
  const fs = require('node:fs');
  const c = nodeCrypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  const fd = fs.openSync(path, 'r');
  try {
    const b = Buffer.allocUnsafe(4 << 20);
    for (let n; (n = fs.readSync(fd, b, 0, b.length, null)) > 0;) c.setAAD(b.subarray(0, n), { plaintextLength: 0 });
  } finally {
    fs.closeSync(fd);
  }
  c.final();
  return new Uint8Array(c.getAuthTag());
}

parentPort.on('message', async (req) => {
  try {
    if (req.op === 'polyFile') {
      const tag = polyOfFile(req.path, Buffer.from(req.key), Buffer.from(req.nonce));
      parentPort.postMessage({ id: req.id, sig: tag }, [tag.buffer]);
      return;
    }
    await ready;
    if (req.op === 'sign') {
      const sig = sign(req.buf);
      parentPort.postMessage({ id: req.id, sig }, [sig.buffer]);
    } else if (req.op === 'verify') {
      const b = new Uint8Array(req.buf), o = req.offsets, n = o.length / 10;
      const results = new Uint8Array(n);
      for (let i = 0; i < n; i++) results[i] = verifyOne(b, o, i);
      parentPort.postMessage({ id: req.id, results }, [results.buffer]);
    } else {
      parentPort.postMessage({ id: req.id, error: 'unknown op ' + req.op });
    }
  } catch (e) {
    parentPort.postMessage({ id: req.id, error: String(e && e.message || e) });
  }
});
`;
