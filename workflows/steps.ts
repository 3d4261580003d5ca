// Workflow side (deterministic). Executes one step for one target: when, retry (each logical attempt its own
// exactly-once key), timeout, until (poll), outputs, delegated targets, parallel groups, sub-runbooks, and the
// activity per kind. Rollback steps of completed steps are pushed onto the target's compensation stack.
import {
  ApplicationFailure,
  CancellationScope,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import ms from 'ms';
import type { Activities } from '../activities';
import { evaluateCondition, renderValue, type ExprContext } from '../dsl/expr';
import { extractOutputs, type StepResultView } from '../dsl/outputs';
import type { PreparedRun } from '../activities/prepare';
import { renderStep, shouldRun, targetView, type RenderedAction } from '../dsl/render';
import type { StepDoc } from '../dsl/schema';
import type { WindowOverride } from '../dsl/run-input';
import { outcomeOf } from '../audit/outcome';
import { resolveTargets, type TargetHost } from '../dsl/selector';
import { awaitApproval } from './approval';
import type { ApprovalDecision, RunState } from './messages';
import { auditBase, recordEvents, stepAudit, type RunAudit } from './audit';
import { groupCancelled, stepEvent, whenSkipped, workflowRecordsSuccess } from '../audit/run-events';
import { FAILURES, failureType, isIn, STEP_FAILURES } from '../common/failure-types';
import { ACTIVITY_OPTIONS, longStepOptions, shortStepOptions } from './activity-options';
import { observeStep } from './metrics';
import { childSummary, groupSummary, killSummary, stepSummary, waitSummary } from './summaries';
import { showProgress } from './progress';
import { runDetails } from '../common/run-metadata';
import { mdText } from '../common/markdown';

/** What every step of a run shares. */
export interface StepEnv {
  prepared: PreparedRun;
  state: RunState;
  inbox: ApprovalDecision[];
  initiator: string;
  audit: RunAudit;
  /** The run's inventory file (sub-runbooks use it too). */
  inventory?: string;
  /** Host locks held by this run's callers. */
  heldHosts: string[];
  /** The operator's change-window override this run goes on (a sub-runbook inherits it). */
  windowOverride?: () => WindowOverride | undefined;
  /**
   * Behaviour changes guarded by patched(), decided once when the run starts: the SDK does not keep a `false`
   * during replay, so deciding per step would switch an old run to the new behaviour half-way (and re-run the
   * step in flight at the upgrade under a new key).
   */
  features: RunFeatures;
}

export interface RunFeatures {
  /** Record keys include the run id. */
  runScopedKeys: boolean;
  /** Each rollback step has its own path and record. */
  rollbackStepKeys: boolean;
  /** Sub-runbook child ids include the host. */
  childIdHost: boolean;
  /**
   * A step with its own `targets` keys its records by the run target it is for as well as the host it acts on.
   * Before, every run target's `drain` on the same load balancer had one key, so the second target's drain found
   * the first's record and did not run.
   */
  delegatedKeysByOrigin: boolean;
}

/** Decides the run's features; call once, at the start of a run. */
export function decideFeatures(): RunFeatures {
  return {
    runScopedKeys: patched('run-scoped-keys'),
    rollbackStepKeys: patched('rollback-step-keys'),
    childIdHost: patched('child-id-host'),
    delegatedKeysByOrigin: patched('delegated-keys-by-origin'),
  };
}

/** A rollback step waiting on a target's compensation stack, with the context it was pushed with. */
export interface Compensation {
  step: StepDoc;
  path: string;
  ctx: ExprContext;
  host?: TargetHost;
}

export type StepsCtx = Record<string, { outputs: Record<string, unknown>; status: string }>;

/**
 * The steps of one target (or of a run without targets) in progress: what every step on it reads and adds to.
 * A delegated `targets` step and a rollback step each act through a TargetRun of their own (another host, the
 * context the rollback was pushed with).
 */
export interface TargetRun {
  env: StepEnv;
  /** The host the steps act on; none for a run without targets. */
  host?: TargetHost;
  /** The expression context of the steps. */
  ctx: ExprContext;
  /** Outputs and statuses of the steps so far, by step id. */
  steps: StepsCtx;
  /** Rollback steps of the completed steps, oldest first. */
  comp: Compensation[];
}

/** The TargetRun a compensation's rollback step runs in: its own context, nothing pushed, no outputs kept. */
export function rollbackRun(env: StepEnv, c: Compensation): TargetRun {
  return { env, host: c.host, ctx: c.ctx, steps: {}, comp: [] };
}

const duration = (d: string | undefined, fallback: string): number => ms((d ?? fallback) as ms.StringValue);

type SshLogin = PreparedRun['ssh'][string];

function sshTarget(t: TargetRun, stepId: string): SshLogin {
  const { host } = t;
  const login = host ? t.env.prepared.ssh[host.name] : undefined;
  if (!login)
    throw ApplicationFailure.nonRetryable(
      `step "${stepId}" acts over SSH but ${host ? `host "${host.name}" has no SSH login (user, key) in the inventory` : 'the run has no target'}`,
      FAILURES.noTarget,
    );
  return login;
}

/**
 * The login of a step that logs in as another account with a password secret (`ssh.login`): that account, password
 * auth, a connection of its own; the host, its known_hosts and any jump host stay the inventory's.
 */
function loginAs(
  login: SshLogin,
  action: Extract<RenderedAction, { kind: 'ssh' }>,
  secrets: PreparedRun['runbook']['secrets'],
): SshLogin {
  if (!action.login) return login;
  const decl = secrets?.[action.login.password];
  if (!decl)
    throw ApplicationFailure.nonRetryable(`secret "${action.login.password}" is not declared`, FAILURES.secret);
  return {
    ...login,
    identityFile: undefined,
    user: action.login.user,
    passwordSecret: { name: action.login.password, decl },
    loginCheck: true,
  };
}

/**
 * The identity of a step's exactly-once record on its host. It includes the run id, so a new run under a reused
 * Workflow ID (or a Reset) acts again, while a retry within the run re-attaches. Runs recorded before run-scoped
 * keys replay with the keys they used.
 */
export function recordKey(
  stepPath: string,
  runScoped: boolean,
): { workflowId: string; runId?: string; stepPath: string } {
  const info = workflowInfo();
  return runScoped
    ? { workflowId: info.workflowId, runId: info.runId, stepPath }
    : { workflowId: info.workflowId, stepPath };
}

/** A step's outputs: taken by its activity from the whole result, or (runs recorded before that) from the reply. */
function outputsOf(
  step: StepDoc,
  result: StepResultView & { outputs?: Record<string, unknown> },
): Record<string, unknown> {
  return result.outputs ?? extractOutputs(step, result);
}

/**
 * Steps up to this long run as local activities: executed by the worker that runs the workflow, recorded in the
 * workflow's history without a round trip through the server per step (about 8 ms instead of 70+ ms on the dev
 * server). That is safe because an SSH step's effect is exactly-once by its remote record: a worker that dies
 * mid-step is replaced, the step re-attaches. Longer steps are regular activities that heartbeat their progress.
 */
export const LOCAL_STEP_MAX_MS = 10 * 60_000;

/** The activity that stops a cancelled step's remote command, its summary naming the step. */
const killer = (summary: string) => proxyLocalActivities<Activities>({ ...ACTIVITY_OPTIONS.kill, summary });

/** The message of a failure, preferring its cause's (an activity failure wraps the real one). */
export function errorText(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } };
  return e?.cause?.message ?? e?.message ?? String(err);
}

