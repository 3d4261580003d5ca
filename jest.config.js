// Jest: TypeScript through SWC (type checking is `npm run typecheck`), one real Temporal dev server and one
// real sshd fleet per run (test/harness/global-setup.ts), results summarised for CI by test/harness/summary-reporter.js.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Run alone after the rest (jest.alone.config.js): it builds a fresh clone twice and uses the README's fixed ports.
  testPathIgnorePatterns: ['/node_modules/', ...require('./jest.alone.config.paths')],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } },
    ],
    // ESM-only dependencies (the CEL evaluator) become CommonJS for jest; Node itself loads them with require(esm).
    '^.+\\.js$': [
      '@swc/jest',
      { jsc: { target: 'es2022', parser: { syntax: 'ecmascript' } }, module: { type: 'commonjs' } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!@marcbachmann/cel-js/)'],
  globalSetup: '<rootDir>/test/harness/global-setup.ts',
  globalTeardown: '<rootDir>/test/harness/global-teardown.ts',
  reporters: ['default', '<rootDir>/test/harness/summary-reporter.js'],
  testTimeout: 60_000,
  maxWorkers: 2,
};
