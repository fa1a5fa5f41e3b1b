import type { Ino } from './api.js';

/** One directory entry as the core holds it. `type` is S_IFMT bits, 0 while unknown. */
export interface DirSlot {
  /** readdir cookie: per-directory, strictly increasing, never reused while the index lives. */
  id: number;
  name: Buffer;
  key: string;
  ino: Ino;
  type: number;
  /** Position in `DirIndex.slots` (kept up to date by compaction). */
  pos: number;
}

/** Cookies 1 and 2 are "." and ".."; entries start at 3. */
export const FIRST_ENTRY_ID = 3;

export function nameKey(name: Buffer): string { return name.toString('latin1'); }

/**
 * A directory's entries: O(1) lookup by name, and an id-ordered list with tombstones so readdir
 * cookies stay valid while entries are added or removed during a listing.
 */
export class DirIndex {
  readonly byName = new Map<string, DirSlot>();
  /** Ascending by id; removed entries leave null until compaction. */
  slots: Array<DirSlot | null> = [];
  private nextId = FIRST_ENTRY_ID;
  private tombstones = 0;

  get size(): number { return this.byName.size; }

  get(key: string): DirSlot | undefined { return this.byName.get(key); }

  add(name: Buffer, key: string, ino: Ino, type: number): DirSlot {
    const slot: DirSlot = { id: this.nextId++, name, key, ino, type, pos: this.slots.length };
    this.slots.push(slot);
    this.byName.set(key, slot);
    return slot;
  }

  remove(slot: DirSlot): void {
    this.byName.delete(slot.key);
    this.slots[slot.pos] = null;
    this.tombstones++;
    if (this.tombstones > 32 && this.tombstones * 2 > this.slots.length) this.compact();
  }

  /** Index of the first slot whose id is greater than `cookie`. */
  positionAfter(cookie: number): number {
    const s = this.slots;
    let lo = 0, hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      // Tombstones keep their place, so look for the nearest live id to compare with.
      let m = mid;
      while (m < hi && s[m] === null) m++;
      if (m === hi) { hi = mid; continue; }
      if (s[m]!.id <= cookie) lo = m + 1; else hi = mid;
    }
    return lo;
  }

  private compact(): void {
    const live: DirSlot[] = [];
    for (const s of this.slots) if (s !== null) { s.pos = live.length; live.push(s); }
    this.slots = live;
    this.tombstones = 0;
  }
}
