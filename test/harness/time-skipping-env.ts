// Test harness (Node side). The time-skipping Temporal test server (installed by ./time-skipping-server.js) as a
// test environment that accepts the engine's search attributes.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
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
    const level = process.env.LOG_LEVEL === 'debug' ? 'DEBUG' : process.env.LOG_LEVEL === 'warn' ? 'WARN' : 'ERROR';
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
