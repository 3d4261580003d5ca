// Pure (workflow-safe). The audit events of a run, built in one place by the workflow and by the step
// activities alike, and the one rule for who writes which record:
//
//   The activity that performed an effect records it: sshStep and httpStep their success, a step group each of
//   its steps (success, `when` skip, and the failure that ends the group), and says so in its reply (`audited`).
//   The workflow records everything else (run start and end, refusals, approvals, target skips, cancels, sleeps,
//   notifications, uploads, sub-runbooks, a failed attempt of a step) and any record an activity reports it could
//   not write (`audited: false`: the store was down; the workflow's audit activity retries).
import type { RenderedAction } from '../dsl/render';
import type { RunbookDoc, StepDoc } from '../dsl/schema';
import type { StepOutcome } from './outcome';
import type { WorkflowAuditEvent } from './events';

/** An event as the run reports it; the run's runbook, initiator and the time are added when it is recorded. */
export type RunEvent = Omit<WorkflowAuditEvent, 'time' | 'runbook' | 'initiator'>;

type ApprovalAction = Extract<RenderedAction, { kind: 'approval' }>;

/** Whether a step path is a rollback step's (`rollback[i]`, or `PATH.rollback[i]` of a step's own rollback). */
export function isRollback(path: string): boolean {
  return path.startsWith('rollback[') || path.includes('.rollback');
}

/**
 * The step id a record names, from its path or record key (`steps[1]#2`, `steps[0].rollback[1]`, `rollback[0]`,
 * `steps[2].parallel.steps[1]:host-2`): `restart`, `rollback:undo_a` for a rollback step, `gate` for the gate.
 * Positions say little to an operator reading the audit trail; the id is what the runbook calls the step.
 * Undefined when the path does not lead to a step of `rb` (a record of another kind).
 */
export function stepIdAt(
  rb: Pick<RunbookDoc, 'steps' | 'rollback'> | undefined,
  pathOrKey: string | undefined,
): string | undefined {
  if (!rb || !pathOrKey) return undefined;
  if (pathOrKey === 'gate') return 'gate';
  const head = /^(steps|rollback)\[(\d+)\]((?:\.(?:parallel\.steps|rollback)\[\d+\]|\.rollback)*)/.exec(pathOrKey);
  if (!head) return undefined;
  let step: StepDoc | undefined = (head[1] === 'steps' ? rb.steps : rb.rollback)?.[Number(head[2])];
  let rollback = head[1] === 'rollback';
  for (const seg of head[3]!.match(/\.(?:parallel\.steps|rollback)(?:\[\d+\])?/g) ?? []) {
    const i = Number(/\[(\d+)\]/.exec(seg)?.[1] ?? 0);
    if (seg.startsWith('.rollback')) {
      step = step?.rollback?.[i];
      rollback = true;
    } else step = step?.parallel?.steps[i];
  }
  if (!step) return undefined;
  return rollback ? `rollback:${step.id}` : step.id;
}

/** A step (or rollback step) attempt's end: `key` is its record key, `path` where it is in the runbook. */
export function stepEvent(
  key: string,
  path: string,
  target: string | undefined,
  status: 'succeeded' | 'failed' | 'cancelled',
  more: { action?: RenderedAction; error?: string; outcome?: StepOutcome; detail?: Record<string, unknown> } = {},
): RunEvent {
  return { key, kind: isRollback(path) ? 'rollback' : 'step', step: key, target, status, ...more };
}

/**
 * A step group cancelled while one of its steps ran (which one is not known): its own record (kind `cancel`, the
 * group's first path), apart from the outcome records of the group's steps that completed.
 */
export function groupCancelled(paths: string[], target: string, error: string): RunEvent {
  return {
    key: paths[0]!,
    kind: 'cancel',
    step: paths[0],
    target,
    status: 'cancelled',
    error,
    detail: { group: paths },
  };
}

/** A step skipped because its `when` was false. */
export function whenSkipped(path: string, target: string | undefined, when: string | undefined): RunEvent {
  return { key: path, kind: 'skip', step: path, target, status: 'skipped', detail: { when } };
}

/** A target the rollout never reached (a cancel, or failures past the threshold). */
export function targetSkipped(target: string, reason: string): RunEvent {
  return { key: 'target', kind: 'skip', target, status: 'skipped', detail: { reason } };
}

export function runStarted(detail: Record<string, unknown>): RunEvent {
  return { key: 'run', kind: 'run.started', status: 'started', detail };
}

