// Node side. The worker process's lifecycle: connect to Temporal, create the engine's worker, run it until
// SIGINT/SIGTERM (running activities get the shutdown grace time; a second signal exits at once), and close the
// connection in `finally`. `runbook worker` is this alone; `runbook dev` starts its embedded server first.
import { Runtime, type NativeConnection } from '@temporalio/worker';
import { Client } from '@temporalio/client';
import type { Logger } from '../common/logger';
import {
  connectWorker,
  type EngineConfig,
  type MetricsSetting,
  type TemporalTarget,
  type WorkerSettings,
} from './config';
import { startApprovalsGauge } from './metrics';
import { createEngineWorker, installRuntime, type EngineWorker, type MetricsState } from './worker';

/** What a running worker is, for a banner. */
export interface RunningWorker {
  engine: EngineWorker;
  target: TemporalTarget;
  settings: WorkerSettings;
  /** Where its Prometheus metrics are served, or why not. */
  metrics: MetricsState;
}

/** What the worker runs with: the caller reads it from the environment (worker/config.ts). */
export interface RunWorkerOptions {
  /** The server to poll. */
  target: TemporalTarget;
  settings: WorkerSettings;
  config: EngineConfig;
  logger: Logger;
  /** The Prometheus endpoint (worker/metrics.ts). @default off */
  metrics?: MetricsSetting;
  /** Lines for the operator when a signal arrives. @default none */
  say?: (line: string) => void;
  /** Called once the worker polls (the CLI prints its banner). */
  onRunning?: (running: RunningWorker) => void;
}

async function waitForRunning(worker: { getState(): string }): Promise<void> {
  while (worker.getState() === 'INITIALIZED') await new Promise((r) => setTimeout(r, 50));
}

/** Runs the engine's worker until SIGINT/SIGTERM; resolves once it has stopped and its connection is closed. */
export async function runWorker(opts: RunWorkerOptions): Promise<void> {
  const { logger, settings, target, config } = opts;
  const say = opts.say ?? (() => undefined);
  const metrics = installRuntime(logger, opts.metrics);
  let connection: NativeConnection | undefined;
  let stopGauge: (() => Promise<void>) | undefined;
  let stopping = false;
  let engine: EngineWorker | undefined;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      say(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    say(`${signal}: stopping the worker (running activities get 10 s to finish) ...`);
    engine?.worker.shutdown();
  };
  try {
    connection = await connectWorker(target);
    engine = await createEngineWorker(connection, target.namespace, settings, logger, { config });
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    const running = engine.run();
    await waitForRunning(engine.worker);
    if (metrics.url) {
      const client = new Client({ connection, namespace: target.namespace });
      stopGauge = startApprovalsGauge(Runtime.instance().metricMeter, client, settings.taskQueue, logger);
    }
    opts.onRunning?.({ engine, target, settings, metrics });
    await running;
  } finally {
    await stopGauge?.();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await connection?.close();
  }
}
