// Password-based key derivation: scrypt (node:crypto) with a per-user salt. The parameters and
// salt are stored next to the output in a versioned encoding so they can be raised later.
import * as nodeCrypto from 'node:crypto';
import { Alg, HEADER_LEN, expectHeader, writeHeader } from './algorithms.js';
import { CryptoError, MalformedEncoding } from './errors.js';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  keyLen: number;
}

/** ~0.4 s per derivation on this machine (measured: N=2^17,r=8 -> 430 ms; 2^18 -> 970 ms), 128 MiB. */
export const PRODUCTION_SCRYPT: ScryptParams = Object.freeze({ N: 2 ** 17, r: 8, p: 1, keyLen: 32 });
/** Cheap (~2 ms, 1 MiB). Refused outside tests, see deriveKeyFromPassword. */
export const TEST_SCRYPT: ScryptParams = Object.freeze({ N: 2 ** 10, r: 8, p: 1, keyLen: 32 });

// Bounds on what we accept: generous for future cost increases, but a stored or received
// parameter block can never make us allocate more than 1 GiB or spin for minutes.
const MAX_LOG2_N = 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY = 1024 * 1024 * 1024; // 128 * N * r
const MAX_WORK = 2 ** 24; // N * r * p
const MIN_KEY_LEN = 16;
const MAX_KEY_LEN = 64;
const MIN_SALT_LEN = 16;
const MAX_SALT_LEN = 64;
// Anything cheaper than this is "test strength": 1/8 of production work.
const MIN_PRODUCTION_WORK = 2 ** 14 * 8;

/** Returns a reason string if the parameters are out of bounds, else undefined. */
function paramsProblem(p: ScryptParams): string | undefined {
  const { N, r, p: par, keyLen } = p;
  if (!Number.isSafeInteger(N) || N < 2 || (N & (N - 1)) !== 0) return `N=${N} is not a power of two >= 2`;
  if (Math.log2(N) > MAX_LOG2_N) return `N=${N} exceeds 2^${MAX_LOG2_N}`;
  if (!Number.isSafeInteger(r) || r < 1 || r > MAX_R) return `r=${r} out of range 1..${MAX_R}`;
  if (!Number.isSafeInteger(par) || par < 1 || par > MAX_P) return `p=${par} out of range 1..${MAX_P}`;
  if (128 * N * r > MAX_MEMORY) return `N*r needs more than ${MAX_MEMORY >> 20} MiB`;
  if (N * r * par > MAX_WORK) return `N*r*p exceeds 2^24`;
  if (!Number.isSafeInteger(keyLen) || keyLen < MIN_KEY_LEN || keyLen > MAX_KEY_LEN) {
    return `keyLen=${keyLen} out of range ${MIN_KEY_LEN}..${MAX_KEY_LEN}`;
  }
  return undefined;
}

function weakParamsAllowed(): boolean {
  const env = process.env;
  return !!env['VITEST'] || env['NODE_ENV'] === 'test' || env['ATEFS_ALLOW_WEAK_KDF'] === '1';
}

/**
 * scrypt(password, salt). String passwords are NFKC-normalized and UTF-8 encoded, so the same
 * password typed on different systems derives the same key. Parameters cheaper than 1/8 of
 * PRODUCTION_SCRYPT are refused unless running under vitest / NODE_ENV=test / ATEFS_ALLOW_WEAK_KDF=1.
 */
export async function deriveKeyFromPassword(
  password: string | Uint8Array,
  salt: Uint8Array,
  params: ScryptParams,
): Promise<Buffer> {
  const problem = paramsProblem(params);
  if (problem) throw new CryptoError(`scrypt parameters rejected: ${problem}`);
  if (params.N * params.r * params.p < MIN_PRODUCTION_WORK && !weakParamsAllowed()) {
    throw new CryptoError('scrypt parameters are test-strength; refusing outside tests');
  }
  const pw = typeof password === 'string' ? Buffer.from(password.normalize('NFKC'), 'utf8') : password;
  const { N, r, p, keyLen } = params;
  return new Promise<Buffer>((resolve, reject) => {
    nodeCrypto.scrypt(pw, salt, keyLen, { N, r, p, maxmem: 128 * N * r + 128 * r * p + (32 << 20) }, (err, key) => {
      if (typeof password === 'string') pw.fill(0);
      if (err) reject(new CryptoError(`scrypt failed: ${err.message}`));
      else resolve(key);
    });
  });
}

const FIXED_LEN = HEADER_LEN + 1 + 4 + 4 + 2 + 1;

export function encodeScryptParams(p: ScryptParams, salt: Uint8Array): Buffer {
  const problem = paramsProblem(p);
  if (problem) throw new CryptoError(`scrypt parameters rejected: ${problem}`);
  if (salt.length < MIN_SALT_LEN || salt.length > MAX_SALT_LEN) {
    throw new CryptoError(`scrypt salt must be ${MIN_SALT_LEN}..${MAX_SALT_LEN} bytes`);
  }
  const out = Buffer.allocUnsafe(FIXED_LEN + salt.length);
  writeHeader(out, Alg.SCRYPT_PARAMS);
  let o = HEADER_LEN;
  out[o++] = Math.log2(p.N);
  out.writeUInt32BE(p.r, o);
  o += 4;
  out.writeUInt32BE(p.p, o);
  o += 4;
  out.writeUInt16BE(p.keyLen, o);
  o += 2;
  out[o++] = salt.length;
  out.set(salt, o);
  return out;
}

export function decodeScryptParams(b: Uint8Array): { params: ScryptParams; salt: Buffer } {
  expectHeader(b, Alg.SCRYPT_PARAMS, 'scrypt parameters', { min: FIXED_LEN });
  const v = Buffer.from(b.buffer, b.byteOffset, b.length);
  let o = HEADER_LEN;
  const log2N = v[o++]!;
  const r = v.readUInt32BE(o);
  o += 4;
  const p = v.readUInt32BE(o);
  o += 4;
  const keyLen = v.readUInt16BE(o);
  o += 2;
  const saltLen = v[o++]!;
  if (log2N < 1 || log2N > MAX_LOG2_N) throw new MalformedEncoding(`scrypt parameters: log2(N)=${log2N} out of range`);
  const params: ScryptParams = { N: 2 ** log2N, r, p, keyLen };
  const problem = paramsProblem(params);
  if (problem) throw new MalformedEncoding(`scrypt parameters: ${problem}`);
  if (saltLen < MIN_SALT_LEN || saltLen > MAX_SALT_LEN) {
    throw new MalformedEncoding(`scrypt parameters: salt length ${saltLen} out of range`);
  }
  if (v.length !== FIXED_LEN + saltLen) {
    throw new MalformedEncoding(
      `scrypt parameters: ${v.length < FIXED_LEN + saltLen ? 'truncated' : 'oversized'} (${v.length} bytes)`,
    );
  }
  return { params, salt: Buffer.from(v.subarray(o, o + saltLen)) };
}
