// A session: the keys a process holds (its user identity and the group roles it was granted).
// It is the Keyring the chain layer signs, wraps and unwraps with.
import type { Keyring } from '../chain/confidentiality.js';
import { publicKeyId, readKeyId } from '../chain/ids.js';
import type { KeyId, ReaderRef, WriteAcl } from '../chain/types.js';
import { type Identity, type Principal, isIdentity, readersOfPrincipal } from './identity.js';

export interface SigningKeyEntry {
  id: KeyId;
  publicKey: Buffer;
  secretKey: Buffer;
}

export class Session implements Keyring {
  private readonly principalList: Principal[] = [];
  private signing: SigningKeyEntry[] = [];
  private readonly readKeys = new Map<KeyId, Buffer>();
  private readonly kemSecrets = new Map<KeyId, Buffer>();
  private readonly kemPublics = new Map<KeyId, Buffer>();

  constructor(principals: Iterable<Principal> = []) {
    for (const p of principals) this.add(p);
  }

  static of(identity: Identity, ...roles: Principal[]): Session {
    return new Session([identity, ...roles]);
  }

  /** Adds a principal (user or group role). Keys already held are not duplicated. */
  add(p: Principal): this {
    this.principalList.push(p);
    if (p.signing) {
      const id = publicKeyId(p.signing.publicKey);
      if (!this.signing.some((s) => s.id === id)) {
        this.signing = [...this.signing, { id, publicKey: p.signing.publicKey, secretKey: p.signing.secretKey }];
      }
    }
    if (p.kem) {
      const id = publicKeyId(p.kem.publicKey);
      this.kemSecrets.set(id, p.kem.secretKey);
      this.kemPublics.set(id, p.kem.publicKey);
    }
    if (p.readKey) this.readKeys.set(readKeyId(p.readKey), p.readKey);
    return this;
  }

  /** Merges another session's keys into this one. */
  merge(other: Session): this {
    for (const p of other.principals) this.add(p);
    return this;
  }

  get principals(): readonly Principal[] {
    return this.principalList;
  }

  /** The user identity, if the session has one. */
  get user(): Identity | undefined {
    return this.principalList.find(isIdentity);
  }

  roles(): Principal[] {
    return this.principalList.filter((p) => p.kind === 'group-role');
  }

  // ----- Keyring
  signingKeys(): readonly SigningKeyEntry[] {
    return this.signing;
  }
  readKey(id: KeyId): Buffer | undefined {
    return this.readKeys.get(id);
  }
  kemSecretKey(id: KeyId): Buffer | undefined {
    return this.kemSecrets.get(id);
  }
  kemPublicKey(id: KeyId): Buffer | undefined {
    return this.kemPublics.get(id);
  }

  // ----- conveniences for callers building ACLs
  /** Ids of every signing key held. */
  writeKeyIds(): KeyId[] {
    return this.signing.map((s) => s.id);
  }
  /** A write ACL admitting the user's signing key. */
  userWriteAcl(): WriteAcl {
    const u = this.user;
    if (!u) throw new TypeError('the session has no user identity');
    return { mode: 'any', keys: [publicKeyId(u.signing.publicKey)] };
  }
  /** Readers for a chain this session creates: the user's symmetric read key (and its KEM key). */
  chainReaders(opts: { kem?: boolean } = {}): ReaderRef[] {
    const u = this.user;
    if (!u) throw new TypeError('the session has no user identity');
    return readersOfPrincipal(u, { sym: true, kem: opts.kem ?? false });
  }
}
