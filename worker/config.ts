// Node side. Connection and worker settings from the environment, following Temporal's own conventions
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_CONFIG_FILE / profile).
import net from 'node:net';
import path from 'node:path';
import { Connection, Client } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { NativeConnection } from '@temporalio/worker';
import { dataConverterFromEnv } from '../common/codec';
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

/** A short reason instead of the transport library's debug dump. */
function connectReason(err: unknown): string {
  const text = messageOf(err);
  if (/ConnectionRefused|Connection refused|ECONNREFUSED/i.test(text)) return 'connection refused';
  if (/deadline|timed? ?out|ETIMEDOUT/i.test(text)) return 'no answer before the deadline';
  if (/dns|resolve|ENOTFOUND|EAI_AGAIN/i.test(text)) return 'the host name does not resolve';
  if (/NOT_FOUND|namespace.*not found/i.test(text)) return 'the namespace does not exist there';
  if (/UNAUTHENTICATED|PERMISSION_DENIED|unauthori[sz]ed/i.test(text)) return 'the server refused our credentials';
  return text;
}

function unreachable(target: TemporalTarget, err: unknown): UserError {
  return new UserError(`Cannot reach the Temporal server at ${target.address} (namespace ${target.namespace}): ` +
    `${connectReason(err)}. Check TEMPORAL_ADDRESS and that the server is running and reachable from here; for ` +
    'Temporal Cloud also set TEMPORAL_API_KEY (or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH). ' +
    'Unset TEMPORAL_ADDRESS to use the embedded dev server of `runbook dev`.', { cause: err });
}

/** Opens and closes a TCP connection to the frontend, so a refused or unresolvable address fails in milliseconds. */
function probeTcp(target: TemporalTarget, timeoutMs = 5000): Promise<void> {
  const idx = target.address.lastIndexOf(':');
  const host = target.address.slice(0, idx).replace(/^\[|\]$/g, '');
  const port = Number(target.address.slice(idx + 1));
  return new Promise((resolve, reject) => {
    if (idx < 0 || !Number.isInteger(port)) {
      reject(new UserError(`TEMPORAL_ADDRESS must be HOST:PORT, got "${target.address}".`));
      return;
    }
    const sock = net.connect({ host, port, timeout: timeoutMs });
    sock.once('connect', () => { sock.destroy(); resolve(); });
    sock.once('timeout', () => { sock.destroy(); reject(unreachable(target, new Error('ETIMEDOUT'))); });
    sock.once('error', (err) => reject(unreachable(target, err)));
  });
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
  await probeTcp(target);
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
  return new Client({ connection, namespace: target.namespace, dataConverter: dataConverterFromEnv() });
}

/** A worker (native) connection. */
export async function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  await probeTcp(target);
  try {
    return await NativeConnection.connect(target.connectionOptions);
  } catch (err) {
    throw unreachable(target, err);
  }
}

export interface WorkerSettings {
  taskQueue: string;
  /** Concurrent activity executions (regular and local). @default 100 */
  maxConcurrentActivities: number;
  /** Concurrent workflow task executions. @default 20 */
  maxConcurrentWorkflowTasks: number;
  /** Workflows kept in the worker's cache (memory against replay work). @default 250 */
  maxCachedWorkflows: number;
  /** V8 old-space limit of the workflow thread, in MB. @default 128 */
  workflowHeapMb?: number;
  /** How far V8 lets a heap grow past what survived the last full GC, in percent (memory against GC work). @default 25 */
  heapGrowthPercent?: number;
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
    maxConcurrentActivities: positiveInt('RUNBOOK_MAX_ACTIVITIES', 100),
    maxConcurrentWorkflowTasks: positiveInt('RUNBOOK_MAX_WORKFLOW_TASKS', 20),
    maxCachedWorkflows: positiveInt('RUNBOOK_MAX_CACHED_WORKFLOWS', 250),
    workflowHeapMb: positiveInt('RUNBOOK_WORKFLOW_HEAP_MB', 128),
    heapGrowthPercent: positiveInt('RUNBOOK_HEAP_GROWTH_PERCENT', 25),
  };
}

/**
 * What the engine trusts, from the worker's own environment (never from workflow input): the runbook directory,
 * the inventories a run may name (an allow-list), and whether ad hoc commands (`runCommand`) are served.
 */
export interface EngineConfig {
  /** Absolute path of the runbook directory (RUNBOOK_DIR). @default ./runbooks */
  runbookDir: string;
  /** Inventories runs may name, absolute: RUNBOOK_INVENTORY first (the default), then RUNBOOK_INVENTORIES. */
  inventories: string[];
  /** The inventory of a run that names none (RUNBOOK_INVENTORY). */
  defaultInventory?: string;
  /** Serve `runCommand` (`runbook exec`): any command on any inventory host. @default false (true for `runbook dev`) */
  allowExec: boolean;
}

function flag(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|on|yes)$/i.test(raw)) return true;
  if (/^(0|false|off|no)$/i.test(raw)) return false;
  throw new UserError(`${name} must be on or off (1/0, true/false), got "${raw}".`);
}

/**
 * The engine configuration from the environment. RUNBOOK_INVENTORIES lists more allowed inventories, separated
 * by `${path.delimiter}` or new lines, like PATH.
 */
export function engineConfigFromEnv(env: NodeJS.ProcessEnv = process.env, defaults: { allowExec?: boolean } = {}): EngineConfig {
  const defaultInventory = env.RUNBOOK_INVENTORY ? path.resolve(env.RUNBOOK_INVENTORY) : undefined;
  const more = (env.RUNBOOK_INVENTORIES ?? '').split(new RegExp(`[${path.delimiter}\\n]`)).map((s) => s.trim()).filter(Boolean).map((p) => path.resolve(p));
  return {
    runbookDir: path.resolve(env.RUNBOOK_DIR ?? 'runbooks'),
    inventories: [...new Set([...(defaultInventory ? [defaultInventory] : []), ...more])],
    defaultInventory,
    allowExec: flag('RUNBOOK_ALLOW_EXEC', env.RUNBOOK_ALLOW_EXEC, defaults.allowExec ?? false),
  };
}
