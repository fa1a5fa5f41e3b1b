// Cross-chain references: a DAO in one chain naming a DAO in another. The reference is plain data
// (it is stored inside values); loading it goes through the other chain's own view, keys and
// validation — a reference never lets one chain vouch for another's content.
import type { DaoKey } from '../chain/index.js';
import type { Chain } from './chain.js';
import { UnknownChainRef } from './errors.js';
import type { Dao } from './transaction.js';

export interface DaoRef {
  /** The chain's name as openChain takes it (a local name or a tcp:// URL). */
  chain: string;
  key: DaoKey;
}

export function isDaoRef(v: unknown): v is DaoRef {
  return typeof v === 'object' && v !== null && typeof (v as DaoRef).chain === 'string' && typeof (v as DaoRef).key === 'string';
}

/** Opens chains by name on first use and resolves references through them. */
export class ChainRegistry {
  private readonly open = new Map<string, Promise<Chain>>();

  constructor(private readonly opener: (name: string) => Promise<Chain>) {}

  /** Registers an already open chain under its name. */
  add(chain: Chain): void {
    this.open.set(chain.name, Promise.resolve(chain));
  }

  chain(name: string): Promise<Chain> {
    let c = this.open.get(name);
    if (!c) {
      c = this.opener(name).catch((e: unknown) => {
        this.open.delete(name);
        throw new UnknownChainRef(`cannot open chain '${name}' of a reference: ${(e as Error).message}`);
      });
      this.open.set(name, c);
    }
    return c;
  }

  /** Loads the DAO a reference names, through its own chain. */
  async load<T>(ref: DaoRef): Promise<Dao<T>> {
    return (await this.chain(ref.chain)).load<T>(ref.key);
  }

  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    for (const c of all) await (await c.catch(() => null))?.close();
  }
}
