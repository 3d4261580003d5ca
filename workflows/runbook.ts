// Workflow side (deterministic). The runbook interpreter: prepare (validated JSON + content hash in history),
// an approval gate for high-risk runbooks, then the steps per target in rolling batches or in parallel with a
// failure threshold, rollback newest-first in a non-cancellable scope after a failure or a cancel, live state
// by query, and search attributes for the UI and `runbook list`.
import {
  ActivityFailure, ApplicationFailure, CancellationScope, CancelledFailure, isCancellation, log, patched, proxyActivities, setHandler, TemporalFailure, upsertMemo,
  upsertSearchAttributes, workflowInfo,
} from '@temporalio/workflow';
import ms from 'ms';
import type { Activities } from '../activities';
import type { PreparedRun } from '../activities/prepare';
import { batchSizes, failureThreshold } from '../dsl/plan';
import { buildContext, renderStep } from '../dsl/render';
import type { TargetHost } from '../dsl/selector';
import { awaitApproval } from './approval';
import { acquireHostLock, releaseHostLock } from './host-lock';
import { decideSignal, stateQuery, type ApprovalDecision, type HostState, type RunState } from './messages';
import { Initiator, RunbookName, RunbookStatus, RunbookTargets, Trigger } from './search-attributes';
import { decideFeatures, errorText, groupLength, runStep, runStepGroup, type Compensation, type StepEnv, type StepsCtx } from './steps';
import { recordEvents, startAudit } from './audit';
import type { TSchema } from '@sinclair/typebox';
import { DecisionSchema, inputProblems, isPrintableText, RunbookInputSchema, type RunbookInput } from '../dsl/run-input';
import { FAILURES, HOST_LOCK_PREFIX, PREPARE_FAILURES } from '../common/failure-types';

export type { RunbookInput } from '../dsl/run-input';

/** Decisions a run keeps at most (a flood of signals is ignored past this). */
const MAX_DECISIONS = 200;

/**
 * Refuses what a run's starter may not do: a malformed input (checked against its schema, unknown fields
 * refused), the fields only a parent run may set, and the workflow ids reserved for host locks.
 */
export function checkRunInput(input: unknown, schema: TSchema): void {
  const info = workflowInfo();
  const problems = inputProblems(schema, input);
  if (info.workflowId.startsWith(HOST_LOCK_PREFIX)) problems.unshift(`workflow id: ids starting with "${HOST_LOCK_PREFIX}" are reserved for host locks`);
  const v = (input ?? {}) as Partial<RunbookInput>;
  if (!info.parent && v.heldHosts !== undefined) problems.push('input.heldHosts: set only by a parent run for its sub-runbook; remove it');
  if (!info.parent && v.trigger === 'sub-runbook') problems.push('input.trigger: "sub-runbook" is set only by a parent run; use manual, alert or schedule');
  if (problems.length) {
    throw ApplicationFailure.create({ type: FAILURES.inputInvalid, nonRetryable: true, message: `The workflow input is invalid:\n${problems.join('\n')}` });
  }
}

export interface HostResult { state: HostState; error?: string; steps: Record<string, string>; rollbackErrors: string[] }

export interface RunbookResult {
  runbook: string;
  contentHash: string;
  status: 'succeeded' | 'degraded' | 'failed' | 'cancelled';
  failures: number;
  /** Failures tolerated before the rollout stops. */
  threshold: number;
  hosts: Record<string, HostResult>;
}

const { prepare } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: PREPARE_FAILURES },
});

function setStatus(state: RunState, status: RunState['status']): void {
  state.status = status;
  upsertSearchAttributes([{ key: RunbookStatus, value: status }]);
}

