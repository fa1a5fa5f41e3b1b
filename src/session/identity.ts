// An identity: a hybrid signing key pair (writes), a hybrid KEM key pair (reads granted by others:
// data keys and group role keys are sealed to it) and a symmetric read key (the chain-wide key of
// the chains it owns). A principal is the same bundle for a user or for a group role; any part may
// be missing (an observer role holds read keys only).
import {
  type KemKeyPair,
  type SigningKeyPair,
  generateKemKeyPair,
  generateSigningKeyPair,
  kemPublicKeyOf,
  randomBytes,
  signingPublicKeyOf,
} from '../crypto/index.js';
import { publicKeyId, readKeyId } from '../chain/ids.js';
import type { ReaderRef } from '../chain/types.js';

export type PrincipalKind = 'user' | 'group-role';

/** Roles of group members (as in the auth service); any other string is allowed as 'other'. */
export type RolePurpose = 'owner' | 'delegate' | 'contributor' | 'observer' | (string & {});

export interface Principal {
  kind: PrincipalKind;
  /** User name / email, or the group name for a role. */
  name: string;
  /** Role purpose (group roles only). */
  purpose?: RolePurpose;
  signing?: SigningKeyPair;
  kem?: KemKeyPair;
  readKey?: Buffer;
}

/** A user identity: a principal with all three keys. */
export interface Identity extends Principal {
  kind: 'user';
  signing: SigningKeyPair;
  kem: KemKeyPair;
  readKey: Buffer;
}

export const READ_KEY_BYTES = 32;

export function createIdentity(name: string): Identity {
  return {
    kind: 'user',
    name,
    signing: generateSigningKeyPair(),
    kem: generateKemKeyPair(),
    readKey: randomBytes(READ_KEY_BYTES),
  };
}

export function createGroupRole(group: string, purpose: RolePurpose, parts: { write?: boolean; read?: boolean } = {}): Principal {
  const p: Principal = { kind: 'group-role', name: group, purpose };
  if (parts.write ?? true) p.signing = generateSigningKeyPair();
  if (parts.read ?? true) {
    p.kem = generateKemKeyPair();
    p.readKey = randomBytes(READ_KEY_BYTES);
  }
  return p;
}

/** Rebuilds key pairs from secret halves (what token files store). */
export function principalFromSecrets(s: {
  kind: PrincipalKind;
  name: string;
  purpose?: string;
  signingSecret?: Buffer;
  kemSecret?: Buffer;
  readKey?: Buffer;
}): Principal {
  const p: Principal = { kind: s.kind, name: s.name };
  if (s.purpose !== undefined) p.purpose = s.purpose;
  if (s.signingSecret) p.signing = { secretKey: s.signingSecret, publicKey: signingPublicKeyOf(s.signingSecret) };
  if (s.kemSecret) p.kem = { secretKey: s.kemSecret, publicKey: kemPublicKeyOf(s.kemSecret) };
  if (s.readKey) {
    if (s.readKey.length !== READ_KEY_BYTES) throw new TypeError('read key must be 32 bytes');
    p.readKey = s.readKey;
  }
  return p;
}

export function isIdentity(p: Principal): p is Identity {
  return p.kind === 'user' && !!p.signing && !!p.kem && !!p.readKey;
}

/** Ids the chain uses for this principal's keys. */
export function principalIds(p: Principal): { signing?: string; kem?: string; readKey?: string } {
  const out: { signing?: string; kem?: string; readKey?: string } = {};
  if (p.signing) out.signing = publicKeyId(p.signing.publicKey);
  if (p.kem) out.kem = publicKeyId(p.kem.publicKey);
  if (p.readKey) out.readKey = readKeyId(p.readKey);
  return out;
}

/** Reader refs of a principal: its symmetric read key and its KEM key. */
export function readersOfPrincipal(p: Principal, which: { sym?: boolean; kem?: boolean } = { sym: true, kem: true }): ReaderRef[] {
  const ids = principalIds(p);
  const out: ReaderRef[] = [];
  if (which.sym !== false && ids.readKey) out.push({ kind: 'sym', id: ids.readKey });
  if (which.kem !== false && ids.kem) out.push({ kind: 'kem', id: ids.kem });
  return out;
}
