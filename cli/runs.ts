// Node side. `runbook run`, `status`, `cancel`, `list`, `approve`, `reject`: operating runbook runs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CancelledFailure,
  TerminatedFailure,
  WorkflowFailedError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { UserError } from '../common/errors';
import { resolveRunbookPath, RunbookNotFoundError } from '../dsl/load';
import { RUNBOOK_SOURCE_MAX_CHARS } from '../dsl/run-input';
import { loadValidRunbook } from '../dsl/prepare';
import { runDetails, runSummary, type RunbookFacts } from '../common/run-metadata';
import type { StepDoc } from '../dsl/schema';
import {
  connectClient,
  inventoryFor,
  RUNBOOK_FILES_MARK,
  runbookDirFromEnv,
  temporalTargetFromEnv,
  workerSettingsFromEnv,
} from '../worker/config';
import type { runbook, RunbookResult } from '../workflows/runbook';
import { decideSignal, overrideWindowSignal, stateQuery, type RunState } from '../workflows/messages';
import { buildPlan } from './language';
import { paramInputs } from './params';

/** Runs `fn` with a client of the server the TEMPORAL_* variables name, closed after. */
export async function withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const client = await connectClient(temporalTargetFromEnv());
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}

export interface RunOptions {
  param: string[];
  paramsJson?: string;
  inventory?: string;
  wait: boolean;
  json: boolean;
  initiator?: string;
  /** Run even when a change calendar is closed: the reason is recorded with who gave it. */
  overrideWindow?: string;
}

/** Exit codes of `run --wait` by outcome (`blocked`: a change calendar kept the run out). */
const EXIT = { succeeded: 0, degraded: 3, failed: 1, cancelled: 130, blocked: 4 } as const;

/** Whether the CLI's runbook argument is a file (a path or a .yaml name) rather than a name of the worker's directory. */
export function isRunbookPath(nameOrPath: string): boolean {
  return /\.ya?ml$/i.test(nameOrPath) || nameOrPath.includes('/') || nameOrPath.includes(path.sep);
}

/** A poller the server last heard from longer ago than this is a worker that stopped (a live one polls again within a minute). */
const POLLER_STALE_MS = 70_000;

/**
 * Refuses, before anything starts, a run carrying its runbook that a worker of the task queue would refuse: the
 * workers say in their identity whether they accept runbook files (worker/config.ts), and the run's prepare step
 * may land on any of them, so every live one must. Pollers the server has not heard from for a while are workers
 * that stopped. A queue with no live worker is not refused (the run waits for one, and its prepare step decides).
 */
async function checkWorkersTakeFiles(client: Client, taskQueue: string, file: string): Promise<void> {
  const { temporal } = await import('@temporalio/proto');
  const res = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  const now = Date.now();
  const live = (res.pollers ?? []).filter((p) => {
    const seconds = Number(p.lastAccessTime?.seconds ?? 0);
    return seconds === 0 || now - seconds * 1000 < POLLER_STALE_MS;
  });
  const refusing = live.map((p) => p.identity ?? '').filter((id) => !id.includes(RUNBOOK_FILES_MARK));
  if (refusing.length === 0) return;
  throw new UserError(
    `${file}: ${refusing.length === live.length ? 'the workers' : `${refusing.length} of the ${live.length} workers`} of ` +
      `task queue ${taskQueue} (${refusing.slice(0, 5).join(', ')}) run only the runbooks of their own directory, so ` +
      `a run carrying this file would be refused. Copy it into the worker's RUNBOOK_DIR and run it by name, or restart ` +
      `${refusing.length === live.length ? 'the workers' : 'those workers'} with RUNBOOK_ALLOW_RUNBOOK_FILES=on ` +
      `(\`runbook dev\` has it on). Nothing was started.`,
  );
}

/** The names of the sub-runbooks steps call (`runbook:` steps, also in parallel steps and rollbacks). */
function subRunbooks(steps: StepDoc[]): string[] {
  const names = new Set<string>();
  const walk = (list: StepDoc[] | undefined) => {
    for (const s of list ?? []) {
      if (s.runbook) names.add(String(s.runbook.name));
      walk(s.parallel?.steps);
      walk(s.rollback);
    }
  };
  walk(steps);
  return [...names];
}

/** The text of a runbook file a run will carry; a UserError naming the file when it cannot be sent. */
function readRunbookSource(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`Cannot read runbook ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}.`);
  }
  if (text.length > RUNBOOK_SOURCE_MAX_CHARS)
    throw new UserError(
      `${file} is ${text.length} characters; a run carries at most ${RUNBOOK_SOURCE_MAX_CHARS}. Put it in the worker's RUNBOOK_DIR and run it by name.`,
    );
  return text;
}

