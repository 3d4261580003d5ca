// Node side. `runbook schedules sync | list | pause | unpause | trigger | backfill`: the Temporal Schedules that
// runbooks' `on.schedule` ask for (triggers/schedules.ts keeps them in step), and what they did: runs taken,
// skipped because the previous run was still going, missed after an outage, and how the last ones ended.
import type { Client, ScheduleDescription, ScheduleOverlapPolicy } from '@temporalio/client';
import { UserError } from '../common/errors';
import { runbookDirFromEnv, workerSettingsFromEnv } from '../worker/config';
import {
  applySync,
  desiredSchedules,
  existingSchedules,
  normalised,
  OVERLAP,
  ownedBy,
  ownedSchedule,
  planChanges,
  planSync,
  SCHEDULE_PREFIX,
  type ScheduleConfig,
  type SyncPlan,
} from '../triggers/schedules';
import { withClient } from './runs';
import { RunbookStatus } from '../workflows/search-attributes';

function overlapOf(flag: string | undefined): ScheduleOverlapPolicy | undefined {
  if (flag === undefined) return undefined;
  const o = OVERLAP[flag];
  if (!o) throw new UserError(`--overlap must be one of ${Object.keys(OVERLAP).join(', ')}, got "${flag}".`);
  return o;
}

/** A plan as the diff people read. */
export function formatPlan(plan: SyncPlan): string {
  const lines: string[] = [];
  for (const d of plan.create) lines.push(`+ create ${d.id}: ${d.config.when}, overlap ${d.config.overlap}`);
  for (const u of plan.update) {
    lines.push(`~ update ${u.desired.id}:`);
    for (const c of u.changes) lines.push(`    ${c.field}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`);
  }
  for (const e of plan.remove) lines.push(`- delete ${e.id}: its runbook has no on.schedule any more (or is gone)`);
  for (const d of plan.unchanged) lines.push(`= unchanged ${d.id}`);
  for (const id of plan.conflicts)
    lines.push(
      `! conflict ${id}: a schedule with this id exists that this deployment's sync did not make (by hand, or another task queue's); rename or delete it`,
    );
  return lines.join('\n');
}

/** `runbook schedules sync [--dry-run]`. Exit 1 on a conflict (nothing is changed then). */
export async function runSchedulesSync(o: { dryRun: boolean; json: boolean }): Promise<number> {
  const dir = runbookDirFromEnv();
  const desired = desiredSchedules(dir, workerSettingsFromEnv().taskQueue, process.env.RUNBOOK_CALENDARS || undefined);
  return withClient(async (client) => {
    const plan = planSync(desired, await existingSchedules(client, workerSettingsFromEnv().taskQueue));
    const summary = `${plan.create.length} to create, ${plan.update.length} to update, ${plan.remove.length} to delete, ${plan.unchanged.length} unchanged`;
    if (o.json && (o.dryRun || plan.conflicts.length)) {
      console.log(JSON.stringify({ dryRun: o.dryRun, ...summaryJson(plan) }));
    } else {
      if (desired.length === 0 && planChanges(plan) === 0)
        console.log(`no runbook in ${dir} has an on.schedule, and sync manages no schedule`);
      else console.log(formatPlan(plan));
    }
    if (plan.conflicts.length) {
      console.error(`Nothing was changed: ${plan.conflicts.length} conflict(s).`);
      return 1;
    }
    if (o.dryRun) {
      if (!o.json) console.log(`dry run: ${summary}`);
      return 0;
    }
    const done = await applySync(client, plan);
    if (o.json) console.log(JSON.stringify({ dryRun: false, ...summaryJson(plan), done }));
    else console.log(done.length ? `synced: ${done.join(', ')}` : 'in sync: nothing to change');
    return 0;
  });
}

function summaryJson(plan: SyncPlan) {
  return {
    create: plan.create.map((d) => ({ id: d.id, config: d.config })),
    update: plan.update.map((u) => ({ id: u.desired.id, changes: u.changes })),
    delete: plan.remove.map((e) => e.id),
    unchanged: plan.unchanged.map((d) => d.id),
    conflicts: plan.conflicts,
  };
}

