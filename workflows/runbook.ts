// Workflow side (deterministic). The runbook interpreter: prepare (validated JSON + content hash in history),
// an approval gate for high-risk runbooks, then the steps per target (target.ts) in rolling batches or in
// parallel with a failure threshold, rollback newest-first after a failure or a cancel, live state by query, and
// search attributes for the UI and `runbook list`.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  TemporalFailure,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import ms from 'ms';
import type { Activities } from '../activities';
import type { PreparedRun } from '../activities/prepare';
import { batchSizes, failureThreshold } from '../dsl/plan';
import { buildContext, renderStep, type RunInfo } from '../dsl/render';
import type { TargetHost } from '../dsl/selector';
import { awaitApproval } from './approval';
import {
  alertResolvedSignal,
  decideSignal,
  runEndedSignal,
  stateQuery,
  type ApprovalDecision,
  type RunState,
} from './messages';
import { Initiator, RunbookName, RunbookStatus, RunbookTargets, Trigger } from './search-attributes';
import { decideFeatures, errorText, type StepEnv } from './steps';
import { runTarget, type HostResult } from './target';
import { recordEvents, startAudit, type RunAudit } from './audit';
import { runCancelled, runFinished, runStarted, targetSkipped } from '../audit/run-events';
import type { TSchema } from '@sinclair/typebox';
import {
  DecisionSchema,
  inputProblems,
  isPrintableText,
  RunbookInputSchema,
  type RunbookInput,
} from '../dsl/run-input';
import {
  ALERT_GUARD_PREFIX,
  FAILURES,
  failureType,
  HOST_LOCK_MANAGER_PREFIX,
  HOST_LOCK_PREFIX,
} from '../common/failure-types';
import { ACTIVITY_OPTIONS } from './activity-options';
import { RunWindow } from './window';
import { observeHosts, showProgress } from './progress';
import { prepareSummary } from './summaries';
import { countRejectedRun, countRun } from './metrics';

export type { RunbookInput } from '../dsl/run-input';
export type { HostResult } from './target';

/** Decisions a run keeps at most (a flood of signals is ignored past this). */
const MAX_DECISIONS = 200;

/**
 * Refuses what a run's starter may not do: a malformed input (checked against its schema, unknown fields
 * refused), the fields only a parent run may set, and the workflow ids reserved for host locks.
 */
export function checkRunInput(input: unknown, schema: TSchema): void {
  const info = workflowInfo();
  const problems = inputProblems(schema, input);
  for (const prefix of [HOST_LOCK_PREFIX, HOST_LOCK_MANAGER_PREFIX])
    if (info.workflowId.startsWith(prefix))
      problems.unshift(`workflow id: ids starting with "${prefix}" are reserved for host locks`);
  if (info.workflowId.startsWith(ALERT_GUARD_PREFIX))
    problems.unshift(`workflow id: ids starting with "${ALERT_GUARD_PREFIX}" are reserved for alert guards`);
  const v = (input ?? {}) as Partial<RunbookInput>;
  if (!info.parent && v.heldHosts !== undefined)
    problems.push('input.heldHosts: set only by a parent run for its sub-runbook; remove it');
  if (!info.parent && v.trigger === 'sub-runbook')
    problems.push('input.trigger: "sub-runbook" is set only by a parent run; use manual, alert or schedule');
  if (problems.length) {
    throw ApplicationFailure.create({
      type: FAILURES.inputInvalid,
      nonRetryable: true,
      message: `The workflow input is invalid:\n${problems.join('\n')}`,
    });
  }
}

export interface RunbookResult {
  runbook: string;
  contentHash: string;
  /** `blocked`: a change calendar was closed and the window policy ended the run (hosts not reached are skipped). */
  status: 'succeeded' | 'degraded' | 'failed' | 'cancelled' | 'blocked';
  failures: number;
  /** Failures tolerated before the rollout stops. */
  threshold: number;
  hosts: Record<string, HostResult>;
  /** Why the run was blocked (status `blocked`). */
  blocked?: string;
}

/** The prepare activity of this input, its summary naming the runbook and the inventory. */
const preparer = (input: RunbookInput) =>
  proxyActivities<Activities>({ ...ACTIVITY_OPTIONS.prepare, summary: prepareSummary(input.runbook, input.inventory) })
    .prepare;

