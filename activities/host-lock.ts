// Node side. The host locks' side effects (workflows/host-lock.ts, host-lock-manager.ts):
//  - sendLockMessages: a run's requests to its lock manager, with signal-with-start (so the manager is started
//    when there is none), after clearing a workflow of another kind squatting on the manager's id;
//  - checkHostLocks: whether old-style `host-lock:HOST` locks run (clearing squatters there too) and whether the
//    runs holding locks still run; watchLockHolder: waits for a holding run to close;
//  - recoverHostLocks: for a manager that starts without a table, asks every open run of its task queue what it
//    holds and waits for (a query: nothing is written to the runs' histories);
//  - watchHostLock: the old-style locks' watch (runs recorded before the manager, and the manager's wait for one).
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Logger } from '../common/logger';
import { HOST_LOCK_PREFIX } from '../common/failure-types';
import { inputProblems } from '../dsl/run-input';
import {
  LOCK_MANAGER_PATCH,
  LOCK_NAMES,
  MAX_MESSAGES,
  RunLocksSchema,
  type LockRequests,
  type Recovered,
  type RunLocks,
  type RunRef,
} from '../workflows/host-lock-table';

/**
 * Runs an activity's calls to the server under the activity's cancellation: a lock activity cancelled (its manager
 * or run moved on, or the worker shuts down) stops its call and its retries at once, instead of retrying on a
 * connection the worker is closing (which threw "Channel has been shut down" from a timer, outside any caller).
 */
function abortable<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  let signal: AbortSignal;
  try {
    signal = Context.current().cancellationSignal;
  } catch {
    return fn(); // not in an activity (a direct call)
  }
  return client.withAbortSignal(signal, fn);
}

export type LockWatch = 'released' | 'cleared' | 'held' | 'timeout';

export interface LockWatchInput {
  workflowId: string;
  /** Watch at most this long; 0 only checks (and clears a squatter). */
  waitMs: number;
}

const POLL_MS = 1000;
const RUNNING = temporal.api.enums.v1.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING;

/** The lock workflow's status, type and parent, read raw: nothing in it (a memo, say) is decoded, so nothing can make it throw. */
async function describeRaw(client: Client, workflowId: string, runId?: string) {
  try {
    const res = await client.workflowService.describeWorkflowExecution({
      namespace: client.options.namespace,
      execution: { workflowId, runId },
    });
    const i = res.workflowExecutionInfo;
    return {
      running: i?.status === RUNNING,
      runId: i?.execution?.runId ?? '',
      type: i?.type?.name ?? '',
      parent: i?.parentExecution?.workflowId ?? undefined,
      taskQueue: res.executionConfig?.taskQueue?.name ?? i?.taskQueue ?? '',
      /** Attempts of its workflow task in flight (more than one: its tasks fail). */
      taskAttempt: res.pendingWorkflowTask?.attempt ?? 0,
    };
  } catch (err) {
    // NOT_FOUND, or INVALID_ARGUMENT (an id or run id no workflow can have, as a forged `from` may give)
    const code = (err as { code?: number }).code;
    if (code === 5 || code === 3) return undefined;
    throw err;
  }
}

export async function watchHostLock(client: Client, logger: Logger, input: LockWatchInput): Promise<LockWatch> {
  return abortable(client, () => watchHostLockNow(client, logger, input));
}

async function watchHostLockNow(client: Client, logger: Logger, input: LockWatchInput): Promise<LockWatch> {
  const ctx = Context.current();
  const deadline = Date.now() + input.waitMs;
  for (;;) {
    const d = await describeRaw(client, input.workflowId);
    if (!d || !d.running) return 'released';
    if (d.type !== 'hostLock' || !d.parent) {
      const reason = `${input.workflowId} is reserved for host locks taken by runbook runs; this ${d.type} workflow was not one`;
      await client.workflow
        .getHandle(input.workflowId, d.runId)
        .terminate(reason)
        .catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        });
      logger.warn(
        { workflowId: input.workflowId, runId: d.runId, type: d.type, parent: d.parent ?? null },
        'terminated a workflow squatting on a host lock id',
      );
      return 'cleared';
    }
    const left = deadline - Date.now();
    if (left <= 0) return input.waitMs === 0 ? 'held' : 'timeout';
    ctx.heartbeat();
    await ctx.sleep(Math.min(POLL_MS, left)); // throws when the waiting run is cancelled
  }
}

