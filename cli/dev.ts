// Node side. `runbook dev` and `runbook worker`: the embedded Temporal dev server (SQLite-persisted in the data
// dir, Web UI on) and its codec server when history is encrypted, then the worker (worker/run.ts); the banner.
import fs from 'node:fs';
import path from 'node:path';
import { createLogger, type Logger } from '../common/logger';
import { UserError } from '../common/errors';
import {
  engineConfigFromEnv,
  logLevelFromEnv,
  metricsSettingFrom,
  temporalTargetFromEnv,
  workerSettingsFromEnv,
  type EngineConfig,
  type MetricsSetting,
  type TemporalTarget,
  type WorkerSettings,
} from '../worker/config';
import { startDevServer, type DevServer } from '../worker/dev-server';
import { runWorker, type RunningWorker } from '../worker/run';
import { installRuntime } from '../worker/worker';
import { ensureTemporalCli, temporalCliVersion } from '../worker/temporal-cli';
import { EncryptionCodec } from '../common/codec';
import { startCodecServer, type CodecServer } from '../common/codec-server';
import type { Receiver } from '../triggers/receiver';
import { keptToken, receiverConfig, startAlertReceiver } from './triggers';
import { RuleSet } from '../triggers/rules';

export interface DevOptions {
  dataDir: string;
  ip: string;
  port: number;
  uiPort?: number;
  headless: boolean;
  /** Codec server port (when history encryption is on). @default uiPort + 1 */
  codecPort?: number;
  /** Alert receiver port; false: no receiver. @default 9280 */
  receiverPort: number | false;
  /** The --metrics flag as given (else RUNBOOK_METRICS_ADDRESS, else 127.0.0.1:9464). */
  metrics?: string;
}

/** The codec server's bearer token: RUNBOOK_CODEC_TOKEN, else one made once and kept (0600) in the data dir. */
function codecToken(dataDir: string): { token: string; source: string } {
  if (process.env.RUNBOOK_CODEC_TOKEN) return { token: process.env.RUNBOOK_CODEC_TOKEN, source: 'RUNBOOK_CODEC_TOKEN' };
  const { token, file } = keptToken(dataDir, 'codec-token');
  return { token, source: file };
}

function say(line: string): void {
  console.log(line);
}

/** Where the banner says history keys and the codec server are. */
interface Codec {
  server?: CodecServer;
  tokenSource?: string;
}

interface WorkerSetup {
  logger: Logger;
  settings: WorkerSettings;
  config: EngineConfig;
  metrics: MetricsSetting;
}

/**
 * Runs the worker (worker/run.ts) with the operator's lines: the banner once it polls, `stopped` at the end. `stop`
 * stops what the caller started before it (the dev server, the codec server), after the worker.
 */
async function serveWorker(
  worker: WorkerSetup & { target: TemporalTarget },
  started: { server?: DevServer; codec?: Codec; alerts?: Alerts; stop?: () => Promise<void> } = {},
): Promise<void> {
  let polled = false;
  try {
    await runWorker({
      ...worker,
      say,
      onRunning: (running) => {
        polled = true;
        printBanner(running, started.server, started.codec ?? {}, started.alerts);
      },
    });
  } finally {
    await started.stop?.();
    if (polled || started.server) say('stopped');
  }
}

/** The worker alone, against the server the TEMPORAL_* variables name. */
async function serveRemote(worker: WorkerSetup): Promise<void> {
  const target = temporalTargetFromEnv();
  say(`connecting to the Temporal server at ${target.address} (namespace ${target.namespace}) ...`);
  await serveWorker({ ...worker, target });
}

/** `runbook worker`: ad hoc commands off unless RUNBOOK_ALLOW_EXEC turns them on. */
export async function runWorkerCommand(opts: { metrics?: string } = {}): Promise<void> {
  const logger = createLogger('runbook-worker', logLevelFromEnv());
  const metrics = metricsSettingFrom(opts.metrics);
  installRuntime(logger, metrics); // a taken metrics address fails before anything else is said
  await serveRemote({
    metrics,
    logger,
    settings: workerSettingsFromEnv(),
    config: engineConfigFromEnv(process.env, { allowExec: false }),
  });
}

