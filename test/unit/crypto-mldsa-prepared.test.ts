// The prepared ML-DSA-65 verifier must agree with noble's ml_dsa65.verify on every input: valid
// signatures, other messages, other keys, and signatures with single bits flipped anywhere
// (commitment hash, z, hint).
import * as nodeCrypto from 'node:crypto';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { describe, expect, it } from 'vitest';
import { mlDsa65VerifyPrepared, prepareMlDsa65 } from '../../src/crypto/mldsa65-prepared.js';

describe('prepared ML-DSA-65 verification', () => {
  it('agrees with ml_dsa65.verify on valid and tampered inputs', () => {
    let valid = 0;
    let checked = 0;
    for (let t = 0; t < 4; t++) {
      const kp = ml_dsa65.keygen(nodeCrypto.randomBytes(32));
      const other = ml_dsa65.keygen(nodeCrypto.randomBytes(32));
      const msg = nodeCrypto.randomBytes(1 + t * 97);
      const sig = ml_dsa65.sign(msg, kp.secretKey);
      const prep = prepareMlDsa65(kp.publicKey);
      const cases: Array<[Uint8Array, Uint8Array, Uint8Array]> = [
        [sig, msg, kp.publicKey],
        [sig, Buffer.concat([msg, Buffer.from([0])]), kp.publicKey],
        [sig, msg, other.publicKey],
        [sig.subarray(0, sig.length - 1), msg, kp.publicKey],
      ];
      // One flip in each region of the signature, then random positions.
      const positions = [0, 47, 48, 1000, 3247, 3248, 3300, 3308];
      for (let i = 0; i < 24; i++) positions.push(nodeCrypto.randomInt(sig.length));
      for (const p of positions) {
        const s = Uint8Array.from(sig);
        s[p] ^= 1 << nodeCrypto.randomInt(8);
        cases.push([s, msg, kp.publicKey]);
      }
      for (const [s, m, pk] of cases) {
        const expected = ml_dsa65.verify(s, m, pk);
        expect(mlDsa65VerifyPrepared(prepareMlDsa65(pk), s, m)).toBe(expected);
        if (expected) valid++;
        checked++;
      }
      expect(mlDsa65VerifyPrepared(prep, sig, msg)).toBe(true);
    }
    expect(valid).toBeGreaterThanOrEqual(4);
    expect(checked - valid).toBeGreaterThan(100);
  });

  it('rejects a wrong-length public key and a null preparation', () => {
    expect(prepareMlDsa65(new Uint8Array(100))).toBeNull();
    expect(mlDsa65VerifyPrepared(null, new Uint8Array(3309), new Uint8Array(1))).toBe(false);
  });
});
