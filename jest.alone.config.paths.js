// The test files `npm test` runs alone, after the main suite (jest.alone.config.js), and the main suite skips.
module.exports = ['<rootDir>/test/integration/readme-quickstart\\.test\\.ts$'];
