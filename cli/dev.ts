// Node side. `runbook dev` and `runbook worker`: the worker process, with or without an embedded Temporal dev
// server (SQLite-persisted in the data dir, Web UI on), and a clean stop on SIGINT/SIGTERM.
import fs from 'node:fs';
import path from 'node:path';
import type { NativeConnection } from '@temporalio/worker';
import { createLogger } from '../common/logger';
import { UserError } from '../common/errors';
import { connectWorker, engineConfigFromEnv, type EngineConfig, temporalTargetFromEnv, workerSettingsFromEnv, type TemporalTarget } from '../worker/config';
import { startDevServer, type DevServer } from '../worker/dev-server';
import { ensureTemporalCli, temporalCliVersion } from '../worker/temporal-cli';
import { createEngineWorker, installRuntime } from '../worker/worker';
import { codecKeysFromEnv, EncryptionCodec } from '../common/codec';
import { startCodecServer, type CodecServer } from '../triggers/codec-server';
import crypto from 'node:crypto';

export interface DevOptions {
  dataDir: string;
  ip: string;
  port: number;
  uiPort?: number;
  headless: boolean;
  /** False for `runbook worker`: never start a server. */
  embedded: boolean;
  /** Codec server port (when history encryption is on). @default uiPort + 1 */
  codecPort?: number;
}

/** The codec server's bearer token: RUNBOOK_CODEC_TOKEN, else one made once and kept (0600) in the data dir. */
function codecToken(dataDir: string): { token: string; source: string } {
  if (process.env.RUNBOOK_CODEC_TOKEN) return { token: process.env.RUNBOOK_CODEC_TOKEN, source: 'RUNBOOK_CODEC_TOKEN' };
  const file = path.join(dataDir, 'codec-token');
  if (!fs.existsSync(file)) fs.writeFileSync(file, `${crypto.randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  return { token: fs.readFileSync(file, 'utf8').trim(), source: file };
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
  let codecServer: CodecServer | undefined;
  let codecTokenSource = '';
  let target: TemporalTarget;
  const keys = codecKeysFromEnv();

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
    const extraArgs: string[] = [];
    if (keys.length && !opts.headless) {
      // History is encrypted: the UI decodes through our codec server, which holds the keys.
      const uiPort = opts.uiPort ?? opts.port + 1000;
      const { token, source } = codecToken(dataDir);
      codecTokenSource = source;
      codecServer = await startCodecServer({ codec: new EncryptionCodec(keys), token, host: opts.ip, port: opts.codecPort ?? uiPort + 1,
        corsOrigins: [`http://${opts.ip}:${uiPort}`, `http://localhost:${uiPort}`], logger }).catch((err: Error) => {
        throw new UserError(`Cannot start the codec server on ${opts.ip}:${opts.codecPort ?? uiPort + 1}: ${err.message}. Choose another port with --codec-port.`, { cause: err });
      });
      extraArgs.push('--ui-codec-endpoint', codecServer.uiEndpoint);
    }
    say(`starting the Temporal dev server (data in ${dataDir}) ...`);
    server = await startDevServer({
      cli: cli.path, ip: opts.ip, port: opts.port, uiPort: opts.uiPort, headless: opts.headless,
      dbFile: path.join(dataDir, 'temporal.db'), logFile: path.join(dataDir, 'temporal.log'), extraArgs,
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
    // Ad hoc commands are on by default on the dev machine, opt-in (RUNBOOK_ALLOW_EXEC) for a production worker.
    const config = engineConfigFromEnv(process.env, { allowExec: opts.embedded });
    const engine = await createEngineWorker(connection, target.namespace, settings, logger, { config });
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
    const history = keys.length
      ? `encrypted (AES-256-GCM, key ${keys[0]!.id})${codecServer ? `; codec server ${codecServer.url} (bearer token in ${codecTokenSource})` : ''}`
      : 'not encrypted (set RUNBOOK_CODEC_KEYS or RUNBOOK_CODEC_KEYS_FILE; make a key with `runbook codec keygen`)';
    printBanner(target, server, settings.taskQueue, engine.audit.description, history, config);
    await running;
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  } finally {
    await connection?.close();
    if (server) {
      say('stopping the Temporal dev server ...');
      await server.stop();
    }
    await codecServer?.close();
    if (connection || server) say('stopped');
  }
}

async function waitForRunning(worker: { getState(): string }): Promise<void> {
  while (worker.getState() === 'INITIALIZED') await new Promise((r) => setTimeout(r, 50));
}

function printBanner(target: TemporalTarget, server: DevServer | undefined, taskQueue: string, audit: string, history: string, config: EngineConfig): void {
  const lines = [''];
  if (server?.uiUrl) lines.push(`  Temporal UI  ${server.uiUrl}/namespaces/${target.namespace}/workflows`);
  lines.push(`  Temporal     ${target.address} (namespace ${target.namespace})${server ? ', embedded dev server' : ''}`);
  lines.push(`  Worker       polling task queue "${taskQueue}"`);
  lines.push(`  Audit        ${audit} (runbook audit show | verify)`);
  lines.push(`  History      ${history}`);
  lines.push(`  Runbooks     ${config.runbookDir} (RUNBOOK_DIR)`);
  lines.push(`  Inventories  ${config.inventories.length ? config.inventories.join(', ') : 'none allowed yet: set RUNBOOK_INVENTORY (and RUNBOOK_INVENTORIES)'}`);
  lines.push(`  Ad hoc exec  ${config.allowExec ? 'on' : 'off'} (RUNBOOK_ALLOW_EXEC)`);
  lines.push(`  Try          npx runbook exec --inventory INVENTORY.yaml --host NAME -- uptime`);
  lines.push('  Stop         Ctrl-C', '');
  say(lines.join('\n'));
}
