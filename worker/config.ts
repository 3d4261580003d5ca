// Node side. Connection and worker settings from the environment, following Temporal's own conventions
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_CONFIG_FILE / profile).
import { Connection, Client } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import { UserError, messageOf } from '../common/errors';

/** Task queue the engine's worker polls unless RUNBOOK_TASK_QUEUE says otherwise. */
export const DEFAULT_TASK_QUEUE = 'runbooks';

export interface TemporalTarget {
  /** host:port of the frontend. */
  address: string;
  namespace: string;
  /** Options for both Connection.connect and NativeConnection.connect (TLS, API key, metadata). */
  connectionOptions: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

/**
 * Reads TEMPORAL_* variables (and the optional TOML profile). `fallbackAddress` is used when the environment
 * names no address, e.g. the embedded dev server of `runbook dev`.
 */
export function temporalTargetFromEnv(fallbackAddress = '127.0.0.1:7233'): TemporalTarget {
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig({ profile: process.env.TEMPORAL_PROFILE });
  } catch (err) {
    throw new UserError(`The Temporal client configuration is invalid: ${messageOf(err)}. Check the TEMPORAL_* ` +
      'environment variables and TEMPORAL_CONFIG_FILE.', { cause: err });
  }
  const address = process.env.TEMPORAL_ADDRESS ?? loaded.connectionOptions.address ?? fallbackAddress;
  return {
    address,
    namespace: process.env.TEMPORAL_NAMESPACE ?? loaded.namespace ?? 'default',
    connectionOptions: { ...loaded.connectionOptions, address },
  };
}

function unreachable(target: TemporalTarget, err: unknown): UserError {
  return new UserError(`Cannot reach the Temporal server at ${target.address} (namespace ${target.namespace}): ` +
    `${messageOf(err)}. Check TEMPORAL_ADDRESS and that the server is running and reachable from here; for ` +
    'Temporal Cloud also set TEMPORAL_API_KEY (or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH). ' +
    'Unset TEMPORAL_ADDRESS to use the embedded dev server of `runbook dev`.', { cause: err });
}

/** Verifies the namespace answers, so a wrong address fails now with a clear message, not at first use. */
async function probe(connection: Connection, target: TemporalTarget): Promise<void> {
  try {
    await connection.workflowService.describeNamespace({ namespace: target.namespace });
  } catch (err) {
    throw unreachable(target, err);
  }
}

/** A client connection, checked to answer for the namespace. */
export async function connectClient(target: TemporalTarget): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...target.connectionOptions, connectTimeout: 10_000 });
  } catch (err) {
    throw unreachable(target, err);
  }
  await probe(connection, target).catch(async (err: unknown) => {
    await connection.close();
    throw err;
  });
  return new Client({ connection, namespace: target.namespace });
}

/** A worker (native) connection. */
export async function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(target.connectionOptions);
  } catch (err) {
    throw unreachable(target, err);
  }
}

export interface WorkerSettings {
  taskQueue: string;
  /** Concurrent activity executions. @default 200 */
  maxConcurrentActivities: number;
  /** Concurrent workflow task executions. @default 100 */
  maxConcurrentWorkflowTasks: number;
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`${name} must be a positive integer, got "${raw}".`);
  return n;
}

export function workerSettingsFromEnv(): WorkerSettings {
  return {
    taskQueue: process.env.RUNBOOK_TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
    maxConcurrentActivities: positiveInt('RUNBOOK_MAX_ACTIVITIES', 200),
    maxConcurrentWorkflowTasks: positiveInt('RUNBOOK_MAX_WORKFLOW_TASKS', 100),
  };
}