export async function runbook(input: RunbookInput): Promise<RunbookResult> {
  const info = workflowInfo();
  try {
    checkRunInput(input, RunbookInputSchema);
  } catch (err) {
    // Recorded (a refused start is worth knowing about), with nothing of the input but a valid runbook name.
    const name = typeof input?.runbook === 'string' && /^[a-z][a-z0-9-]{0,127}$/.test(input.runbook) ? input.runbook : '(invalid input)';
    await recordEvents(startAudit(name, 'manual', 'unknown'), {}, { key: 'run', kind: 'run.finished', status: 'rejected', error: (err as Error).message });
    throw err;
  }
  // A run a Temporal schedule started names the schedule (the UI's and the server's own attribute).
  // (A starter can set that attribute too: it is used only when it passes the initiator's own rule.)
  const claimed = (info.searchAttributes?.TemporalScheduledById as unknown[] | undefined)?.[0];
  const scheduledBy = isPrintableText(claimed, 256) ? claimed : undefined;
  const initiator = input.initiator ?? scheduledBy ?? 'unknown';
  const trigger = input.trigger ?? (scheduledBy ? 'schedule' : 'manual');
  const audit = startAudit(input.runbook, trigger, initiator);
  const state: RunState = { runbook: input.runbook, contentHash: '', status: 'preparing', batch: { index: 0, of: 0 }, hosts: {}, pendingApprovals: [], decisions: [] };
  const inbox: ApprovalDecision[] = [];
  setHandler(stateQuery, () => state);
  setHandler(decideSignal, (d) => {
    const problems = inputProblems(DecisionSchema, d);
    if (problems.length || inbox.length >= MAX_DECISIONS) {
      log.warn('ignored a decision', { problems: problems.length ? problems : [`more than ${MAX_DECISIONS} decisions`] });
      return;
    }
    inbox.push(d);
    state.decisions.push({ ...d });
  });
  upsertSearchAttributes([{ key: RunbookName, value: input.runbook }, { key: Initiator, value: initiator }, { key: Trigger, value: trigger },
    { key: RunbookStatus, value: 'preparing' }]);

  let prepared: PreparedRun;
  try {
    prepared = await prepare({ runbook: input.runbook, params: input.params ?? {}, inventory: input.inventory, alert: input.alert });
  } catch (err) {
    setStatus(state, 'failed');
    await recordEvents(audit, state, { key: 'run', kind: 'run.finished', status: 'rejected', error: errorText(err),
      detail: { params: input.params ?? {}, inventory: input.inventory ?? null } });
    // Bad input: fail the run with the located message itself (type UnknownRunbook, ParamsInvalid, ...).
    throw err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? err.cause : err;
  }
  const rb = prepared.runbook;
  state.contentHash = prepared.contentHash;
  upsertMemo({ description: rb.metadata.description ?? '', contentHash: prepared.contentHash, risk: rb.metadata.risk ?? 'medium' });
  upsertSearchAttributes([{ key: RunbookTargets, value: prepared.targets }]);
  audit.runbook = { name: rb.metadata.name, contentHash: prepared.contentHash };
  await recordEvents(audit, state, { key: 'run', kind: 'run.started', status: 'started',
    detail: { params: prepared.params, targets: prepared.targets, inventory: input.inventory ?? null, alert: input.alert ?? null } });

  // Only a parent run's held locks are honoured (checkRunInput refuses the field from anyone else).
  const heldHosts = info.parent ? input.heldHosts ?? [] : [];
  const features = decideFeatures();
  const abandonLocks = patched('lock-abandon-on-cancel');
  const env: StepEnv = { prepared, state, inbox, initiator, audit, inventory: input.inventory, heldHosts, features };
  const run = { id: info.workflowId, initiator, trigger };
  const hosts: (TargetHost | undefined)[] = rb.targets === undefined ? [undefined] : prepared.targets.map((n) => prepared.inventory!.hosts.find((h) => h.name === n)!);
  const results: Record<string, HostResult> = {};
  for (const h of hosts) {
    const name = h?.name ?? '(run)';
    state.hosts[name] = { state: 'pending' };
    results[name] = { state: 'pending', steps: {}, rollbackErrors: [] };
  }
  const threshold = failureThreshold(prepared.targets.length, rb.strategy);
  let failures = 0;
  let cancelled = false;

  try {
    if (rb.approval) {
      setStatus(state, 'awaiting-approval');
      const gate = renderStep({ id: 'gate', approval: rb.approval }, buildContext(prepared.params, undefined, rb, run, input.alert));
      if (gate.kind === 'approval') await awaitApproval('gate', gate, state, inbox, rb.metadata.name, ms(gate.timeout as ms.StringValue), audit);
    }
    setStatus(state, 'running');

    const runTarget = async (host: TargetHost | undefined): Promise<void> => {
      const name = host?.name ?? '(run)';
      const result = results[name]!;
      const steps: StepsCtx = {};
      const ctx = buildContext(prepared.params, host, rb, run, input.alert, steps);
      const comp: Compensation[] = (rb.rollback ?? []).map((step, i) => ({ step, path: `rollback[${i}]`, ctx, host }));
      let lock: Awaited<ReturnType<typeof acquireHostLock>> | undefined;
      let acquired = !host;
      try {
        // Runs recorded before host locks existed replay without them (see test/integration/replay.test.ts).
        if (host && patched('host-locks') && !heldHosts.includes(host.name)) {
          lock = await acquireHostLock(host.name, info.workflowId, rb.locks?.hosts ?? 'wait', () => { state.hosts[name] = { state: 'waiting-lock' }; }, abandonLocks);
          acquired = true;
        }
        state.hosts[name] = { state: 'running' };
        // Runs recorded before step groups existed replay one step at a time.
        const grouping = host !== undefined && patched('step-groups');
        for (let i = 0; i < rb.steps.length; i++) {
          const step = rb.steps[i]!;
          const n = grouping ? groupLength(rb.steps, i) : 0;
          if (n >= 2) {
            const group = rb.steps.slice(i, i + n);
            let done = n;
            try {
              done = await runStepGroup(group.map((s, k) => ({ step: s, path: `steps[${i + k}]` })), ctx, steps, host!, env, comp);
            } finally {
              for (const s of group) if (steps[s.id]) result.steps[s.id] = steps[s.id]!.status;
            }
            i += Math.max(1, done) - 1;
            continue;
          }
          try {
            await runStep(step, `steps[${i}]`, ctx, steps, host, env, comp);
            result.steps[step.id] = steps[step.id]?.status ?? 'succeeded';
          } catch (err) {
            if (isCancellation(err) || !step.continueOnError) throw err;
            result.steps[step.id] = `failed (continued): ${errorText(err)}`;
          }
        }
        state.hosts[name] = { state: 'succeeded' };
        result.state = 'succeeded';
      } catch (err) {
        if (isCancellation(err)) cancelled = true;
        else failures += 1;
        result.error = isCancellation(err) ? 'cancelled' : errorText(err);
        state.hosts[name] = { state: 'failed', error: result.error };
        // Rollback runs to completion even when the run is being cancelled; its own failures are recorded.
        // A target whose lock was never acquired did nothing, so it has nothing to roll back.
        await CancellationScope.nonCancellable(async () => {
          for (const c of acquired ? [...comp].reverse() : []) {
            try {
              await runStep(c.step, c.path, c.ctx, {}, c.host, env, []);
            } catch (rbErr) {
              result.rollbackErrors.push(`${c.step.id}: ${errorText(rbErr)}`);
            }
          }
        });
        result.state = acquired && comp.length ? 'rolled-back' : 'failed';
        state.hosts[name] = { state: result.state, error: result.error };
      } finally {
        if (lock) await CancellationScope.nonCancellable(() => releaseHostLock(lock!));
      }
    };

    const sizes = batchSizes(hosts.length, rb.strategy);
    const limit = rb.strategy?.type === 'parallel' ? (rb.strategy.limit ?? hosts.length) : Infinity;
    state.batch.of = sizes.length;
    let next = 0;
    for (const [b, size] of sizes.entries()) {
      state.batch.index = b + 1;
      const batch = hosts.slice(next, next + size);
      next += size;
      if (rb.strategy?.type === 'parallel') {
        // At most `limit` in flight; stop starting new targets once failures exceed the threshold.
        const queue = [...batch];
        const worker = async () => {
          while (queue.length > 0) {
            const h = queue.shift();
            if (failures > threshold || cancelled) markSkipped(h);
            else await runTarget(h);
          }
        };
        await Promise.all(Array.from({ length: Math.min(limit, batch.length) }, worker));
      } else {
        await Promise.all(batch.map((h) => runTarget(h)));
      }
      if (failures > threshold || cancelled) {
        hosts.slice(next).forEach(markSkipped);
        break;
      }
    }
  } catch (err) {
    if (isCancellation(err)) cancelled = true;
    else {
      setStatus(state, 'failed');
      await recordEvents(audit, state, { key: 'run', kind: 'run.finished', status: 'failed', error: errorText(err) });
      // Only a Temporal failure fails the run; any other error (an expression over input that does not fit it)
      // would fail the workflow task again and again and wedge the run.
      throw err instanceof TemporalFailure ? err : ApplicationFailure.nonRetryable(errorText(err), 'RunbookError');
    }
  }

  function markSkipped(h: TargetHost | undefined): void {
    const name = h?.name ?? '(run)';
    state.hosts[name] = { state: 'skipped' };
    results[name]!.state = 'skipped';
  }
  const skipped = Object.entries(results).filter(([, r]) => r.state === 'skipped').map(([h]) => h);
  await recordEvents(audit, state,
    ...skipped.map((h) => ({ key: 'target', kind: 'skip' as const, target: h, status: 'skipped', detail: { reason: cancelled ? 'run cancelled' : `failures (${failures}) exceeded the threshold (${threshold})` } })),
    ...(cancelled ? [{ key: 'run', kind: 'cancel' as const, status: 'cancelled', detail: { hosts: Object.fromEntries(Object.entries(results).map(([h, r]) => [h, r.state])) } }] : []));

  const result: RunbookResult = { runbook: rb.metadata.name, contentHash: prepared.contentHash, failures, threshold, hosts: results,
    status: cancelled ? 'cancelled' : failures > threshold ? 'failed' : failures > 0 ? 'degraded' : 'succeeded' };
  setStatus(state, result.status === 'degraded' ? 'succeeded' : result.status);
  state.result = result;
  await recordEvents(audit, state, { key: 'run', kind: 'run.finished', status: result.status, detail: { failures, threshold,
    hosts: Object.fromEntries(Object.entries(results).map(([h, r]) => [h, { state: r.state, error: r.error, rollbackErrors: r.rollbackErrors }])) } });
  const failed = Object.entries(results).filter(([, r]) => r.error).map(([h, r]) => `${h}: ${r.error}`).join('; ');
  if (result.status === 'cancelled') throw new CancelledFailure(`${rb.metadata.name} cancelled; rollback ran where needed. ${failed}`);
  if (result.status === 'failed') throw ApplicationFailure.nonRetryable(`${rb.metadata.name} failed: ${failed}`, 'RunbookFailed', result);
  return result;
}
