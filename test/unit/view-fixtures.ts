// Shared fixtures of the view tests: a real chain (identity, genesis, log on disk) and a view on it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Commit, DataKeyCache, createGenesis } from '../../src/chain/index.js';
import { type RedoLog, openLog } from '../../src/log/index.js';
import { type Identity, Session, createIdentity } from '../../src/session/index.js';
import { type OpenViewOptions, View } from '../../src/view/index.js';

const identities: Identity[] = [];
export function identity(i: number): Identity {
  while (identities.length <= i) identities.push(createIdentity(`viewuser${identities.length}`));
  return identities[i]!;
}

export class Clock {
  t = 1_800_000_000_000;
  now = (): number => this.t;
  tick(ms = 1): number {
    this.t += ms;
    return this.t;
  }
}

export interface Chain {
  dir: string;
  logDir: string;
  indexDir: string;
  session: Session;
  genesis: Commit;
  clock: Clock;
  log: RedoLog | null;
  view: View | null;
  open(extra?: Partial<OpenViewOptions>): Promise<View>;
  close(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function makeChain(opts: { owner?: Identity; name?: string; segmentSize?: number } = {}): Promise<Chain> {
  const dir = mkdtempSync(join(tmpdir(), 'atefs-viewtest-'));
  const session = Session.of(opts.owner ?? identity(0));
  const clock = new Clock();
  const keys = new DataKeyCache(session);
  const genesis = await createGenesis({
    name: opts.name ?? 'test/view',
    keyring: session,
    chainReaders: session.chainReaders(),
    keys,
    now: clock.now,
  });
  const c: Chain = {
    dir,
    logDir: join(dir, 'log'),
    indexDir: join(dir, 'index'),
    session,
    genesis,
    clock,
    log: null,
    view: null,
    async open(extra = {}) {
      await c.close();
      c.log = await openLog({ dir: c.logDir, chainId: 'test/view', genesisHash: genesis.hash, ...(opts.segmentSize ? { segmentSize: opts.segmentSize } : {}) });
      c.view = await View.open({
        log: c.log,
        keyring: session,
        pinnedGenesis: genesis.hash,
        genesis,
        indexPath: c.indexDir,
        now: clock.now,
        compaction: { mode: 'never' },
        // Every load of an uncached event goes through log.readSlice (hash-checked).
        sliceThreshold: 1,
        ...extra,
      });
      return c.view;
    },
    async close() {
      if (c.view) await c.view.close();
      c.view = null;
      if (c.log) await c.log.close().catch(() => undefined);
      c.log = null;
    },
    async cleanup() {
      await c.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return c;
}

/** Every DAO of the view, key by key: version, parent, type, plaintext (hex), index entry seq/hash. */
export function snapshot(view: View): Map<string, string> {
  const out = new Map<string, string>();
  for (const { key } of view.store.dao.getRange({})) {
    const k = (key as Buffer).toString('hex');
    const e = view.entry(k)!;
    const r = e.node.deleted ? null : view.get(k);
    out.set(
      k,
      JSON.stringify({
        v: e.node.version,
        d: e.node.deleted,
        p: e.node.parent,
        r: e.node.read,
        w: e.node.write,
        t: e.node.type,
        data: r?.data ? r.data.toString('hex') : null,
        seq: e.seq,
        i: e.index,
        h: e.hash.toString('hex'),
      }),
    );
  }
  return out;
}

/** Path of a log segment file of the chain. */
/** Opens the chain again without its index: the view rebuilt from the log alone. */
export async function rebuildFromLog(c: Chain, extra?: Partial<OpenViewOptions>): Promise<View> {
  await c.close();
  rmSync(c.indexDir, { recursive: true, force: true });
  return c.open(extra);
}

export function segFile(c: Chain, segment: number): string {
  return join(c.logDir, `${String(segment).padStart(8, '0')}.seg`);
}

/**
 * Changes the stored record at `at` with `edit(recordPayload)` and fixes its frame checksum: the
 * log itself then sees nothing wrong, only the view's checks can.
 */
export function editRecord(c: Chain, at: { segment: number; offset: number }, edit: (payload: Buffer) => void): void {
  const f = segFile(c, at.segment);
  const b = readFileSync(f);
  const len = b.readUInt32LE(at.offset + 4);
  edit(b.subarray(at.offset + 16, at.offset + 16 + len));
  b.writeUInt32LE(crc32(b.subarray(at.offset + 4, at.offset + 16 + len)), at.offset);
  writeFileSync(f, b);
}
