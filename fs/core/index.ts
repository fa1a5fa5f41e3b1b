export * from './api.js';
export * from './store.js';
export * from './errors.js';
export { Filesystem, ROOT_INO, type FilesystemOptions } from './filesystem.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export type { CommitStats } from './committer.js';
export { CommitFailed, describeUncommitted, type CommitFailureKind, type Uncommitted } from './commit-failure.js';
export * as posix from './constants.js';
