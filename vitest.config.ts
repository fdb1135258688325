import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts a private Docker daemon for the end-to-end tests where one can run (see the file).
    globalSetup: ['test/support/docker-global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
