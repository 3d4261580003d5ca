// Node side. Runbooks' `on.schedule` kept in step with Temporal Schedules, declaratively: `runbook schedules sync`
// reads the runbook directory, works out what to create, update and delete, and (unless it is a dry run) does it.
//
// Ownership: the schedules sync manages have the id `runbook:NAME` and the memo `managedBy: runbook schedules sync`
// with the task queue of the deployment that made them (set once, at creation). Anything else on the server is
// never touched: a schedule made by hand, or by the sync of another deployment (another task queue), that holds one
// of the ids this sync needs is a conflict that stops the whole sync before any change.
//
// What is compared is the schedule as the server describes it (spec, action, policies, normalised: every calendar
// field expanded to its values), not what sync remembers writing, so a schedule changed by hand, or replaced by
// one that copies the memo, is put back as the runbook says. An unchanged one is left alone (a second sync changes
// nothing); a changed one is updated in place, keeping its pause state, note and history. The action's memo keeps
// the configuration as people read it, for the diff and for `schedules list`.
import { runDetails, runSummary } from '../common/run-metadata';
import fs from 'node:fs';
import path from 'node:path';
import canonicalize from 'canonicalize';
import {
  ScheduleAlreadyRunning,
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
import {
  DAYS,
  describeSchedule,
  MONTHS,
  SCHEDULE_DEFAULTS,
  temporalSpec,
  type ScheduleDoc,
} from '../dsl/schedule-spec';
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
  /** The normalised spec, action and policies, as a described schedule would show them. */
  normal: string;
  options: ScheduleOptions;
}

export interface ExistingSchedule {
  id: string;
  owned: boolean;
  /** The config sync last wrote (as people read it; the comparison does not trust it). */
  config?: ScheduleConfig;
  /** The normalised spec, action and policies the server describes (see `normalised`). */
  actual?: string;
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

/** Overlap policies as runbooks (and the CLI's --overlap) name them. */
export const OVERLAP: Record<string, ScheduleOverlapPolicy> = {
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
  const options: ScheduleOptions = {
    scheduleId: id,
    spec,
    action: {
      type: 'startWorkflow',
      workflowType: 'runbook',
      args: [input],
      taskQueue,
      workflowId,
      memo: { runbookSchedule: { config } },
      // What the UI shows of each scheduled run from its start. Not compared by sync (`normalised`): a schedule made
      // before summaries existed keeps working without one until something that matters changes.
      staticSummary: runSummary(input),
      staticDetails: runDetails(input),
    },
    policies,
    memo: { managedBy: MANAGED_BY, taskQueue },
    state: { note: `managed by runbook schedules sync from ${path.basename(file)}` },
  };
  return { id, runbook, file, config, normal: normalised(options), options };
}

const MONTH_NUMBER = new Map<string, number>(MONTHS.map((m, i) => [m, i + 1]));
const DAY_NUMBER = new Map<string, number>(DAYS.map((d, i) => [d, i]));
const FIELD_RANGE: Record<string, [number, number]> = {
  second: [0, 59],
  minute: [0, 59],
  hour: [0, 23],
  dayOfMonth: [1, 31],
  month: [1, 12],
  dayOfWeek: [0, 6],
};

/** A calendar field (ranges, `*`, names) as the sorted values it allows; a year field as given. */
function fieldValues(field: string, v: unknown): unknown {
  if (field === 'year') return v === undefined || v === '*' || (Array.isArray(v) && v.length === 0) ? '*' : v;
  const [lo, hi] = FIELD_RANGE[field] ?? [0, 0];
  const num = (x: unknown) =>
    typeof x === 'number' ? x : (MONTH_NUMBER.get(String(x)) ?? DAY_NUMBER.get(String(x)) ?? Number(x));
  if (v === undefined || v === '*') return `${lo}-${hi}`;
  const out = new Set<number>();
  for (const r of (Array.isArray(v) ? v : [v]) as { start: unknown; end?: unknown; step?: number }[]) {
    const start = num(r.start);
    const end = r.end === undefined ? start : num(r.end);
    const step = r.step && r.step > 0 ? r.step : 1;
    for (let x = start; x <= end && out.size <= 100; x += step) out.add(field === 'dayOfWeek' && x === 7 ? 0 : x);
  }
  return [...out].sort((a, b) => a - b).join(',');
}

function calendarValues(c: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    ['second', 'minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek', 'year'].map((f) => [f, fieldValues(f, c[f])]),
  );
}

const msOf = (d: unknown) =>
  d === undefined || d === null ? 0 : typeof d === 'number' ? d : ms(String(d) as ms.StringValue);

/**
 * What decides a schedule's behaviour, in one canonical string: the same for our options and for the server's
 * description of the schedule made from them (calendar fields expanded to their values, durations in ms), and
 * different as soon as anything that matters differs (spec, workflow type, args, task queue, workflow id,
 * policies).
 */