export interface ScheduleReport {
  id: string;
  runbook?: string;
  when?: string;
  paused: boolean;
  note?: string;
  next: string[];
  taken: number;
  skippedOverlap: number;
  missedCatchup: number;
  running: string[];
  recent: { scheduledAt: string; takenAt: string; workflowId: string; status: string }[];
  overlap?: string;
  catchupWindow?: string;
  /** Whether the server's schedule matches the runbook directory (undefined: not ours, or the directory does not load). */
  inSync?: boolean;
}

/** How a run a schedule started ended: the engine's own status when it has one (blocked, degraded), else Temporal's. */
async function runStatusOf(client: Client, workflowId: string, runId: string): Promise<string> {
  try {
    const d = await client.workflow.getHandle(workflowId, runId).describe();
    const mine = d.searchAttributes?.[RunbookStatus.name] as string[] | undefined;
    // The engine's own status only for a run that completed (a terminated one stopped wherever it was).
    return d.status.name === 'COMPLETED' ? (mine?.[0] ?? 'completed') : d.status.name.toLowerCase().replace(/_/g, '-');
  } catch {
    return 'unknown';
  }
}

/** What one schedule did. */
export async function scheduleReport(client: Client, d: ScheduleDescription): Promise<ScheduleReport> {
  const mine = (d.action.memo as { runbookSchedule?: { config?: ScheduleConfig } } | undefined)?.runbookSchedule;
  const recent = await Promise.all(
    d.info.recentActions.slice(-5).map(async (a) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      takenAt: a.takenAt.toISOString(),
      workflowId: a.action.workflow.workflowId,
      status: await runStatusOf(client, a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId),
    })),
  );
  return {
    id: d.scheduleId,
    runbook: mine?.config?.runbook,
    when: mine?.config?.when,
    overlap: mine?.config?.overlap,
    catchupWindow: mine?.config?.catchupWindow,
    paused: d.state.paused,
    note: d.state.note,
    next: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
    taken: d.info.numActionsTaken,
    skippedOverlap: d.info.numActionsSkippedOverlap,
    missedCatchup: d.info.numActionsMissedCatchupWindow,
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
    recent,
  };
}

/** The lines of one schedule's report. */
export function formatReport(r: ScheduleReport): string {
  const lines = [
    `${r.id}${r.runbook ? ` (runbook ${r.runbook})` : ''}: ${r.paused ? 'PAUSED' : 'active'}${r.paused && r.note ? ` (${r.note})` : ''}`,
    `  when:    ${r.when ?? '(not made by sync)'}${r.overlap ? `; overlap ${r.overlap}, catch-up ${r.catchupWindow}` : ''}`,
    `  next:    ${r.paused ? '(paused)' : r.next.join(', ') || 'none'}`,
    `  runs:    ${r.taken} started, ${r.skippedOverlap} skipped (overlap), ${r.missedCatchup} missed (catch-up window)` +
      (r.running.length ? `, running: ${r.running.join(', ')}` : ''),
  ];
  for (const a of r.recent) lines.push(`  last:    ${a.scheduledAt} ${a.workflowId} ${a.status}`);
  if (r.skippedOverlap > 0)
    lines.push(
      `  ! ${r.skippedOverlap} run(s) skipped because the previous one was still running (overlap ${r.overlap ?? 'skip'})`,
    );
  if (r.missedCatchup > 0)
    lines.push(
      `  ! ${r.missedCatchup} run(s) missed: the server or workers were down past the catch-up window; \`runbook schedules backfill\` runs them`,
    );
  const blocked = r.recent.filter((a) => a.status === 'blocked');
  if (blocked.length)
    lines.push(
      `  ! a change calendar blocked a recent run (\`runbook audit show --run ${blocked[blocked.length - 1]!.workflowId}\` says which)`,
    );
  if (r.inSync === false)
    lines.push(
      '  ! differs from the runbook directory (changed by hand, or the runbook changed): `runbook schedules sync` puts it right',
    );
  return lines.join('\n');
}

