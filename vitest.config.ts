import { defineConfig } from 'vitest/config';

// Forks, not threads: fuse-native segfaults when loaded in a worker thread, and the
// e2e suites spawn real daemons whose lifetime must follow a process, not a thread.
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
    setupFiles: ['test/setup-env.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