/**
 * `runbook dev`: the embedded dev server (and codec server), then the worker, until SIGINT/SIGTERM; stops them in
 * reverse order. With TEMPORAL_ADDRESS set, the worker alone, connected there. Ad hoc commands are on by default
 * on the dev machine (opt-in with RUNBOOK_ALLOW_EXEC for a production worker).
 */
export async function runDev(opts: DevOptions): Promise<void> {
  const logger = createLogger('runbook-dev', logLevelFromEnv());
  const settings = workerSettingsFromEnv();
  const dataDir = path.resolve(opts.dataDir);
  const metrics = metricsSettingFrom(opts.metrics);
  // Now, so a taken metrics address fails before a server is started for nothing.
  installRuntime(logger, metrics);
  if (process.env.TEMPORAL_ADDRESS) {
    const target = temporalTargetFromEnv();
    say(`connecting to the Temporal server at ${target.address} (namespace ${target.namespace}) ...`);
    const remote = engineConfigFromEnv(process.env, { allowExec: true, allowRunbookFiles: true });
    const alerts = await startDevReceiver(opts, dataDir, target, remote, logger);
    return serveWorker(
      { logger, settings, config: remote, target, metrics },
      { alerts, stop: () => alerts?.receiver.close() ?? Promise.resolve() },
    );
  }
  // The audit trail lives with the rest of the dev state unless AUDIT_URL says otherwise.
  const config = engineConfigFromEnv(process.env, { allowExec: true, allowRunbookFiles: true, dataDir });
  try {
    fs.mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    throw new UserError(
      `Cannot create the data directory ${dataDir}: ${(err as Error).message}. Choose another ` +
        'with --data-dir or RUNBOOK_DATA_DIR.',
      { cause: err },
    );
  }
  const cli = await ensureTemporalCli(say);
  say(`Temporal CLI: ${cli.path} (${temporalCliVersion(cli.path)}; found via ${cli.source})`);
  const codec: Codec = {};
  let server: DevServer | undefined;
  let alerts: Alerts | undefined;
  const stop = async () => {
    await alerts?.receiver.close();
    if (server) {
      say('stopping the Temporal dev server ...');
      await server.stop();
    }
    await codec.server?.close();
  };
  try {
    const extraArgs: string[] = [];
    if (config.codecKeys.length && !opts.headless) {
      // History is encrypted: the UI decodes through our codec server, which holds the keys.
      const uiPort = opts.uiPort ?? opts.port + 1000;
      const { token, source } = codecToken(dataDir);
      codec.tokenSource = source;
      codec.server = await startCodecServer({
        codec: new EncryptionCodec(config.codecKeys),
        token,
        host: opts.ip,
        port: opts.codecPort ?? uiPort + 1,
        corsOrigins: [`http://${opts.ip}:${uiPort}`, `http://localhost:${uiPort}`],
        logger,
      }).catch((err: Error) => {
        throw new UserError(
          `Cannot start the codec server on ${opts.ip}:${opts.codecPort ?? uiPort + 1}: ${err.message}. Choose another port with --codec-port.`,
          { cause: err },
        );
      });
      extraArgs.push('--ui-codec-endpoint', codec.server.uiEndpoint);
    }
    say(`starting the Temporal dev server (data in ${dataDir}) ...`);
    server = await startDevServer({
      cli: cli.path,
      ip: opts.ip,
      port: opts.port,
      uiPort: opts.uiPort,
      headless: opts.headless,
      dbFile: path.join(dataDir, 'temporal.db'),
      logFile: path.join(dataDir, 'temporal.log'),
      extraArgs,
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const fromEnv = temporalTargetFromEnv(server.address);
  const target = {
    ...fromEnv,
    address: server.address,
    namespace: server.namespace,
    connectionOptions: { ...fromEnv.connectionOptions, address: server.address },
  };
  // Escalations link to runs in the embedded UI unless RUNBOOK_UI_URL names another.
  if (server.uiUrl) config.escalation.uiUrl ??= server.uiUrl;
  try {
    alerts = await startDevReceiver(opts, dataDir, target, config, logger);
  } catch (err) {
    await stop();
    throw err;
  }
  await serveWorker({ logger, settings, config, target, metrics }, { server, codec, alerts, stop });
}

/** Where the banner says the alert receiver is. */
interface Alerts {
  receiver: Receiver;
  tokenSource: string;
}

/** The alert receiver of `runbook dev` (a bearer token made once in the data dir unless one is configured). */
async function startDevReceiver(
  opts: DevOptions,
  dataDir: string,
  target: TemporalTarget,
  config: EngineConfig,
  logger: Logger,
): Promise<Alerts | undefined> {
  if (opts.receiverPort === false) return undefined;
  fs.mkdirSync(dataDir, { recursive: true });
  const cfg = receiverConfig(process.env, { host: opts.ip, port: opts.receiverPort }, { dataDir });
  const rules = new RuleSet(config.runbookDir, config.defaultInventory, logger);
  const receiver = await startAlertReceiver(target, cfg, rules, logger);
  return { receiver, tokenSource: cfg.tokenSource };
}

function printBanner(
  { engine, target, settings, metrics }: RunningWorker,
  server: DevServer | undefined,
  codec: Codec,
  alerts: Alerts | undefined,
): void {
  const { config } = engine;
  const keys = config.codecKeys;
  const history = keys.length
    ? `encrypted (AES-256-GCM, key ${keys[0]!.id})${codec.server ? `; codec server ${codec.server.url} (bearer token in ${codec.tokenSource})` : ''}`
    : 'not encrypted (set RUNBOOK_CODEC_KEYS or RUNBOOK_CODEC_KEYS_FILE; make a key with `runbook codec keygen`)';
  const lines = [''];
  if (server?.uiUrl) {
    lines.push(`  Temporal UI  ${server.uiUrl}/namespaces/${target.namespace}/workflows`);
    // The runs alone: the unfiltered list also has each run's host-lock children, the alert guards and exec runs.
    lines.push(
      `  Runs         ${server.uiUrl}/namespaces/${target.namespace}/workflows?query=${encodeURIComponent("WorkflowType='runbook'")}`,
    );
  }
  lines.push(
    `  Metrics      ${metrics.url ? `${metrics.url} (Prometheus; dashboard: dashboards/runbook-engine.json)` : metrics.off}`,
  );
  lines.push(
    `  Temporal     ${target.address} (namespace ${target.namespace})${server ? ', embedded dev server' : ''}`,
  );
  lines.push(`  Worker       polling task queue "${settings.taskQueue}"`);
  lines.push(`  Audit        ${engine.audit.description} (runbook audit show | verify)`);
  lines.push(`  History      ${history}`);
  lines.push(`  Runbooks     ${config.runbookDir} (RUNBOOK_DIR)`);
  lines.push(
    `  Inventories  ${config.inventories.length ? config.inventories.join(', ') : 'none allowed yet: set RUNBOOK_INVENTORY (and RUNBOOK_INVENTORIES)'}`,
  );
  lines.push(`  Ad hoc exec  ${config.allowExec ? 'on' : 'off'} (RUNBOOK_ALLOW_EXEC)`);
  lines.push(
    `  File runs    ${config.allowRunbookFiles ? 'on' : 'off'} (RUNBOOK_ALLOW_RUNBOOK_FILES: \`runbook run FILE.yaml\` sends the runbook with the run)`,
  );
  lines.push(
    `  Calendars    ${config.calendars && fs.existsSync(config.calendars.file) ? `${config.calendars.file} (runbook calendar status)` : `none (RUNBOOK_CALENDARS, or ${config.calendars?.file ?? 'calendars.yaml in the runbook directory'})`}`,
  );
  lines.push("  Schedules    `runbook schedules sync` makes the runbooks' on.schedule Temporal Schedules");
  if (alerts)
    lines.push(
      `  Alerts       ${alerts.receiver.url}/alerts/alertmanager (also /alerts/grafana, /alerts/generic/NAME); bearer token in ${alerts.tokenSource}`,
    );
  lines.push(`  Try          npx runbook exec --inventory INVENTORY.yaml --host NAME -- uptime`);
  lines.push('  Stop         Ctrl-C', '');
  say(lines.join('\n'));
}
