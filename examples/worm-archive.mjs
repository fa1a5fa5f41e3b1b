// A WORM archive: each record becomes immutable once written (write ACL 'nobody' from its first
// version on). A later change is refused by the validator — here, and by every other replica,
// because the rule is in the signed record itself, not in this program.
import { openChain, NoWriteAuthority } from 'atefs';

const chain = await openChain('worm-archive', { temp: process.argv.includes('--temp') || !process.argv.includes('--keep') });
try {
  const tx = chain.begin();
  const key = tx.store({ invoice: 1042, amount: '199.00 EUR', at: new Date(0).toISOString() }, { type: 'invoice', write: { mode: 'nobody' } });
  await tx.commit();
  console.log(`archived ${key.slice(0, 16)}: ${JSON.stringify(chain.load(key).value)}`);

  for (const attempt of ['rewrite', 'delete']) {
    const t = chain.begin();
    if (attempt === 'rewrite') t.store({ invoice: 1042, amount: '1.00 EUR' }, { key });
    else t.delete(key);
    try {
      await t.commit();
      console.log(`${attempt}: ACCEPTED (this must not happen)`);
      process.exitCode = 1;
    } catch (e) {
      if (!(e instanceof NoWriteAuthority)) throw e;
      console.log(`${attempt}: refused (${e.constructor.name})`);
    }
  }
  console.log(`still: ${JSON.stringify(chain.load(key).value)}`);
} finally {
  await chain.close();
}
