// Test harness (Node side). The real workflow code bundled as workers load it (worker/bundle.ts), once for all
// test files: bundling takes seconds, so the bundle is kept in the temp dir under a hash of its sources.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WorkflowBundle } from '@temporalio/worker';
import { bundleWorkflows } from '../../worker/bundle';

const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

/** What the bundle is made of: every source under these directories (a superset of what workflows import), and the dependencies. */
const BUNDLE_INPUTS = {
  dirs: ['workflows', 'dsl', 'common', 'audit', 'activities'],
  files: ['package-lock.json', 'tsconfig.json'],
};

/** A hash of the bundle's inputs: a bundle built from the same inputs is the same bundle. */
function bundleKey(): string {
  const hash = crypto.createHash('sha256');
  const visit = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(file);
      else if (/\.[cm]?[jt]s$/.test(entry.name))
        hash
          .update(`${path.relative(PROJECT_ROOT, file)}\0`)
          .update(fs.readFileSync(file))
          .update('\0');
    }
  };
  for (const dir of BUNDLE_INPUTS.dirs) visit(path.join(PROJECT_ROOT, dir));
  for (const file of BUNDLE_INPUTS.files)
    hash.update(`${file}\0`).update(fs.readFileSync(path.join(PROJECT_ROOT, file)));
  return hash.digest('hex').slice(0, 32);
}

let bundle: Promise<WorkflowBundle> | undefined;

/**
 * The real workflow code (workflows/index.ts) with the project's failure converter. Bundling takes seconds, so
 * the bundle is kept in the temp dir under a hash of its inputs: the test files of a run (and later runs with
 * the same sources) share it; any change of a source makes a new one.
 */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= (async () => {
    const dir = path.join(os.tmpdir(), 'runbook-workflow-bundles');
    const file = path.join(dir, `${bundleKey()}.js`);
    if (fs.existsSync(file)) return { code: fs.readFileSync(file, 'utf8') };
    const { code } = await bundleWorkflows();
    fs.mkdirSync(dir, { recursive: true });
    // Written whole, then renamed: a test file bundling at the same time never reads half a bundle.
    const partial = `${file}.${process.pid}.partial`;
    fs.writeFileSync(partial, code);
    fs.renameSync(partial, file);
    // Bundles of sources that changed since are of no more use.
    for (const old of fs.readdirSync(dir)) {
      const p = path.join(dir, old);
      if (p !== file && Date.now() - fs.statSync(p).mtimeMs > 3_600_000) fs.rmSync(p, { force: true });
    }
    return { code };
  })();
  return bundle;
}
