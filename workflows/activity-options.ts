// Workflow side (deterministic). The activity options the workflows use, named once: timeouts and retry
// policies per kind of work, so a change of policy is made here and nowhere else.
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';
import { FAILURES, PREPARE_FAILURES } from '../common/failure-types';

/** Backoff between attempts of a step's activity (a lost worker or connection; the step re-attaches). */
const STEP_BACKOFF = { initialInterval: '1 second', maximumInterval: '30 seconds' } as const;

/** Grace past a step's own timeout: the activity kills the command at the timeout and reports it. */
const STEP_GRACE_MS = 60_000;

export const ACTIVITY_OPTIONS = {
  /** Loading and checking a run's runbook, params and inventory: bad input is final at once. */
  prepare: {
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: [...PREPARE_FAILURES] },
  },
  /** Writing the workflow's own audit records: retried for a while, never failing the run (see audit.ts). */
  audit: {
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 8, initialInterval: '500 milliseconds', maximumInterval: '15 seconds' },
  },
  /** Notifying a channel (approvals, notify steps). */
  notify: { startToCloseTimeout: '1 minute', retry: { maximumAttempts: 5 } },
  /** Telling humans about a failed or suppressed remediation: retried for about an hour, then given up. */
  escalate: {
    startToCloseTimeout: '1 minute',
    retry: {
      maximumAttempts: 20,
      initialInterval: '5 seconds',
      maximumInterval: '5 minutes',
      nonRetryableErrorTypes: [FAILURES.notifyRefused],
    },
  },
  /** Reading who started a run from its first history event (a local activity: one small server call). */
  starter: { startToCloseTimeout: '10 seconds', retry: { maximumAttempts: 3 } },
  /** Killing a cancelled step's remote command. */
  kill: { startToCloseTimeout: '1 minute', retry: { maximumAttempts: 5 } },
} satisfies Record<string, ActivityOptions & LocalActivityOptions>;

/** How long one watch of a host lock's holder lasts before the run (or the lock manager) looks again. */
export const LOCK_WATCH_MS = 10 * 60_000;

/** Watching a host lock's holder: heartbeats, retried without limit (the wait itself is the run's). */
export const lockWatchOptions: ActivityOptions = {
  startToCloseTimeout: LOCK_WATCH_MS + 60_000,
  heartbeatTimeout: '30 seconds',
  retry: STEP_BACKOFF,
};

/** How long a queued run waits for an answer of the lock manager before it asks again (a manager that lost its request). */
export const LOCK_REASK_MS = 10 * 60_000;
/** How long a run waits for the manager's first answer (granted or queued) before it asks through the activity. */
export const LOCK_FIRST_ANSWER_MS = 30_000;

export const LOCK_OPTIONS = {
  /** A run's lock requests to a manager that a signal did not reach (signal-with-start). Retried until they are sent. */
  send: { startToCloseTimeout: '30 seconds', retry: STEP_BACKOFF },
  /** The manager's look at old-style locks and holders (a few describes). */
  check: { startToCloseTimeout: '1 minute', retry: STEP_BACKOFF },
  /** A new manager asking the runs what they hold: heartbeats per answer, retried without limit. */
  recover: { startToCloseTimeout: '1 hour', heartbeatTimeout: '2 minutes', retry: STEP_BACKOFF },
} satisfies Record<string, ActivityOptions & LocalActivityOptions>;

/** A short step (up to LOCAL_STEP_MAX_MS) as a local activity; `attempts` of its activity. */
export function shortStepOptions(timeoutMs: number, attempts: number): LocalActivityOptions {
  return { startToCloseTimeout: timeoutMs + STEP_GRACE_MS, retry: { maximumAttempts: attempts, ...STEP_BACKOFF } };
}

/** A long step as a regular activity that heartbeats its progress. */
export function longStepOptions(timeoutMs: number, attempts: number): ActivityOptions {
  return {
    startToCloseTimeout: timeoutMs + STEP_GRACE_MS,
    heartbeatTimeout: '10 seconds',
    retry: { maximumAttempts: attempts, ...STEP_BACKOFF },
  };
}

/** An ad hoc command (runCommand): as long as its own timeout and five minutes more, heartbeating. */
export function execOptions(timeoutMs: number): ActivityOptions {
  return {
    startToCloseTimeout: timeoutMs + 5 * 60_000,
    heartbeatTimeout: '10 seconds',
    retry: {
      maximumAttempts: 5,
      initialInterval: '1 second',
      nonRetryableErrorTypes: [FAILURES.hostKey, FAILURES.sshAuth],
    },
  };
}
