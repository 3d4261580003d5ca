// Workflow side (pure definitions, also imported by the CLI and the alert receiver). Signals, queries and updates
// of a runbook run and of an alert guard.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AlertDelivery, GuardAnswer, GuardControl, GuardStatus } from './guard-state';
import type { WindowOverride } from '../dsl/run-input';

export interface ApprovalDecision {
  /** Approval id: `gate` for the runbook's approval, else the step path. */
  id: string;
  approve: boolean;
  by: string;
  groups?: string[];
  comment?: string;
  /** Set by the run itself (never by a signal: the decide schema refuses the field): a rejection no approver list gates. */
  system?: boolean;
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
  status:
    | 'preparing'
    | 'awaiting-approval'
    | 'waiting-window'
    | 'running'
    | 'rolling-back'
    | 'succeeded'
    | 'failed'
    | 'cancelled'
    | 'blocked';
  batch: { index: number; of: number };
  hosts: Record<string, { state: HostState; step?: string; error?: string }>;
  pendingApprovals: PendingApproval[];
  decisions: ApprovalDecision[];
  /** The final result, once the run ended (also for failed and cancelled runs). */
  result?: unknown;
  /** The change window, as last checked (runs with a window or under a global calendar). */
  window?: {
    open: boolean;
    calendars: { name: string; open: boolean; event?: string }[];
    nextChange?: string;
    waitingUntil?: string;
    /** Who overrode it: the run keeps to no window since. */
    overriddenBy?: string;
  };
  /** Audit records that could not be written (the store stayed down through the retries). */
  auditErrors?: string[];
}

/** An operator's approve/reject for a pending approval. */
export const decideSignal = defineSignal<[ApprovalDecision]>('decide');
/** Current step, per-host state and pending approvals. */
export const stateQuery = defineQuery<RunState>('state');

/** An operator lets a run proceed outside its change window (the reason is recorded). */
export const overrideWindowSignal = defineSignal<[WindowOverride]>('overrideWindow');

/** The alert that started this run resolved (sent by its alert guard): an approval gate still pending is rejected. */
export const alertResolvedSignal = defineSignal<[{ at: string }]>('alertResolved');
/** A remediation run tells its alert guard it ended (the guard may have continued as new since it started the run). */
export const runEndedSignal = defineSignal<[{ workflowId: string; runId: string; status: string }]>('runEnded');

/** The alerts of one request for this guard's runbook (from the receiver), decided in order; answers what became of each. */
export const deliverAlertUpdate = defineUpdate<GuardAnswer[], [AlertDelivery[]]>('deliverAlert');
/** Freeze, unfreeze, reset the breaker, or just read the status (through an update so a guard can be started by it). */
export const controlGuardUpdate = defineUpdate<GuardStatus, [GuardControl]>('controlGuard');
export const guardStatusQuery = defineQuery<GuardStatus>('guardStatus');
