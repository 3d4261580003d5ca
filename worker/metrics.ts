// Node side. The worker's Prometheus endpoint: the Temporal SDK's runtime exporter (one per process, so one
// endpoint for the SDK's own metrics and the engine's), the engine's metrics that are not workflow events, and the
// approvals gauge. Workflows emit the rest through workflows/metrics.ts, which also defines every engine metric.
//
// Why approvals pending is a gauge read from visibility: a workflow's metric calls are skipped on replay, so an
// up/down count kept by runs would be lost (or doubled) whenever a worker restarts or a run moves to another
// worker; the server's visibility store knows at any time which runs wait at their gate.
import type { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import type { MetricsExporterConfig } from '@temporalio/worker';
import type { Logger } from '../common/logger';
import { HISTOGRAM_BUCKETS, METRICS } from '../workflows/metrics';

/** How often the approvals gauge is read from visibility. */
export const APPROVALS_REFRESH_MS = 15_000;

/** The SDK exporter's settings: durations in seconds (Prometheus' convention), our histograms' buckets. */
export function prometheusExporter(bindAddress: string): MetricsExporterConfig {
  return {
    prometheus: { bindAddress, useSecondsForDurations: true, histogramBucketOverrides: HISTOGRAM_BUCKETS },
  };
}

/**
 * Publishes the counters that may stay at zero for a long time (they are what an alert watches), so a scrape
 * shows them, and a dashboard or alert rule finds them, before the first failure.
 */
export function primeEngineMetrics(meter: MetricMeter): void {
  for (const m of [METRICS.auditFailures, METRICS.suppressed])
    meter.createCounter(m.name, undefined, m.description).add(0);
}

/** The visibility query of runs on `taskQueue` waiting at their approval gate. */
export function approvalsQuery(taskQueue: string): string {
  return (
    `WorkflowType = 'runbook' AND ExecutionStatus = 'Running' AND RunbookStatus = 'awaiting-approval' AND ` +
    `TaskQueue = '${taskQueue.replace(/'/g, '')}'`
  );
}

/**
 * Sets `runbook_approvals_pending{taskQueue}` now and every `everyMs`, until the returned function is called
 * (`taskQueue`, not `task_queue`: the label name the SDK gives the metrics workflows emit, so the engine's metrics
 * agree). A failed count keeps the last value, logged once until a count succeeds again.
 */
export function startApprovalsGauge(
  meter: MetricMeter,
  client: Client,
  taskQueue: string,
  logger: Logger,
  everyMs = APPROVALS_REFRESH_MS,
): () => Promise<void> {
  const m = METRICS.approvalsPending;
  const gauge = meter.createGauge(m.name, 'int', undefined, m.description);
  const query = approvalsQuery(taskQueue);
  let failing = false;
  let inFlight: Promise<void> | undefined;
  const refresh = () => {
    // A count slower than the interval is not queued behind: the next tick after it ends asks again.
    inFlight ??= client.workflow
      .count(query)
      .then(
        ({ count }) => {
          gauge.set(count, { taskQueue });
          failing = false;
        },
        (err: unknown) => {
          if (!failing)
            logger.warn({ error: (err as Error).message, metric: m.name }, 'cannot count pending approvals');
          failing = true;
        },
      )
      .finally(() => {
        inFlight = undefined;
      });
  };
  refresh();
  const timer = setInterval(refresh, everyMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await inFlight;
  };
}
