// Node side. The engine's activities, built by a factory so the worker injects real clients and tests their own.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Logger } from '../common/logger';
import { redact, rememberSecret } from '../common/redact';
import type { Secrets } from './secrets/providers';
import { FAILURES, FINAL_FAILURES, GROUP_FINAL_FAILURES, isIn } from '../common/failure-types';
import { runHttpStep, type HttpStepInput, type HttpStepResult } from './http/request';
import type { SshPool } from './ssh/pool';
import { killStep, runSshStep, type SshStepInput, type SshStepResult } from './ssh/step';
import { upload, type TransferResult } from './ssh/sftp';
import { runStepGroup, type StepGroupInput, type StepGroupResult } from './step-group';
import { prepareExec, prepareRun, type PrepareInput, type PreparedRun } from './prepare';
import {
  checkHostLocks,
  recoverHostLocks,
  sendLockMessages,
  watchHostLock,
  watchLockHolder,
  type LockCheck,
  type LockCheckInput,
  type LockMessagesInput,
  type LockWatch,
  type LockWatchInput,
} from './host-lock';
import type { Recovered, RunRef } from '../workflows/host-lock-table';
import type { Client } from '@temporalio/client';
import type { EngineConfig } from './config';
import { sendEscalation, type Escalation } from './escalate';
import { remediationStatus } from './remediations';
import { windowState, type WindowAnswer, type WindowQuery } from './window';
import { starterIdentity } from './starter';
import { sendNotification, type Notification } from './notify';
import type { SshTarget } from '../dsl/selector';
import type { AuditStore } from '../audit/store';
import type { AuditEntry } from '../audit/record';
import { messageOf } from '../common/errors';
import { stepEntry, workflowEntry, type StepAuditContext, type WorkflowAuditEvent } from '../audit/events';
import { outcomeOf } from '../audit/outcome';
import { bounded, outputsFor } from './result-size';
import type { StepDoc } from '../dsl/schema';
import type { OutputTails } from './ssh/progress';

export interface ActivityDeps {
  ssh: SshPool;
  secrets: Secrets;
  logger: Logger;
  audit: AuditStore;
  /** What the engine trusts: runbook directory, allowed inventories, ad hoc commands on or off. */
  config: EngineConfig;
  /** A client on the worker's own connection (host-lock watches). */
  client: Client;
}

export interface SshStepActivityInput extends SshStepInput {
  /** A non-zero exit is retryable (the step asked for retries); otherwise it fails the step at once. */
  retryOnExit?: boolean;
  /** Set when the run is audited: the activity records the step's success itself (no extra round trip). */
  audit?: StepAuditContext;
  /** The step's outputs, extracted here from the whole result (what goes back to history is bounded). */
  outputs?: { stepId: string; spec: StepDoc['outputs'] };
}

/** Which step on which host a result or a heartbeat is of (a local activity's input is not in history). */
export interface StepAt {
  host: string;
  /** The step's record key path, e.g. `steps[2]`, `steps[2]#2` (a retry), `steps[1]@3` (a poll). */
  step: string;
}

/** A step result as it goes back to the workflow: bounded, with the outputs taken from the whole result. */
export type StepReply<R> = R & { outputs?: Record<string, unknown>; audited?: boolean; at?: StepAt };

/**
 * Progress recorded in heartbeats (read by `runbook logs` from the pending activity): which step, and the latest
 * complete lines of its output, secrets masked. Only regular (long) steps heartbeat; local ones cannot.
 */
export interface SshStepProgress extends StepAt, Partial<OutputTails> {}

/** Turns an executor error into the Temporal failure the workflow branches on (type = error class name). */
function toFailure(err: unknown, retryOnExit: boolean, at?: StepAt): unknown {
  if (!(err instanceof Error)) return err;
  const nonRetryable = isIn(FINAL_FAILURES, err.name) || (err.name === FAILURES.sshCommandFailed && !retryOnExit);
  const result = 'result' in err ? (err as { result: unknown }).result : undefined;
  const details = result && typeof result === 'object' ? [{ ...bounded(result), ...(at ? { at } : {}) }] : [];
  return ApplicationFailure.create({ message: redact(err.message), type: err.name, nonRetryable, details });
}

/** The workflow and run ids of the calling activity. */
function runOf(ctx: Context): { workflowId: string; runId: string } {
  // Only standalone activities (none here) lack a workflow.
  const { workflowId, runId } = ctx.info.workflowExecution ?? { workflowId: '', runId: '' };
  return { workflowId, runId };
}

