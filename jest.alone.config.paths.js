// The test files the main suite skips: `npm test` runs them after it, one at a time. jest.serial.config.js (on the
// same global setup) runs the runbook library's; jest.alone.config.js (no global setup) the README quick start.
module.exports = [
  '<rootDir>/test/integration/readme-quickstart\\.test\\.ts$',
  '<rootDir>/test/integration/library\\.test\\.ts$',
];
