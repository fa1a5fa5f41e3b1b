import { describe, expect, it } from 'vitest';
import { errnoOf, toErrno } from '../../fs/core/errors.js';
import { DiskFull } from '../../src/log/index.js';
import { NoReadKey } from '../../src/chain/index.js';
import { NoWriteAuthority, ReadOnlyView } from '../../src/view/index.js';

// The one place lower layers' typed errors become errnos: each mapped class must really exist.
describe('toErrno maps the lower layers\' typed errors', () => {
  it('no key / no authority -> EACCES, read-only view -> EROFS, disk full -> ENOSPC, unknown -> EIO', () => {
    expect(toErrno(new NoReadKey('00', 'test'))).toBe(errnoOf('EACCES'));
    expect(toErrno(new NoWriteAuthority(null, 'test'))).toBe(errnoOf('EACCES'));
    expect(toErrno(new ReadOnlyView('test'))).toBe(errnoOf('EROFS'));
    expect(toErrno(new DiskFull('test'))).toBe(errnoOf('ENOSPC'));
    expect(toErrno(new Error('anything else'))).toBe(errnoOf('EIO'));
  });
});
