// Test harness (Node side). The engine's activities as stubs for workflow tests, typed against the real
// `Activities` so a change of an activity's signature breaks the typecheck here. `prepare` is the real preparation
// (activities/prepare.ts over a RunbookFixture's files); the host lock activities are the real ones on the test
// server;
// SSH steps (one at a time, or a step group) follow a script per call and are logged in order, with their record
// keys; the audit, notify and kill activities record what they are given.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Activities } from '../../activities';
import {
  checkHostLocks,
  recoverHostLocks,
  sendLockMessages,
  watchHostLock,
  watchLockHolder,
} from '../../activities/host-lock';
import type { Notification } from '../../activities/notify';
import type { Escalation } from '../../activities/escalate';
import { prepareRun } from '../../activities/prepare';
import { windowState } from '../../activities/window';
import { outputsFor } from '../../activities/result-size';
import type { GroupStepDone, StepGroupResult } from '../../activities/step-group';
import type { SshStepResult } from '../../activities/ssh/step';
import { stepEntry, workflowEntry, type StepAuditContext, type WorkflowAuditEvent } from '../../audit/events';
import { createLogger } from '../../common/logger';
import { FAILURES, type FailureType } from '../../common/failure-types';
import { renderStep, shouldRun, type RenderedAction } from '../../dsl/render';
import { engineConfigFromEnv } from '../../worker/config';
import type { RunbookFixture } from './time-skipping';

/** One SSH step as the stub saw it. */
export interface StepCall {
  /** The workflow id of the run. */
  run: string;
  /** Which activity ran it: a single step, or a step of a group. */
  activity: 'sshStep' | 'sshSteps';
  host: string;
  /** The step's exactly-once record key: its path plus attempt (#n), poll (@n) and delegated-target (:HOST) suffixes. */
  key: string;
  command: string;
  /** Temporal's attempt of the activity (a retry on the same record key). */
  attempt: number;
  /** Positions in the stub's log (one counter for everything the stubs see): when it started and ended. */
  start: number;
  /** Real time (ms) it started. */
  startedAt: number;
  end?: number;
  outcome?: 'succeeded' | 'failed' | 'error' | 'cancelled';
}

/** What a scripted step does: exit with a code (failing unless the step expects it), or throw an engine error. */
export type Outcome =
  { exit?: number; stdout?: string; stderr?: string } | { error: FailureType; retryable?: boolean; message?: string };

/**
 * Decides each step call, given every call so far; undefined (or nothing) is exit 0. May wait (the stub stops
 * waiting when the activity is cancelled).
 */
export type Script = (
  call: StepCall,
  calls: readonly StepCall[],
) => Outcome | undefined | void | Promise<Outcome | undefined | void>;

/** An audit record: from the workflow's audit activity, or written by a step activity itself (its success). */
export interface AuditRecord {
  /** The workflow id of the run. */
  run: string;
  /** The attempt of the activity that wrote it (the workflow's audit activity is retried). */
  attempt?: number;
  by: 'workflow' | 'activity';
  kind: string;
  key: string;
  status: string;
  target?: string;
  step?: string;
  /** Workflow time (ISO) for the workflow's records. */
  time?: string;
  error?: string;
  approvals?: { by: string; comment?: string }[];
  detail?: Record<string, unknown>;
}

export interface Stubs {
  activities: Activities;
  /** Every SSH step call, in start order. */
  calls: StepCall[];
  /** Change records as the audit store keeps them: one per record id (a repeated write of the same id is dropped). */
  audit: AuditRecord[];
  /**
   * Writes dropped because their record id was already kept: a workflow task retried with its local activities
   * writes the same records again, and two different events can also share an id.
   */
  dropped: AuditRecord[];
  notifications: Notification[];
  escalations: Escalation[];
  kills: { host: string; key: string; at: number }[];
  /**
   * What the stubs saw, in order, one line each: `HOST KEY` when an SSH step starts, `notify CHANNEL: MESSAGE`,
   * `kill HOST KEY`.
   */
  timeline: string[];
  /** Sets the script (default: every step exits 0). */
  script(s: Script): void;
  /** Keys of the calls, optionally of one host, in start order. */
  keys(host?: string): string[];
}

