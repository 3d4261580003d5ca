// Jest reporter: writes the run's counts to .ci/out/jest-summary.json, from which .ci/run prints
// "N passed, N failed". A suite that failed to run at all counts as one failure.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

class SummaryReporter {
  onRunComplete(_contexts, results) {
    const out = path.join(__dirname, '..', '..', '.ci', 'out');
    fs.mkdirSync(out, { recursive: true });
    const summary = {
      passed: results.numPassedTests,
      failed: results.numFailedTests + results.numRuntimeErrorTestSuites,
      skipped: results.numPendingTests + results.numTodoTests,
      suites: results.numTotalTestSuites,
      success: results.success,
    };
    fs.writeFileSync(path.join(out, 'jest-summary.json'), JSON.stringify(summary, null, 2) + '\n');
  }
}
module.exports = SummaryReporter;
