// An encrypted vault: secrets readable only by the named readers. Each reader's copy of the data
// key is wrapped to their KEM public key (X-Wing); removing a reader gives the vault a fresh key,
// so what is written afterwards is closed to them (what they could read before, they keep).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openChain, createIdentity, readersOfPrincipal, Session, NoReadKey } from 'atefs';

const work = await mkdtemp(join(tmpdir(), 'ate-vault-'));
const dir = join(work, 'vault');
const [alice, bob, carol] = ['alice', 'bob', 'carol'].map((n) => createIdentity(n));
const kemOf = (id) => readersOfPrincipal(id, { sym: false, kem: true });
// Bob and Carol open Alice's chain for the first time: they trust it on purpose (trustChain pins
// its genesis in their own config); a chain nobody pinned is refused otherwise.
const open = (who, readOnly) => openChain('vault', { dir, session: Session.of(who), configDir: join(work, who.name), readOnly, trustChain: who !== alice });

try {
  const a = await open(alice, false);
  let vault, before, after;
  try {
    vault = await a.transact((tx) => tx.store({ title: 'team vault' }, {
      type: 'vault', publish: [bob.kem.publicKey, carol.kem.publicKey], read: { mode: 'readers', readers: [...readersOfPrincipal(alice), ...kemOf(bob), ...kemOf(carol)] },
    }));
    before = await a.transact((tx) => tx.store({ name: 'wifi', secret: 'correct horse' }, { parent: vault, collection: 'secrets' }));
    // Carol leaves the team: a new reader list, a fresh data key for what comes next.
    await a.transact((tx) => tx.setAcl(vault, { read: { mode: 'readers', readers: [...readersOfPrincipal(alice), ...kemOf(bob)] } }));
    after = await a.transact((tx) => tx.store({ name: 'vpn', secret: 'battery staple' }, { parent: vault, collection: 'secrets' }));
  } finally {
    await a.close();
  }

  for (const who of [bob, carol]) {
    const c = await open(who, true);
    try {
      for (const [label, key] of [['before', before], ['after', after]]) {
        try {
          const s = c.load(key).value;
          console.log(`${who.name} reads the secret written ${label} carol left: ${s.name}=${s.secret}`);
        } catch (e) {
          if (!(e instanceof NoReadKey)) throw e;
          console.log(`${who.name} cannot read the secret written ${label} carol left (NoReadKey)`);
        }
      }
    } finally {
      await c.close();
    }
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
