// Node side. The one place the engine's environment is read: the Temporal connection (Temporal's own conventions:
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_CONFIG_FILE / profile), the
// worker's settings (RUNBOOK_TASK_QUEUE, RUNBOOK_MAX_*, heap, RUNBOOK_WORKFLOW_BUNDLE), the engine configuration
// (RUNBOOK_DIR, RUNBOOK_INVENTORY[IES], RUNBOOK_ALLOW_EXEC, AUDIT_URL, RUNBOOK_DATA_DIR, RUNBOOK_NOTIFY_URL,
// RUNBOOK_ESCALATE_SLACK_URL, RUNBOOK_PAGERDUTY_URL, RUNBOOK_PAGERDUTY_ROUTING_KEY, RUNBOOK_UI_URL,
// RUNBOOK_SSH_KEY, RUNBOOK_KNOWN_HOSTS, RUNBOOK_SSH_AGENT, SSH_AUTH_SOCK, RUNBOOK_CODEC_KEYS[_FILE]), the metrics
// address (RUNBOOK_METRICS_ADDRESS) and LOG_LEVEL.
// Modules below worker/ and cli/ never read process.env: they get these values passed down. (Elsewhere only
// tool and CLI concerns: temporal-cli.ts finds the Temporal CLI, cli/ reads RUNBOOK_CODEC_TOKEN and RUNBOOK_DEBUG.)
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection, Client } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnection } from '@temporalio/worker';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_RECEIVER_PORT, inventoryFor, runbookDirFromEnv } from './defaults';

export { DEFAULT_METRICS_ADDRESS, DEFAULT_RECEIVER_PORT, inventoryFor, runbookDirFromEnv };
import { codecKeysFromEnv, dataConverterFromEnv } from '../common/codec';
import { UserError, messageOf } from '../common/errors';
import { DEFAULT_SSH_LOGIN } from '../dsl/inventory';
import { calendarsLocation } from '../dsl/calendars';
import type { EngineConfig } from '../activities/config';
import type { ReceiverConfig } from '../triggers/receiver';

export type { EngineConfig, SshConfig } from '../activities/config';

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
    throw new UserError(
      `The Temporal client configuration is invalid: ${messageOf(err)}. Check the TEMPORAL_* ` +
        'environment variables and TEMPORAL_CONFIG_FILE.',
      { cause: err },
    );
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
  return new UserError(
    `Cannot reach the Temporal server at ${target.address} (namespace ${target.namespace}): ` +
      `${connectReason(err)}. Check TEMPORAL_ADDRESS and that the server is running and reachable from here; for ` +
      'Temporal Cloud also set TEMPORAL_API_KEY (or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH). ' +
      'Unset TEMPORAL_ADDRESS to use the embedded dev server of `runbook dev`.',
    { cause: err },
  );
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
    sock.once('connect', () => {
      sock.destroy();
      resolve();
    });
    sock.once('timeout', () => {
      sock.destroy();
      reject(unreachable(target, new Error('ETIMEDOUT')));
    });
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
  return new Client({ connection, namespace: target.namespace, dataConverter: dataConverterFromEnv(process.env) });
}

/** A worker (native) connection. The SDK's native worker module loads here, not when a CLI command needs a client. */
export async function connectWorker(target: TemporalTarget): Promise<NativeConnection> {
  await probeTcp(target);
  const { NativeConnection } = await import('@temporalio/worker');
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
  /** The prebuilt workflow bundle to load (RUNBOOK_WORKFLOW_BUNDLE). @default dist/workflow-bundle.js when built */
  workflowBundle?: string;
}

function positiveInt(name: string, fallback: number): number {
  return positiveIntFrom(process.env, name, fallback);
}

function positiveIntFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
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
    workflowBundle: process.env.RUNBOOK_WORKFLOW_BUNDLE,
  };
}

/** The pino level of the worker's and the CLI's logs (LOG_LEVEL). */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.LOG_LEVEL ?? 'info';
}

/** Where `runbook dev` keeps its state (history, log, default audit file, codec token): RUNBOOK_DATA_DIR. */
export function dataDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env.RUNBOOK_DATA_DIR ?? '.runbook';
}