/**
 * Whether a holder can hold a lock of the manager on `queue`: a running `runbook` run of that queue. A `from` that
 * names anything else (a workflow of another type, one on a queue nobody polls, a run of another queue) was forged:
 * it holds nothing, and its host is freed as soon as someone waits for it.
 */
function holds(d: Awaited<ReturnType<typeof describeRaw>>, queue: string): boolean {
  return !!d?.running && d.type === 'runbook' && d.taskQueue === queue;
}

/** Runs `fn` over `items`, `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A manager whose workflow task has been tried this often without success is taken to be stuck. */
const STUCK_ATTEMPTS = 3;

export interface LockMessagesInput {
  /** The manager: its workflow id and the task queue it runs on (the run's). */
  manager: { workflowId: string; taskQueue: string };
  message: LockRequests;
}

/**
 * Sends a run's lock requests to its manager, starting the manager if none runs (signal-with-start: atomic, so two
 * runs never start two). A workflow of another type, or on another task queue, squatting on the manager's id would
 * swallow every request: it is terminated first (the id is reserved).
 */
export async function sendLockMessages(client: Client, logger: Logger, input: LockMessagesInput): Promise<void> {
  return abortable(client, () => sendLockMessagesNow(client, logger, input));
}

async function sendLockMessagesNow(client: Client, logger: Logger, input: LockMessagesInput): Promise<void> {
  const { workflowId, taskQueue } = input.manager;
  const d = await describeRaw(client, workflowId);
  const squat = d?.running && (d.type !== LOCK_NAMES.manager || d.taskQueue !== taskQueue);
  // A manager whose workflow task keeps failing (one started by hand with input the worker cannot decode) would
  // swallow every request: it is replaced too (the next one asks the runs what they hold before it grants anything).
  const stuck = d?.running && !squat && d.taskAttempt >= STUCK_ATTEMPTS;
  if (d && (squat || stuck)) {
    const why = squat
      ? `${workflowId} is reserved for the host lock manager of task queue ${taskQueue}`
      : `the host lock manager's workflow task failed ${d.taskAttempt} times in a row; a new one takes over`;
    await client.workflow
      .getHandle(workflowId, d.runId)
      .terminate(why)
      .catch((err: unknown) => {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      });
    logger.warn({ workflowId, runId: d.runId, type: d.type, taskQueue: d.taskQueue }, why);
  }
  const { from, acquire = [], release = [], decline = [] } = input.message;
  // Releases first: a run's message never holds an acquire that needs one of its own releases, but a manager should
  // see room freed before it is asked for more.
  for (let i = 0; i < Math.max(release.length, acquire.length, decline.length, 1); i += MAX_MESSAGES) {
    const chunk: LockRequests = { from };
    if (release.length > i) chunk.release = release.slice(i, i + MAX_MESSAGES);
    if (decline.length > i) chunk.decline = decline.slice(i, i + MAX_MESSAGES);
    if (acquire.length > i) chunk.acquire = acquire.slice(i, i + MAX_MESSAGES);
    await client.workflow.signalWithStart(LOCK_NAMES.manager, {
      workflowId,
      taskQueue,
      args: [{}],
      signal: LOCK_NAMES.requests,
      signalArgs: [chunk],
    });
  }
}

export interface LockCheckInput {
  /** Hosts to look for an old-style lock on. */
  legacy?: string[];
  /** Holding runs to look at. */
  holders?: RunRef[];
}

