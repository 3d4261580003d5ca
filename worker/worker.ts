// Node side. Builds the engine's worker: activities with their real dependencies, the workflow code, and the
// Temporal runtime: its logs routed into pino, its Prometheus endpoint (worker/metrics.ts).
import {
  Runtime,
  Worker,
  type NativeConnection,
  type WorkflowBundleOption,
  type LogLevel,
  type LogMetadata,
} from '@temporalio/worker';
import path from 'node:path';
import fs from 'node:fs';
import v8 from 'node:v8';
import { createActivities } from '../activities';
import { SshPool } from '../activities/ssh/pool';
import { Secrets } from '../activities/secrets/providers';
import type { Logger } from '../common/logger';
import { PREBUILT_BUNDLE } from './bundle';
import type { MetricsSetting } from './config';
import { primeEngineMetrics, prometheusExporter } from './metrics';
import { UserError, messageOf } from '../common/errors';
import { engineConfigFromEnv, workerIdentity, type EngineConfig, type WorkerSettings } from './config';
import { Client } from '@temporalio/client';
import { openAuditStore, type AuditStore } from '../audit/store';
import { dataConverterFor } from '../common/codec';

/** What became of the metrics endpoint, for the banner. */
export interface MetricsState {
  /** The scrape URL, when metrics are served. */
  url?: string;
  /** Why not, when they are not. */
  off?: string;
}

let installed: MetricsState | undefined;

/**
 * Installs the process's Temporal runtime: the SDK's own logs (core and worker) into pino, and the Prometheus
 * endpoint `metrics` names (SDK and engine metrics, see worker/metrics.ts). Call once, before the first
 * connection; later calls return the first call's state (the runtime is process-wide). An address the operator
 * chose that cannot be bound is a UserError; the default one, when taken, leaves metrics off with a note, so that
 * several workers on one machine still start.
 */
export function installRuntime(logger: Logger, metrics?: MetricsSetting): MetricsState {
  if (installed) return installed;
  const sdk = logger.child({ component: 'temporal' });
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  };
  const install = (address: string | undefined) =>
    Runtime.install({
      logger: {
        log: (level: LogLevel, message: string, meta?: LogMetadata) => sdk[levels[level]](meta ?? {}, message),
        trace: (m: string, meta?: LogMetadata) => sdk.trace(meta ?? {}, m),
        debug: (m: string, meta?: LogMetadata) => sdk.debug(meta ?? {}, m),
        info: (m: string, meta?: LogMetadata) => sdk.info(meta ?? {}, m),
        warn: (m: string, meta?: LogMetadata) => sdk.warn(meta ?? {}, m),
        error: (m: string, meta?: LogMetadata) => sdk.error(meta ?? {}, m),
      },
      ...(address ? { telemetryOptions: { metrics: prometheusExporter(address) } } : {}),
      // Shutdown is ours: runWorker's SIGINT/SIGTERM handlers (run.ts) stop the worker, then the CLI the dev server.
      shutdownSignals: [],
    });
  const address = metrics?.address;
  if (!address) {
    install(undefined);
    installed = { off: metrics ? `off (${metrics.source})` : 'off' };
    return installed;
  }
  try {
    // The exporter binds its socket here, so a taken address fails now (and leaves no runtime installed).
    primeEngineMetrics(install(address).metricMeter);
    installed = { url: `http://${address}/metrics` };
  } catch (err) {
    const inUse = /address already in use|os error 98|EADDRINUSE/i.test(messageOf(err));
    if (metrics.source !== 'default' || !inUse) {
      throw new UserError(
        `Cannot serve Prometheus metrics on ${address} (${metrics.source}): ` +
          `${inUse ? 'the address is already in use, probably by another runbook worker' : messageOf(err)}. ` +
          'Choose another address with --metrics or RUNBOOK_METRICS_ADDRESS, or set it to off.',
        { cause: err },
      );
    }
    install(undefined);
    installed = {
      off: `off: ${address} is in use (another runbook worker?); choose another address with --metrics or RUNBOOK_METRICS_ADDRESS`,
    };
  }
  return installed;
}