/** `runbook schedules list [--all] [--json]`. */
export async function runSchedulesList(o: { all: boolean; json: boolean }): Promise<void> {
  const { taskQueue } = workerSettingsFromEnv();
  // What the runbook directory asks for, to flag drift (a directory that does not load flags nothing).
  let desired: Map<string, string> | undefined;
  try {
    const all = desiredSchedules(runbookDirFromEnv(), taskQueue, process.env.RUNBOOK_CALENDARS || undefined);
    desired = new Map(all.map((d) => [d.id, d.normal]));
  } catch {
    desired = undefined;
  }
  await withClient(async (client) => {
    const reports: ScheduleReport[] = [];
    for await (const s of client.schedule.list()) {
      const ours = s.scheduleId.startsWith(SCHEDULE_PREFIX) && ownedBy(s.memo, taskQueue);
      if (!ours && !o.all) continue;
      const d = await client.schedule
        .getHandle(s.scheduleId)
        .describe()
        .catch(() => undefined);
      if (!d) continue;
      const report = await scheduleReport(client, d);
      if (ours && desired) report.inSync = desired.get(d.scheduleId) === normalised(d);
      reports.push(report);
    }
    reports.sort((a, b) => a.id.localeCompare(b.id));
    if (o.json) console.log(JSON.stringify(reports, null, 2));
    else if (!reports.length)
      console.log('no schedules: runbooks with an on.schedule get one from `runbook schedules sync`');
    else console.log(reports.map(formatReport).join('\n\n'));
  });
}

/** `runbook schedules pause|unpause NAME [--reason]`. */
export async function runSchedulePause(nameOrId: string, pause: boolean, reason?: string): Promise<void> {
  await withClient(async (client) => {
    const { id, handle } = await ownedSchedule(client, nameOrId, workerSettingsFromEnv().taskQueue);
    const note =
      reason ?? `${pause ? 'paused' : 'unpaused'} by ${process.env.USER ?? 'an operator'} with runbook schedules`;
    if (pause) await handle.pause(note);
    else await handle.unpause(note);
    console.log(`${id} ${pause ? 'paused' : 'unpaused'}: ${note}`);
  });
}

/** `runbook schedules trigger NAME [--overlap]`: one run now, as the schedule would start it. */
export async function runScheduleTrigger(nameOrId: string, o: { overlap?: string }): Promise<void> {
  await withClient(async (client) => {
    const { id, handle } = await ownedSchedule(client, nameOrId, workerSettingsFromEnv().taskQueue);
    await handle.trigger(overlapOf(o.overlap));
    console.log(
      `${id} triggered${o.overlap ? ` (overlap ${o.overlap})` : ''}; \`runbook schedules list\` shows the run`,
    );
  });
}

function parseTime(flag: string, raw: string): Date {
  const d = new Date(raw);
  if (!/\d{4}-\d{2}-\d{2}/.test(raw) || Number.isNaN(d.getTime()))
    throw new UserError(`${flag} must be an ISO 8601 time such as 2026-12-01T02:00:00Z, got "${raw.slice(0, 64)}".`);
  return d;
}

/** `runbook schedules backfill NAME --from --to [--overlap]`: the runs the schedule would have started then. */
export async function runScheduleBackfill(
  nameOrId: string,
  o: { from: string; to: string; overlap?: string },
): Promise<void> {
  const start = parseTime('--from', o.from);
  const end = parseTime('--to', o.to);
  if (end <= start) throw new UserError('--to must be after --from.');
  if (end.getTime() > Date.now() + 60_000)
    throw new UserError('--to is in the future: backfill runs times that have passed (trigger runs one now).');
  await withClient(async (client) => {
    const { id, handle } = await ownedSchedule(client, nameOrId, workerSettingsFromEnv().taskQueue);
    await handle.backfill([{ start, end, overlap: overlapOf(o.overlap) ?? 'ALLOW_ALL' }]);
    console.log(
      `${id}: backfill of ${start.toISOString()} .. ${end.toISOString()} requested (overlap ${o.overlap ?? 'allow-all'})`,
    );
  });
}
