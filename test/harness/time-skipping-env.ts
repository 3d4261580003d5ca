// Test harness (Node side). The time-skipping Temporal test server (installed by ./time-skipping-server.js) as a
// test environment that accepts the engine's search attributes, and the real workflow code bundled with the
// project's failure converter, cached across test files by a hash of its sources.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundle } from '@temporalio/worker';
import { SearchAttributeType, type DataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { FAILURE_CONVERTER_PATH } from '../../common/codec';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { isInstalled, testServerExecutable } from './time-skipping-server';

/** What the engine's worker and clients use (no payload codec: history is not encrypted in these tests). */
export const dataConverter: DataConverter = { failureConverterPath: FAILURE_CONVERTER_PATH };

let runtimeInstalled = false;

const IndexedValueType = temporal.api.enums.v1.IndexedValueType;
const indexedType: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  [SearchAttributeType.KEYWORD]: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  [SearchAttributeType.KEYWORD_LIST]: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
  [SearchAttributeType.TEXT]: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
};

/**
 * A time-skipping test environment with the engine's search attributes registered (the test server refuses
 * an upsert of an attribute it does not know). Throws, saying how to install it, when the test server is missing.
 */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  if (!isInstalled()) {
    throw new Error(
      `The time-skipping Temporal test server is not installed (looked for ${testServerExecutable()}). ` +
        'Install it with `node test/harness/time-skipping-server.js install` (needs Java 17+ and Maven); `npm run test:fast` does that first.',
    );
  }
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    // Quiet unless asked: the SDK core warns that the test server lacks capabilities these tests do not use.
    const level = process.env.LOG_LEVEL === 'debug' ? 'DEBUG' : 'ERROR';
    Runtime.install({
      logger: new DefaultLogger(level),
      telemetryOptions: { logging: { filter: { core: level, other: level } } },
      shutdownSignals: [],
    });
  }
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: testServerExecutable() } },
    client: { dataConverter },
  });
  const searchAttributes: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const { key } of SEARCH_ATTRIBUTES) {
    const type = indexedType[key.type];
    if (type === undefined) throw new Error(`search attribute ${key.name}: no index type for ${key.type}`);
    searchAttributes[key.name] = type;
  }
  await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes });
  return env;
}

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
    const noop = () => undefined;
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../workflows'),
      failureConverterPath: FAILURE_CONVERTER_PATH,
      logger: { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: noop },
    });
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