export function createActivities({ ssh, secrets, logger, audit, config, client }: ActivityDeps) {
  if (config.escalation.pagerDutyRoutingKey) rememberSecret(config.escalation.pagerDutyRoutingKey);
  /**
   * Records a step's success. A store error does not fail the step (retrying it would repeat an HTTP request):
   * the result says `audited: false` and the workflow records it through its own retried audit activity.
   */
  const record = async (entry: AuditEntry, log: Logger): Promise<boolean> => {
    try {
      await audit.append([entry]);
      return true;
    } catch (err) {
      log.error({ error: messageOf(err) }, 'audit write failed; the workflow will record this step');
      return false;
    }
  };
  return {
    /**
     * Runs one SSH step on one target under the remote exactly-once wrapper: a retry after a lost worker or a
     * dropped connection re-attaches to the command (or returns its recorded result) instead of running it again.
     */
    async sshStep(input: SshStepActivityInput): Promise<StepReply<SshStepResult>> {
      const ctx = Context.current();
      const log = logger.child({
        activity: 'sshStep',
        workflowId: input.key.workflowId,
        step: input.key.stepPath,
        host: input.target.name,
        attempt: ctx.info.attempt,
      });
      const at: StepAt = { host: input.target.name, step: input.key.stepPath };
      // Local activities (short steps) cannot heartbeat; regular ones report liveness and their output's latest
      // lines. Every beat carries the latest progress: the SDK sends the last details of each throttle interval
      // (80% of the heartbeat timeout), so a bare liveness beat would hide the output. The first beat waits for the
      // first read of the output (a second in), so a short step shows some while it runs.
      const heartbeatMs = Math.max(1000, Math.min(5000, (ctx.info.heartbeatTimeoutMs ?? 30_000) / 3));
      let progress: SshStepProgress = at;
      const beat = ctx.info.isLocal ? undefined : setInterval(() => ctx.heartbeat(progress), heartbeatMs);
      try {
        // A cancelled activity does not kill the remote command by itself: a worker shutting down or a run
        // evicted from the cache cancels local activities too, and then the command must go on so the next
        // attempt re-attaches. The workflow kills it (sshKill) when the step itself is cancelled.
        // The output is read every 2 s (one short exec on the host): the SDK sends a beat at most every 8 s (80% of
        // the 10 s heartbeat timeout), and what it sends is then at most 2 s old.
        const result = await runSshStep(ssh, secrets, input, {
          progressIntervalMs: 2000,
          firstProgressMs: 1000,
          onProgress: ctx.info.isLocal
            ? undefined
            : (tails) => {
                progress = { ...at, ...tails };
                ctx.heartbeat(progress);
              },
        });
        log.info({ mode: result.mode, exitCode: result.exitCode, durationMs: result.durationMs }, 'ssh step finished');
        const outputs = input.outputs && outputsFor(input.outputs.spec, input.outputs.stepId, result);
        const audited =
          input.audit &&
          (await record(stepEntry(runOf(ctx), input.audit, input.action, 'succeeded', outcomeOf(result)), log));
        return { ...bounded({ ...result, outputs, audited }), at };
      } catch (err) {
        log.warn({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, 'ssh step failed');
        throw toFailure(err, input.retryOnExit ?? false, at);
      } finally {
        clearInterval(beat);
      }
    },

    /** Consecutive plain SSH steps on one target in one go (see step-group.ts). */
    async sshSteps(input: StepGroupInput): Promise<StepGroupResult & { host?: string }> {
      const ctx = Context.current();
      const log = logger.child({
        activity: 'sshSteps',
        workflowId: ctx.info.workflowExecution?.workflowId,
        host: input.target.name,
        attempt: ctx.info.attempt,
      });
      const out = await runStepGroup(
        {
          ssh,
          secrets,
          run: runOf(ctx),
          record: (e) => record(e, log),
          isFinal: (err) => err instanceof Error && isIn(GROUP_FINAL_FAILURES, err.name),
        },
        input,
      ).catch((err: unknown) => {
        throw toFailure(err, false);
      });
      if (out.failed) {
        out.failed.message = redact(out.failed.message);
        log.warn({ step: out.failed.path, error: out.failed.message }, 'ssh step failed');
      }
      // The host, for `runbook logs` (a local activity's input is not in history).
      return { ...out, host: input.target.name };
    },

    /** Records events the workflow reports (idempotent: ids are derived from the run and the event). */
    async audit(input: { events: WorkflowAuditEvent[] }): Promise<void> {
      await audit.append(input.events.map((e) => workflowEntry(runOf(Context.current()), e)));
    },

    /** Loads, validates and resolves a runbook run (see prepare.ts). */
    async prepare(input: PrepareInput): Promise<PreparedRun> {
      return prepareRun(config, input);
    },

    /** The state of change calendars at the workflow's time (see window.ts). */
    /** Who started the run, as the server recorded the starting client (for a run whose input names nobody). */
    async starterIdentity(): Promise<string | undefined> {
      return starterIdentity(client);
    },
    async windowState(input: WindowQuery): Promise<WindowAnswer> {
      return windowState(config.calendars, input, logger);
    },

    /** The SSH login of one host of an allowed inventory, for an ad hoc command (refused unless allowed). */
    async prepareExec(input: { host: string; inventory?: string }): Promise<SshTarget> {
      return prepareExec(config, input);
    },

    /** Waits (up to `waitMs`) for a host lock's holder to close; clears a squatter (see host-lock.ts). */
    async watchHostLock(input: LockWatchInput): Promise<LockWatch> {
      return watchHostLock(client, logger, input);
    },

    /** Sends a run's lock requests to its lock manager, starting it when none runs (see host-lock.ts). */
    async sendLockMessages(input: LockMessagesInput): Promise<void> {
      return sendLockMessages(client, logger, input);
    },

    /** For the lock manager: old-style locks on hosts, and holders that have closed. */
    async checkHostLocks(input: LockCheckInput): Promise<LockCheck> {
      return checkHostLocks(client, logger, input);
    },

    /** For the lock manager: waits (up to `waitMs`) for a holding run to close. */
    async watchLockHolder(input: RunRef & { waitMs: number }): Promise<'closed' | 'running'> {
      return watchLockHolder(client, input);
    },

    /** For a new lock manager: what the open runs of its task queue hold and wait for. */
    async recoverHostLocks(input: { taskQueue: string }): Promise<Recovered> {
      return recoverHostLocks(client, logger, input);
    },

    /** Sends a message to a channel (log, and the webhook in RUNBOOK_NOTIFY_URL when set). */
    async notify(input: Notification): Promise<void> {
      await sendNotification(input, logger, config.notifyUrl);
    },

    /**
     * Tells humans a remediation failed or was suppressed, through one target (`slack`: a Slack-compatible webhook,
     * `pagerduty`: Events v2), so a retry of one never posts to the other again; a target not configured is a no-op.
     */
    async escalate(input: Escalation & { target: 'slack' | 'pagerduty' }): Promise<{ sent: string[] }> {
      const { target, ...escalation } = input;
      const { slackUrl, pagerDutyRoutingKey } = config.escalation;
      // Not configured: nothing to send (with no target at all, the Slack call logs it, once).
      if (target === 'pagerduty' && !pagerDutyRoutingKey) return { sent: [] };
      if (target === 'slack' && !slackUrl && pagerDutyRoutingKey) return { sent: [] };
      const cfg =
        target === 'slack'
          ? { ...config.escalation, pagerDutyRoutingKey: undefined, pagerDutyUrl: undefined }
          : { ...config.escalation, slackUrl: undefined };
      return sendEscalation(escalation, logger, cfg);
    },

    /** How remediations ended, of those that did (their alert guard lost track of them by continuing as new). */
    async remediationStatus(input: { runs: { workflowId: string; runId?: string }[] }) {
      return remediationStatus(client, input.runs);
    },

    /** Kills a step's remote process group (the workflow calls it when the step is cancelled). */
    async sshKill(input: {
      target: SshTarget;
      key: { workflowId: string; runId?: string; stepPath: string };
    }): Promise<void> {
      await killStep(ssh, input.target, input.key);
    },

    /** Copies a worker-side file to a host over SFTP, checksum-verified; unchanged content is not re-sent. */
    async sshUpload(input: { target: SshTarget; src: string; dest: string; mode?: string }): Promise<TransferResult> {
      try {
        return await upload(ssh, input.target, input.src, input.dest, input.mode);
      } catch (err) {
        throw toFailure(err, false);
      }
    },

    /** One HTTP request; connection errors and 5xx are retryable, other failures are not. */
    async httpStep(
      input: HttpStepInput & { audit?: StepAuditContext; outputs?: SshStepActivityInput['outputs'] },
    ): Promise<StepReply<HttpStepResult>> {
      const ctx = Context.current();
      const log = logger.child({ activity: 'httpStep', attempt: ctx.info.attempt });
      try {
        const result = await runHttpStep(secrets, input);
        log.info({ status: result.status, durationMs: result.durationMs }, 'http step finished');
        const outputs = input.outputs && outputsFor(input.outputs.spec, input.outputs.stepId, result);
        const audited =
          input.audit &&
          (await record(stepEntry(runOf(ctx), input.audit, input.action, 'succeeded', outcomeOf(result)), log));
        return bounded({ ...result, outputs, audited });
      } catch (err) {
        log.warn({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, 'http step failed');
        throw toFailure(err, false);
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