function sshResult(o: { exit?: number; stdout?: string; stderr?: string }): SshStepResult {
  const stdout = o.stdout ?? '';
  return {
    mode: 'ran',
    exitCode: o.exit ?? 0,
    stdout,
    stderr: o.stderr ?? '',
    truncated: false,
    stdoutBytes: Buffer.byteLength(stdout),
    stdoutSha256: null,
    durationMs: 1,
  };
}

/** The failure the real activity raises for a failed command or an engine error (type = error class name). */
function failure(
  call: StepCall,
  action: Extract<RenderedAction, { kind: 'ssh' }>,
  outcome: Outcome,
): { failure: ApplicationFailure; result?: SshStepResult } {
  if ('error' in outcome) {
    return {
      failure: ApplicationFailure.create({
        type: outcome.error,
        message: outcome.message ?? `${outcome.error} on ${call.host} (stub)`,
        nonRetryable: !outcome.retryable,
      }),
    };
  }
  const result = sshResult(outcome);
  const message = `The command on ${call.host} exited with ${result.exitCode} (expected ${action.expectExit.join(' or ')}): ${result.stderr}`;
  return {
    failure: ApplicationFailure.create({
      type: FAILURES.sshCommandFailed,
      message,
      nonRetryable: true,
      details: [result],
    }),
    result,
  };
}

const runOf = (ctx: Context) => ctx.info.workflowExecution?.workflowId ?? '';

