// Node side. Runbooks' `on.schedule` kept in step with Temporal Schedules, declaratively: `runbook schedules sync`
// reads the runbook directory, works out what to create, update and delete, and (unless it is a dry run) does it.
//
// Ownership: the schedules sync manages have the id `runbook:NAME` and the memo `managedBy: runbook schedules sync`
// (set once, at creation). Anything else on the server is never touched; a foreign schedule that holds one of
// these ids is a conflict that stops the whole sync before any change. The configuration a schedule was last
// synced with is kept, with its hash, in its action's memo, so an unchanged runbook is left alone (a second sync
// changes nothing) and a changed one is updated in place: its pause state, note and history are kept.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import canonicalize from 'canonicalize';
import {
  ScheduleNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleOverlapPolicy,
} from '@temporalio/client';
import ms from 'ms';
import { UserError } from '../common/errors';
import { isRunbookFileName, loadRunbookFile } from '../dsl/load';
import { formatProblem } from '../dsl/problems';
import { describeSchedule, SCHEDULE_DEFAULTS, temporalSpec, type ScheduleDoc } from '../dsl/schedule-spec';
import type { RunbookInput } from '../dsl/run-input';

/** The id prefix of the schedules sync manages. */
export const SCHEDULE_PREFIX = 'runbook:';
/** The memo key and value that mark a schedule as sync's own. */
export const MANAGED_BY = 'runbook schedules sync';
/** The workflow id prefix of scheduled runs (Temporal appends the scheduled time). */
export const SCHEDULED_RUN_PREFIX = 'scheduled:';

export const scheduleIdOf = (runbook: string) => `${SCHEDULE_PREFIX}${runbook}`;

/** What a schedule is synced with, as people read it (also what a diff shows). */
export interface ScheduleConfig {
  runbook: string;
  when: string;
  timezone: string;
  overlap: string;
  catchupWindow: string;
  jitter: string;
  pauseOnFailure: boolean;
  params: string;
  taskQueue: string;
}

export interface DesiredSchedule {
  id: string;
  runbook: string;
  file: string;
  config: ScheduleConfig;
  hash: string;
  options: ScheduleOptions;
}

export interface ExistingSchedule {
  id: string;
  owned: boolean;
  /** The config and hash sync last wrote (undefined when it is not ours or was changed by hand). */
  config?: ScheduleConfig;
  hash?: string;
  paused: boolean;
}

export interface SyncPlan {
  create: DesiredSchedule[];
  update: { desired: DesiredSchedule; changes: { field: string; from: unknown; to: unknown }[] }[];
  remove: ExistingSchedule[];
  unchanged: DesiredSchedule[];
  /** Ids sync would need but that belong to someone else. */
  conflicts: string[];
}

const OVERLAP: Record<string, ScheduleOverlapPolicy> = {
  skip: 'SKIP',
  'buffer-one': 'BUFFER_ONE',
  'buffer-all': 'BUFFER_ALL',
  'cancel-other': 'CANCEL_OTHER',
  'terminate-other': 'TERMINATE_OTHER',
  'allow-all': 'ALLOW_ALL',
};

/** The schedule options of one runbook's `on.schedule`. */
export function desiredSchedule(runbook: string, file: string, s: ScheduleDoc, taskQueue: string): DesiredSchedule {
  const id = scheduleIdOf(runbook);
  const overlap = s.overlap ?? SCHEDULE_DEFAULTS.overlap;
  const catchupWindow = s.catchupWindow ?? SCHEDULE_DEFAULTS.catchupWindow;
  const input: RunbookInput = {
    runbook,
    ...(s.params ? { params: s.params } : {}),
    trigger: 'schedule',
    initiator: `schedule:${id}`,
  };
  const spec = temporalSpec(s);
  const policies = {
    overlap: OVERLAP[overlap]!,
    catchupWindow: ms(catchupWindow as ms.StringValue),
    pauseOnFailure: s.pauseOnFailure ?? false,
  };
  const config: ScheduleConfig = {
    runbook,
    when: describeSchedule({ ...s, overlap: undefined, jitter: undefined }).replace(/, overlap \S+$/, ''),
    timezone: s.every !== undefined ? '-' : (s.timezone ?? SCHEDULE_DEFAULTS.timezone),
    overlap,
    catchupWindow,
    jitter: s.jitter ?? '0s',
    pauseOnFailure: policies.pauseOnFailure,
    params: canonicalize(s.params ?? {}) ?? '{}',
    taskQueue,
  };
  const workflowId = `${SCHEDULED_RUN_PREFIX}${runbook}`;
  const hash = crypto
    .createHash('sha256')
    .update(canonicalize({ spec, policies, input, taskQueue, workflowId }) ?? '')
    .digest('hex')
    .slice(0, 16);
  return {
    id,
    runbook,
    file,
    config,
    hash,
    options: {
      scheduleId: id,
      spec,
      action: {
        type: 'startWorkflow',
        workflowType: 'runbook',
        args: [input],
        taskQueue,
        workflowId,
        memo: { runbookSchedule: { hash, config } },
      },
      policies,
      memo: { managedBy: MANAGED_BY },
      state: { note: `managed by runbook schedules sync from ${path.basename(file)}` },
    },
  };
}

/** Runbook files of a directory (not inventories or calendar files). */
export function runbookFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) throw new UserError(`The runbook directory ${dir} does not exist; set RUNBOOK_DIR.`);
  return fs
    .readdirSync(dir)
    .filter(isRunbookFileName)
    .sort()
    .map((f) => path.join(dir, f));
}

/**
 * The schedules the runbook directory asks for. Any runbook that does not load stops the sync (its schedule might
 * be one that would otherwise be deleted): the error lists every problem.
 */
