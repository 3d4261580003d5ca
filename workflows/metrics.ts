// Workflow side (deterministic; the definitions are also read by the Node side, worker/metrics.ts). The engine's
// own Prometheus metrics, emitted through the SDK's workflow `metricMeter`: it emits nothing while a workflow is
// replayed, so a run that moves to another worker (or is replayed after a restart) is counted once, and a call
// here adds no command to history, so it can go anywhere without touching determinism. Each call site is one
// line; what a metric means is written once, in METRICS below (the README's Metrics section mirrors it).
//
// Durations are in seconds. Workflow time (Date.now() here) only moves when a workflow task starts, which is right
// for waits (approvals, sleeps, host locks, sub-runbooks) but not for a step run by a local activity inside one
// task: SSH and HTTP steps therefore report the duration their activity measured on the worker's clock.
import { metricMeter } from '@temporalio/workflow';
import { FAILURES, failureType } from '../common/failure-types';
import type { GuardAnswer } from './guard-state';

/** Histogram bucket bounds in seconds: from a quick command to a day-long approval. */
const SECONDS_BUCKETS = [
  0.01,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
  600,
  1800,
  3600,
  4 * 3600,
  12 * 3600,
  24 * 3600,
];

/**
 * Every engine metric: name, description, unit and (histograms) bucket bounds. The SDK adds `namespace`,
 * `taskQueue` and `workflowType` to the ones a workflow emits.
 */
export const METRICS = {
  runs: {
    name: 'runbook_runs_total',
    kind: 'counter',
    description:
      'Runbook runs that ended, by runbook, outcome (succeeded, degraded, failed, cancelled, blocked, rejected) and trigger (manual, alert, schedule, sub-runbook).',
  },
  stepDuration: {
    name: 'runbook_step_duration_seconds',
    kind: 'histogram',
    description:
      "Duration of one execution of a step's action (each retry attempt and each until-poll is one), by runbook, kind (ssh, http, sleep, approval, notify, runbook) and outcome (succeeded, failed, cancelled).",
    buckets: SECONDS_BUCKETS,
  },
  lockWait: {
    name: 'runbook_host_lock_wait_seconds',
    kind: 'histogram',
    description:
      "Time a target waited for its host's lock (from asking to holding it; about one workflow task when the host was free), by runbook.",
    buckets: SECONDS_BUCKETS,
  },
  approvalsPending: {
    name: 'runbook_approvals_pending',
    kind: 'gauge',
    description:
      'Running runs waiting at their approval gate (RunbookStatus awaiting-approval), counted from Temporal visibility by each worker for its task queue.',
  },
  auditFailures: {
    name: 'runbook_audit_write_failures_total',
    kind: 'counter',
    description:
      'Audit records that could not be written after the retries (the run goes on; they are listed in its state), by runbook.',
  },
  suppressed: {
    name: 'runbook_remediations_suppressed_total',
    kind: 'counter',
    description:
      'Alerts that did not start a remediation, by runbook and reason (duplicate, frozen, circuit-breaker, blast-radius, rate-limit, target-rate-limit, target-concurrency, refused, other).',
  },
} as const;

/** The bucket bounds of the engine's histograms, for the Prometheus exporter (Runtime.install). */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [METRICS.stepDuration.name]: [...METRICS.stepDuration.buckets],
  [METRICS.lockWait.name]: [...METRICS.lockWait.buckets],
};

const seconds = (ms: number) => Math.max(0, ms) / 1000;

/** A run ended (or was refused) with `outcome`. */
export function countRun(runbook: string, trigger: string, outcome: string): void {
  metricMeter.createCounter(METRICS.runs.name, undefined, METRICS.runs.description).add(1, {
    runbook,
    trigger,
    outcome,
  });
}

/** A run refused at prepare: an unknown runbook name is not a label value (any starter could make up names). */
export function countRejectedRun(runbook: string, trigger: string, err: unknown): void {
  countRun(failureType(err) === FAILURES.unknownRunbook ? '(unknown)' : runbook, trigger, 'rejected');
}

/**
 * One execution of a step's action ended. `startedAt` is the workflow time it started at; `result` (a step's
 * reply, or the one a failure carries) supplies the activity's own `durationMs` when it has one.
 */
export function observeStep(
  env: { prepared: { name: string } },
  kind: string,
  outcome: 'succeeded' | 'failed' | 'cancelled',
  startedAt: number,
  result?: unknown,
): void {
  const measured = (result as { durationMs?: unknown } | undefined)?.durationMs;
  const ms = typeof measured === 'number' ? measured : Date.now() - startedAt;
  metricMeter
    .createHistogram(METRICS.stepDuration.name, 'float', 's', METRICS.stepDuration.description)
    .record(seconds(ms), { runbook: env.prepared.name, kind, outcome });
}

/** A target holds its host's lock, having asked for it at workflow time `askedAt`. */
export function observeLockWait(runbook: string, askedAt: number): void {
  metricMeter
    .createHistogram(METRICS.lockWait.name, 'float', 's', METRICS.lockWait.description)
    .record(seconds(Date.now() - askedAt), { runbook });
}

/** `records` audit records of `runbook` could not be written. */
export function countAuditFailure(runbook: string, records: number): void {
  metricMeter
    .createCounter(METRICS.auditFailures.name, undefined, METRICS.auditFailures.description)
    .add(Math.max(0, records), { runbook });
}

/**
 * Why an alert guard's answer started no run, as a label value; undefined when it started one or recorded a
 * resolution. Reads the reasons guard-state.ts writes (test/unit/metrics.test.ts pins each against decide()).
 */
export function suppressionReason(answer: GuardAnswer): string | undefined {
  if (answer.outcome === 'started' || answer.outcome === 'resolved') return undefined;
  if (answer.outcome === 'refused') return 'refused';
  const why = answer.reason ?? '';
  if (answer.outcome === 'suppressed') {
    const known: [RegExp, string][] = [
      [/^frozen by /, 'frozen'],
      [/^circuit breaker /, 'circuit-breaker'],
      [/^blast radius/, 'blast-radius'],
      [/^rate limit on /, 'target-rate-limit'],
      [/^rate limit/, 'rate-limit'],
      [/^concurrency on /, 'target-concurrency'],
    ];
    return known.find(([re]) => re.test(why))?.[1] ?? 'other';
  }
  return 'duplicate';
}

/** An alert guard answered a delivery for `runbook`: counted when the answer started no run. */
export function countAlertAnswer(runbook: string, answer: GuardAnswer): void {
  const reason = suppressionReason(answer);
  if (reason === undefined) return;
  metricMeter
    .createCounter(METRICS.suppressed.name, undefined, METRICS.suppressed.description)
    .add(1, { runbook, reason });
}