function setStatus(state: RunState, status: RunState['status']): void {
  state.status = status;
  showProgress(state);
  upsertSearchAttributes([{ key: RunbookStatus, value: status }]);
}

/** A runbook run. One an alert guard started tells the guard when it ends, however it ends. */
export async function runbook(input: RunbookInput): Promise<RunbookResult> {
  const guard = workflowInfo().parent?.workflowId;
  if (!guard?.startsWith(ALERT_GUARD_PREFIX)) return runRunbook(input);
  let status = 'failed';
  try {
    const result = await runRunbook(input);
    status = result.status;
    return result;
  } catch (err) {
    if (isCancellation(err)) status = 'cancelled';
    throw err;
  } finally {
    const { workflowId, runId } = workflowInfo();
    await CancellationScope.nonCancellable(() =>
      getExternalWorkflowHandle(guard)
        .signal(runEndedSignal, { workflowId, runId, status })
        .catch((err: unknown) => log.warn('alert guard not told', { error: (err as Error).message })),
    );
  }
}

async function runRunbook(input: RunbookInput): Promise<RunbookResult> {
  // The state query answers from the first activation on: a status asked right after the start (before the input is
  // checked and the starter looked up, which can wait on activities) must not fail with "query not registered".
  const state: RunState = {
    runbook: namedRunbook(input) ?? '',
    contentHash: '',
    status: 'preparing',
    batch: { index: 0, of: 0 },
    hosts: {},
    pendingApprovals: [],
    decisions: [],
  };
  setHandler(stateQuery, () => state);
  await refuseBadInput(input).catch((err: unknown) => {
    state.status = 'failed'; // its state says so, not `preparing`
    throw err;
  });
  const { initiator, trigger } = await startedBy(input);
  const audit = startAudit(input.runbook, trigger, initiator);
  state.runbook = input.runbook;
  const inbox = openRun(state, initiator, trigger);
  const prepared = await prepareRun(input, audit, state);
  const rb = prepared.runbook;

  const info = workflowInfo();
  // Only a parent run's held locks are honoured (checkRunInput refuses the field from anyone else).
  const heldHosts = info.parent ? (input.heldHosts ?? []) : [];
  const env: StepEnv = {
    prepared,
    state,
    inbox,
    initiator,
    audit,
    inventory: input.inventory,
    heldHosts,
    features: decideFeatures(),
  };
  const run: RunInfo = { id: info.workflowId, initiator, trigger };
  const window = new RunWindow(prepared.window, audit, state, input.windowOverride, () => inbox.some((d) => d.system));
  env.windowOverride = () => window.activeOverride;
  const rollout = new Rollout(env, run, input.alert, window);
  try {
    // No approval is asked for, and nothing starts, while a change calendar keeps the run out.
    if (rb.approval && (!prepared.window || (await window.admit('the approval gate')))) {
      setStatus(state, 'awaiting-approval');
      const gate = renderStep(
        { id: 'gate', approval: rb.approval },
        buildContext(prepared.params, undefined, rb, run, input.alert),
      );
      if (gate.kind === 'approval')
        await awaitApproval('gate', gate, state, inbox, rb.metadata.name, ms(gate.timeout as ms.StringValue), audit);
    }
    if (!window.blocked && !window.resolved) {
      setStatus(state, 'running');
      await rollout.run();
    }
    // The alert resolved while the run waited for its window, before any change: it ends as at its gate.
    if (window.resolved) rollout.cancelled = rollout.resolved = true;
  } catch (err) {
    // An alert that resolved while its remediation waited at the gate cancels it: nothing was changed.
    if (isCancellation(err)) rollout.cancelled = true;
    else if (failureType(err) === FAILURES.alertResolved) rollout.cancelled = rollout.resolved = true;
    else {
      setStatus(state, 'failed');
      countRun(rb.metadata.name, trigger, 'failed');
      await recordEvents(audit, state, runFinished('failed', { error: errorText(err) }));
      // Only a Temporal failure fails the run; any other error (an expression over input that does not fit it)
      // would fail the workflow task again and again and wedge the run.
      throw err instanceof TemporalFailure
        ? err
        : ApplicationFailure.nonRetryable(errorText(err), FAILURES.runbookError);
    }
  }
  return finishRun(rollout, audit);
}