export function desiredSchedules(dir: string, taskQueue: string): DesiredSchedule[] {
  const out: DesiredSchedule[] = [];
  const broken: string[] = [];
  for (const file of runbookFiles(dir)) {
    const loaded = loadRunbookFile(file);
    if (!loaded.runbook) {
      broken.push(...loaded.problems.filter((p) => p.severity === 'error').map((p) => formatProblem(p)));
      continue;
    }
    const s = loaded.runbook.on?.schedule;
    if (s) out.push(desiredSchedule(loaded.runbook.metadata.name, file, s, taskQueue));
  }
  if (broken.length)
    throw new UserError(
      `Nothing was synced: runbooks in ${dir} have errors (a broken runbook's schedule can be neither kept nor removed safely):\n${broken.join('\n')}`,
    );
  return out;
}

/** The schedule sync manages or would need, as found on the server. */
export async function existingSchedules(client: Client): Promise<ExistingSchedule[]> {
  const out: ExistingSchedule[] = [];
  for await (const s of client.schedule.list()) {
    if (!s.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
    const owned = s.memo?.managedBy === MANAGED_BY;
    let config: ScheduleConfig | undefined;
    let hash: string | undefined;
    let paused = s.state.paused;
    if (owned) {
      try {
        const d = await client.schedule.getHandle(s.scheduleId).describe();
        const mine = (d.action.memo as { runbookSchedule?: { hash?: string; config?: ScheduleConfig } } | undefined)
          ?.runbookSchedule;
        hash = typeof mine?.hash === 'string' ? mine.hash : undefined;
        config = mine?.config;
        paused = d.state.paused;
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) continue; // deleted meanwhile
        throw err;
      }
    }
    out.push({ id: s.scheduleId, owned, config, hash, paused });
  }
  return out;
}

/** What sync would do (pure). */
export function planSync(desired: DesiredSchedule[], existing: ExistingSchedule[]): SyncPlan {
  const plan: SyncPlan = { create: [], update: [], remove: [], unchanged: [], conflicts: [] };
  const byId = new Map(existing.map((e) => [e.id, e]));
  for (const d of desired) {
    const e = byId.get(d.id);
    if (!e) plan.create.push(d);
    else if (!e.owned) plan.conflicts.push(d.id);
    else if (e.hash === d.hash) plan.unchanged.push(d);
    else {
      const from = (e.config ?? {}) as unknown as Record<string, unknown>;
      const to = d.config as unknown as Record<string, unknown>;
      const changes = Object.keys(to)
        .filter((k) => JSON.stringify(from[k]) !== JSON.stringify(to[k]))
        .map((field) => ({ field, from: from[field], to: to[field] }));
      // Same config, other hash: changed by hand (or by another version of sync); say what is restored.
      plan.update.push({
        desired: d,
        changes: changes.length
          ? changes
          : [{ field: 'schedule', from: 'changed outside sync', to: 'as in the runbook' }],
      });
    }
  }
  const wanted = new Set(desired.map((d) => d.id));
  for (const e of existing) if (e.owned && !wanted.has(e.id)) plan.remove.push(e);
  return plan;
}

/** Whether a plan changes anything. */
export const planChanges = (p: SyncPlan) => p.create.length + p.update.length + p.remove.length;

/** Carries a plan out; one failure stops the rest and says which were done. */
export async function applySync(client: Client, plan: SyncPlan): Promise<string[]> {
  const done: string[] = [];
  try {
    for (const d of plan.create) {
      await client.schedule.create(d.options);
      done.push(`created ${d.id}`);
    }
    for (const { desired } of plan.update) {
      await client.schedule.getHandle(desired.id).update((prev: ScheduleDescription) => ({
        ...prev,
        spec: desired.options.spec,
        action: desired.options.action,
        policies: desired.options.policies!,
        state: { paused: prev.state.paused, note: prev.state.note, remainingActions: prev.state.remainingActions },
      }));
      done.push(`updated ${desired.id}`);
    }
    for (const e of plan.remove) {
      await client.schedule.getHandle(e.id).delete();
      done.push(`deleted ${e.id}`);
    }
  } catch (err) {
    throw new UserError(
      `Sync stopped: ${(err as Error).message}.${done.length ? ` Done before that: ${done.join(', ')}.` : ' Nothing was changed.'} Run it again once the cause is fixed.`,
      { cause: err },
    );
  }
  return done;
}

/** A schedule id from what an operator types: a runbook name or the full id. */
export function scheduleIdFrom(nameOrId: string): string {
  const id = nameOrId.startsWith(SCHEDULE_PREFIX) ? nameOrId : scheduleIdOf(nameOrId);
  if (!/^runbook:[a-z][a-z0-9-]{0,127}$/.test(id))
    throw new UserError(`"${nameOrId.slice(0, 140)}" is not a runbook name or a runbook:NAME schedule id.`);
  return id;
}

/** The handle of a schedule sync manages, refusing others (they are not ours to pause, trigger or backfill). */
export async function ownedSchedule(client: Client, nameOrId: string) {
  const id = scheduleIdFrom(nameOrId);
  const handle = client.schedule.getHandle(id);
  let d: ScheduleDescription;
  try {
    d = await handle.describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError)
      throw new UserError(
        `No schedule ${id}. Runbooks with an on.schedule get one from \`runbook schedules sync\`; \`runbook schedules list\` shows them.`,
      );
    throw err;
  }
  if (d.memo?.managedBy !== MANAGED_BY)
    throw new UserError(`Schedule ${id} was not made by \`runbook schedules sync\`; it is left alone.`);
  return { id, handle, description: d };
}
