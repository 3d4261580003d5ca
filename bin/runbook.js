#!/usr/bin/env node
// Entry point of the `runbook` command: runs the compiled CLI from dist/.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const main = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!fs.existsSync(main)) {
  process.stderr.write(
    'runbook: the CLI is not built yet (no dist/cli/main.js). Run `npm run build` in ' +
      path.join(__dirname, '..') +
      ' and try again.\n',
  );
  process.exit(2);
}
require(main);