/** A refused input fails the run at once; it is recorded, with nothing of the input but a valid runbook name. */
async function refuseBadInput(input: RunbookInput): Promise<void> {
  try {
    checkRunInput(input, RunbookInputSchema);
  } catch (err) {
    const name = namedRunbook(input) ?? '(invalid input)';
    countRun(name, 'unknown', 'rejected');
    await recordEvents(
      startAudit(name, 'manual', 'unknown'),
      {},
      runFinished('rejected', { error: (err as Error).message }),
    );
    throw err;
  }
}

const { starterIdentity } = proxyLocalActivities<Activities>({
  ...ACTIVITY_OPTIONS.starter,
  summary: 'who started the run: the client identity the server recorded (the input names nobody)',
});

/**
 * Who or what started the run. A run a Temporal schedule started names the schedule (the UI's and the server's
 * own attribute); a starter can set that attribute too, so it is used only when it passes the initiator's rule.
 * A run whose input names nobody (the UI's Start Workflow form, `temporal workflow start`) is put down to the
 * identity of the client that started it, as the server recorded it; runs recorded before that stay `unknown`.
 */
async function startedBy(input: RunbookInput): Promise<{ initiator: string; trigger: string }> {
  const claimed = (workflowInfo().searchAttributes?.TemporalScheduledById as unknown[] | undefined)?.[0];
  const scheduledBy = isPrintableText(claimed, 256) ? claimed : undefined;
  const named = input.initiator ?? scheduledBy;
  const identity =
    named === undefined && patched('starter-identity')
      ? await starterIdentity().catch((err: unknown) => {
          log.warn('could not read who started the run', { error: (err as Error).message });
          return undefined;
        })
      : undefined;
  return {
    initiator: named ?? identity ?? 'unknown',
    trigger: input.trigger ?? (scheduledBy ? 'schedule' : 'manual'),
  };
}

/** The runbook a run's input names, when that is a valid name (a refused input may name anything). */
function namedRunbook(input: unknown): string | undefined {
  const named = (input as { runbook?: unknown } | null)?.runbook;
  return typeof named === 'string' && /^[a-z][a-z0-9-]{0,127}$/.test(named) ? named : undefined;
}

/**
 * Opens a checked run: its live state (queried since the first activation), its decision inbox (signal) and its
 * search attributes.
 */
function openRun(state: RunState, initiator: string, trigger: string): ApprovalDecision[] {
  const runbookName = state.runbook;
  const inbox: ApprovalDecision[] = [];
  observeHosts(state);
  showProgress(state);
  setHandler(alertResolvedSignal, () => {
    // Only a run an alert started, and only before it passed its gate or while it waits for its change window with
    // no target started (once changes began, the run finishes what it started). A resolution that comes before the
    // gate is reached counts once it is (a decision for `gate`).
    const untouched = Object.values(state.hosts).every((h) => h.state === 'pending');
    const before =
      state.status === 'preparing' ||
      state.status === 'awaiting-approval' ||
      (state.status === 'waiting-window' && untouched);
    if (trigger !== 'alert' || !before) return;
    if (inbox.some((d) => d.system)) return;
    inbox.push({ id: 'gate', approve: false, by: 'alert-resolved', comment: 'the alert resolved', system: true });
    state.decisions.push({ id: 'gate', approve: false, by: 'alert-resolved', comment: 'the alert resolved' });
    showProgress(state);
  });
  setHandler(decideSignal, (d) => {
    const problems = inputProblems(DecisionSchema, d);
    if (problems.length || inbox.length >= MAX_DECISIONS) {
      log.warn('ignored a decision', {
        problems: problems.length ? problems : [`more than ${MAX_DECISIONS} decisions`],
      });
      return;
    }
    inbox.push(d);
    state.decisions.push({ ...d });
    showProgress(state);
  });
  upsertSearchAttributes([
    { key: RunbookName, value: runbookName },
    { key: Initiator, value: initiator },
    { key: Trigger, value: trigger },
    { key: RunbookStatus, value: 'preparing' },
  ]);
  return inbox;
}

