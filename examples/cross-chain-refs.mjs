// Cross-chain references: an order in chain "shop" names a customer in chain "crm". The reference
// is plain data; loading it goes through the other chain's own keys and validation.
import { openChain, ChainRegistry, isDaoRef } from 'atefs';

const temp = !process.argv.includes('--keep');
const registry = new ChainRegistry((name) => openChain(name, { temp }));
try {
  const crm = await registry.chain('crm');
  const shop = await registry.chain('shop');

  const customer = await crm.transact((tx) => tx.store({ name: 'Ada Lovelace', email: 'ada@example.org' }, { type: 'customer' }));
  const order = await shop.transact((tx) => tx.store({ item: 'analytical engine', customer: crm.ref(customer) }, { type: 'order' }));

  const o = shop.load(order).value;
  if (!isDaoRef(o.customer)) throw new Error('order holds no reference');
  const c = await registry.load(o.customer);
  console.log(`order of '${o.item}' for ${c.value.name} <${c.value.email}> (chain ${o.customer.chain}, version ${c.version})`);
} finally {
  await registry.close();
}