/** The audit store: AUDIT_URL, else the JSONL file in the data directory. */
export function auditUrlFromEnv(env: NodeJS.ProcessEnv = process.env, dataDir = dataDirFromEnv(env)): string {
  return env.AUDIT_URL ?? `file:${path.join(dataDir, 'audit.jsonl')}`;
}

function flag(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|on|yes)$/i.test(raw)) return true;
  if (/^(0|false|off|no)$/i.test(raw)) return false;
  throw new UserError(`${name} must be on or off (1/0, true/false), got "${raw}".`);
}

/**
 * The engine configuration from the environment. RUNBOOK_INVENTORIES lists more allowed inventories, separated
 * by `${path.delimiter}` or new lines, like PATH. `defaults.dataDir` is where the default audit file goes.
 */
export function engineConfigFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  defaults: { allowExec?: boolean; allowRunbookFiles?: boolean; dataDir?: string } = {},
): EngineConfig {
  const defaultInventory = inventoryFor(undefined, env);
  const more = (env.RUNBOOK_INVENTORIES ?? '')
    .split(new RegExp(`[${path.delimiter}\\n]`))
    .map((s) => s.trim())
    .filter(Boolean)
    .map((p) => path.resolve(p));
  const runbookDir = path.resolve(runbookDirFromEnv(env));
  return {
    runbookDir,
    calendars: calendarsLocation(runbookDir, env.RUNBOOK_CALENDARS || undefined),
    inventories: [...new Set([...(defaultInventory ? [defaultInventory] : []), ...more])],
    defaultInventory,
    allowExec: flag('RUNBOOK_ALLOW_EXEC', env.RUNBOOK_ALLOW_EXEC, defaults.allowExec ?? false),
    allowRunbookFiles: flag(
      'RUNBOOK_ALLOW_RUNBOOK_FILES',
      env.RUNBOOK_ALLOW_RUNBOOK_FILES,
      defaults.allowRunbookFiles ?? false,
    ),
    auditUrl: auditUrlFromEnv(env, defaults.dataDir),
    notifyUrl: env.RUNBOOK_NOTIFY_URL,
    escalation: {
      slackUrl: env.RUNBOOK_ESCALATE_SLACK_URL || undefined,
      pagerDutyUrl: env.RUNBOOK_PAGERDUTY_URL || undefined,
      pagerDutyRoutingKey: env.RUNBOOK_PAGERDUTY_ROUTING_KEY || undefined,
      uiUrl: env.RUNBOOK_UI_URL || undefined,
      namespace: env.TEMPORAL_NAMESPACE || undefined,
    },
    ssh: {
      identityFile: env.RUNBOOK_SSH_KEY ?? DEFAULT_SSH_LOGIN.identityFile,
      knownHosts: env.RUNBOOK_KNOWN_HOSTS ?? DEFAULT_SSH_LOGIN.knownHosts,
      shellAgent: env.RUNBOOK_SSH_AGENT !== 'off',
      agentSocket: env.SSH_AUTH_SOCK,
    },
    codecKeys: codecKeysFromEnv(env),
    secretsEnv: env,
    secretsDir: env.RUNBOOK_SECRETS_DIR ? path.resolve(env.RUNBOOK_SECRETS_DIR) : undefined,
  };
}

/**
 * What a worker's identity says it accepts: the CLI reads the identities of a task queue's pollers before it starts
 * a run that carries its runbook, so a refusal is said before anything starts (the prepare activity still decides).
 */
export const RUNBOOK_FILES_MARK = '+runbook-files';

/** A worker's identity as the server shows it (pollers, history): `PID@HOST`, marked when it accepts runbook files. */
export function workerIdentity(config: Pick<EngineConfig, 'allowRunbookFiles'>): string {
  return `${process.pid}@${os.hostname()}${config.allowRunbookFiles ? ` ${RUNBOOK_FILES_MARK}` : ''}`;
}

/** Where the worker serves its Prometheus metrics (`/metrics`), and who chose that. */
export interface MetricsSetting {
  /** IP:PORT to bind (IPv6 in brackets); undefined: metrics off. */
  address?: string;
  /**
   * The setting that named the address: `--metrics`, `RUNBOOK_METRICS_ADDRESS`, or `default`. An address the
   * operator chose must be served (in use: an error); the default one is given up with a note when it is taken,
   * so several workers (and test runs) on one machine still start.
   */
  source: '--metrics' | 'RUNBOOK_METRICS_ADDRESS' | 'default';
}