/** Loads and checks the run (prepare activity); a refusal fails the run with its located message. */
async function prepareRun(input: RunbookInput, audit: RunAudit, state: RunState): Promise<PreparedRun> {
  let prepared: PreparedRun;
  try {
    prepared = await preparer(input)({
      runbook: input.runbook,
      ...(input.source !== undefined ? { source: input.source } : {}),
      params: input.params ?? {},
      inventory: input.inventory,
      alert: input.alert,
    });
  } catch (err) {
    setStatus(state, 'failed');
    countRejectedRun(input.runbook, audit.initiator.trigger, err);
    await recordEvents(
      audit,
      state,
      runFinished('rejected', {
        error: errorText(err),
        detail: { params: input.params ?? {}, inventory: input.inventory ?? null },
      }),
    );
    // Bad input: fail the run with the located message itself (type UnknownRunbook, ParamsInvalid, ...).
    throw err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : err;
  }
  const rb = prepared.runbook;
  state.contentHash = prepared.contentHash;
  upsertMemo({
    description: rb.metadata.description ?? '',
    contentHash: prepared.contentHash,
    risk: rb.metadata.risk ?? 'medium',
    // Where the runbook came from: the worker's directory, or the run itself (`runbook run FILE.yaml`).
    source: prepared.source === 'run' ? 'sent with the run' : 'runbook directory',
  });
  upsertSearchAttributes([{ key: RunbookTargets, value: prepared.targets }]);
  audit.runbook = { name: rb.metadata.name, contentHash: prepared.contentHash };
  audit.doc = rb;
  await recordEvents(
    audit,
    state,
    runStarted({
      params: prepared.params,
      targets: prepared.targets,
      inventory: input.inventory ?? null,
      alert: input.alert ?? null,
      ...(prepared.source ? { source: 'sent with the run' } : {}),
    }),
  );
  return prepared;
}

/** The targets in batches (rolling) or with a concurrency limit (parallel), stopping past the failure threshold. */
class Rollout {
  readonly hosts: (TargetHost | undefined)[];
  readonly results: Record<string, HostResult> = {};
  readonly threshold: number;
  failures = 0;
  cancelled = false;
  /** Cancelled because its alert resolved at the gate: nothing to do, so the run completes (it was not cancelled). */
  resolved = false;
  private readonly abandonOnCancel: boolean;

  constructor(
    readonly env: StepEnv,
    private readonly runInfo: RunInfo,
    private readonly alert: RunbookInput['alert'],
    readonly window: RunWindow,
  ) {
    const { prepared } = env;
    const rb = prepared.runbook;
    this.abandonOnCancel = patched('lock-abandon-on-cancel');
    this.hosts =
      rb.targets === undefined
        ? [undefined]
        : prepared.targets.map((n) => prepared.inventory!.hosts.find((h) => h.name === n)!);
    for (const h of this.hosts) {
      const name = h?.name ?? '(run)';
      env.state.hosts[name] = { state: 'pending' };
      this.results[name] = { state: 'pending', steps: {}, rollbackErrors: [] };
    }
    this.threshold = failureThreshold(prepared.targets.length, rb.strategy);
  }

  /** Whether to start no more targets. */
  get stopped(): boolean {
    return this.failures > this.threshold || this.cancelled || this.window.blocked !== undefined;
  }

  async run(): Promise<void> {
    const strategy = this.env.prepared.runbook.strategy;
    const sizes = batchSizes(this.hosts.length, strategy);
    const limit = strategy?.type === 'parallel' ? (strategy.limit ?? this.hosts.length) : Infinity;
    this.env.state.batch.of = sizes.length;
    // Only a run with a window awaits its checks (an extra await would reorder the commands of runs without one).
    const windowed = this.env.prepared.window !== undefined;
    let next = 0;
    for (const [b, size] of sizes.entries()) {
      this.env.state.batch.index = b + 1;
      showProgress(this.env.state);
      if (windowed && !(await this.window.admit(`batch ${b + 1} of ${sizes.length}`))) {
        this.hosts.slice(next).forEach((h) => this.skip(h));
        break;
      }
      const batch = this.hosts.slice(next, next + size);
      next += size;
      if (strategy?.type === 'parallel') {
        // At most `limit` in flight; stop starting new targets once failures exceed the threshold.
        const queue = [...batch];
        const worker = async () => {
          while (queue.length > 0) {
            const h = queue.shift();
            if (this.stopped || (windowed && !(await this.window.admitTarget()))) this.skip(h);
            else await this.target(h);
          }
        };
        await Promise.all(Array.from({ length: Math.min(limit, batch.length) }, worker));
      } else {
        await Promise.all(batch.map((h) => this.target(h)));
      }
      if (this.stopped) {
        this.hosts.slice(next).forEach((h) => this.skip(h));
        break;
      }
    }
  }