/** The step result a failure carries (a failed command's exit code and output), if any. */
function failureResult(err: unknown): StepResultView | undefined {
  const e = err as { details?: unknown[]; cause?: { details?: unknown[] } };
  return (e?.cause?.details ?? e?.details)?.[0] as StepResultView | undefined;
}

/**
 * The activities of a step of this timeout: local for short steps, regular (heartbeating) for long ones; `summary`
 * is what the UI's history says the activity does (summaries.ts).
 */
function stepActivities(timeoutMs: number, attempts: number, summary: string) {
  // Runs recorded before steps became local activities replay with regular ones.
  return timeoutMs <= LOCAL_STEP_MAX_MS && patched('local-steps')
    ? proxyLocalActivities<Activities>({ ...shortStepOptions(timeoutMs, attempts), summary })
    : proxyActivities<Activities>({ ...longStepOptions(timeoutMs, attempts), summary });
}

/** One attempt of a step's action. Returns what outputs are extracted from. */
async function act(
  t: TargetRun,
  action: RenderedAction,
  step: StepDoc,
  path: string,
  key: string,
): Promise<StepResultView> {
  const { env, host } = t;
  const timeoutMs = duration(step.timeout, '10m');
  const activities = stepActivities(
    timeoutMs,
    action.kind === 'http' ? (step.retry?.attempts ?? 3) : 10,
    stepSummary({ stepId: step.id, path, key, host: host?.name, action }),
  );
  const secrets = env.prepared.runbook.secrets;
  const outputs = step.outputs ? { stepId: step.id, spec: step.outputs } : undefined;
  switch (action.kind) {
    case 'ssh': {
      const target = loginAs(sshTarget(t, step.id), action, secrets);
      if (action.upload) {
        await activities.sshUpload({
          target,
          src: action.upload.src,
          dest: action.upload.dest,
          mode: action.upload.mode,
        });
        return {};
      }
      const stepKey = recordKey(key, env.features.runScopedKeys);
      try {
        return await activities.sshStep({
          target,
          action,
          key: stepKey,
          secrets,
          timeoutMs,
          audit: stepAudit(env.audit, key, path, host?.name),
          outputs,
        });
      } catch (err) {
        // The step itself was cancelled: stop its remote command (the activity leaves it running on purpose).
        if (isCancellation(err))
          await CancellationScope.nonCancellable(() =>
            killer(killSummary(host?.name, [step.id])).sshKill({ target, key: stepKey }),
          );
        throw err;
      }
    }
    case 'http':
      return activities.httpStep({
        action,
        secrets,
        timeoutMs,
        audit: stepAudit(env.audit, key, path, host?.name),
        outputs,
      });
    case 'sleep':
      await sleep(action.duration as ms.StringValue, {
        summary: stepSummary({ stepId: step.id, path, key, host: host?.name, action }),
      });
      return {};
    case 'approval':
      await awaitApproval(
        path,
        action,
        env.state,
        env.inbox,
        env.prepared.name,
        duration(action.timeout, '1h'),
        env.audit,
        host?.name,
      );
      return {};
    case 'notify':
      await activities.notify({ channel: action.channel, message: action.message });
      return {};
    case 'runbook': {
      // The child uses the parent's inventory, and acts on the parent's locked host without locking it again. A step
      // with its own `targets` acts on hosts this run has not locked: the child locks those as usual.
      const heldHosts =
        host && step.targets === undefined ? [...new Set([...env.heldHosts, host.name])] : env.heldHosts;
      const windowOverride = env.windowOverride?.();
      const input = {
        runbook: action.name,
        params: action.params,
        initiator: env.initiator,
        trigger: 'sub-runbook' as const,
        inventory: env.inventory,
        heldHosts,
        ...(windowOverride ? { windowOverride } : {}),
      };
      const parentId = workflowInfo().workflowId;
      const child = await executeChild('runbook', {
        args: [input],
        // One child per target: with several hosts in a batch, the same step path would collide.
        workflowId: `${parentId}/${key}${env.features.childIdHost && host ? `@${host.name}` : ''}`,
        staticSummary: childSummary(action.name, env.prepared.name, step.id, host?.name),
        staticDetails: `${runDetails(input)}\n\n**Parent run:** ${mdText(parentId, 300)}, step ${mdText(step.id, 64)}`,
      });
      // A child a change calendar kept out did nothing: that is no success of this step.
      if ((child as { status?: string } | undefined)?.status === 'blocked')
        throw ApplicationFailure.nonRetryable(
          `sub-runbook ${action.name} was blocked: ${(child as { blocked?: string }).blocked ?? 'a change calendar is closed'}`,
          FAILURES.windowBlocked,
        );
      return { json: child };
    }
    case 'parallel':
      return {};
  }
}

