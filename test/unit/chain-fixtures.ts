// Shared fixtures of the chain tests: a chain with an owner, builders, hand-made (hostile) commits.
import { signMessage } from '../../src/crypto/index.js';
import {
  ChainValidator,
  type Commit,
  CommitBuilder,
  DataKeyCache,
  type EventMeta,
  MemoryAuthorityState,
  assembleCommit,
  createGenesis,
  hashCommitParts,
  makeEvent,
  signatureMessage,
} from '../../src/chain/index.js';
import { type Identity, Session, createIdentity } from '../../src/session/index.js';

export const T0 = 1_800_000_000_000;

export class Clock {
  t = T0;
  now = (): number => this.t;
  tick(ms = 1): number {
    this.t += ms;
    return this.t;
  }
}

export interface World {
  owner: Identity;
  session: Session;
  keys: DataKeyCache;
  state: MemoryAuthorityState;
  validator: ChainValidator;
  genesis: Commit;
  clock: Clock;
  builder(session?: Session, keys?: DataKeyCache): CommitBuilder;
  commit(fill: (b: CommitBuilder) => void, session?: Session, keys?: DataKeyCache): Promise<Commit>;
}

const identities: Identity[] = [];
/** Identities are cached across tests of a file (key generation costs a few ms each). */
export function identity(i: number): Identity {
  while (identities.length <= i) identities.push(createIdentity(`user${identities.length}`));
  return identities[i]!;
}

export async function makeWorld(opts: { owner?: Identity; openRoot?: boolean; monotonicTime?: boolean } = {}): Promise<World> {
  const owner = opts.owner ?? identity(0);
  const session = Session.of(owner);
  const keys = new DataKeyCache(session);
  const clock = new Clock();
  const genesis = await createGenesis({
    name: 'test/chain',
    keyring: session,
    chainReaders: session.chainReaders(),
    keys,
    now: clock.now,
    openRoot: opts.openRoot ?? false,
    ...(opts.monotonicTime !== undefined ? { monotonicTime: opts.monotonicTime } : {}),
  });
  const state = new MemoryAuthorityState();
  const validator = new ChainValidator(state, { now: clock.now });
  await validator.accept(genesis);
  const w: World = {
    owner,
    session,
    keys,
    state,
    validator,
    genesis,
    clock,
    builder: (s = session, k = keys) => new CommitBuilder({ state, keyring: s, keys: k, now: () => clock.tick() }),
    async commit(fill, s = session, k = keys) {
      const b = w.builder(s, k);
      fill(b);
      const c = await b.build();
      await validator.accept(c.bytes);
      return c;
    },
  };
  return w;
}

/** A commit made by hand, bypassing the builder's checks (what an attacker could send). */
export function rawCommit(
  chain: Buffer,
  metas: Array<{ meta: EventMeta; payload?: Buffer | null }>,
  signers: Identity[],
  timestamp: number,
): Commit {
  const events = metas.map((m) => makeEvent(m.meta, m.payload ?? null));
  const header = { chain, timestamp, genesis: null };
  const { headerBytes, hash } = hashCommitParts(header, events);
  const sigs = signers.map((s) => ({ publicKey: s.signing.publicKey, signature: signMessage(s.signing.secretKey, signatureMessage(hash)) }));
  return assembleCommit(header, headerBytes, hash, events, sigs);
}

export function meta(partial: Partial<EventMeta> & { key: string }): EventMeta {
  return {
    version: 1,
    tombstone: false,
    parent: null,
    read: { mode: 'inherit' },
    write: { mode: 'inherit' },
    nodeKey: null,
    grants: [],
    payloadKey: null,
    publish: [],
    type: null,
    replyTo: null,
    ...partial,
  };
}
