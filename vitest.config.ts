import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts a private Docker daemon for the end-to-end tests where one can run (see the file).
    globalSetup: ['test/support/docker-global-setup.ts'],
    // One file at a time: the end-to-end files share one Docker daemon and clean up its test containers
    // after each test. (Two CPUs run one file at a time anyway; this keeps it so on larger machines.)
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
