// Workflow side (deterministic). Approvals: wait for operators' decisions (signals) until a quorum of allowed
// approvers approves, anyone allowed rejects, or the timeout rejects or escalates. Who decided and why is kept.
import { ApplicationFailure, condition, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RenderedAction } from '../dsl/render';
import type { ApprovalDecision, PendingApproval, RunState } from './messages';

type ApprovalAction = Extract<RenderedAction, { kind: 'approval' }>;

const { notify } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 5 } });

/** Failure types of an approval. */
export const APPROVAL_FAILURES = { rejected: 'ApprovalRejected', timedOut: 'ApprovalTimedOut' } as const;

function allowed(a: ApprovalAction, d: ApprovalDecision): boolean {
  if (a.users.length === 0 && a.groups.length === 0) return true;
  return a.users.includes(d.by) || (d.groups ?? []).some((g) => a.groups.includes(g));
}

/**
 * Waits for approval `id`. Decisions arrive through `inbox` (filled by the decide signal handler); the ones from
 * people not allowed to decide are recorded and ignored.
 */
export async function awaitApproval(id: string, a: ApprovalAction, state: RunState, inbox: ApprovalDecision[], runbook: string,
  timeoutMs: number): Promise<void> {
  const pending: PendingApproval = { id, message: a.message, users: a.users, groups: a.groups, quorum: a.quorum, approvals: [],
    deadline: new Date(Date.now() + timeoutMs).toISOString() };
  state.pendingApprovals.push(pending);
  let rejected: ApprovalDecision | undefined;
  const tally = () => {
    for (const d of inbox.splice(0).filter((x) => x.id === id)) {
      state.decisions.push({ ...d });
      if (!allowed(a, d)) continue;
      if (!d.approve) rejected = d;
      else if (!pending.approvals.some((p) => p.by === d.by)) pending.approvals.push({ by: d.by, comment: d.comment });
    }
    return rejected !== undefined || pending.approvals.length >= a.quorum;
  };
  try {
    let decided = await condition(tally, timeoutMs);
    if (!decided && a.onTimeout === 'escalate') {
      await notify({ channel: 'escalation', message: `${runbook}: approval "${id}" got no decision in time; waiting once more. ${a.message}` });
      pending.deadline = new Date(Date.now() + timeoutMs).toISOString();
      decided = await condition(tally, timeoutMs);
    }
    if (rejected) {
      throw ApplicationFailure.nonRetryable(`Approval "${id}" rejected by ${rejected.by}${rejected.comment ? `: ${rejected.comment}` : ''}`, APPROVAL_FAILURES.rejected);
    }
    if (!decided) throw ApplicationFailure.nonRetryable(`Approval "${id}" got ${pending.approvals.length} of ${a.quorum} approvals in time`, APPROVAL_FAILURES.timedOut);
  } finally {
    state.pendingApprovals = state.pendingApprovals.filter((p) => p !== pending);
  }
}