export interface LockCheck {
  /** Hosts an old-style lock (a `hostLock` child of a run) holds now. */
  legacyHeld: string[];
  /** No old-style lock runs in the namespace at all (asked only with `legacy`). */
  legacyNone: boolean;
  /** Holders that no longer run. */
  closed: RunRef[];
}

/** Whether old-style locks hold `legacy` hosts (a squatter there is cleared), and which `holders` have closed. */
export async function checkHostLocks(client: Client, logger: Logger, input: LockCheckInput): Promise<LockCheck> {
  return abortable(client, () => checkHostLocksNow(client, logger, input));
}

async function checkHostLocksNow(client: Client, logger: Logger, input: LockCheckInput): Promise<LockCheck> {
  const out: LockCheck = { legacyHeld: [], legacyNone: false, closed: [] };
  await eachLimited(input.legacy ?? [], 16, async (host) => {
    const w = await watchHostLock(client, logger, { workflowId: `${HOST_LOCK_PREFIX}${host}`, waitMs: 0 });
    if (w === 'held') out.legacyHeld.push(host);
  });
  if (input.legacy?.length) out.legacyNone = (await openOfType(client, 'hostLock', 1)).length === 0;
  const queue = Context.current().info.taskQueue;
  await eachLimited(input.holders ?? [], 16, async (h) => {
    if (!holds(await describeRaw(client, h.workflowId, h.runId), queue)) out.closed.push(h);
  });
  return out;
}

/**
 * Waits (up to `waitMs`) for a holding run to close. It also stops when the manager that asked has closed (a
 * heartbeat says so on a real server; the time-skipping test server keeps such an activity, and its clock, going).
 */
export async function watchLockHolder(
  client: Client,
  input: RunRef & { waitMs: number },
): Promise<'closed' | 'running'> {
  return abortable(client, () => watchLockHolderNow(client, input));
}

async function watchLockHolderNow(client: Client, input: RunRef & { waitMs: number }): Promise<'closed' | 'running'> {
  const ctx = Context.current();
  const manager = ctx.info.workflowExecution;
  const deadline = Date.now() + input.waitMs;
  for (let i = 1; ; i++) {
    if (!holds(await describeRaw(client, input.workflowId, input.runId), ctx.info.taskQueue)) return 'closed';
    const left = deadline - Date.now();
    if (left <= 0) return 'running';
    if (manager && i % 5 === 0 && !(await describeRaw(client, manager.workflowId, manager.runId))?.running)
      return 'running';
    ctx.heartbeat();
    await ctx.sleep(Math.min(POLL_MS, left)); // throws when the manager cancels the watch
  }
}

/** How long a run that does not answer is asked again before it is taken to hold all its targets. */
const ANSWER_WAIT_MS = 30_000;

interface OpenRun extends RunRef {
  /** The hosts it may lock (its RunbookTargets search attribute), when known. */
  targets?: string[];
}

type OpenExecution = temporal.api.workflow.v1.IWorkflowExecutionInfo;

/**
 * Open executions of a workflow type, up to `max` (the old list API: the time-skipping test server has only that
 * one, and ignores its type filter, so the type is checked here too).
 */
