// Jest, the tests `npm test` runs alone after the main suite: the README quick start on a fresh clone needs the
// README's default ports (7233, 8233, 9280), which a concurrent test stack may hold, and builds the clone twice,
// which starved concurrent tests of CPU on 2 cores. No global setup (it starts its own stack); its counts are added
// to the main suite's summary.
const main = require('./jest.config');

/** @type {import('jest').Config} */
module.exports = {
  ...main,
  testMatch: ['**/test/integration/readme-quickstart.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: undefined,
  globalTeardown: undefined,
  reporters: ['default', ['<rootDir>/test/harness/summary-reporter.js', { append: true }]],
  maxWorkers: 1,
};
