// Workflow side (deterministic). Approvals: wait for operators' decisions (signals) until a quorum of allowed
// approvers approves, anyone allowed rejects, or the timeout rejects or escalates. Who decided and why is kept.
import { ApplicationFailure, condition, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RenderedAction } from '../dsl/render';
import type { ApprovalDecision, PendingApproval, RunState } from './messages';
import { recordEvents, type RunAudit } from './audit';
import { approvalDecided, approvalEnded, approvalEscalated } from '../audit/run-events';
import { ACTIVITY_OPTIONS } from './activity-options';
import { FAILURES } from '../common/failure-types';
import { showProgress } from './progress';
import { approvalWaitSummary, notifySummary } from './summaries';

type ApprovalAction = Extract<RenderedAction, { kind: 'approval' }>;

/** The notify activity, its summary saying why it notifies. */
const notifier = (summary: string) => proxyActivities<Activities>({ ...ACTIVITY_OPTIONS.notify, summary });

function allowed(a: ApprovalAction, d: ApprovalDecision): boolean {
  if (a.users.length === 0 && a.groups.length === 0) return true;
  return a.users.includes(d.by) || (d.groups ?? []).some((g) => a.groups.includes(g));
}

/** The id of an approval: `gate`, the step path, or PATH@HOST when each target waits at the step on its own. */
export function approvalId(path: string, target?: string): string {
  return target ? `${path}@${target}` : path;
}

/**
 * Waits for the approval at `path` (for `target`, when given). Decisions arrive in `inbox`, which the decide
 * signal handler only appends to: every pending approval reads it with its own cursor, so a decision is never
 * lost to another approval pending at the same time. A decision names the approval by its id (PATH@HOST, which
 * counts even when sent before the approval was reached) or by its path (every host waiting there at the time:
 * it does not carry over to hosts of later batches). The ones from people not allowed to decide are recorded
 * and ignored.
 */
export async function awaitApproval(
  path: string,
  a: ApprovalAction,
  state: RunState,
  inbox: readonly ApprovalDecision[],
  runbook: string,
  timeoutMs: number,
  audit: RunAudit,
  target?: string,
): Promise<void> {
  const id = approvalId(path, target);
  const pending: PendingApproval = {
    id,
    message: a.message,
    users: a.users,
    groups: a.groups,
    quorum: a.quorum,
    approvals: [],
    deadline: new Date(Date.now() + timeoutMs).toISOString(),
  };
  state.pendingApprovals.push(pending);
  showProgress(state);
  let rejected: ApprovalDecision | undefined;
  let cursor = 0;
  /** A decision naming only the path counts from here on (else it would also decide for later batches' hosts). */
  const since = inbox.length;
  /** Decisions to record: the condition callback cannot await, so they are written once it resolves. */
  const heard: { n: number; d: ApprovalDecision; counted: boolean }[] = [];
  const tally = () => {
    for (; cursor < inbox.length; cursor++) {
      const d = inbox[cursor]!;
      if (d.id !== id && (d.id !== path || cursor < since)) continue;
      const counts = d.system === true || allowed(a, d);
      heard.push({ n: cursor + 1, d, counted: counts });
      if (!counts) continue;
      if (!d.approve) rejected = d;
      else if (!pending.approvals.some((p) => p.by === d.by)) pending.approvals.push({ by: d.by, comment: d.comment });
    }
    return rejected !== undefined || pending.approvals.length >= a.quorum;
  };
  const recordHeard = () => {
    showProgress(state); // approvals counted since
    return recordEvents(
      audit,
      state,
      ...heard.splice(0).map(({ n, d, counted }) => approvalDecided(id, n, path, target, d, counted)),
    );
  };
  const outcome = (status: string, error?: string) =>
    recordEvents(audit, state, approvalEnded(id, path, target, a, status, pending.approvals, error));
  try {
    const waiting = { summary: approvalWaitSummary(id, a.quorum) };
    let decided = await condition(tally, timeoutMs, waiting);
    await recordHeard();
    if (!decided && a.onTimeout === 'escalate') {
      const message = `${runbook}: approval "${id}" got no decision in time; waiting once more. ${a.message}`;
      await notifier(notifySummary(`escalate approval ${id}`, 'escalation', message)).notify({
        channel: 'escalation',
        message,
      });
      await recordEvents(audit, state, approvalEscalated(id, path, target, a));
      pending.deadline = new Date(Date.now() + timeoutMs).toISOString();
      showProgress(state);
      decided = await condition(tally, timeoutMs, waiting);
      await recordHeard();
    }
    if (rejected) {
      await outcome('rejected', `rejected by ${rejected.by}${rejected.comment ? `: ${rejected.comment}` : ''}`);
      throw ApplicationFailure.nonRetryable(
        `Approval "${id}" rejected by ${rejected.by}${rejected.comment ? `: ${rejected.comment}` : ''}`,
        rejected.system ? FAILURES.alertResolved : FAILURES.approvalRejected,
      );
    }
    if (!decided) {
      const message = `Approval "${id}" got ${pending.approvals.length} of ${a.quorum} approvals in time`;
      await outcome('timed-out', message);
      throw ApplicationFailure.nonRetryable(message, FAILURES.approvalTimedOut);
    }
    await outcome('approved');
    audit.approvals.push(...pending.approvals);
  } finally {
    state.pendingApprovals = state.pendingApprovals.filter((p) => p !== pending);
    showProgress(state);
  }
}