  /**
   * One target's run. Not `async`, and runTarget is not wrapped in another await: concurrent targets' commands
   * reach history in the order their promise chains resolve, so an extra await layer here reorders them and a
   * run in flight at an upgrade no longer replays (test/integration/replay.test.ts keeps parallel histories).
   */
  private target(host: TargetHost | undefined): Promise<void> {
    try {
      const { prepared } = this.env;
      const steps = {};
      const ctx = buildContext(prepared.params, host, prepared.runbook, this.runInfo, this.alert, steps);
      const comp = (prepared.runbook.rollback ?? []).map((step, i) => ({ step, path: `rollback[${i}]`, ctx, host }));
      return runTarget({ env: this.env, host, ctx, steps, comp }, this.results[host?.name ?? '(run)']!, {
        abandonOnCancel: this.abandonOnCancel,
        onFailure: (cancelled) => {
          if (cancelled) this.cancelled = true;
          else this.failures += 1;
        },
      });
    } catch (err) {
      return Promise.reject(err); // as an async function would: this target fails, the others of its batch run
    }
  }

  /** Marks a target (or a target's name) the rollout does not reach as skipped. */
  skip(h: TargetHost | string | undefined): void {
    const name = typeof h === 'string' ? h : (h?.name ?? '(run)');
    this.env.state.hosts[name] = { state: 'skipped' };
    this.results[name]!.state = 'skipped';
  }
}

/** Records skips and the run's end, sets its final status, and returns or throws its result. */
async function finishRun(rollout: Rollout, audit: RunAudit): Promise<RunbookResult> {
  const { env, results, failures, threshold, cancelled } = rollout;
  const blocked = rollout.window.blocked;
  const { state, prepared } = env;
  const rb = prepared.runbook;
  // A run cancelled before its rollout (at the approval gate) reached none of its targets.
  for (const [h, r] of Object.entries(results)) if (r.state === 'pending') rollout.skip(h);
  const skipped = Object.entries(results)
    .filter(([, r]) => r.state === 'skipped')
    .map(([h]) => h);
  const reason = rollout.resolved
    ? 'the alert resolved before any change'
    : cancelled
      ? 'run cancelled'
      : failures > threshold
        ? `failures (${failures}) exceeded the threshold (${threshold})`
        : (blocked ?? 'not reached');
  await recordEvents(
    audit,
    state,
    ...skipped.map((h) => targetSkipped(h, reason)),
    ...(cancelled ? [runCancelled(Object.fromEntries(Object.entries(results).map(([h, r]) => [h, r.state])))] : []),
  );

  const result: RunbookResult = {
    runbook: rb.metadata.name,
    contentHash: prepared.contentHash,
    failures,
    threshold,
    hosts: results,
    ...(blocked && !cancelled && failures <= threshold ? { blocked } : {}),
    status: cancelled
      ? 'cancelled'
      : failures > threshold
        ? 'failed'
        : blocked
          ? 'blocked'
          : failures > 0
            ? 'degraded'
            : 'succeeded',
  };
  setStatus(state, result.status === 'degraded' ? 'succeeded' : result.status);
  countRun(rb.metadata.name, audit.initiator.trigger, result.status);
  state.result = result;
  showProgress(state);
  await recordEvents(
    audit,
    state,
    runFinished(result.status, {
      ...(result.status === 'blocked' ? { error: blocked } : {}),
      detail: {
        failures,
        threshold,
        hosts: Object.fromEntries(
          Object.entries(results).map(([h, r]) => [
            h,
            { state: r.state, error: r.error, rollbackErrors: r.rollbackErrors },
          ]),
        ),
      },
    }),
  );
  const failed = Object.entries(results)
    .filter(([, r]) => r.error)
    .map(([h, r]) => `${h}: ${r.error}`)
    .join('; ');
  if (result.status === 'cancelled' && !rollout.resolved)
    throw new CancelledFailure(`${rb.metadata.name} cancelled; rollback ran where needed. ${failed}`);
  if (result.status === 'failed')
    throw ApplicationFailure.nonRetryable(`${rb.metadata.name} failed: ${failed}`, FAILURES.runbookFailed, result);
  return result;
}
