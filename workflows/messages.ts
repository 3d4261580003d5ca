// Workflow side (pure definitions, also imported by the CLI). Signals and queries of a runbook run.
import { defineQuery, defineSignal } from '@temporalio/workflow';

export interface ApprovalDecision {
  /** Approval id: `gate` for the runbook's approval, else the step path. */
  id: string;
  approve: boolean;
  by: string;
  groups?: string[];
  comment?: string;
}

export type HostState = 'pending' | 'waiting-lock' | 'running' | 'succeeded' | 'failed' | 'rolled-back' | 'skipped';

export interface PendingApproval {
  id: string;
  message: string;
  users: string[];
  groups: string[];
  quorum: number;
  approvals: { by: string; comment?: string }[];
  deadline: string;
}

export interface RunState {
  runbook: string;
  contentHash: string;
  status: 'preparing' | 'awaiting-approval' | 'running' | 'rolling-back' | 'succeeded' | 'failed' | 'cancelled';
  batch: { index: number; of: number };
  hosts: Record<string, { state: HostState; step?: string; error?: string }>;
  pendingApprovals: PendingApproval[];
  decisions: ApprovalDecision[];
  /** The final result, once the run ended (also for failed and cancelled runs). */
  result?: unknown;
  /** Audit records that could not be written (the store stayed down through the retries). */
  auditErrors?: string[];
}

/** An operator's approve/reject for a pending approval. */
export const decideSignal = defineSignal<[ApprovalDecision]>('decide');
/** Current step, per-host state and pending approvals. */
export const stateQuery = defineQuery<RunState>('state');
