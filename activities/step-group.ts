// Node side. A run of consecutive plain SSH steps on one target, executed in one local activity: each step is
// still rendered against the outputs of the ones before it, checked against its `when`, run under its own
// exactly-once record on the host, and audited on its own. Only the round trip through the workflow between
// steps is saved (about 7 ms a step on this stack). A retry of the group (a lost worker, a dropped connection)
// re-attaches to every step already started instead of running it again.
import type { ExprContext } from '../dsl/expr';
import { bounded, HISTORY_LIMITS, outputsFor } from './result-size';
import { renderStep, shouldRun } from '../dsl/render';
import type { StepDoc } from '../dsl/schema';
import type { AuditEntry } from '../audit/record';
import { stepEntry, workflowEntry, type StepAuditContext } from '../audit/events';
import { outcomeOf } from '../audit/outcome';
import { whenSkipped } from '../audit/run-events';
import type { SecretDeclaration, Secrets } from './secrets/providers';
import type { SshTarget } from '../dsl/selector';
import type { SshPool } from './ssh/pool';
import { runSshStep, type SshStepResult } from './ssh/step';

export interface StepGroupInput {
  target: SshTarget;
  steps: { step: StepDoc; path: string; timeoutMs: number }[];
  /** The expression context before the first step (its `steps` holds the outputs so far). */
  ctx: ExprContext;
  secrets?: Record<string, SecretDeclaration>;
  /** Shared parts of the steps' audit context (key and kind are per step). */
  audit?: Omit<StepAuditContext, 'key' | 'kind'>;
  /** Record keys include the run id (runs recorded before that keep the old keys). */
  runScoped?: boolean;
}

export interface GroupStepDone {
  path: string;
  status: 'succeeded' | 'skipped';
  outputs: Record<string, unknown>;
  result?: SshStepResult;
  /** False when the audit store refused the record: the workflow writes it. */
  audited: boolean;
}

export interface StepGroupResult {
  /** The steps done, in order: all of them, or fewer when the reply reached its size budget (no failure then). */
  done: GroupStepDone[];
  /** The step that failed (the group stops there), as the failure the workflow raises for it. */
  failed?: { path: string; type: string; message: string; result?: unknown; audited: boolean };
}

export interface StepGroupDeps {
  ssh: SshPool;
  secrets: Secrets;
  run: { workflowId: string; runId: string };
  /** Writes one record; false when the store is unavailable. */
  record(entry: AuditEntry): Promise<boolean>;
  /** Whether an error ends the step for good (as opposed to a retry of the group). */
  isFinal(err: unknown): boolean;
}

export async function runStepGroup(deps: StepGroupDeps, input: StepGroupInput): Promise<StepGroupResult> {
  const steps = { ...(input.ctx.steps as Record<string, unknown> | undefined) } as Record<
    string,
    { outputs: Record<string, unknown>; status: string }
  >;
  const done: GroupStepDone[] = [];
  let size = 0;
  // A step's record is written while the next step runs (the store keeps them in order); all are written
  // before the group reports back, so the workflow never moves on past an unrecorded step.
  const writes: Promise<void>[] = [];
  const recordFor = (d: GroupStepDone, entry: AuditEntry) =>
    writes.push(
      deps.record(entry).then((ok) => {
        d.audited = ok;
      }),
    );
  try {
    for (const { step, path, timeoutMs } of input.steps) {
      const ctx: ExprContext = { ...input.ctx, steps };
      const audit = input.audit && { ...input.audit, key: path, kind: 'step' as const, stepId: step.id };
      let action: ReturnType<typeof renderStep> | undefined;
      try {
        if (!shouldRun(step, ctx)) {
          steps[step.id] = { outputs: {}, status: 'skipped' };
          const d: GroupStepDone = { path, status: 'skipped', outputs: {}, audited: true };
          done.push(d);
          if (audit) {
            recordFor(
              d,
              workflowEntry(deps.run, {
                ...whenSkipped(path, audit.target, step.when),
                stepId: step.id,
                time: new Date().toISOString(),
                runbook: audit.runbook,
                initiator: audit.initiator,
              }),
            );
          }
          continue;
        }
        action = renderStep(step, ctx);
        if (action.kind !== 'ssh') throw new Error(`step "${step.id}" is not an SSH step`);
        const result = await runSshStep(deps.ssh, deps.secrets, {
          target: input.target,
          action,
          key: {
            workflowId: deps.run.workflowId,
            stepPath: path,
            ...(input.runScoped ? { runId: deps.run.runId } : {}),
          },
          secrets: input.secrets,
          timeoutMs,
        });
        const outputs = outputsFor(step.outputs, step.id, result);
        steps[step.id] = { outputs, status: 'succeeded' };
        const small = bounded(result, {
          stdout: HISTORY_LIMITS.groupStep,
          stderr: HISTORY_LIMITS.groupStep,
          body: HISTORY_LIMITS.groupStep,
        });
        const d: GroupStepDone = { path, status: 'succeeded', outputs, result: small, audited: true };
        done.push(d);
        if (audit) recordFor(d, stepEntry(deps.run, audit, action, 'succeeded', outcomeOf(result)));
        // Hand back before the reply grows too large for history; the workflow runs the rest in another group.
        size += Buffer.byteLength(JSON.stringify(d));
        if (size > HISTORY_LIMITS.group) break;
      } catch (err) {
        if (!deps.isFinal(err)) throw err;
        // The failure is final (no retry of the group follows), so it is recorded here, with the rendered action.
        const e = err as Error & { result?: SshStepResult };
        const failed = { path, type: e.name, message: e.message, result: e.result && bounded(e.result), audited: true };
        if (audit)
          writes.push(
            deps.record(stepEntry(deps.run, audit, action, 'failed', outcomeOf(e.result), e.message)).then((ok) => {
              failed.audited = ok;
            }),
          );
        await Promise.all(writes);
        return { done, failed };
      }
    }
    await Promise.all(writes);
    return { done };
  } finally {
    await Promise.allSettled(writes); // never leave a write running after the activity ends
  }
}
