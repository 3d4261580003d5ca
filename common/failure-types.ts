// Pure (workflow-safe). Failure types the engine raises itself, by name: workflows and the CLI branch on these
// strings (a Temporal failure's `type`), so they are written once here.
export const FAILURES = {
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
  /** A workflow id the engine reserves (host locks) was used for another purpose. */
  reservedId: 'ReservedWorkflowId',
  hostLocked: 'HostLocked',
  noTarget: 'NoTarget',
  untilTimeout: 'UntilTimeout',
  runbookFailed: 'RunbookFailed',
} as const;

/** Failures of the prepare step: bad input, final at once. */
export const PREPARE_FAILURES = [FAILURES.inputInvalid, FAILURES.unknownRunbook, FAILURES.runbookInvalid, FAILURES.paramsInvalid,
  FAILURES.inventoryInvalid, FAILURES.targetsInvalid, FAILURES.execDisabled];

/** Workflow ids starting with this are host locks; no other workflow may use them. */
export const HOST_LOCK_PREFIX = 'host-lock:';