/** Starts a run; with --wait streams progress and exits with the outcome. */
export async function runRun(name: string, opts: RunOptions): Promise<number> {
  const inventory = inventoryFor(opts.inventory);
  let inputs: Record<string, unknown> | undefined;
  let source: string | undefined;
  // What the UI shows of the run from its start (its summary and details), when the runbook is here.
  let facts: { runbook: RunbookFacts & { steps: StepDoc[] }; targets: string[] } | undefined;
  const check = (file: string) => {
    const plan = buildPlan(name, { ...opts, inventory, json: false });
    inputs = plan.params;
    facts = { runbook: loadValidRunbook(file).runbook, targets: plan.targets };
  };
  if (isRunbookPath(name)) {
    // A file: checked here (located errors, params, hosts), then sent with the run; the worker checks it again and
    // pins the content hash of exactly what it received.
    source = readRunbookSource(name);
    check(name);
    const subs = subRunbooks(facts!.runbook.steps);
    if (subs.length && !opts.json)
      console.error(
        `note: ${name} calls ${subs.map((s) => `"${s}"`).join(', ')}: sub-runbooks come from the worker's RUNBOOK_DIR, not from the file's directory`,
      );
  } else {
    // Fail fast on this machine when the runbook is here too: located errors, bad params, unknown hosts.
    let file: string | undefined;
    try {
      file = resolveRunbookPath(name, runbookDirFromEnv());
    } catch (err) {
      if (!(err instanceof RunbookNotFoundError)) throw err; // not here: the worker may have it
    }
    if (file) check(file);
  }
  // A runbook only the worker has: it checks the params, read here by the same rule as for a local one.
  const params = inputs ?? paramInputs(opts);
  // A file's run is named by its runbook's own name (the worker checks the YAML it receives against it).
  const runbookName =
    source !== undefined ? facts!.runbook.metadata.name : path.basename(name).replace(/\.ya?ml$/i, '');
  const initiator = opts.initiator ?? os.userInfo().username;
  const taskQueue = workerSettingsFromEnv().taskQueue;
  return withClient(async (client) => {
    if (source !== undefined) await checkWorkersTakeFiles(client, taskQueue, name);
    const workflowId = `rb-${runbookName}-${crypto.randomUUID().slice(0, 8)}`;
    const input = {
      runbook: runbookName,
      ...(source !== undefined ? { source } : {}),
      params,
      inventory,
      initiator,
      trigger: 'manual' as const,
      ...(opts.overrideWindow ? { windowOverride: { by: initiator, reason: opts.overrideWindow } } : {}),
    };
    const handle = await client.workflow.start<typeof runbook>('runbook', {
      taskQueue,
      workflowId,
      args: [input],
      staticSummary: runSummary(input, facts?.runbook, facts?.targets),
      staticDetails: runDetails(input, facts?.runbook, facts?.targets),
    });
    if (!opts.wait) {
      console.log(
        opts.json ? JSON.stringify({ workflowId, runId: handle.firstExecutionRunId }) : `started ${workflowId}`,
      );
      return 0;
    }
    if (!opts.json)
      console.error(`started ${workflowId}; following its progress (Ctrl-C stops following, not the run)`);
    return followRun(client, handle, workflowId, opts.json);
  });
}

/** How long the outcome's state query waits for a worker once a run has failed. */
const OUTCOME_QUERY_MS = 5_000;

/**
 * Follows a run to its end: progress lines on stderr, the outcome on stdout, and the outcome's exit code (EXIT).
 * Ctrl-C stops following only: the run goes on, and the exit status is 130. Every call on the connection is
 * aborted and awaited before it closes, so nothing of the client's (a query's retry timer) outlives it: once,
 * a query in flight at the run's end hit the closed channel and printed an uncaught "Channel has been shut down"
 * with exit 1 after a success.
 */