async function openOfType(client: Client, type: string, max = Infinity): Promise<OpenExecution[]> {
  const out: OpenExecution[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.workflowService.listOpenWorkflowExecutions({
      namespace: client.options.namespace,
      maximumPageSize: 1000,
      nextPageToken,
      typeFilter: { name: type },
    });
    for (const e of page.executions) if (e.type?.name === type && out.length < max) out.push(e);
    nextPageToken = page.nextPageToken?.length && out.length < max ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return out;
}

/** Every open `runbook` run of the task queue. */
async function openRuns(client: Client, taskQueue: string): Promise<OpenRun[]> {
  const runs: OpenRun[] = [];
  for (const e of await openOfType(client, 'runbook')) {
    const workflowId = e.execution?.workflowId;
    const runId = e.execution?.runId;
    if (!workflowId || !runId) continue;
    const queue = e.taskQueue || (await describeRaw(client, workflowId, runId))?.taskQueue;
    if (queue === taskQueue) runs.push({ workflowId, runId });
  }
  return runs;
}

/** A keyword-list search attribute of a described run, read raw (nothing in it is decoded by a converter). */
function keywords(d: temporal.api.workflowservice.v1.IDescribeWorkflowExecutionResponse, name: string) {
  const p = d.workflowExecutionInfo?.searchAttributes?.indexedFields?.[name];
  if (!p?.data) return undefined;
  try {
    const v = JSON.parse(Buffer.from(p.data).toString('utf8')) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What is known of a run that did not answer: whether it ever asked the manager (the SDK lists the patches a run
 * went through in TemporalChangeVersion; one that never reached `host-lock-manager` holds no lock of a manager),
 * and the hosts it may lock (RunbookTargets), when it has them yet.
 */
async function silentRun(client: Client, run: RunRef): Promise<{ asked: boolean; targets?: string[] } | undefined> {
  try {
    const d = await client.workflowService.describeWorkflowExecution({
      namespace: client.options.namespace,
      execution: run,
    });
    if (d.workflowExecutionInfo?.status !== RUNNING) return undefined;
    return {
      // The SDK records a patch in TemporalChangeVersion with its marker: a run without it never asked.
      asked: keywords(d, 'TemporalChangeVersion')?.includes(LOCK_MANAGER_PATCH) ?? false,
      targets: keywords(d, 'RunbookTargets'),
    };
  } catch (err) {
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    return { asked: true };
  }
}

/**
 * What every open run of the task queue holds and waits for, asked with the `hostLocks` query (a run that never
 * asked the manager for a lock has no such handler, and holds nothing). A run that does not answer (its workflow
 * tasks fail, or no worker serves it) is asked again for ANSWER_WAIT_MS; then it is taken to hold every host it
 * targets (RunbookTargets), or, when that is not known either, it is waited for until it answers or closes.
 */
export async function recoverHostLocks(
  client: Client,
  logger: Logger,
  input: { taskQueue: string },
): Promise<Recovered> {
  return abortable(client, () => recoverHostLocksNow(client, logger, input));
}

async function recoverHostLocksNow(client: Client, logger: Logger, input: { taskQueue: string }): Promise<Recovered> {
  const ctx = Context.current();
  const found: Recovered = { held: [], waiting: [] };
  let pending = await openRuns(client, input.taskQueue);
  const since = Date.now();
  while (pending.length) {
    const silent: OpenRun[] = [];
    await eachLimited(pending, 8, async (run) => {
      ctx.heartbeat();
      let answer: RunLocks;
      try {
        answer = await client.workflow.getHandle(run.workflowId, run.runId).query<RunLocks>(LOCK_NAMES.runLocks);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return;
        // No answer: a run that never asked (no query handler yet) holds nothing; any other is asked again.
        const known = await silentRun(client, run);
        if (known?.asked) silent.push({ ...run, targets: known.targets });
        return;
      }
      if (inputProblems(RunLocksSchema, answer).length) {
        silent.push(run);
        return;
      }
      for (const h of answer.held) found.held.push({ ...run, ...h });
      for (const w of answer.waiting) found.waiting.push({ ...run, ...w });
    });
    ctx.heartbeat();
    if (!silent.length) break;
    if (Date.now() - since >= ANSWER_WAIT_MS) {
      pending = [];
      for (const run of silent) {
        const targets = run.targets ?? (await silentRun(client, run))?.targets;
        if (targets) {
          for (const host of targets)
            found.held.push({ ...run, host, requestId: `unanswered:${run.runId}`, unanswered: true });
        } else pending.push(run);
      }
      if (pending.length)
        logger.warn(
          { runs: pending },
          'host lock manager: waiting for runs that do not answer and have no targets yet',
        );
    } else pending = silent;
    if (pending.length) await ctx.sleep(2000);
  }
  return found;
}