export function createStubs(env: TestWorkflowEnvironment, fixture: RunbookFixture): Stubs {
  const config = engineConfigFromEnv({ RUNBOOK_DIR: fixture.dir, RUNBOOK_INVENTORY: fixture.inventory });
  const logger = createLogger('workflow-test', 'silent');
  let script: Script = () => undefined;
  let seq = 0;
  const calls: StepCall[] = [];
  const audit: AuditRecord[] = [];
  const notifications: Notification[] = [];
  const escalations: Escalation[] = [];
  const kills: Stubs['kills'] = [];
  const timeline: string[] = [];
  const ids = new Set<string>();
  const dropped: AuditRecord[] = [];
  /** Appends like the audit store: ids from the real record builders, the first write of an id wins. */
  const record = (id: string, r: AuditRecord) => {
    if (ids.has(id)) dropped.push(r);
    else {
      ids.add(id);
      audit.push(r);
    }
  };
  const runIds = (ctx: Context) => ({
    workflowId: ctx.info.workflowExecution?.workflowId ?? '',
    runId: ctx.info.workflowExecution?.runId ?? '',
  });
  /** A step's own record (what sshStep and a step group write for their steps). */
  const stepRecord = (
    ctx: Context,
    a: StepAuditContext,
    action: RenderedAction | undefined,
    status: 'succeeded' | 'failed',
    error?: string,
  ) =>
    record(stepEntry(runIds(ctx), a, action, status, undefined, error).id, {
      run: runOf(ctx),
      by: 'activity',
      kind: a.kind,
      key: a.key,
      status,
      target: a.target,
      error,
    });

  /** Runs the script for one step: resolves to the outcome, or rejects when the activity is cancelled. */
  const perform = async (
    activity: StepCall['activity'],
    host: string,
    key: string,
    action: RenderedAction,
  ): Promise<{ call: StepCall; outcome: Outcome }> => {
    if (action.kind !== 'ssh') throw new Error(`stub ${activity}: step ${key} is not an SSH step`);
    const ctx = Context.current();
    const call: StepCall = {
      run: runOf(ctx),
      activity,
      host,
      key,
      command: action.command ?? action.script ?? '',
      attempt: ctx.info.attempt,
      start: ++seq,
      startedAt: Date.now(),
    };
    calls.push(call);
    timeline.push(`${host} ${key}`);
    try {
      const outcome = (await Promise.race([Promise.resolve(script(call, calls)), ctx.cancelled])) ?? {};
      call.end = ++seq;
      call.outcome =
        'error' in outcome ? 'error' : action.expectExit.includes(outcome.exit ?? 0) ? 'succeeded' : 'failed';
      return { call, outcome };
    } catch (err) {
      call.end = ++seq;
      call.outcome = 'cancelled';
      throw err;
    }
  };
  const ok = (
    action: RenderedAction,
    outcome: Outcome,
  ): outcome is { exit?: number; stdout?: string; stderr?: string } =>
    !('error' in outcome) && action.kind === 'ssh' && action.expectExit.includes(outcome.exit ?? 0);

  const activities: Activities = {
    async sshStep(input) {
      const { call, outcome } = await perform('sshStep', input.target.name, input.key.stepPath, input.action);
      if (!ok(input.action, outcome)) throw failure(call, input.action, outcome).failure;
      const result = sshResult(outcome);
      const outputs = input.outputs && outputsFor(input.outputs.spec, input.outputs.stepId, result);
      if (input.audit) stepRecord(Context.current(), input.audit, input.action, 'succeeded');
      return { ...result, outputs, audited: input.audit ? true : undefined };
    },

    async sshSteps(input) {
      const actx = Context.current();
      const steps = {
        ...(input.ctx.steps as Record<string, { outputs: Record<string, unknown>; status: string }> | undefined),
      };
      const done: GroupStepDone[] = [];
      for (const { step, path } of input.steps) {
        const ctx = { ...input.ctx, steps };
        if (!shouldRun(step, ctx)) {
          steps[step.id] = { outputs: {}, status: 'skipped' };
          done.push({ path, status: 'skipped', outputs: {}, audited: true });
          if (input.audit) {
            const e = {
              key: path,
              time: new Date().toISOString(),
              kind: 'skip',
              runbook: input.audit.runbook,
              initiator: input.audit.initiator,
              step: path,
              target: input.audit.target,
              status: 'skipped',
              detail: { when: step.when },
            } satisfies WorkflowAuditEvent;
            record(workflowEntry(runIds(actx), e).id, {
              run: runOf(actx),
              by: 'activity',
              kind: 'skip',
              key: path,
              status: 'skipped',
              target: input.audit.target,
              step: path,
            });
          }
          continue;
        }
        const action = renderStep(step, ctx);
        const { call, outcome } = await perform('sshSteps', input.target.name, path, action);
        if (!ok(action, outcome)) {
          const { failure: f, result } = failure(call, action as Extract<RenderedAction, { kind: 'ssh' }>, outcome);
          if ('error' in outcome && outcome.retryable) throw f; // the group is retried, its finished steps re-attach
          if (input.audit) stepRecord(actx, { ...input.audit, key: path, kind: 'step' }, action, 'failed', f.message);
          return {
            done,
            failed: {
              path,
              type: f.type ?? FAILURES.sshCommandFailed,
              message: f.message,
              result,
              audited: input.audit !== undefined,
            },
          } satisfies StepGroupResult;
        }
        const result = sshResult(outcome);
        const outputs = outputsFor(step.outputs, step.id, result);
        steps[step.id] = { outputs, status: 'succeeded' };
        done.push({ path, status: 'succeeded', outputs, result, audited: input.audit !== undefined });
        if (input.audit) stepRecord(actx, { ...input.audit, key: path, kind: 'step' }, action, 'succeeded');
      }
      return { done };
    },

    async audit(input: { events: WorkflowAuditEvent[] }) {
      const ctx = Context.current();
      for (const e of input.events) {
        record(workflowEntry(runIds(ctx), e).id, {
          run: runOf(ctx),
          attempt: ctx.info.attempt,
          by: 'workflow',
          kind: e.kind,
          key: e.key,
          status: e.status,
          target: e.target,
          step: e.step,
          time: e.time,
          error: e.error,
          approvals: e.approvals,
          detail: e.detail,
        });
      }
    },

    async prepare(input) {
      return prepareRun(config, input);
    },

    async starterIdentity() {
      return undefined; // runs here say who started them, or are `unknown`
    },
    async windowState(input) {
      return windowState(config.calendars, input);
    },

    async watchHostLock(input) {
      return watchHostLock(env.client, logger, input);
    },
    async sendLockMessages(input) {
      return sendLockMessages(env.client, logger, input);
    },
    async checkHostLocks(input) {
      return checkHostLocks(env.client, logger, input);
    },
    async watchLockHolder(input) {
      return watchLockHolder(env.client, input);
    },
    async recoverHostLocks(input) {
      return recoverHostLocks(env.client, logger, input);
    },

    async notify(input) {
      notifications.push(input);
      timeline.push(`notify ${input.channel}: ${input.message}`);
    },

    async remediationStatus(input) {
      const out: { workflowId: string; runId?: string; status: string }[] = [];
      for (const r of input.runs) {
        const d = await env.client.workflow.getHandle(r.workflowId, r.runId).describe();
        const map: Record<string, string> = { COMPLETED: 'succeeded', FAILED: 'failed', CANCELLED: 'cancelled' };
        if (d.status.name !== 'RUNNING') out.push({ ...r, status: map[d.status.name] ?? 'terminated' });
      }
      return out;
    },

    async escalate(input) {
      // The guard sends each escalation once per target: record it once (its Slack call).
      if (input.target !== 'slack') return { sent: [] };
      escalations.push(input);
      timeline.push(`escalate ${input.kind} ${input.runbook}: ${input.reason}`);
      return { sent: [] };
    },

    async sshKill(input) {
      kills.push({ host: input.target.name, key: input.key.stepPath, at: ++seq });
      timeline.push(`kill ${input.target.name} ${input.key.stepPath}`);
    },

    async prepareExec() {
      throw ApplicationFailure.nonRetryable('prepareExec is not stubbed in workflow tests', 'NotStubbed');
    },
    async sshUpload() {
      throw ApplicationFailure.nonRetryable('sshUpload is not stubbed in workflow tests', 'NotStubbed');
    },
    async httpStep() {
      throw ApplicationFailure.nonRetryable('httpStep is not stubbed in workflow tests', 'NotStubbed');
    },
  };

  return {
    activities,
    calls,
    audit,
    dropped,
    notifications,
    escalations,
    kills,
    timeline,
    script: (s) => {
      script = s;
    },
    keys: (host) => calls.filter((c) => host === undefined || c.host === host).map((c) => c.key),
  };
}