export async function followRun(
  client: Client,
  handle: WorkflowHandle<typeof runbook>,
  workflowId: string,
  json: boolean,
): Promise<number> {
  // One controller per call: the client adds a listener to the signal of each call and never removes it.
  const stop = new AbortController();
  let query: AbortController | undefined;
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    stop.abort();
    query?.abort();
  };
  process.once('SIGINT', onSigint);
  let last = '';
  let inflight: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (inflight) return;
    query = new AbortController();
    inflight = client
      .withAbortSignal(query.signal, () => handle.query(stateQuery))
      .then((s) => {
        const line = progressLine(s);
        if (line !== last && !json) console.error(line);
        last = line;
      })
      .catch(() => undefined)
      .finally(() => {
        inflight = undefined;
      });
  }, 500);
  try {
    const result = await client.withAbortSignal(stop.signal, () => handle.result());
    if (json) console.log(JSON.stringify({ workflowId, ...result }));
    else console.log(summary(workflowId, result));
    return EXIT[result.status];
  } catch (err) {
    if (interrupted) {
      if (json) console.log(JSON.stringify({ workflowId, following: 'stopped', status: 'running' }));
      console.error(
        `stopped following ${workflowId}; the run goes on (\`runbook status ${workflowId}\`, \`runbook cancel ${workflowId}\`)`,
      );
      return EXIT.cancelled;
    }
    if (!(err instanceof WorkflowFailedError)) {
      // Not the run's outcome: this client lost the server (or the run) while following. Say so, not "failed".
      throw new UserError(
        `Stopped following ${workflowId}: ${(err as Error).message}. The run's outcome is not known here: ` +
          `\`runbook status ${workflowId}\` once the server answers.`,
        { cause: err },
      );
    }
    // The run's own account of how it ended (a failed run keeps its result in its state), if a worker answers.
    const state = await client
      .withDeadline(Date.now() + OUTCOME_QUERY_MS, () =>
        client.withAbortSignal(stop.signal, () => handle.query(stateQuery)),
      )
      .catch(() => undefined);
    const result = state?.result as RunbookResult | undefined;
    const cancelled = err.cause instanceof CancelledFailure;
    const why =
      err.cause instanceof TerminatedFailure
        ? `terminated${err.cause.message ? ` (${err.cause.message})` : ''}`
        : (err.cause?.message ?? err.message);
    if (json) console.log(JSON.stringify({ workflowId, error: why, ...(result ?? {}) }));
    else
      console.log(result ? summary(workflowId, result) : `${workflowId} ${cancelled ? 'cancelled' : `failed: ${why}`}`);
    return result ? EXIT[result.status] : cancelled ? EXIT.cancelled : EXIT.failed;
  } finally {
    process.removeListener('SIGINT', onSigint);
    clearInterval(timer);
    stop.abort();
    query?.abort();
    await inflight;
  }
}

function progressLine(s: RunState): string {
  const hosts = Object.entries(s.hosts)
    .map(([h, v]) => `${h}=${v.state}${v.step && v.state === 'running' ? `(${v.step})` : ''}`)
    .join(' ');
  const approvals = s.pendingApprovals
    .map((a) => ` awaiting approval "${a.id}" (${a.approvals.length}/${a.quorum})`)
    .join('');
  return `[${s.status}] batch ${s.batch.index}/${s.batch.of} ${hosts}${approvals}`;
}

function summary(workflowId: string, r: RunbookResult): string {
  const lines = [
    `${workflowId}: ${r.runbook} ${r.status} (${r.failures} failed, ${r.threshold} tolerated; sha256 ${r.contentHash.slice(0, 12)})`,
  ];
  if (r.blocked) lines.push(`  blocked: ${r.blocked}`);
  for (const [h, v] of Object.entries(r.hosts)) {
    lines.push(`  ${h.padEnd(16)} ${v.state}${v.error ? `: ${v.error}` : ''}`);
    for (const e of v.rollbackErrors) lines.push(`    rollback failed: ${e}`);
  }
  return lines.join('\n');
}

/** How long `status` waits for a worker to answer the state query. */
const STATUS_QUERY_MS = 5_000;

export async function runStatus(id: string, opts: { json: boolean }): Promise<void> {
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(id);
    const desc = await handle.describe().catch((err: Error) => {
      throw new UserError(`No run ${id}: ${err.message}`);
    });
    // A query is answered by a worker: with none polling, say what the server knows instead of waiting for one.
    const state = await client
      .withDeadline(Date.now() + STATUS_QUERY_MS, () => handle.query(stateQuery))
      .catch(() => undefined);
    // Why a failed run failed, decoded with this client's converter (a run refused before it had any state, such as
    // a malformed input, says so only here; the Temporal CLI shows "Encoded failure").
    const error =
      desc.status.name === 'FAILED'
        ? await handle.result().then(
            () => undefined,
            (err: unknown) => (err instanceof WorkflowFailedError ? (err.cause?.message ?? err.message) : undefined),
          )
        : undefined;
    if (opts.json)
      return void console.log(
        JSON.stringify(
          { workflowId: id, status: desc.status.name, started: desc.startTime, closed: desc.closeTime, error, state },
          null,
          2,
        ),
      );
    console.log(
      `${id}: ${desc.status.name} (started ${desc.startTime.toISOString()}${desc.closeTime ? `, closed ${desc.closeTime.toISOString()}` : ''})`,
    );
    // A runbook that came with the run (`runbook run FILE.yaml`) may differ from the directory's of the same name.
    if (desc.memo?.source === 'sent with the run')
      console.log(
        `  runbook: sent with the run (sha256 ${String(desc.memo.contentHash ?? '').slice(0, 12)}), not the worker's directory's`,
      );
    if (error) console.log(`  error: ${error.replace(/\n/g, '\n    ')}`);
    if (state) {
      console.log(progressLine(state));
      if (state.window) {
        const w = state.window;
        const closed = w.calendars.filter((c) => !c.open).map((c) => `${c.name}${c.event ? ` (${c.event})` : ''}`);
        console.log(
          `  window: ${w.open ? 'open' : `closed: ${closed.join(', ') || 'within the cutoff'}`}` +
            (w.overriddenBy ? ` (overridden by ${w.overriddenBy})` : '') +
            (w.waitingUntil
              ? `; waiting until ${w.waitingUntil} (\`runbook window override ${id} --reason ...\` goes on now)`
              : '') +
            (!w.waitingUntil && w.nextChange ? `; next change ${w.nextChange}` : ''),
        );
      }
      for (const a of state.pendingApprovals)
        console.log(
          `  pending approval "${a.id}": ${a.message} (${a.approvals.length}/${a.quorum}, until ${a.deadline})`,
        );
      for (const d of state.decisions)
        console.log(
          `  decision on "${d.id}": ${d.approve ? 'approved' : 'rejected'} by ${d.by}${d.comment ? ` (${d.comment})` : ''}`,
        );
      for (const e of state.auditErrors ?? []) console.log(`  AUDIT NOT WRITTEN: ${e}`);
    }
  });
}