export function normalised(s: {
  spec: ScheduleOptions['spec'] | ScheduleDescription['spec'];
  action: ScheduleOptions['action'] | ScheduleDescription['action'];
  policies?: ScheduleOptions['policies'] | ScheduleDescription['policies'];
}): string {
  const spec = s.spec as Record<string, unknown> & {
    calendars?: Record<string, unknown>[];
    skip?: Record<string, unknown>[];
    intervals?: { every: unknown; offset?: unknown }[];
    cronExpressions?: string[];
  };
  const a = s.action as { workflowType: unknown; args?: unknown[]; taskQueue?: string; workflowId?: string };
  const p = (s.policies ?? {}) as { overlap?: string; catchupWindow?: unknown; pauseOnFailure?: boolean };
  return (
    canonicalize({
      calendars: (spec.calendars ?? []).map(calendarValues),
      skip: (spec.skip ?? []).map(calendarValues),
      intervals: (spec.intervals ?? []).map((i) => ({ every: msOf(i.every), offset: msOf(i.offset) })),
      cron: spec.cronExpressions ?? [],
      timezone: spec.timezone || 'UTC',
      jitter: msOf(spec.jitter),
      startAt: spec.startAt ? new Date(spec.startAt as Date).getTime() : null,
      endAt: spec.endAt ? new Date(spec.endAt as Date).getTime() : null,
      workflowType:
        typeof a.workflowType === 'string' ? a.workflowType : String((a.workflowType as { name?: string })?.name),
      args: a.args ?? [],
      taskQueue: a.taskQueue ?? null,
      workflowId: a.workflowId ?? null,
      overlap: p.overlap ?? 'SKIP',
      catchupWindow: msOf(p.catchupWindow),
      pauseOnFailure: p.pauseOnFailure ?? false,
    }) ?? ''
  );
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
 * The schedules the runbook directory asks for (`calendarsFile`: the calendar file, when it lives there). Any runbook that does not load stops the sync (its schedule might
 * be one that would otherwise be deleted): the error lists every problem.
 */
export function desiredSchedules(dir: string, taskQueue: string, calendarsFile?: string): DesiredSchedule[] {
  const out: DesiredSchedule[] = [];
  const broken: string[] = [];
  const skip = calendarsFile ? path.resolve(calendarsFile) : undefined;
  for (const file of runbookFiles(dir)) {
    if (path.resolve(file) === skip) continue; // the calendar file, kept in the runbook directory under its own name
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

/** Whether a schedule's memo says this deployment's sync made it. */
export const ownedBy = (memo: Record<string, unknown> | undefined, taskQueue: string) =>
  memo?.managedBy === MANAGED_BY && memo.taskQueue === taskQueue;

/** The schedules sync manages or would need (the `runbook:` ids), as the server describes them. */
export async function existingSchedules(client: Client, taskQueue: string): Promise<ExistingSchedule[]> {
  const out: ExistingSchedule[] = [];
  for await (const s of client.schedule.list()) {
    if (!s.scheduleId.startsWith(SCHEDULE_PREFIX)) continue;
    const owned = ownedBy(s.memo, taskQueue);
    if (!owned) {
      out.push({ id: s.scheduleId, owned, paused: s.state.paused });
      continue;
    }
    try {
      const d = await client.schedule.getHandle(s.scheduleId).describe();
      const mine = (d.action.memo as { runbookSchedule?: { config?: ScheduleConfig } } | undefined)?.runbookSchedule;
      out.push({ id: s.scheduleId, owned, config: mine?.config, actual: normalised(d), paused: d.state.paused });
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) continue; // deleted meanwhile
      throw err;
    }
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
    else if (e.actual === d.normal) plan.unchanged.push(d);
    else {
      const from = (e.config ?? {}) as unknown as Record<string, unknown>;
      const to = d.config as unknown as Record<string, unknown>;
      const changes = Object.keys(to)
        .filter((k) => JSON.stringify(from[k]) !== JSON.stringify(to[k]))
        .map((field) => ({ field, from: from[field], to: to[field] }));
      // The runbook says the same, the server shows otherwise: changed by hand (or replaced); say it is restored.
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
      try {
        await client.schedule.create(d.options);
      } catch (err) {
        if (err instanceof ScheduleAlreadyRunning)
          throw new Error(`${d.id} was created meanwhile (another sync running at the same time?)`, { cause: err });
        throw err;
      }
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
export async function ownedSchedule(client: Client, nameOrId: string, taskQueue: string) {
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
  if (!ownedBy(d.memo, taskQueue))
    throw new UserError(
      `Schedule ${id} was not made by \`runbook schedules sync\` of this deployment (task queue "${taskQueue}"); it is left alone.`,
    );
  return { id, handle, description: d };
}
