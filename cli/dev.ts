// Node side. `runbook dev` and `runbook worker`: the worker process, with or without an embedded Temporal dev
// server (SQLite-persisted in the data dir, Web UI on), and a clean stop on SIGINT/SIGTERM.
import fs from 'node:fs';
import path from 'node:path';
import type { NativeConnection } from '@temporalio/worker';
import { createLogger } from '../common/logger';
import { UserError } from '../common/errors';
import { connectWorker, temporalTargetFromEnv, workerSettingsFromEnv, type TemporalTarget } from '../worker/config';
import { startDevServer, type DevServer } from '../worker/dev-server';
import { ensureTemporalCli, temporalCliVersion } from '../worker/temporal-cli';
import { createEngineWorker, installRuntime } from '../worker/worker';

export interface DevOptions {
  dataDir: string;
  ip: string;
  port: number;
  uiPort?: number;
  headless: boolean;
  /** False for `runbook worker`: never start a server. */
  embedded: boolean;
}

function say(line: string): void {
  console.log(line);
}

/** Runs until SIGINT/SIGTERM: optional embedded server, then the worker; stops them in reverse order. */
export async function runDev(opts: DevOptions): Promise<void> {
  const logger = createLogger(opts.embedded ? 'runbook-dev' : 'runbook-worker');
  const settings = workerSettingsFromEnv();
  installRuntime(logger);
  let server: DevServer | undefined;
  let target: TemporalTarget;

  if (opts.embedded && !process.env.TEMPORAL_ADDRESS) {
    const dataDir = path.resolve(opts.dataDir);
    try {
      fs.mkdirSync(dataDir, { recursive: true });
    } catch (err) {
      throw new UserError(`Cannot create the data directory ${dataDir}: ${(err as Error).message}. Choose another ` +
        'with --data-dir or RUNBOOK_DATA_DIR.', { cause: err });
    }
    // The audit trail lives with the rest of the dev state unless AUDIT_URL says otherwise.
    process.env.AUDIT_URL ??= `file:${path.join(dataDir, 'audit.jsonl')}`;
    const cli = await ensureTemporalCli(say);
    say(`Temporal CLI: ${cli.path} (${temporalCliVersion(cli.path)}; found via ${cli.source})`);
    say(`starting the Temporal dev server (data in ${dataDir}) ...`);
    server = await startDevServer({
      cli: cli.path, ip: opts.ip, port: opts.port, uiPort: opts.uiPort, headless: opts.headless,
      dbFile: path.join(dataDir, 'temporal.db'), logFile: path.join(dataDir, 'temporal.log'),
    });
    target = { ...temporalTargetFromEnv(server.address), address: server.address, namespace: server.namespace };
    target.connectionOptions = { ...target.connectionOptions, address: server.address };
  } else {
    target = temporalTargetFromEnv();
    say(`connecting to the Temporal server at ${target.address} (namespace ${target.namespace}) ...`);
  }

  let connection: NativeConnection | undefined;
  try {
    connection = await connectWorker(target);
    const engine = await createEngineWorker(connection, target.namespace, settings, logger);
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        say(`${signal} again: exiting now`);
        process.exit(130);
      }
      stopping = true;
      say(`${signal}: stopping the worker (running activities get 10 s to finish) ...`);
      engine.worker.shutdown();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const running = engine.run();
    await waitForRunning(engine.worker);
    printBanner(target, server, settings.taskQueue, engine.audit.description);
    await running;
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  } finally {
    await connection?.close();
    if (server) {
      say('stopping the Temporal dev server ...');
      await server.stop();
    }
    if (connection || server) say('stopped');
  }
}

async function waitForRunning(worker: { getState(): string }): Promise<void> {
  while (worker.getState() === 'INITIALIZED') await new Promise((r) => setTimeout(r, 50));
}

function printBanner(target: TemporalTarget, server: DevServer | undefined, taskQueue: string, audit: string): void {
  const lines = [''];
  if (server?.uiUrl) lines.push(`  Temporal UI  ${server.uiUrl}/namespaces/${target.namespace}/workflows`);
  lines.push(`  Temporal     ${target.address} (namespace ${target.namespace})${server ? ', embedded dev server' : ''}`);
  lines.push(`  Worker       polling task queue "${taskQueue}"`);
  lines.push(`  Audit        ${audit} (runbook audit show | verify)`);
  lines.push(`  Try          npx runbook exec --inventory INVENTORY.yaml --host NAME -- uptime`);
  lines.push('  Stop         Ctrl-C', '');
  say(lines.join('\n'));
}
