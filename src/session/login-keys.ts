// Client-side password handling of the auth service. scrypt(password, the user's salt) gives one
// secret, split by HKDF into
//   - a login key: the seed of a hybrid signing key; the service stores only its public half and a
//     login is a signature with it (src/net/auth-protocol.ts), so nothing the service stores or
//     sees logs in or opens the keyring;
//   - a key-encryption key: seals the user's keyring (signing, KEM and read keys) before it leaves
//     this process; the service keeps the sealed bytes.
// Group role keys travel as sealed boxes to a member's KEM public key (X-Wing), made and opened here.
import { Packr } from 'msgpackr';
import {
  type ScryptParams, type SigningKeyPair, deriveKeyFromPassword, generateSigningKeyPair, hkdfSha256, openSealed, sealForPublicKey,
  xchachaOpen, xchachaSeal,
} from '../crypto/index.js';
import { TokenInvalid } from './errors.js';
import { type Identity, type Principal, isIdentity, principalFromSecrets } from './identity.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export interface LoginKeys {
  login: SigningKeyPair;
  kek: Buffer;
}

export async function deriveLoginKeys(password: string, salt: Buffer, params: ScryptParams): Promise<LoginKeys> {
  const master = await deriveKeyFromPassword(password, salt, { ...params, keyLen: 32 });
  try {
    const login = generateSigningKeyPair(hkdfSha256(master, salt, 'atefs/auth/login-key/v1', 32));
    const kek = hkdfSha256(master, salt, 'atefs/auth/keyring-key/v1', 32);
    return { login, kek };
  } finally {
    master.fill(0);
  }
}

/** Thrown when the key-encryption key does not open the keyring (never for a wrong password: the
 *  login fails first; this means the stored keyring was changed). */
export class KeyringInvalid extends TokenInvalid {
  override name = 'KeyringInvalid';
}

const keyringAad = (email: string) => Buffer.from(`atefs/auth/keyring/v1\0${email}`, 'utf8');

export function sealKeyring(kek: Buffer, id: Identity): Buffer {
  const inner = packr.pack({ n: id.name, s: id.signing.secretKey, m: id.kem.secretKey, r: id.readKey });
  return xchachaSeal(kek, inner, keyringAad(id.name));
}

export function openKeyring(kek: Buffer, sealed: Buffer, email: string): Identity {
  let v: Record<string, Uint8Array | string>;
  try {
    v = packr.unpack(xchachaOpen(kek, sealed, keyringAad(email))) as Record<string, Uint8Array | string>;
  } catch (e) {
    throw new KeyringInvalid(`the keyring of ${email} does not open: ${(e as Error).message}`);
  }
  const p = principalFromSecrets({
    kind: 'user', name: email,
    signingSecret: Buffer.from(v.s as Uint8Array), kemSecret: Buffer.from(v.m as Uint8Array), readKey: Buffer.from(v.r as Uint8Array),
  });
  if (!isIdentity(p)) throw new KeyringInvalid(`the keyring of ${email} is incomplete`);
  return p;
}

const roleAad = (group: string, role: string, gen: number) => Buffer.from(`atefs/auth/role-keys/v1\0${group}\0${role}\0${gen}`, 'utf8');

/** Seals a role's secrets (one generation) to a member's KEM public key. */
export function sealRoleKeys(memberKemPk: Buffer, role: Principal, gen: number): Buffer {
  if (!role.signing || !role.kem || !role.readKey || !role.purpose) throw new TypeError('a role needs signing, KEM and read keys');
  const inner = packr.pack({ s: role.signing.secretKey, m: role.kem.secretKey, r: role.readKey });
  return sealForPublicKey(memberKemPk, inner, roleAad(role.name, role.purpose, gen));
}

export function openRoleKeys(kemSecret: Buffer, sealed: Buffer, group: string, role: string, gen: number): Principal {
  const v = packr.unpack(openSealed(kemSecret, sealed, roleAad(group, role, gen))) as Record<string, Uint8Array>;
  return principalFromSecrets({
    kind: 'group-role', name: group, purpose: role,
    signingSecret: Buffer.from(v.s!), kemSecret: Buffer.from(v.m!), readKey: Buffer.from(v.r!),
  });
}