/**
 * The workflow code: the bundle the settings name (RUNBOOK_WORKFLOW_BUNDLE), else the one `npm run build` wrote
 * next to the compiled code, else (running from sources, as in tests) the workflows/ sources, bundled at start.
 */
function workflowSource(
  configured: string | undefined,
): { workflowBundle: WorkflowBundleOption } | { workflowsPath: string } {
  const bundle =
    configured ?? (__filename.endsWith('.js') && fs.existsSync(PREBUILT_BUNDLE) ? PREBUILT_BUNDLE : undefined);
  if (bundle) return { workflowBundle: { codePath: path.resolve(bundle) } };
  const dir = path.join(__dirname, '..', 'workflows');
  const file = ['index.ts', 'index.js'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  return { workflowsPath: file ?? dir };
}

export interface EngineWorker {
  worker: Worker;
  /** What this worker trusts (runbook directory, allowed inventories, ad hoc commands). */
  config: EngineConfig;
  /** Where change records go (config.auditUrl). */
  audit: AuditStore;
  /** Runs until shutdown, then closes SSH connections. */
  run(): Promise<void>;
}

export async function createEngineWorker(
  connection: NativeConnection,
  namespace: string,
  settings: WorkerSettings,
  logger: Logger,
  overrides: { workflowBundle?: WorkflowBundleOption; audit?: AuditStore; config?: EngineConfig } = {},
): Promise<EngineWorker> {
  const config = overrides.config ?? engineConfigFromEnv();
  const secrets = new Secrets({ env: config.secretsEnv, baseDir: config.secretsDir });
  const ssh = new SshPool({ secrets, shellAgent: config.ssh.shellAgent, agentSocket: config.ssh.agentSocket });
  const audit = overrides.audit ?? (await openAuditStore(config.auditUrl));
  const dataConverter = dataConverterFor(config.codecKeys);
  // Both heaps, the main thread's included: V8 otherwise lets a heap grow to up to 4x what survived the last
  // full GC when the machine has memory to spare, which on a busy worker is mostly garbage. The growth factor
  // is read at each GC, so setting it now takes effect.
  if (settings.heapGrowthPercent) v8.setFlagsFromString(`--heap-growing-percent=${settings.heapGrowthPercent}`);
  // The workflow thread's V8 heap: capped, so it collects instead of growing lazily towards V8's default
  // (a quarter of RAM), with a young generation in proportion (V8's default is 16 MB per semi-space whatever
  // the cap). Size flags set now apply to isolates created after, i.e. the workflow thread only.
  if (settings.workflowHeapMb) {
    v8.setFlagsFromString(`--max-old-space-size=${settings.workflowHeapMb}`);
    v8.setFlagsFromString(`--max-semi-space-size=${Math.max(1, Math.round(settings.workflowHeapMb / 32))}`);
  }
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue: settings.taskQueue,
    identity: workerIdentity(config),
    activities: createActivities({
      ssh,
      secrets,
      logger,
      audit,
      config,
      client: new Client({ connection, namespace, dataConverter }),
    }),
    dataConverter,
    ...(overrides.workflowBundle
      ? { workflowBundle: overrides.workflowBundle }
      : workflowSource(settings.workflowBundle)),
    maxConcurrentActivityTaskExecutions: settings.maxConcurrentActivities,
    maxConcurrentWorkflowTaskExecutions: settings.maxConcurrentWorkflowTasks,
    maxConcurrentLocalActivityExecutions: settings.maxConcurrentActivities,
    maxCachedWorkflows: settings.maxCachedWorkflows,
    shutdownGraceTime: '10 seconds',
  });
  return {
    worker,
    config,
    audit,
    async run() {
      try {
        await worker.run();
      } finally {
        await ssh.closeAll();
        if (!overrides.audit) await audit.close();
      }
    },
  };
}
