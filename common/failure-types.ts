// Pure (workflow-safe). Every failure type the engine raises or branches on, by name, in one map: a Temporal
// failure's `type` is the name of the error class an activity threw (SSH, HTTP, secrets, expressions) or a type
// the workflow raises itself. Error classes take their `name` from here, and the sets below say what is final,
// what a step's own `retry` covers, and what ends a step group, so no list of names is written twice.
export const FAILURES = {
  // Bad input: the run is refused before it does anything.
  /** The workflow input does not match its schema (unknown field, wrong type, a value not allowed). */
  inputInvalid: 'InputInvalid',
  /** No runbook of that name in the worker's runbook directory. */
  unknownRunbook: 'UnknownRunbook',
  runbookInvalid: 'RunbookInvalid',
  paramsInvalid: 'ParamsInvalid',
  /** The inventory is not on the worker's allow-list, or does not load. */
  inventoryInvalid: 'InventoryInvalid',
  targetsInvalid: 'TargetsInvalid',
  /** The worker does not serve ad hoc commands (RUNBOOK_ALLOW_EXEC is off). */
  execDisabled: 'ExecDisabled',
  /** The run carries its runbook and the worker runs only its directory's (RUNBOOK_ALLOW_RUNBOOK_FILES is off). */
  runbookFilesDisabled: 'RunbookFilesDisabled',
  /** The worker's calendar file does not load, or lacks a calendar a run needs. */
  calendarInvalid: 'CalendarInvalid',
  /** A workflow id the engine reserves (host locks, lock managers, alert guards) was used for another purpose. */
  reservedId: 'ReservedWorkflowId',

  // Raised by the interpreter.
  hostLocked: 'HostLocked',
  noTarget: 'NoTarget',
  untilTimeout: 'UntilTimeout',
  approvalRejected: 'ApprovalRejected',
  approvalTimedOut: 'ApprovalTimedOut',
  runbookFailed: 'RunbookFailed',
  /** A sub-runbook ended blocked: a change calendar kept it out. */
  windowBlocked: 'WindowBlocked',
  /** Anything else that went wrong inside the workflow (an expression over input that does not fit it). */
  runbookError: 'RunbookError',

  // SSH (activities/ssh/errors.ts).
  /** The host presented a key that known_hosts does not list, lists differently or revokes. */
  hostKey: 'HostKeyError',
  sshAuth: 'SshAuthError',
  sshConnect: 'SshConnectError',
  sshConnectionLost: 'SshConnectionLost',
  sshInputIncomplete: 'SshInputIncomplete',
  sshCommandFailed: 'SshCommandFailed',
  sshCommandLost: 'SshCommandLost',
  sshCommandCancelled: 'SshCommandCancelled',
  sshWrapper: 'SshWrapperError',
  transferChecksum: 'TransferChecksumError',

  // HTTP (activities/http/request.ts).
  httpConnect: 'HttpConnectError',
  httpServer: 'HttpServerError',
  httpUnexpectedStatus: 'HttpUnexpectedStatus',
  httpTls: 'HttpTlsError',
  httpBodyTooLarge: 'HttpBodyTooLarge',

  // Shared by every kind of step.
  secret: 'SecretError',
  expression: 'ExpressionError',
  output: 'OutputError',
  notify: 'NotifyError',
  /** A notification endpoint refused the message (4xx other than 429): retrying cannot help. */
  notifyRefused: 'NotifyRefused',
  /** An approval ended because the alert that started the run resolved (the run is cancelled, nothing changed). */
  alertResolved: 'AlertResolved',
} as const;

export type FailureType = (typeof FAILURES)[keyof typeof FAILURES];

const F = FAILURES;

/** Failures of the prepare step: bad input, final at once. */
export const PREPARE_FAILURES: readonly FailureType[] = [
  F.inputInvalid,
  F.unknownRunbook,
  F.runbookInvalid,
  F.paramsInvalid,
  F.inventoryInvalid,
  F.targetsInvalid,
  F.execDisabled,
  F.runbookFilesDisabled,
  F.calendarInvalid,
];

/** Activity failures no retry can fix: the activity marks them non-retryable. */
export const FINAL_FAILURES: readonly FailureType[] = [
  F.hostKey,
  F.sshAuth,
  F.sshCommandLost,
  F.sshCommandCancelled,
  F.sshWrapper,
  F.httpUnexpectedStatus,
  F.httpTls,
  F.httpBodyTooLarge,
  F.secret,
  F.output,
];

/**
 * The step's own command or request failed (as opposed to the engine or the connection): what a step's `retry`
 * and `until` repeat. A failed command is final for its activity unless the step asked for retries.
 */
export const STEP_FAILURES: readonly FailureType[] = [F.sshCommandFailed, F.httpUnexpectedStatus, F.httpServer];

/**
 * Failures that end a step for good inside a step group: the final ones, a failed command (a grouped step has no
 * `retry`) and an expression that does not evaluate. Any other failure retries the group (its steps re-attach).
 */
export const GROUP_FINAL_FAILURES: readonly FailureType[] = [...FINAL_FAILURES, F.sshCommandFailed, F.expression];

/** Whether a failure type is in a set (types arrive as plain strings). */
export const isIn = (set: readonly FailureType[], type: string | undefined): boolean =>
  type !== undefined && (set as readonly string[]).includes(type);

/** The failure type of an error: its own or, for an activity or child failure, its cause's. */
export function failureType(err: unknown): string | undefined {
  const e = err as { type?: string; cause?: { type?: string } } | undefined;
  return e?.cause?.type ?? e?.type;
}

/** The base of an error class whose name is a failure type (the name becomes the Temporal failure's `type`). */
export function failureClass<T extends FailureType>(type: T) {
  return class extends Error {
    override readonly name: T = type;
  };
}

/** Workflow ids starting with this are host locks (of runs recorded before the lock manager); no other workflow may use them. */
export const HOST_LOCK_PREFIX = 'host-lock:';

/** Workflow ids starting with this are host lock managers (workflows/host-lock-manager.ts), one per task queue; reserved. */
export const HOST_LOCK_MANAGER_PREFIX = 'runbook-host-locks:';

/** The workflow id of the host lock manager of the runs on `taskQueue`. */
export const hostLockManagerId = (taskQueue: string): string => `${HOST_LOCK_MANAGER_PREFIX}${taskQueue}`;

/** Workflow ids of alert guards (workflows/alert-guard.ts), one per runbook; reserved like host locks. */
export const ALERT_GUARD_PREFIX = 'alert-guard:';
