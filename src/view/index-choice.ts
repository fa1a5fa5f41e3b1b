// Which index an opening view uses (View.open): the persisted one only with its seal intact
// (index-auth.ts), else it is deleted and rebuilt — or, for a read-only view, left alone (a writer
// may be using it) and replaced by a private one. With a crypto pool the seal's tag is computed on a
// worker while this thread verifies the log up to the watermark the seal names (index-loader.ts
// logWatermark): the two whole-file passes of an open overlap.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { indexSealKey, startIndexSealCheck, takeIndexSeal } from './index-auth.js';
import { logWatermark, type PrecomputedWatermark } from './index-loader.js';
import { IndexStore } from './index-store.js';
import type { ViewProgress } from './progress.js';
import type { OpenViewOptions } from './view.js';

export interface IndexChoice {
  /** Where the index lives (a temporary directory when `tempDir` is set). */
  path: string;
  tempDir: string | null;
  /** The key the index is sealed with at close (null: never sealed). */
  sealKey: Buffer | null;
  /** Why the persisted index was not used (null: it is, or there was none). */
  unsealed: string | null;
  /** The log's watermark at the sealed seq, computed while the seal was checked. */
  precomputed: PrecomputedWatermark | null;
}

export async function chooseIndex(o: OpenViewOptions, progress: (p: ViewProgress) => void): Promise<IndexChoice> {
  let tempDir: string | null = null;
  let path = o.indexPath;
  if (!path) {
    tempDir = mkdtempSync(join(tmpdir(), 'atefs-view-'));
    path = tempDir;
  }
  let sealKey = tempDir ? null : indexSealKey(o.keyring, o.log.chainId);
  let unsealed: string | null;
  let precomputed: PrecomputedWatermark | null = null;
  if (sealKey && o.pool && (o.verify ?? 'full') === 'full') {
    const check = startIndexSealCheck(path, sealKey, o.pool, !!o.readOnly);
    if (check.hint) precomputed = { seq: check.hint.seq, watermark: logWatermark(o.log, check.hint.seq, check.hint.bytes, progress) };
    unsealed = await check.result.catch((e: Error) => `index seal not checked (${e.message})`);
  } else unsealed = sealKey ? takeIndexSeal(path, sealKey, !!o.readOnly) : tempDir ? null : 'no key to check the index seal with';
  if (unsealed) {
    precomputed = null;
    if (o.readOnly) {
      tempDir = mkdtempSync(join(tmpdir(), 'atefs-view-'));
      path = tempDir;
      sealKey = null;
    } else IndexStore.destroy(path);
  }
  return { path, tempDir, sealKey, unsealed, precomputed };
}