/**
 * Parses a metrics address: `off`, or IP:PORT (`127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`; `localhost` is
 * 127.0.0.1). The exporter binds a socket address, so host names other than localhost are refused.
 */
export function parseMetricsAddress(raw: string, source: MetricsSetting['source']): MetricsSetting {
  const value = raw.trim();
  if (/^(off|false|0|no)$/i.test(value)) return { source };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const host = m && (m[1] ?? (m[2] === 'localhost' ? '127.0.0.1' : m[2]));
  const port = m ? Number(m[3]) : NaN;
  const ip = host ? net.isIP(host) : 0;
  const problem = !m
    ? 'that is not HOST:PORT'
    : !ip
      ? 'the host must be an IP address or localhost (the exporter binds a socket address, it resolves no names)'
      : port < 1 || port > 65535
        ? 'the port must be 1 to 65535'
        : undefined;
  if (problem) {
    throw new UserError(
      `${source} must be IP:PORT or off, got "${raw}": ${problem}. For example 127.0.0.1:9464 (this machine ` +
        `only), 0.0.0.0:9464 (to be scraped from other machines) or [::1]:9464. Fix ${source}, or leave it out ` +
        `for the default ${DEFAULT_METRICS_ADDRESS}.`,
    );
  }
  return { address: ip === 6 ? `[${host}]:${port}` : `${host}:${port}`, source };
}

/** The metrics address: the `--metrics` flag, else RUNBOOK_METRICS_ADDRESS, else the default. */
export function metricsSettingFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): MetricsSetting {
  if (flag !== undefined) return parseMetricsAddress(flag, '--metrics');
  const raw = env.RUNBOOK_METRICS_ADDRESS;
  if (raw !== undefined && raw !== '') return parseMetricsAddress(raw, 'RUNBOOK_METRICS_ADDRESS');
  return { address: DEFAULT_METRICS_ADDRESS, source: 'default' };
}

/**
 * The alert receiver's settings: RUNBOOK_RECEIVER_TOKEN (bearer tokens, comma-separated) or
 * RUNBOOK_RECEIVER_TOKEN_FILE (one per line), RUNBOOK_RECEIVER_HMAC_SECRET, RUNBOOK_RECEIVER_HMAC_HEADER,
 * RUNBOOK_RECEIVER_HMAC_TIMESTAMP_HEADER, RUNBOOK_RECEIVER_MAX_BODY (bytes), RUNBOOK_RECEIVER_MAPPINGS (a file of
 * generic mappings, added to the shipped ones).
 */
export function receiverConfigFromEnv(
  env: NodeJS.ProcessEnv,
  listen: { host: string; port: number },
): Omit<ReceiverConfig, 'mappings'> & { mappingsFile?: string } {
  const tokens = (env.RUNBOOK_RECEIVER_TOKEN ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (env.RUNBOOK_RECEIVER_TOKEN_FILE) {
    let text: string;
    try {
      text = fs.readFileSync(env.RUNBOOK_RECEIVER_TOKEN_FILE, 'utf8');
    } catch (err) {
      throw new UserError(`RUNBOOK_RECEIVER_TOKEN_FILE: cannot read it: ${messageOf(err)}`, { cause: err });
    }
    tokens.push(
      ...text
        .split('\n')
        .map((t) => t.trim())
        .filter((t) => t && !t.startsWith('#')),
    );
  }
  for (const t of tokens)
    if (t.length < 16 || /\s/.test(t))
      throw new UserError('A receiver bearer token must be at least 16 characters without spaces.');
  const maxBody = positiveIntFrom(env, 'RUNBOOK_RECEIVER_MAX_BODY', 1024 * 1024);
  return {
    ...listen,
    tokens,
    hmacSecret: env.RUNBOOK_RECEIVER_HMAC_SECRET || undefined,
    hmacHeader: env.RUNBOOK_RECEIVER_HMAC_HEADER || 'X-Grafana-Alerting-Signature',
    hmacTimestampHeader: env.RUNBOOK_RECEIVER_HMAC_TIMESTAMP_HEADER || undefined,
    maxBodyBytes: maxBody,
    taskQueue: env.RUNBOOK_TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
    mappingsFile: env.RUNBOOK_RECEIVER_MAPPINGS || undefined,
  };
}