/** The run's end: its status (`rejected` for a refused input or a failed prepare). */
export function runFinished(status: string, more: { error?: string; detail?: Record<string, unknown> } = {}): RunEvent {
  return { key: 'run', kind: 'run.finished', status, ...more };
}

/** A decision heard for an approval (`counted`: from someone allowed to decide); `n` numbers it in the run. */
export function approvalDecided(
  id: string,
  n: number,
  path: string,
  target: string | undefined,
  d: { approve: boolean; by: string; groups?: string[]; comment?: string },
  counted: boolean,
): RunEvent {
  return {
    key: `${id}/decision/${n}`,
    kind: 'approval.decision',
    step: path,
    target,
    status: d.approve ? 'approve' : 'reject',
    approvals: [{ by: d.by, comment: d.comment }],
    detail: { by: d.by, groups: d.groups ?? [], comment: d.comment ?? '', counted },
  };
}

/** An approval's end: approved, rejected or timed-out, with the approvals it got. */
export function approvalEnded(
  id: string,
  path: string,
  target: string | undefined,
  action: ApprovalAction,
  status: string,
  approvals: { by: string; comment?: string }[],
  error?: string,
): RunEvent {
  return {
    key: id,
    kind: 'approval',
    step: path,
    target,
    status,
    error,
    action,
    approvals,
    detail: { quorum: action.quorum, users: action.users, groups: action.groups },
  };
}

/** An approval that got no decision in time and waits once more (onTimeout: escalate). */
export function approvalEscalated(
  id: string,
  path: string,
  target: string | undefined,
  action: ApprovalAction,
): RunEvent {
  return { key: `${id}/escalated`, kind: 'approval', step: path, target, status: 'escalated', action };
}

export function runCancelled(hosts: Record<string, string>): RunEvent {
  return { key: 'run', kind: 'cancel', status: 'cancelled', detail: { hosts } };
}

/**
 * Whether the workflow writes a step's success record (see the rule above): not when the activity that ran it
 * records its own outcome and did.
 */
export function workflowRecordsSuccess(action: RenderedAction, reply: { audited?: boolean }): boolean {
  if (action.kind === 'approval') return false; // an approval records itself, decision by decision
  const byActivity = (action.kind === 'ssh' && !action.upload) || action.kind === 'http';
  return !byActivity || reply.audited === false;
}

/** What window records keep of a calendar check: each calendar's state and the event that makes it so. */
type WindowCheck = { calendars: { name: string; open: boolean; event?: string }[] };

/** The calendars of a window answer, as records keep them. */
function calendarsOf(w: WindowCheck) {
  return w.calendars.map((c) => ({ name: c.name, open: c.open, ...(c.event ? { event: c.event } : {}) }));
}

/** A change window was closed when the run reached `what` (the gate, a batch); `policy` says what it does next. */
export function windowClosed(
  seq: number,
  what: string,
  w: WindowCheck,
  reason: string,
  policy: string,
  reopens: string | undefined,
): RunEvent {
  return {
    key: `window/${seq}`,
    kind: 'window.closed',
    status: policy === 'wait' ? 'waiting' : 'blocked',
    detail: { at: what, reason, policy, reopens: reopens ?? null, calendars: calendarsOf(w) },
  };
}

/** The window opened again after the run waited `waitedMs`. */
export function windowOpened(seq: number, what: string, w: WindowCheck, waitedMs: number): RunEvent {
  return {
    key: `window/${seq}/opened`,
    kind: 'window.opened',
    status: 'open',
    detail: { at: what, waitedMs, calendars: calendarsOf(w) },
  };
}

/**
 * An operator's override of a closed window, with its reason: granted, or refused (`denied` names the calendars
 * whose `override` list does not include the overrider).
 */
export function windowOverridden(
  seq: number,
  what: string,
  w: WindowCheck,
  reason: string,
  o: { by: string; reason: string; groups?: string[] },
  denied: string[],
): RunEvent {
  return {
    key: `window/${seq}/override`,
    kind: 'window.override',
    status: denied.length ? 'refused' : 'overridden',
    detail: {
      at: what,
      closed: reason,
      by: o.by,
      ...(o.groups?.length ? { groups: o.groups } : {}),
      reason: o.reason,
      ...(denied.length ? { denied } : {}),
      calendars: calendarsOf(w),
    },
  };
}
