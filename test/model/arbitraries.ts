/**
 * fast-check generators of FsModel operations: a tiny namespace (three names, three levels) so
 * that random paths collide often — most operations hit something that exists, a good share
 * are refused (and must be refused with Linux's errno) — and commit points placed at random, so
 * that many operations land in one batch.
 */
import fc from 'fast-check';
import type { Op } from './fs-model.js';

const TOP = ['a', 'b', 'c'];
/** Fewer names below the top: a deeper path exists more often. */
const SUB = ['a', 'b'];

export const pathArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...TOP) },
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...TOP), fc.constantFrom(...SUB)).map((p) => p.join('/')) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...TOP), fc.constantFrom(...SUB), fc.constantFrom(...SUB)).map((p) => p.join('/')) },
);

export interface OpScale {
  /** Writes start below this offset (a few blocks of the file system under test). */
  maxOffset: number;
  /** Longest write. */
  maxLength: number;
  /** Largest truncate size. */
  maxSize: number;
}

const createMode = fc.constantFrom(0o644, 0o600, 0o755, 0o700);
/** Handle slots: a few files open at once. */
const slot = fc.integer({ min: 0, max: 2 });

/** Operations of the model, weighted towards building trees and writing into them. */
export function opArb(s: OpScale): fc.Arbitrary<Op> {
  const size = (max: number) => fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max }));
  const ops: fc.Arbitrary<Op> = fc.oneof(
    { weight: 10, arbitrary: fc.record({ op: fc.constant('create' as const), path: pathArb, mode: createMode }) },
    { weight: 10, arbitrary: fc.record({ op: fc.constant('mkdir' as const), path: pathArb, mode: createMode }) },
    { weight: 10, arbitrary: fc.record({ op: fc.constant('write' as const), path: pathArb, offset: size(s.maxOffset), length: size(s.maxLength), seed: fc.integer({ min: 0, max: 0xffff }) }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant('rename' as const), from: pathArb, to: pathArb }) },
    { weight: 6, arbitrary: fc.record({ op: fc.constant('unlink' as const), path: pathArb }) },
    { weight: 6, arbitrary: fc.record({ op: fc.constant('rmdir' as const), path: pathArb }) },
    { weight: 5, arbitrary: fc.record({ op: fc.constant('link' as const), from: pathArb, to: pathArb }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('truncate' as const), path: pathArb, size: size(s.maxSize) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('chmod' as const), path: pathArb, mode: fc.oneof(fc.integer({ min: 0, max: 0o777 }), fc.constantFrom(0o1777, 0o1755)) }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('setxattr' as const), path: pathArb, name: fc.constantFrom('user.x', 'user.y'), value: fc.uint8Array({ maxLength: 12 }).map((v) => Buffer.from(v).toString('hex')) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('removexattr' as const), path: pathArb, name: fc.constantFrom('user.x', 'user.y') }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('fsync' as const), path: pathArb }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant('open' as const), path: pathArb, slot }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('close' as const), slot }) },
    { weight: 5, arbitrary: fc.record({ op: fc.constant('hwrite' as const), slot, offset: size(s.maxOffset), length: size(s.maxLength), seed: fc.integer({ min: 0, max: 0xffff }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('hread' as const), slot }) },
  );
  return fc.oneof(
    { weight: 95, arbitrary: fc.tuple(ops, fc.option(fc.integer({ min: 0, max: 0xffff }), { freq: 8 })).map(([o, pick]) => (pick === null ? o : { ...o, pick })) },
    { weight: 5, arbitrary: fc.constant({ op: 'commit' as const }) },
  );
}

/**
 * Content operations on two top-level files, for the page deltas' run (fs/chain-store/
 * block-delta.ts): small writes at random or page-aligned offsets (a page or two of a committed
 * block rewritten), now and then a long one (a block filled), truncates anywhere (into a block,
 * onto a page boundary, up past the end), commit points often.
 */
export function contentOpArb(s: OpScale): fc.Arbitrary<Op> {
  const path = fc.constantFrom('a', 'b');
  const offset = fc.oneof(
    fc.integer({ min: 0, max: s.maxOffset }),
    fc.tuple(fc.integer({ min: 0, max: Math.floor(s.maxOffset / 4096) }), fc.integer({ min: 0, max: 64 })).map(([p, d]) => p * 4096 + d),
  );
  const length = fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 64 }) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 4096 + 100 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: s.maxLength }) },
  );
  const size = fc.oneof(
    fc.integer({ min: 0, max: s.maxSize }),
    fc.integer({ min: 0, max: Math.floor(s.maxSize / 4096) }).map((p) => p * 4096),
  );
  const seed = fc.integer({ min: 0, max: 0xffff });
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('create' as const), path, mode: fc.constant(0o644) }) },
    { weight: 20, arbitrary: fc.record({ op: fc.constant('write' as const), path, offset, length, seed }) },
    { weight: 10, arbitrary: fc.record({ op: fc.constant('hwrite' as const), slot, offset, length, seed }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant('truncate' as const), path, size }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('open' as const), path, slot }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), slot }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('hread' as const), slot }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('unlink' as const), path }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('link' as const), from: path, to: path }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('fsync' as const), path }) },
    { weight: 8, arbitrary: fc.constant({ op: 'commit' as const }) },
  );
}
