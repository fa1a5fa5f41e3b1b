// ML-DSA-65 verification (FIPS 204 Algorithm 8) with a prepared public key. noble's ml_dsa65.verify
// re-derives everything that depends only on the public key on every call: the 6x5 matrix A
// (30 SHAKE128 rejection samplings, ~40 % of a verification), NTT(t1 * 2^d) and tr = H(pk). A chain
// is signed by a handful of keys, so the pool prepares each key once and keeps it in a small LRU.
//
// This is noble 0.7.1's verify (ml-dsa.js, MIT) specialised to ML-DSA-65 and split in two; the
// arithmetic is unchanged except that A*z and c*t1 are accumulated exactly in doubles and reduced
// once per coefficient (5 products < 2^49 < 2^53). It uses noble's own NTT, XOF and SHAKE, and is
// tested against ml_dsa65.verify on valid and tampered inputs (test/unit/crypto-mldsa-prepared).
//
// A source string (not a module) so the pool worker, which is evaluated from a string, can embed
// it; the main thread instantiates the same text (mldsa65-prepared.ts), so there is one copy.
//
// createMlDsa65Verifier(deps) -> { prepare(pk) -> prepared | null, verify(prepared, sig, msg) -> bool }
// `msg` is the FIPS 204 message (ML-DSA.Verify with an empty context: M' = 0 || 0 || msg).