/** The step's action with retries: each logical attempt gets its own record key on the host. */
async function withRetry(t: TargetRun, step: StepDoc, path: string, keyBase: string): Promise<StepResultView> {
  const attempts = step.retry?.attempts ?? 1;
  let backoff = duration(step.retry?.backoff, '5s');
  for (let attempt = 1; ; attempt++) {
    const key = attempt === 1 ? keyBase : `${keyBase}#${attempt}`;
    const action = renderStep(step, t.ctx);
    const target = t.host?.name;
    const startedAt = Date.now();
    try {
      const result = await act(t, action, step, path, key);
      observeStep(t.env, action.kind, 'succeeded', startedAt, result);
      if (workflowRecordsSuccess(action, result as { audited?: boolean })) {
        const selfRecorded = action.kind === 'http' || (action.kind === 'ssh' && !action.upload);
        await recordEvents(
          t.env.audit,
          t.env.state,
          stepEvent(key, path, target, 'succeeded', { action, outcome: selfRecorded ? outcomeOf(result) : undefined }),
        );
      }
      return result;
    } catch (err) {
      observeStep(t.env, action.kind, isCancellation(err) ? 'cancelled' : 'failed', startedAt, failureResult(err));
      if (action.kind !== 'approval') {
        await recordEvents(
          t.env.audit,
          t.env.state,
          stepEvent(key, path, target, isCancellation(err) ? 'cancelled' : 'failed', {
            action,
            error: errorText(err),
            outcome: outcomeOf(failureResult(err)),
          }),
        );
      }
      if (attempt >= attempts || !isIn(STEP_FAILURES, failureType(err))) throw err;
      await sleep(backoff, { summary: waitSummary(step.id, t.host?.name, `back off before attempt ${attempt + 1}`) });
      backoff = Math.min(backoff * 2, duration(step.retry?.maxBackoff, '5m'));
    }
  }
}

