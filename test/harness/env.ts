// Test harness (Node side). What a test needs from the shared server and fleet: a Temporal test environment on
// the run's dev server, a unique task queue per test, a worker running the engine, and fleet hosts.
import { hostLockManagerId } from '../../common/failure-types';
import crypto from 'node:crypto';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { workflowBundle } from './bundle';
import type pino from 'pino';
import { createLogger } from '../../common/logger';
import { DEFAULT_SSH_LOGIN, loadInventory, sshTargetFor, type Inventory } from '../../dsl/inventory';
import { SshPool } from '../../activities/ssh/pool';
import type { SshTarget } from '../../dsl/selector';
import { exec } from '../../activities/ssh/exec';
import { createEngineWorker, type EngineWorker } from '../../worker/worker';
import type { AuditStore } from '../../audit/store';
import { engineConfigFromEnv, type EngineConfig } from '../../worker/config';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests through jest (global-setup starts the harness)`);
  return value;
}

export const temporalAddress = (): string => required('RUNBOOK_TEST_TEMPORAL_ADDRESS');
export const fleetDir = (): string => required('RUNBOOK_TEST_FLEET_DIR');
export const testRoot = (): string => required('RUNBOOK_TEST_ROOT');
/** The harness's PostgreSQL: a database for tests, and the superuser's maintenance database. */
export const pgUrl = (): string => required('RUNBOOK_TEST_PG_URL');
export const pgAdminUrl = (): string => required('RUNBOOK_TEST_PG_ADMIN_URL');

let runtimeInstalled = false;

/** A Temporal test environment on the run's shared dev server (SDK logs at WARN unless LOG_LEVEL says more). */
export function connectTestEnv(): Promise<TestWorkflowEnvironment> {
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    Runtime.install({
      logger: new DefaultLogger(process.env.LOG_LEVEL === 'debug' ? 'DEBUG' : 'WARN'),
      shutdownSignals: [],
    });
  }
  return TestWorkflowEnvironment.createFromExistingServer({ address: temporalAddress(), namespace: 'default' });
}

/** A task queue no other test uses. */
export function uniqueTaskQueue(label: string): string {
  return `test-${label}-${crypto.randomUUID().slice(0, 8)}`;
}

export function fleetInventory(): Inventory {
  return loadInventory(path.join(fleetDir(), 'inventory.yaml'));
}

export function fleetHost(index = 1): SshTarget {
  return sshTargetFor(fleetInventory(), `host-${index}`, DEFAULT_SSH_LOGIN);
}

export { workflowBundle };

export function testLogger(): pino.Logger {
  return createLogger('test', process.env.LOG_LEVEL ?? 'error');
}

/**
 * What a test file that runs the fixture runbooks on the fleet shares: the fixtures as RUNBOOK_DIR, a test
 * environment connected before its tests and torn down after, the fleet's inventory, and a way to look at a host.
 * Call once at the top of the file; `env` is set once the tests run.
 */
export function useFleetRuns(): {
  readonly env: TestWorkflowEnvironment;
  inventory(): string;
  remote(host: number, cmd: string): Promise<string>;
} {
  process.env.RUNBOOK_DIR = path.join(__dirname, '..', 'fixtures', 'runbooks');
  let env: TestWorkflowEnvironment | undefined;
  const pool = new SshPool();
  beforeAll(async () => {
    env = await connectTestEnv();
  });
  afterAll(async () => {
    await pool.closeAll();
    await env?.teardown();
  });
  return {
    get env() {
      return env!;
    },
    inventory: () => path.join(fleetDir(), 'inventory.yaml'),
    remote: async (host, cmd) => (await pool.use(fleetHost(host), (c) => exec(c, cmd))).stdout,
  };
}

/** Starts the engine's worker on `taskQueue` and runs `fn` while it polls. */
export async function withEngineWorker<T>(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  fn: (engine: EngineWorker) => Promise<T>,
  opts: { audit?: AuditStore; config?: Partial<EngineConfig>; logger?: pino.Logger } = {},
): Promise<T> {
  const engine = await createEngineWorker(
    env.nativeConnection,
    env.namespace ?? 'default',
    { taskQueue, maxConcurrentActivities: 50, maxConcurrentWorkflowTasks: 50, maxCachedWorkflows: 50 },
    opts.logger ?? testLogger(),
    { workflowBundle: await workflowBundle(), audit: opts.audit, config: { ...engineConfigFromEnv(), ...opts.config } },
  );
  const running = engine.run();
  try {
    return await fn(engine);
  } finally {
    // The queue's lock manager outlives its runs, and its watch activities would still be polling the server when
    // the test closes its connection (a retry then throws "Channel has been shut down" from a timer). A manager
    // that is gone is what a later run of this queue recovers from anyway.
    await env.client.workflow
      .getHandle(hostLockManagerId(taskQueue))
      .terminate('test: the worker of this task queue stops')
      .catch(() => undefined);
    engine.worker.shutdown();
    await running;
  }
}
