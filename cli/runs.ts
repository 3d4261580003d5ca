// Node side. `runbook run`, `status`, `cancel`, `list`, `approve`, `reject`: operating runbook runs.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { UserError } from '../common/errors';
import { resolveRunbookPath, RunbookNotFoundError } from '../dsl/load';
import { connectClient, runbookDirFromEnv, temporalTargetFromEnv, workerSettingsFromEnv } from '../worker/config';
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

/** Starts a run; with --wait streams progress and exits with the outcome. */
export async function runRun(name: string, opts: RunOptions): Promise<number> {
  // Fail fast on this machine when the runbook is here too: located errors, bad params, unknown hosts.
  let inputs: Record<string, unknown> | undefined;
  try {
    resolveRunbookPath(name, runbookDirFromEnv());
    inputs = buildPlan(name, { ...opts, json: false }).params;
  } catch (err) {
    if (!(err instanceof RunbookNotFoundError)) throw err; // not here: the worker may have it
  }
  // A runbook only the worker has: it checks the params, read here by the same rule as for a local one.
  const params = inputs ?? paramInputs(opts);
  const runbookName = path.basename(name).replace(/\.ya?ml$/, '');
  return withClient(async (client) => {
    const workflowId = `rb-${runbookName}-${crypto.randomUUID().slice(0, 8)}`;
    const handle = await client.workflow.start<typeof runbook>('runbook', {
      taskQueue: workerSettingsFromEnv().taskQueue,
      workflowId,
      args: [
        {
          runbook: runbookName,
          params,
          inventory: opts.inventory ? path.resolve(opts.inventory) : undefined,
          initiator: opts.initiator ?? os.userInfo().username,
          trigger: 'manual',
          ...(opts.overrideWindow
            ? { windowOverride: { by: opts.initiator ?? os.userInfo().username, reason: opts.overrideWindow } }
            : {}),
        },
      ],
    });
    if (!opts.wait) {
      console.log(
        opts.json ? JSON.stringify({ workflowId, runId: handle.firstExecutionRunId }) : `started ${workflowId}`,
      );
      return 0;
    }
    if (!opts.json)
      console.error(`started ${workflowId}; following its progress (Ctrl-C stops following, not the run)`);
    // Progress comes from one query at a time. A query is answered only between workflow tasks, so one is often in
    // flight when the run ends: it is aborted and awaited before the connection closes (else the client's retry of
    // it hits the closed channel from a timer: an uncaught "Channel has been shut down", exit 1, after success).
    let last = '';
    const stopQueries = new AbortController();
    let inflight: Promise<void> | undefined;
    const timer = setInterval(() => {
      inflight ??= client
        .withAbortSignal(stopQueries.signal, () => handle.query(stateQuery))
        .then((s) => {
          const line = progressLine(s);
          if (line !== last && !opts.json) console.error(line);
          last = line;
        })
        .catch(() => undefined)
        .finally(() => {
          inflight = undefined;
        });
    }, 500);
    try {
      const result = await handle.result();
      if (opts.json) console.log(JSON.stringify({ workflowId, ...result }));
      else console.log(summary(workflowId, result));
      return EXIT[result.status];
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const state = await handle.query(stateQuery).catch(() => undefined);
      const result = state?.result as RunbookResult | undefined;
      if (opts.json) console.log(JSON.stringify({ workflowId, error: err.cause?.message, ...(result ?? {}) }));
      else
        console.log(
          result ? summary(workflowId, result) : `${workflowId} failed: ${err.cause?.message ?? err.message}`,
        );
      return result ? EXIT[result.status] : 1;
    } finally {
      clearInterval(timer);
      stopQueries.abort();
      await inflight;
    }
  });
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