export async function runCancel(id: string): Promise<void> {
  await withClient(async (client) => {
    await client.workflow.getHandle(id).cancel();
    console.log(`cancel requested for ${id}: running commands are killed, then rollback runs`);
  });
}

export async function runList(opts: {
  status?: string;
  runbook?: string;
  initiator?: string;
  limit: number;
  json: boolean;
}): Promise<void> {
  const filters: [string, string | undefined][] = [
    ['RunbookStatus', opts.status],
    ['RunbookName', opts.runbook],
    ['Initiator', opts.initiator],
  ];
  const clauses = [
    `WorkflowType = 'runbook'`,
    ...filters.filter(([, v]) => v).map(([attr, v]) => `${attr} = '${v!.replace(/'/g, '')}'`),
  ];
  await withClient(async (client) => {
    const rows: Record<string, unknown>[] = [];
    for await (const wf of client.workflow.list({ query: clauses.join(' AND ') })) {
      const sa = wf.typedSearchAttributes;
      rows.push({
        workflowId: wf.workflowId,
        status: wf.status.name,
        started: wf.startTime.toISOString(),
        runbook: sa.get({ name: 'RunbookName', type: 'KEYWORD' } as never),
        runbookStatus: sa.get({ name: 'RunbookStatus', type: 'KEYWORD' } as never),
        initiator: sa.get({ name: 'Initiator', type: 'KEYWORD' } as never),
      });
      if (rows.length >= opts.limit) break;
    }
    if (opts.json) return void console.log(JSON.stringify(rows, null, 2));
    for (const r of rows)
      console.log(
        `${String(r.started)}  ${String(r.workflowId).padEnd(36)} ${String(r.runbookStatus ?? r.status).padEnd(18)} ${String(r.initiator ?? '')}`,
      );
    if (rows.length === 0) console.log('no runs');
  });
}

export async function runDecide(
  id: string,
  approve: boolean,
  opts: { step?: string; by: string; group: string[]; comment?: string },
): Promise<void> {
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(id);
    let approvalId = opts.step;
    if (!approvalId) {
      const state = await handle.query(stateQuery);
      if (state.pendingApprovals.length !== 1) {
        throw new UserError(
          `${id} has ${state.pendingApprovals.length} pending approvals${state.pendingApprovals.length ? ` (${state.pendingApprovals.map((a) => a.id).join(', ')})` : ''}: name one with --step.`,
        );
      }
      approvalId = state.pendingApprovals[0]!.id;
    }
    await handle.signal(decideSignal, {
      id: approvalId,
      approve,
      by: opts.by,
      groups: opts.group,
      comment: opts.comment,
    });
    console.log(`${approve ? 'approved' : 'rejected'} "${approvalId}" of ${id} as ${opts.by}`);
  });
}

/** `runbook window override ID --reason`: lets a run waiting for (or about to meet) a closed window go on. */
export async function runWindowOverride(
  id: string,
  o: { reason: string; by?: string; group?: string[] },
): Promise<void> {
  const reason = o.reason.trim();
  if (reason.length < 3) throw new UserError('Give the reason for the override (--reason "..."): it is recorded.');
  await withClient(async (client) => {
    const handle = client.workflow.getHandle(id);
    await handle.describe().catch((err: Error) => {
      throw new UserError(`No run ${id}: ${err.message}`);
    });
    await handle.signal(overrideWindowSignal, {
      by: o.by ?? os.userInfo().username,
      ...(o.group?.length ? { groups: o.group } : {}),
      reason,
    });
    console.log(`override sent to ${id}; the run records it when it next meets a closed window`);
  });
}