/** The step, polled when it has `until`: repeat (each poll its own key) until it succeeds and the condition holds. */
async function withUntil(t: TargetRun, step: StepDoc, path: string, keyBase: string): Promise<StepResultView> {
  if (!step.until) return withRetry(t, step, path, keyBase);
  const deadline = Date.now() + duration(step.until.timeout, '5m');
  let last = 'it never ran';
  for (let poll = 1; ; poll++) {
    try {
      const result = await withRetry(t, step, path, `${keyBase}@${poll}`);
      if (!step.until.condition) return result;
      const outputs = outputsOf(step, result);
      if (evaluateCondition(step.until.condition, { ...t.ctx, result: { ...result, outputs } })) return result;
      last = `condition \`${step.until.condition}\` was false`;
    } catch (err) {
      if (!isIn(STEP_FAILURES, failureType(err))) throw err;
      last = (err as Error).message;
    }
    if (Date.now() + duration(step.until.every, '5s') > deadline) {
      throw ApplicationFailure.nonRetryable(
        `step "${step.id}" did not succeed within ${step.until.timeout}: ${last}`,
        FAILURES.untilTimeout,
      );
    }
    await sleep(step.until.every as ms.StringValue, {
      summary: waitSummary(step.id, t.host?.name, `wait ${step.until.every} before poll ${poll + 1}`),
    });
  }
}

/**
 * Whether a step may run inside a step group: a plain SSH command without the per-step control flow the
 * workflow drives itself (retry, until, delegated targets, parallel, continue-on-error, upload), and not a login
 * check (a group runs on the inventory's login).
 */
function groupable(step: StepDoc): boolean {
  return (
    step.ssh !== undefined &&
    step.ssh.upload === undefined &&
    step.ssh.login === undefined &&
    step.retry === undefined &&
    step.until === undefined &&
    step.targets === undefined &&
    step.parallel === undefined &&
    !step.continueOnError &&
    duration(step.timeout, '10m') <= LOCAL_STEP_MAX_MS
  );
}

/** At most this many steps share one local activity. */
const MAX_GROUP = 50;

/**
 * How many steps from `i` on form a step group (0 or 1: none). A step with rollback steps only ends a group: a
 * cancel mid-group must know whether it completed.
 */
export function groupLength(steps: StepDoc[], i: number): number {
  let n = 0;
  while (n < MAX_GROUP && i + n < steps.length && groupable(steps[i + n]!) && !steps[i + n - 1]?.rollback?.length) n++;
  return n;
}

/**
 * Puts a completed step's rollback steps on the compensation stack, with the outputs known at that point. Each
 * has its own path (and so its own record and audit key); runs recorded before that replay with the shared one.
 */
function pushRollback(t: TargetRun, step: StepDoc, path: string): void {
  const own = t.env.features.rollbackStepKeys;
  for (const [i, rb] of (step.rollback ?? []).entries()) {
    t.comp.push({
      step: rb,
      path: own ? `${path}.rollback[${i}]` : `${path}.rollback`,
      ctx: { ...t.ctx, steps: { ...t.steps } },
      host: t.host,
    });
  }
}

/**
 * Runs consecutive groupable steps on one host in one local activity (activities/step-group.ts): per step the
 * same rendering, `when`, exactly-once record, outputs and audit record as runStep, without a trip through the
 * workflow in between. Outputs, statuses and rollback steps are applied here in step order. Returns how many
 * steps were done: all of them, or fewer when the activity's reply reached its size budget (go on from there).
 */