export const MLDSA65_PREPARED_SOURCE = String.raw`
function createMlDsa65Verifier(deps) {
  'use strict';
  const { genCrystals, XOF128, shake256, equalBytes } = deps;
  const N = 256, Q = 8380417, D = 13, K = 6, L = 5;
  const GAMMA1 = 1 << 19, GAMMA2 = Math.floor((Q - 1) / 32) | 0, TAU = 49, OMEGA = 55, BETA = 49 * 4;
  const C_TILDE_BYTES = 48, TR_BYTES = 64, CRH_BYTES = 64;
  const HINT_M = Math.floor((Q - 1) / (2 * GAMMA2));
  const T1_BYTES = 10 * 32, Z_BYTES = 20 * 32;
  const PK_LEN = 32 + K * T1_BYTES;
  const SIG_LEN = C_TILDE_BYTES + L * Z_BYTES + OMEGA + K;
  const crystals = genCrystals({ N, Q, F: 8347681, ROOT_OF_UNITY: 1753, newPoly: (n) => new Int32Array(n), isKyber: false, brvBits: 8 });
  const { mod, smod } = crystals;
  const zetas = crystals.nttZetas;

  // FIPS 204 Algorithms 41 and 42 written out for ML-DSA (in place, results in [0, Q)); noble's
  // generic FFT core computes the same transform through per-butterfly closures, ~3x slower.
  // Every product is of two values below 2^23 in magnitude, so exact in a double before the '%'.
  function nttForward(w) {
    let m = 0;
    for (let len = 128; len >= 1; len >>= 1) {
      for (let start = 0; start < N; start += 2 * len) {
        const z = zetas[++m];
        for (let j = start; j < start + len; j++) {
          let t = (z * w[j + len]) % Q;
          const a = w[j];
          let x = (a - t) % Q;
          w[j + len] = x < 0 ? x + Q : x;
          x = (a + t) % Q;
          w[j] = x < 0 ? x + Q : x;
        }
      }
    }
    return w;
  }
  function nttInverse(w) {
    let m = N;
    for (let len = 1; len < N; len <<= 1) {
      for (let start = 0; start < N; start += 2 * len) {
        const z = Q - zetas[--m];
        for (let j = start; j < start + len; j++) {
          const t = w[j];
          const u = w[j + len];
          let x = (t + u) % Q;
          w[j] = x < 0 ? x + Q : x;
          x = (z * (t - u)) % Q;
          w[j + len] = x < 0 ? x + Q : x;
        }
      }
    }
    for (let j = 0; j < N; j++) w[j] = (8347681 * w[j]) % Q;
    return w;
  }
  const NTT = { encode: nttForward, decode: nttInverse };
  const CTX = new Uint8Array([0, 0]);

  // Little-endian d-bit unpacking, as noble's bitsCoder.decode.
  function unpack(bytes, d, map) {
    const r = new Int32Array(N);
    const mask = (1 << d) - 1;
    for (let i = 0, buf = 0, bufLen = 0, pos = 0; i < bytes.length; i++) {
      buf |= bytes[i] << bufLen;
      bufLen += 8;
      for (; bufLen >= d; bufLen -= d, buf >>>= d) r[pos++] = map(buf & mask);
    }
    return r;
  }
  const idMap = (x) => x;
  const zMap = (x) => smod(GAMMA1 - x);

  function rejNTTPoly(xof) {
    const r = new Int32Array(N);
    for (let j = 0; j < N;) {
      const b = xof();
      if (b.length % 3) throw new Error('RejNTTPoly: unaligned block');
      for (let i = 0; j < N && i <= b.length - 3; i += 3) {
        const t = (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) & 0x7fffff;
        if (t < Q) r[j++] = t;
      }
    }
    return r;
  }

  function sampleInBall(seed) {
    const pre = new Int32Array(N);
    const s = shake256.create({}).update(seed);
    const buf = new Uint8Array(shake256.blockLen);
    s.xofInto(buf);
    const masks = buf.slice(0, 8);
    for (let i = N - TAU, pos = 8, maskPos = 0, maskBit = 0; i < N; i++) {
      let b = i + 1;
      for (; b > i;) {
        b = buf[pos++];
        if (pos < shake256.blockLen) continue;
        s.xofInto(buf);
        pos = 0;
      }
      pre[i] = pre[b];
      pre[b] = 1 - (((masks[maskPos] >> maskBit++) & 1) << 1);
      if (maskBit >= 8) { maskPos++; maskBit = 0; }
    }
    return pre;
  }

  function useHint(h, r) {
    const rPlus = mod(r);
    const r0 = smod(rPlus, 2 * GAMMA2) | 0;
    let r1;
    let lo = r0;
    if (rPlus - r0 === Q - 1) { r1 = 0; lo = (r0 - 1) | 0; }
    else r1 = Math.floor((rPlus - r0) / (2 * GAMMA2)) | 0;
    if (h === 1) return lo > 0 ? mod(r1 + 1, HINT_M) | 0 : mod(r1 - 1, HINT_M) | 0;
    return r1 | 0;
  }

  function chknorm(p, B) {
    for (let i = 0; i < N; i++) if (Math.abs(smod(p[i])) >= B) return true;
    return false;
  }

  // Hint decoding with noble's malformed-input rules; false when malformed.
  function decodeHint(buf) {
    const h = [];
    let k = 0;
    for (let i = 0; i < K; i++) {
      const hi = new Int32Array(N);
      if (buf[OMEGA + i] < k || buf[OMEGA + i] > OMEGA) return false;
      for (let j = k; j < buf[OMEGA + i]; j++) {
        if (j > k && buf[j] <= buf[j - 1]) return false;
        hi[buf[j]] = 1;
      }
      k = buf[OMEGA + i];
      h.push(hi);
    }
    for (let j = k; j < OMEGA; j++) if (buf[j] !== 0) return false;
    return h;
  }

  function prepare(pk) {
    if (!(pk instanceof Uint8Array) || pk.length !== PK_LEN) return null;
    const rho = pk.slice(0, 32);
    const tr = shake256(pk, { dkLen: TR_BYTES });
    const t1n = [];
    for (let i = 0; i < K; i++) {
      const t = unpack(pk.subarray(32 + i * T1_BYTES, 32 + (i + 1) * T1_BYTES), 10, idMap);
      for (let k = 0; k < N; k++) t[k] <<= D;
      t1n.push(NTT.encode(t));
    }
    const A = [];
    const xof = XOF128(rho);
    for (let i = 0; i < K; i++) {
      const row = [];
      for (let j = 0; j < L; j++) row.push(rejNTTPoly(xof.get(j, i)));
      A.push(row);
    }
    xof.clean();
    return { tr, A, t1n };
  }

  function verify(prep, sig, msg) {
    if (!prep || !(sig instanceof Uint8Array) || sig.length !== SIG_LEN) return false;
    const cTilde = sig.subarray(0, C_TILDE_BYTES);
    const z = [];
    for (let j = 0; j < L; j++) {
      const at = C_TILDE_BYTES + j * Z_BYTES;
      z.push(unpack(sig.subarray(at, at + Z_BYTES), 20, zMap));
    }
    const h = decodeHint(sig.subarray(C_TILDE_BYTES + L * Z_BYTES));
    if (h === false) return false;
    for (let j = 0; j < L; j++) if (chknorm(z[j], GAMMA1 - BETA)) return false;
    const mu = shake256.create({ dkLen: CRH_BYTES }).update(prep.tr).update(CTX).update(msg).digest();
    const c = NTT.encode(sampleInBall(cTilde));
    const zNtt = z.map((p) => NTT.encode(p.slice()));
    const w1 = new Uint8Array(K * 128);
    const w = new Int32Array(N);
    const { A, t1n } = prep;
    for (let i = 0; i < K; i++) {
      const Ai = A[i], t = t1n[i];
      const a0 = Ai[0], a1 = Ai[1], a2 = Ai[2], a3 = Ai[3], a4 = Ai[4];
      const z0 = zNtt[0], z1 = zNtt[1], z2 = zNtt[2], z3 = zNtt[3], z4 = zNtt[4];
      for (let k = 0; k < N; k++) {
        const acc = a0[k] * z0[k] + a1[k] * z1[k] + a2[k] * z2[k] + a3[k] * z3[k] + a4[k] * z4[k];
        w[k] = mod(acc - c[k] * t[k]);
      }
      NTT.decode(w);
      const hi = h[i];
      const base = i * 128;
      for (let k = 0; k < N; k += 2) {
        w1[base + (k >> 1)] = (useHint(hi[k], w[k]) & 15) | ((useHint(hi[k + 1], w[k + 1]) & 15) << 4);
      }
    }
    const c2 = shake256.create({ dkLen: C_TILDE_BYTES }).update(mu).update(w1).digest();
    return equalBytes(cTilde, c2);
  }

  return { prepare, verify, PK_LEN, SIG_LEN };
}
`;
