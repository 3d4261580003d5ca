// Jest, the tests `npm test` runs one at a time after the main suite, on a harness of their own (the same global
// setup): the runbook library's end-to-end tests run nginx, HAProxy, two PostgreSQL servers and HTTP traffic,
// which starved the main suite's concurrent time-skipping tests of CPU on 2 cores. Their counts are added to the
// main suite's summary.
const main = require('./jest.config');

/** @type {import('jest').Config} */
module.exports = {
  ...main,
  testMatch: ['**/test/integration/library.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  reporters: ['default', ['<rootDir>/test/harness/summary-reporter.js', { append: true }]],
  maxWorkers: 1,
};
