// Jest reporter: writes the run's counts to .ci/out/jest-summary.json, from which .ci/run prints
// "N passed, N failed". A suite that failed to run at all counts as one failure.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

class SummaryReporter {
  /** `append`: add to the summary an earlier run of the same `npm test` wrote (jest.alone.config.js). */
  constructor(_globalConfig, options = {}) {
    this.append = Boolean(options.append);
  }

  onRunComplete(_contexts, results) {
    const out = path.join(__dirname, '..', '..', '.ci', 'out');
    fs.mkdirSync(out, { recursive: true });
    const file = path.join(out, 'jest-summary.json');
    const before =
      this.append && fs.existsSync(file)
        ? JSON.parse(fs.readFileSync(file, 'utf8'))
        : { passed: 0, failed: 0, skipped: 0, suites: 0, success: true };
    const summary = {
      passed: before.passed + results.numPassedTests,
      failed: before.failed + results.numFailedTests + results.numRuntimeErrorTestSuites,
      skipped: before.skipped + results.numPendingTests + results.numTodoTests,
      suites: before.suites + results.numTotalTestSuites,
      success: before.success && results.success,
    };
    fs.writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
  }
}
module.exports = SummaryReporter;
