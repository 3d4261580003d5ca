// Jest, fast suite (`npm run test:fast`): the unit tests and the workflow tests (test/workflow: the interpreter on
// Temporal's time-skipping test server with stubbed activities). No root, no sshd, no dev server, no global setup;
// the test server is installed by test/harness/time-skipping-server.js (Java 17 + Maven).
const main = require('./jest.config');

/**
 * Unit tests that stay in the main suite: hardening.test.ts runs `fleet up/down` and `useradd` as root. (None of
 * test/unit uses the global setup's dev server, fleet or PostgreSQL; fixtures and language run the built CLI, so
 * `npm run test:fast` compiles first.)
 */
const MAIN_SUITE_ONLY = ['hardening.test.ts'];

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: main.testEnvironment,
  roots: ['<rootDir>/test/unit', '<rootDir>/test/workflow'],
  testMatch: main.testMatch,
  testPathIgnorePatterns: ['/node_modules/', ...MAIN_SUITE_ONLY.map((f) => `/test/unit/${f.replace(/\./g, '\\.')}$`)],
  transform: main.transform,
  transformIgnorePatterns: main.transformIgnorePatterns,
  testTimeout: 60_000,
  maxWorkers: 2,
};
