// The original ATE README's first example: store a World in the chain "universe", read it back.
//   node examples/hello-world.mjs              a local chain (under $XDG_DATA_HOME/ate/chains)
//   node examples/hello-world.mjs --temp       in memory, nothing kept
//   node examples/hello-world.mjs tcp://127.0.0.1:5000/universe   on an atedb server (a replica
//                                              of it is kept under $XDG_DATA_HOME/ate/chains/remote)
import { openChain } from 'atefs';

const target = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? 'universe';
const chain = await openChain(target, target.startsWith('tcp://') ? {} : { temp: process.argv.includes('--temp') });
try {
  // One transaction, one signed commit.
  const tx = chain.begin();
  const key = tx.store({ commandment: 'Hello' }, { type: 'World' });
  await tx.commit();
  // Now we retrieve the data and print it to the console.
  const world = chain.load(key).value;
  console.log(`${world.commandment} world!`);
} finally {
  await chain.close();
}
