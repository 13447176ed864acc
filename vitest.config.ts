import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    setupFiles: ['test/harness/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // KPI_TEST_REPORT: also write a JSON report there (.ci/run prints each
    // leg's failures from it at the end of the run, where CI logs are read)
    reporters: process.env.KPI_TEST_REPORT ? ['default', ['json', { outputFile: process.env.KPI_TEST_REPORT }]] : ['default'],
  },
});
