// Node side. Turns what activities and the workflow report into change records: deterministic ids, the action
// as an operator reads it (secrets as <secret:NAME>, known secret values masked), output digest and tail.
import { createHash } from 'node:crypto';
import { redact, redactDeep } from '../common/redact';
import { actionText } from './action-text';
import type { RenderedAction } from '../dsl/render';
import type { StepOutcome } from './outcome';
import { recordId, type AuditEntry, type AuditInitiator } from './record';

/** What the workflow tells a step activity so the activity can record its own outcome (no extra round trip). */
export interface StepAuditContext {
  runbook: { name: string; contentHash: string };
  initiator: AuditInitiator;
  /** The step's record key: its path plus attempt (#n), poll (@n) and delegated-target suffixes. */
  key: string;
  kind: 'step' | 'rollback';
  /** The step's id (`restart`, `rollback:undo_a`). */
  stepId?: string;
  target?: string;
  approvals?: { by: string; comment?: string }[];
}

/** An event the workflow records itself (skips, approvals, cancels, failures, run start and end). */
export interface WorkflowAuditEvent extends Pick<
  AuditEntry,
  'time' | 'kind' | 'runbook' | 'initiator' | 'step' | 'stepId' | 'target' | 'approvals' | 'status' | 'error' | 'detail'
> {
  /** Identifies the event within the run (with the workflow and run ids it makes the record id). */
  key: string;
  /** The rendered action (the record keeps its one-line description). */
  action?: RenderedAction;
  /** A step's result, when the workflow records a success its activity could not (the store was down). */
  outcome?: StepOutcome;
}

const TAIL_BYTES = 1024;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function tail(text: string): string {
  const t = text.length > TAIL_BYTES ? text.slice(-TAIL_BYTES) : text;
  return redact(t);
}

/** The action as recorded: one line an operator can read; secret references stay references. */
export function describeAction(action: RenderedAction | undefined): string | undefined {
  return action ? redact(actionText(action)) : undefined;
}

/** Exit code or HTTP status, duration, and the output's digest and (redacted) tail. */
function outcomeFields(o: StepOutcome): Pick<AuditEntry, 'exitCode' | 'httpStatus' | 'durationMs' | 'output'> {
  const output =
    o.body !== undefined
      ? { digest: `sha256:${sha256(o.body)}`, bytes: Buffer.byteLength(o.body), tail: tail(o.body) }
      : o.stdout !== undefined
        ? {
            digest: o.stdoutSha256 ? `sha256:${o.stdoutSha256}` : o.stdoutBytes ? undefined : `sha256:${sha256('')}`,
            bytes: o.stdoutBytes,
            tail: tail(o.stdout),
          }
        : undefined;
  return { exitCode: o.exitCode, httpStatus: o.httpStatus, durationMs: o.durationMs, output };
}

/** The record of a step's outcome, written by the step's activity (or its step group). */
export function stepEntry(
  run: { workflowId: string; runId: string },
  ctx: StepAuditContext,
  action: RenderedAction | undefined,
  status: 'succeeded' | 'failed',
  outcome: StepOutcome | undefined,
  error?: string,
): AuditEntry {
  return workflowEntry(run, {
    key: ctx.key,
    time: new Date().toISOString(),
    kind: ctx.kind,
    runbook: ctx.runbook,
    initiator: ctx.initiator,
    step: ctx.key,
    stepId: ctx.stepId,
    target: ctx.target,
    action,
    approvals: ctx.approvals,
    status,
    error,
    outcome,
  });
}

/** The record of an event the workflow reports. A step failure shares the outcome id of its step's success. */
export function workflowEntry(run: { workflowId: string; runId: string }, e: WorkflowAuditEvent): AuditEntry {
  const idParts =
    e.kind === 'step' || e.kind === 'rollback' ? ['outcome', e.key, e.target ?? ''] : [e.kind, e.key, e.target ?? ''];
  return {
    id: recordId(run.workflowId, run.runId, ...idParts),
    time: e.time,
    kind: e.kind,
    run,
    runbook: e.runbook,
    initiator: e.initiator,
    step: e.step,
    stepId: e.stepId,
    target: e.target,
    action: describeAction(e.action),
    approvals: e.approvals?.length ? e.approvals : undefined,
    status: e.status,
    ...(e.outcome ? outcomeFields(e.outcome) : {}),
    error: e.error === undefined ? undefined : redact(e.error),
    detail: e.detail === undefined ? undefined : redactDeep(e.detail),
  };
}