/** Resolves after `ms` of real time (a stub step that takes a while). */
export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Never resolves: a step that runs until it is cancelled. */
export const forever = () => new Promise<never>(() => undefined);

/**
 * A script under which every step stays in flight until no step has started for `quietMs` (real time), then does
 * what `then` says: steps that can run at the same time are seen running at the same time.
 */
export function overlapping(then: Script = () => undefined, quietMs = 300): Script {
  return async (call, calls) => {
    while (Date.now() - Math.max(...calls.map((c) => c.startedAt)) < quietMs) await delay(20);
    return then(call, calls);
  };
}

/** The calls grouped into waves: calls whose run times overlap (directly or through others) share a wave. Hosts per wave. */
export function waves(calls: readonly StepCall[]): string[][] {
  const out: { end: number; hosts: string[] }[] = [];
  for (const c of [...calls].sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1];
    if (last && c.start < last.end) {
      last.hosts.push(c.host);
      last.end = Math.max(last.end, c.end ?? Infinity);
    } else {
      out.push({ end: c.end ?? Infinity, hosts: [c.host] });
    }
  }
  return out.map((w) => w.hosts.sort());
}

/** The most calls in flight at once. */
export function maxInFlight(calls: readonly StepCall[]): number {
  const edges = calls
    .flatMap(
      (c) =>
        [
          [c.start, 1],
          [c.end ?? Infinity, -1],
        ] as const,
    )
    .sort((a, b) => a[0] - b[0]);
  let now = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (now += d));
  return max;
}