export async function runStepGroup(
  t: TargetRun & { host: TargetHost },
  group: { step: StepDoc; path: string }[],
): Promise<number> {
  const { env, host } = t;
  const target = sshTarget(t, group[0]!.step.id);
  const hostState = env.state.hosts[host.name];
  if (hostState) hostState.step = group.map((g) => g.step.id).join(',');
  showProgress(env.state);
  const items = group.map(({ step, path }) => ({ step, path, timeoutMs: duration(step.timeout, '10m') }));
  const { sshSteps } = proxyLocalActivities<Activities>({
    ...shortStepOptions(
      items.reduce((sum, i) => sum + i.timeoutMs, 0),
      10,
    ),
    summary: groupSummary(
      host.name,
      group.map((g) => g.step.id),
    ),
  });
  let out: Awaited<ReturnType<typeof sshSteps>>;
  try {
    out = await sshSteps({
      target,
      steps: items,
      ctx: { ...t.ctx, steps: { ...t.steps } },
      secrets: env.prepared.runbook.secrets,
      audit: auditBase(env.audit, host.name),
      runScoped: env.features.runScopedKeys,
    });
  } catch (err) {
    if (isCancellation(err)) {
      // Which step was running is unknown here: stop any of them (a finished or unstarted one is a no-op).
      await CancellationScope.nonCancellable(async () => {
        for (const { step, path } of group)
          await killer(killSummary(host.name, [step.id])).sshKill({
            target,
            key: recordKey(path, env.features.runScopedKeys),
          });
      });
      await recordEvents(
        env.audit,
        env.state,
        groupCancelled(
          group.map((g) => g.path),
          host.name,
          errorText(err),
        ),
      );
    }
    throw err;
  }
  for (const [i, d] of out.done.entries()) {
    const { step, path } = group[i]!;
    t.steps[step.id] = { outputs: d.outputs, status: d.status };
    if (d.status === 'succeeded') observeStep(env, 'ssh', 'succeeded', Date.now(), d.result);
    if (!d.audited) {
      await recordEvents(
        env.audit,
        env.state,
        d.status === 'skipped'
          ? whenSkipped(path, host.name, step.when)
          : stepEvent(path, path, host.name, 'succeeded', { outcome: outcomeOf(d.result) }),
      );
    }
    if (d.status === 'succeeded') pushRollback(t, step, path);
  }
  if (out.failed) {
    const f = out.failed;
    observeStep(env, 'ssh', 'failed', Date.now(), f.result);
    if (!f.audited)
      await recordEvents(
        env.audit,
        env.state,
        stepEvent(f.path, f.path, host.name, 'failed', {
          error: f.message,
          outcome: outcomeOf(f.result as object | undefined),
        }),
      );
    throw ApplicationFailure.create({
      message: f.message,
      type: f.type,
      nonRetryable: true,
      details: f.result === undefined ? [] : [f.result],
    });
  }
  return out.done.length;
}

/**
 * Runs a step for the target. Skipped when `when` is false. Records its outputs in the target's `steps` and its
 * rollback steps on its compensation stack. Throws ApplicationFailure on failure.
 */
export async function runStep(t: TargetRun, step: StepDoc, path: string): Promise<void> {
  const hostName = t.host?.name;
  if (hostName && t.env.state.hosts[hostName]) t.env.state.hosts[hostName]!.step = step.id;
  showProgress(t.env.state);
  if (!shouldRun(step, t.ctx)) {
    t.steps[step.id] = { outputs: {}, status: 'skipped' };
    await recordEvents(t.env.audit, t.env.state, whenSkipped(path, hostName, step.when));
    return;
  }
  if (step.parallel) {
    const children = step.parallel.steps;
    const limit = step.parallel.limit ?? children.length;
    for (let i = 0; i < children.length; i += limit) {
      await Promise.all(
        children.slice(i, i + limit).map((child, j) => runStep(t, child, `${path}.parallel.steps[${i + j}]`)),
      );
    }
  } else if (step.targets !== undefined) {
    const selector = renderValue(step.targets, t.ctx);
    const { hosts, errors } = resolveTargets(
      t.env.prepared.inventory ?? { hosts: [], groups: {}, vars: {} },
      Array.isArray(selector) ? selector.join(',') : String(selector),
    );
    if (errors.length)
      throw ApplicationFailure.nonRetryable(
        `step "${step.id}": ${errors.map((e) => e.message).join('; ')}`,
        FAILURES.targetsInvalid,
      );
    let last: StepResultView = {};
    const origin = t.env.features.delegatedKeysByOrigin && t.host ? `${t.host.name}>` : '';
    for (const other of hosts) {
      last = await withUntil(
        { ...t, host: other, ctx: { ...t.ctx, target: targetView(other) } },
        step,
        path,
        `${path}:${origin}${other.name}`,
      );
    }
    t.steps[step.id] = { outputs: outputsOf(step, last), status: 'succeeded' };
  } else {
    const result = await withUntil(t, step, path, path);
    t.steps[step.id] = { outputs: outputsOf(step, result), status: 'succeeded' };
  }
  pushRollback(t, step, path);
}
