// Whether an existing chain may be opened without a pin. A chain its user created is pinned (its
// genesis hash, kept apart from the data, written when the chain is created). An existing chain
// without a pin was made elsewhere — copied in, moved, restored, planted by whoever can write the
// storage — and opening it would trust its root keys and its readers (a planted chain names its
// maker as a reader of everything written into it). So it is refused until the user says to
// trust it, which pins what is there. One exception: a chain whose only record is a genesis rooted
// at the opener's own keys is the opener's own creation interrupted before the pin was written
// (only they could sign it, and it holds no data that could be rolled back); it is pinned as is.
import type { CryptoPool } from '../crypto/index.js';
import type { RedoLog } from '../log/index.js';
import { decodeCommit } from './codec.js';
import type { Keyring } from './confidentiality.js';
import { ChainError } from './errors.js';
import { publicKeyId } from './ids.js';
import { verifySignatures } from './validate.js';

/** An existing chain that was never pinned, opened without trust. */
export class ChainNotPinned extends ChainError {
  override name = 'ChainNotPinned';
  constructor(readonly where: string, readonly pinsFile: string, readonly lastSeq: number, howToTrust: string) {
    super(`the chain at ${where} holds commits (up to seq ${lastSeq}) but is not pinned in ${pinsFile}: ` +
      `it was not created by this user here (copied, moved or restored from elsewhere), or its pin was lost. ${howToTrust}`);
  }
}

export interface UnpinnedCheck {
  /** Named in the error: the chain's directory. */
  where: string;
  /** Named in the error: the file pins live in. */
  pinsFile: string;
  keyring: Keyring;
  pool: CryptoPool | null;
  /** The user said to trust it: nothing is checked. */
  trust: boolean;
  /** What the error tells the user to do to trust it (e.g. "mount it once with --trust-chain"). */
  howToTrust: string;
}

/**
 * Refuses (ChainNotPinned) an unpinned log that holds commits, unless trusted or the opener's own
 * interrupted creation. An empty log passes: there is nothing in it to trust.
 */
export async function checkUnpinnedChain(log: RedoLog, o: UnpinnedCheck): Promise<void> {
  if (o.trust) return;
  let n = 0;
  for (const _ of log.records()) if (++n >= 2) break;
  if (n === 0) return;
  if (n === 1 && (await isOwnGenesis(log, o.keyring, o.pool))) return;
  throw new ChainNotPinned(o.where, o.pinsFile, log.nextSeq - 1, o.howToTrust);
}

async function isOwnGenesis(log: RedoLog, keyring: Keyring, pool: CryptoPool | null): Promise<boolean> {
  for (const rec of log.records()) {
    let commit;
    try {
      commit = decodeCommit(rec.payload);
    } catch {
      return false;
    }
    const g = commit.header.genesis;
    if (!g || g.rootKeys.length === 0) return false;
    const mine = new Set(keyring.signingKeys().map((k) => k.id));
    if (!g.rootKeys.every((k) => mine.has(publicKeyId(k)))) return false;
    const [signers] = await verifySignatures([commit], pool);
    return signers instanceof Set && [...signers].some((s) => mine.has(s));
  }
  return false;
}
