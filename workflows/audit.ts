// Workflow side (deterministic). Records the events the workflow itself sees (run start and end, skips, step
// failures, approvals, cancels) through a local activity. Step successes are recorded by the step's own
// activity. Recording runs even while the run is being cancelled, and never fails the run: a store that stays
// down after retries is reported in the run's state and result instead.
import { CancellationScope, log, patched, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { StepAuditContext, WorkflowAuditEvent } from '../audit/events';
import { isRollback, stepIdAt, type RunEvent } from '../audit/run-events';
import type { RunbookDoc } from '../dsl/schema';
import type { RunState } from './messages';
import { ACTIVITY_OPTIONS } from './activity-options';
import { auditSummary } from './summaries';
import { countAuditFailure } from './metrics';

/** The audit activity, its summary naming the records it writes (summaries.ts). */
const auditor = (summary: string) => proxyLocalActivities<Activities>({ ...ACTIVITY_OPTIONS.audit, summary });

/** What every record of the run shares, kept on the run's environment. */
export interface RunAudit {
  /** False when replaying a run recorded before the audit existed. */
  on: boolean;
  runbook: { name: string; contentHash: string };
  initiator: { trigger: string; id: string };
  /** Approvals granted so far in the run; step records carry them. */
  approvals: { by: string; comment?: string }[];
  /** The runbook once prepared, so records name steps by id (kept in the workflow's memory, never sent). */
  doc?: Pick<RunbookDoc, 'steps' | 'rollback'>;
}

export function startAudit(runbook: string, trigger: string, initiator: string): RunAudit {
  return {
    on: patched('audit'),
    runbook: { name: runbook, contentHash: '' },
    initiator: { trigger, id: initiator },
    approvals: [],
  };
}

/**
 * Records events of this run (built by audit/run-events.ts, which also says who records what); see the module
 * comment for failure handling. `state` receives the errors of records that could not be written.
 */
export async function recordEvents(
  a: RunAudit,
  state: Pick<RunState, 'auditErrors'>,
  ...events: RunEvent[]
): Promise<void> {
  if (!a.on || events.length === 0) return;
  const time = new Date().toISOString();
  const full: WorkflowAuditEvent[] = events.map((e) => {
    const stepId = e.stepId ?? stepIdAt(a.doc, e.step);
    return { ...e, ...(stepId ? { stepId } : {}), time, runbook: a.runbook, initiator: a.initiator };
  });
  try {
    await CancellationScope.nonCancellable(() => auditor(auditSummary(full)).audit({ events: full }));
  } catch (err) {
    const message = `audit write failed for ${events.map((e) => `${e.kind} ${e.key}`).join(', ')}: ${(err as Error).message}`;
    log.error(message);
    countAuditFailure(a.runbook.name, events.length);
    state.auditErrors = [...(state.auditErrors ?? []), message];
  }
}

/** What every step record of a target shares (a step group's activity adds each step's key). */
export function auditBase(a: RunAudit, target: string | undefined): Omit<StepAuditContext, 'key' | 'kind'> | undefined {
  if (!a.on) return undefined;
  return {
    runbook: a.runbook,
    initiator: a.initiator,
    target,
    approvals: a.approvals.length ? [...a.approvals] : undefined,
  };
}

/** The context a step activity needs to record its own outcome. */
export function stepAudit(
  a: RunAudit,
  key: string,
  path: string,
  target: string | undefined,
): StepAuditContext | undefined {
  const base = auditBase(a, target);
  const stepId = stepIdAt(a.doc, path);
  return base && { ...base, key, kind: isRollback(path) ? 'rollback' : 'step', ...(stepId ? { stepId } : {}) };
}
