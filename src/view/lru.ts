// A byte-bounded LRU (Map insertion order as recency). Used for raw commit records and decrypted
// payloads on the read path.
export class ByteLru<K, V> {
  private readonly map = new Map<K, { v: V; n: number }>();
  private bytes = 0;
  constructor(
    private readonly maxBytes: number,
    private readonly sizeOf: (v: V) => number,
  ) {}

  get(k: K): V | undefined {
    const e = this.map.get(k);
    if (!e) return undefined;
    this.map.delete(k);
    this.map.set(k, e);
    return e.v;
  }

  set(k: K, v: V): void {
    const n = this.sizeOf(v);
    if (n > this.maxBytes) return;
    const old = this.map.get(k);
    if (old) {
      this.bytes -= old.n;
      this.map.delete(k);
    }
    this.map.set(k, { v, n });
    this.bytes += n;
    while (this.bytes > this.maxBytes) {
      const first = this.map.keys().next();
      if (first.done) break;
      this.delete(first.value);
    }
  }

  delete(k: K): void {
    const e = this.map.get(k);
    if (!e) return;
    this.bytes -= e.n;
    this.map.delete(k);
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.map.size;
  }
}
