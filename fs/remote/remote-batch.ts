import type { EventMeta } from '../../src/chain/index.js';
import type { Ino } from '../core/api.js';
import type { FsBatch, InodeRecord } from '../core/store.js';
import { decodeDentry } from '../chain-store/codec.js';

/** The inode number in an inode or block DAO key (keys.ts: kind, 14 hex digits of ino, ...). */
export function inoOfKey(key: string): Ino {
  return parseInt(key.slice(2, 16), 16);
}

const PLACEHOLDER = Buffer.alloc(0);

/**
 * What a set of applied events means to the core (Filesystem.applyRemote): which inodes, names
 * and blocks changed, read back from the view as they are now. Block data is not read (the core
 * only drops its cached copy); a deleted entry's name comes from `names` (read before).
 */
export function batchOfEvents(
  events: readonly EventMeta[],
  current: (key: string) => Buffer | null,
  names: Map<string, { parent: Ino; name: Buffer }>,
  /** undefined: deleted; null: there, but sealed for keys this session does not hold (skipped). */
  inode: (ino: Ino) => InodeRecord | undefined | null,
): FsBatch {
  const batch: FsBatch = { inodes: [], deletedInodes: [], dentries: [], blocks: [] };
  const seen = new Set<string>();
  // The last event of a key says what it is now.
  for (let i = events.length - 1; i >= 0; i--) {
    const m = events[i]!;
    if (seen.has(m.key)) continue;
    seen.add(m.key);
    switch (m.type) {
      case 'inode': {
        const ino = inoOfKey(m.key);
        const rec = inode(ino);
        if (rec === null) break;
        if (rec) batch.inodes.push(rec); else batch.deletedInodes.push(ino);
        break;
      }
      case 'dentry': {
        if (!m.parent) break;
        const parent = inoOfKey(m.parent.key);
        const data = current(m.key);
        if (data) {
          const d = decodeDentry(data);
          batch.dentries.push({ parent, name: d.name, ino: d.ino });
        } else {
          const n = names.get(m.key);
          if (n) batch.dentries.push({ parent, name: n.name, ino: null });
        }
        break;
      }
      case 'block': {
        const ino = inoOfKey(m.key);
        const index = parseInt(m.key.slice(16), 16);
        batch.blocks.push({ ino, index, data: m.tombstone ? null : PLACEHOLDER });
        break;
      }
      // A page delta (chain-store/block-delta.ts) changes its block; its tombstone comes with the
      // block's own (never alone), so it never deletes the block here.
      case 'blockdelta': {
        const ino = inoOfKey(m.key);
        const index = parseInt(m.key.slice(16), 16);
        if (!m.tombstone) batch.blocks.push({ ino, index, data: PLACEHOLDER });
        break;
      }
      default: break;
    }
  }
  return batch;
}
