// Source of the crypto pool's worker, as a self-contained CommonJS string evaluated with
// `new Worker(code, { eval: true })`. A string (not a file) because tests run the .ts sources
// through vitest, where no .js file exists next to this module, while production runs dist/.
// The worker imports only node:crypto and @noble/post-quantum (by an absolute file URL the parent
// resolves), and does only primitive work: decoding, key derivation and encoding stay on the main
// thread in signatures.ts, so there is a single implementation of the hybrid format.
//
// Protocol (all byte fields packed into one transferred ArrayBuffer per request):
//   sign:   { id, op: 'sign', buf = edSeed(32) | mlSeed(32) | message }  ->  { id, sig = ed(64) | ml }
//   verify: { id, op: 'verify', buf, offsets: Uint32Array(10 per item: start/end of edPk, mlPk,
//             message, edSig, mlSig) }  ->  { id, results: Uint8Array (1 = valid) }
//   errors: { id, error: string }

export const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const nodeCrypto = require('node:crypto');
const PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const keyCache = new Map();
let mlDsa = null;
const ready = import(workerData.mlDsaUrl).then((m) => { mlDsa = m.ml_dsa65; });

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
    const key = nodeCrypto.createPublicKey({ key: Buffer.concat([SPKI, edPk]), format: 'der', type: 'spki' });
    if (!nodeCrypto.verify(null, m, key, edSig)) return 0;
    return mlDsa.verify(mlSig, m, mlPk) ? 1 : 0;
  } catch (e) {
    return 0;
  }
}

parentPort.on('message', async (req) => {
  try {
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
