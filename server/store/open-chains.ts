// The chains a store holds open, shared by both backends (chain-host.ts, jetstream-store.ts): at
// most `maxOpen` at once (least recently used idle ones are closed beyond that), one open or
// creation in flight per name, and an evicted chain finishes closing before it is opened again.

/** What the table needs of an open chain. */
export interface OpenChain {
  closing: boolean;
  lastUsed: number;
  /** No append in flight: it may be closed to make room. */
  readonly idle: boolean;
  close(): Promise<void>;
}

export class OpenChains<C extends OpenChain> {
  // Map iteration order is insertion order: re-inserting on use keeps it an LRU.
  private readonly open = new Map<string, C>();
  private readonly opening = new Map<string, Promise<C | null>>();
  private readonly closingChains = new Map<string, Promise<void>>();

  constructor(private readonly maxOpen: number) {}

  get size(): number {
    return this.open.size;
  }

  /** The open chain (now the most recently used), else `load`'s, started once per name at a time. */
  get(name: string, load: () => Promise<C | null>): Promise<C | null> {
    const hit = this.open.get(name);
    if (hit && !hit.closing) {
      this.open.delete(name);
      this.open.set(name, hit);
      hit.lastUsed = Date.now();
      return Promise.resolve(hit);
    }
    return this.opening.get(name) ?? this.inFlight(name, load());
  }

  /** The chains open now. */
  list(): C[] {
    return [...this.open.values()];
  }

  /** The open or creation of `name` in flight, if any. */
  pending(name: string): Promise<C | null> | undefined {
    return this.opening.get(name);
  }

  /** Registers `p` as the open (or creation) of `name` in flight until it settles. */
  inFlight<T extends C | null>(name: string, p: Promise<T>): Promise<T> {
    const tracked = p.finally(() => this.opening.delete(name));
    this.opening.set(name, tracked);
    return tracked;
  }

  /** Resolves once an evicted chain of that name has finished closing. */
  closed(name: string): Promise<void> | undefined {
    return this.closingChains.get(name);
  }

  /** Keeps `chain` open under `name`, closing least recently used idle chains beyond maxOpen. */
  remember(name: string, chain: C): void {
    this.open.set(name, chain);
    if (this.open.size <= this.maxOpen) return;
    for (const [n, c] of this.open) {
      if (this.open.size <= this.maxOpen) break;
      if (c === chain || !c.idle) continue;
      this.open.delete(n);
      this.closeTracked(n, c);
    }
  }

  /** Forgets `chain` if it is the one open under `name`; `close`: closes it too. */
  drop(name: string, chain: C, close: boolean): void {
    if (this.open.get(name) !== chain) return;
    this.open.delete(name);
    if (close) this.closeTracked(name, chain);
  }

  /** Waits for the opens in flight, then closes every chain. */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.opening.values()]);
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all([...all.map((c) => c.close()), ...this.closingChains.values()]);
  }

  private closeTracked(name: string, chain: C): void {
    chain.closing = true;
    this.closingChains.set(name, chain.close().catch(() => undefined).finally(() => this.closingChains.delete(name)));
  }
}
