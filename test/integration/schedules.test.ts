// Integration (real Temporal dev server and its Schedules, real sshd fleet, the engine's worker, the `runbook`
// CLI as a process, a JSONL audit file): `runbook schedules sync` turns a runbook's on.schedule into a Temporal
// Schedule that starts it on the fleet every 2 s, a second sync changes nothing, the diff of a change, pause kept
// across syncs, only sync's own schedules touched, list reporting runs and overlap skips; a global freeze in the
// calendar file blocks the scheduled runs, and each block is audited.
import fs from 'node:fs';
import path from 'node:path';
import { ScheduleNotFoundError } from '@temporalio/client';
import { FileAuditStore } from '../../audit/file-store';
import type { AuditRecord } from '../../audit/record';
import { query } from '../../audit/store';
import { temporalAddress, testRoot, uniqueTaskQueue, useFleetRuns, withEngineWorker } from '../harness/env';
import { waitUntil, runCliProcess, type CliResult } from '../harness/processes';
import type { ScheduleReport } from '../../cli/schedules';
import { desiredSchedule } from '../../triggers/schedules';
import { dstHazards, nextTimes } from '../../dsl/schedule-spec';

const fleet = useFleetRuns();

/** Runs the CLI without blocking this process (the worker under test runs in it). */
function cli(dir: string, tq: string, ...args: string[]): Promise<CliResult> {
  return runCliProcess(args, {
    TEMPORAL_ADDRESS: temporalAddress(),
    RUNBOOK_TASK_QUEUE: tq,
    RUNBOOK_DIR: dir,
    RUNBOOK_CALENDARS: '',
  });
}

/** A runbook appending a line to `marker` on host-1, scheduled by `schedule` (YAML flow mapping body). */
const scheduled = (name: string, schedule: string) => `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: ${name}, description: appends a line on a schedule, risk: low }
params:
  marker: { type: string, pattern: '[a-z0-9.-]+' }
  seconds: { type: integer, default: 0 }
targets: host:host-1
steps:
  - id: append
    ssh: { run: 'echo tick >> \${{ params.marker }}; sleep \${{ params.seconds }}' }
    timeout: 1m
on:
  schedule: { ${schedule} }
`;

const records = async (file: string) => {
  const out: AuditRecord[] = [];
  for await (const r of query(new FileAuditStore(file), {})) out.push(r);
  return out;
};

/**
 * Pauses a schedule and waits (bounded) until no run it started is still going, while the worker still runs: a run
 * left behind when the worker stops would hold its host's lock, and other test files' runs on that host would wait.
 */
async function drain(id: string): Promise<void> {
  const handle = fleet.env.client.schedule.getHandle(id);
  await handle.pause('test done').catch(() => undefined);
  await waitUntil(
    async () => (await handle.describe().catch(() => undefined))?.info.runningActions.length === 0,
    `the runs of ${id} to end`,
    60_000,
  );
  await handle.delete().catch(() => undefined);
}

/** Deletes the schedules a test made, whatever state it left them in. */
async function cleanup(ids: string[]): Promise<void> {
  for (const id of ids)
    await fleet.env.client.schedule
      .getHandle(id)
      .delete()
      .catch((err: unknown) => {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      });
}

/** The worker of a test: the test's runbook directory and audit file, the fleet's inventory, a calendar file or none. */
const workerOptions = (dir: string, auditFile: string, calendars?: string) => ({
  audit: new FileAuditStore(auditFile),
  config: {
    runbookDir: dir,
    calendars: calendars ? { file: calendars, required: true } : undefined,
    defaultInventory: fleet.inventory(),
    inventories: [fleet.inventory()],
  },
});

const lines = async (file: string) => Number((await fleet.remote(1, `cat ${file} 2>/dev/null | wc -l`)).trim() || '0');

test('sync makes a real schedule that starts the runbook on the fleet; sync again changes nothing; a change is a diff; pause survives sync; removal deletes only ours', async () => {
  const tq = uniqueTaskQueue('sched');
  const sfx = tq.replace(/[^a-z0-9]/g, '').slice(-8);
  const name = `tick-${sfx}`;
  const marker = `${name}.txt`;
  const dir = fs.mkdtempSync(path.join(testRoot(), 'sched-'));
  const auditFile = path.join(dir, 'audit.jsonl');
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, scheduled(name, `every: 2s, params: { marker: ${marker} }`));
  const foreign = `runbook:other-${sfx}`;
  const ids = [`runbook:${name}`, foreign];
  try {
    await withEngineWorker(
      fleet.env,
      tq,
      async () => {
        const dry = await cli(dir, tq, 'schedules', 'sync', '--dry-run');
        expect(dry.stdout).toContain(`+ create runbook:${name}: every 2s, overlap skip`);
        expect(dry.stdout).toContain('dry run: 1 to create');
        expect(dry.code).toBe(0);
        await expect(fleet.env.client.schedule.getHandle(`runbook:${name}`).describe()).rejects.toThrow(
          ScheduleNotFoundError,
        );

        const first = await cli(dir, tq, 'schedules', 'sync');
        expect(first.stdout).toContain(`synced: created runbook:${name}`);
        const second = await cli(dir, tq, 'schedules', 'sync');
        expect(second.stdout).toContain(`= unchanged runbook:${name}`);
        expect(second.stdout).toContain('in sync: nothing to change');

        // The schedule runs the runbook on the fleet, as the schedule.
        await waitUntil(async () => (await lines(marker)) >= 2, 'two scheduled runs to append on host-1', 30_000);
        const started = (await records(auditFile)).filter((r) => r.kind === 'run.started');
        expect(started.length).toBeGreaterThanOrEqual(2);
        expect(started[0]!.initiator).toEqual({ trigger: 'schedule', id: `schedule:runbook:${name}` });
        expect(started[0]!.run.workflowId).toMatch(new RegExp(`^scheduled:${name}-`));

        const listed = await cli(dir, tq, 'schedules', 'list', '--json');
        const report = (JSON.parse(listed.stdout) as ScheduleReport[]).find((r) => r.id === `runbook:${name}`)!;
        expect(report).toMatchObject({ runbook: name, paused: false, when: 'every 2s', overlap: 'skip' });
        expect(report.taken).toBeGreaterThanOrEqual(2);
        expect(report.recent.some((a) => a.status === 'succeeded')).toBe(true);
        // Each scheduled run carries the summary the UI shows: the runbook and who started it.
        let summarised = 0;
        for await (const wf of fleet.env.client.workflow.list({
          query: `TaskQueue = '${tq}' AND WorkflowType = 'runbook'`,
        })) {
          const summary = await (
            await fleet.env.client.workflow.getHandle(wf.workflowId, wf.runId).describe()
          ).staticSummary();
          // Markdown-escaped (\- \: ...): read without the escapes.
          expect(summary?.replace(/\\/g, '')).toContain(
            `**${name}**: marker=${marker} · schedule by schedule:runbook:${name}`,
          );
          summarised++;
          break;
        }
        expect(summarised).toBe(1);

        // A change shows as a diff, then applies; an operator's pause is kept by the next sync.
        fs.writeFileSync(file, scheduled(name, `every: 1h, params: { marker: ${marker} }, catchupWindow: 1m`));
        const diff = await cli(dir, tq, 'schedules', 'sync', '--dry-run');
        expect(diff.stdout).toContain(`~ update runbook:${name}:`);
        expect(diff.stdout).toContain('when: "every 2s" -> "every 1h"');
        expect(diff.stdout).toContain('catchupWindow: "15m" -> "1m"');
        const paused = await cli(dir, tq, 'schedules', 'pause', name, '--reason', 'db migration tonight');
        expect(paused.stdout).toContain(`runbook:${name} paused: db migration tonight`);
        expect((await cli(dir, tq, 'schedules', 'sync')).stdout).toContain(`synced: updated runbook:${name}`);
        const d = await fleet.env.client.schedule.getHandle(`runbook:${name}`).describe();
        expect(d.state).toMatchObject({ paused: true, note: 'db migration tonight' });
        expect(d.spec.intervals?.map((i) => i.every)).toEqual([3_600_000]);
        expect((await cli(dir, tq, 'schedules', 'sync')).stdout).toContain('in sync: nothing to change');

        // Changed by hand (every minute, allow-all): the next sync sees the server's schedule, not its own memo, and
        // puts it back.
        await fleet.env.client.schedule.getHandle(`runbook:${name}`).update((prev) => ({
          ...prev,
          spec: { intervals: [{ every: '1m' }] },
          policies: { ...prev.policies, overlap: 'ALLOW_ALL' },
        }));
        const listedDrift = await cli(dir, tq, 'schedules', 'list');
        expect(listedDrift.stdout).toContain('differs from the runbook directory');
        const drift = await cli(dir, tq, 'schedules', 'sync');
        expect(drift.stdout).toContain(`~ update runbook:${name}:`);
        expect(drift.stdout).toContain('changed outside sync');
        const restored = await fleet.env.client.schedule.getHandle(`runbook:${name}`).describe();
        expect(restored.spec.intervals?.map((i) => i.every)).toEqual([3_600_000]);
        expect(restored.policies.overlap).toBe('SKIP');
        expect(restored.state.paused).toBe(true);
        const back = (JSON.parse((await cli(dir, tq, 'schedules', 'list', '--json')).stdout) as ScheduleReport[]).find(
          (r) => r.id === `runbook:${name}`,
        );
        expect(back?.inSync).toBe(true);

        // A schedule with one of sync's ids that sync did not make is a conflict: nothing changes at all.
        await fleet.env.client.schedule.create({
          scheduleId: foreign,
          spec: { intervals: [{ every: '1h' }] },
          action: { type: 'startWorkflow', workflowType: 'runbook', taskQueue: tq, args: [{ runbook: 'nope' }] },
          state: { paused: true },
        });
        fs.writeFileSync(
          path.join(dir, `other-${sfx}.yaml`),
          scheduled(`other-${sfx}`, 'cron: "0 3 * * *", params: { marker: x.txt }'),
        );
        fs.writeFileSync(file, scheduled(name, `every: 2h, params: { marker: ${marker} }`));
        const conflict = await cli(dir, tq, 'schedules', 'sync');
        expect(conflict.code).toBe(1);
        expect(conflict.stdout).toContain(`! conflict ${foreign}`);
        expect(conflict.stderr).toContain('Nothing was changed');
        const still = await fleet.env.client.schedule.getHandle(`runbook:${name}`).describe();
        expect(still.spec.intervals?.map((i) => i.every)).toEqual([3_600_000]);
        fs.rmSync(path.join(dir, `other-${sfx}.yaml`));

        // A broken runbook stops the sync before it changes anything.
        fs.writeFileSync(
          path.join(dir, 'broken.yaml'),
          'apiVersion: runbooks/v1\nkind: Runbook\nmetadata: { name: broken }\n',
        );
        const broken = await cli(dir, tq, 'schedules', 'sync');
        expect(broken.code).not.toBe(0);
        expect(broken.stderr).toMatch(/Nothing was synced: .*\n.*broken\.yaml:\d+:\d+/);
        fs.rmSync(path.join(dir, 'broken.yaml'));

        // The runbook loses its schedule: sync deletes it, and leaves the foreign one alone.
        fs.writeFileSync(file, scheduled(name, `every: 2h, params: { marker: ${marker} }`).replace(/on:\n.*\n$/, ''));
        const removed = await cli(dir, tq, 'schedules', 'sync');
        expect(removed.stdout).toContain(`- delete runbook:${name}`);
        expect(removed.code).toBe(0);
        await expect(fleet.env.client.schedule.getHandle(`runbook:${name}`).describe()).rejects.toThrow(
          ScheduleNotFoundError,
        );
        expect((await fleet.env.client.schedule.getHandle(foreign).describe()).state.paused).toBe(true);
      },
      workerOptions(dir, auditFile),
    );
  } finally {
    await cleanup(ids);
  }
});

test('a global freeze blocks the scheduled runs: each is recorded as blocked and nothing runs on the host; overlap skips are reported', async () => {
  const tq = uniqueTaskQueue('freeze');
  const sfx = tq.replace(/[^a-z0-9]/g, '').slice(-8);
  const frozen = `frozen-${sfx}`;
  const busy = `busy-${sfx}`;
  const dir = fs.mkdtempSync(path.join(testRoot(), 'freeze-'));
  const auditFile = path.join(dir, 'audit.jsonl');
  const calendars = path.join(dir, 'calendars.yaml');
  const now = Date.now();
  const minute = (t: number) => new Date(Math.floor(t / 60_000) * 60_000).toISOString().replace(':00.000Z', 'Z');
  fs.writeFileSync(
    calendars,
    `apiVersion: runbooks/v1
kind: Calendars
calendars:
  change-freeze:
    default: open
    global: true
    override: { users: [ops-lead] }
    events:
      - { name: test freeze, start: '${minute(now - 60_000)}', end: '${minute(now + 3_600_000)}' }
`,
  );
  fs.writeFileSync(path.join(dir, `${frozen}.yaml`), scheduled(frozen, `every: 2s, params: { marker: ${frozen}.txt }`));
  const ids = [`runbook:${frozen}`, `runbook:${busy}`];
  try {
    await withEngineWorker(
      fleet.env,
      tq,
      async () => {
        const status = await cli(dir, tq, 'calendar', 'status', '--file', calendars, '--check');
        expect(status.stdout).toMatch(/change-freeze\s+CLOSED/);
        expect(status.code).toBe(1);
        expect((await cli(dir, tq, 'schedules', 'sync')).stdout).toContain(`created runbook:${frozen}`);
        await waitUntil(
          async () => (await records(auditFile)).filter((r) => r.kind === 'run.finished').length >= 2,
          'two scheduled runs to end',
          30_000,
        );
        const all = await records(auditFile);
        const finished = all.filter((r) => r.kind === 'run.finished');
        expect(finished.every((r) => r.status === 'blocked')).toBe(true);
        const closed = all.filter((r) => r.kind === 'window.closed');
        expect(closed.length).toBeGreaterThanOrEqual(2);
        expect(closed[0]).toMatchObject({
          status: 'blocked',
          initiator: { trigger: 'schedule', id: `schedule:runbook:${frozen}` },
          detail: { policy: 'fail', calendars: [{ name: 'change-freeze', open: false, event: 'test freeze' }] },
        });
        expect(all.some((r) => r.kind === 'step')).toBe(false);
        expect(await lines(`${frozen}.txt`)).toBe(0);
        const listed = await cli(dir, tq, 'schedules', 'list');
        expect(listed.stdout).toMatch(new RegExp(`scheduled:${frozen}-\\S+ blocked`));
        expect(listed.stdout).toContain('a change calendar blocked a recent run');

        // An override at the start runs through the freeze (the CLI records who and why).
        fs.writeFileSync(calendars, fs.readFileSync(calendars, 'utf8')); // unchanged; the worker reads it as is
        await cli(dir, tq, 'schedules', 'pause', frozen);
        const over = await cli(
          dir,
          tq,
          'run',
          frozen,
          '-p',
          `marker=${frozen}.txt`,
          '-i',
          fleet.inventory(),
          '--wait',
          '--override-window',
          'restore of a lost table, INC-42',
          '--initiator',
          'ops-lead',
        );
        expect(over.stdout).toMatch(/succeeded/);
        expect(over.code).toBe(0);
        expect(await lines(`${frozen}.txt`)).toBe(1);
        const override = (await records(auditFile)).filter((r) => r.kind === 'window.override');
        expect(override).toEqual([
          expect.objectContaining({
            detail: expect.objectContaining({ by: 'ops-lead', reason: 'restore of a lost table, INC-42' }),
          }),
        ]);
      },
      workerOptions(dir, auditFile, calendars),
    );

    // Overlap: a 3-second run every 1 s with overlap skip. The schedule skips while one runs, and list says so.
    fs.rmSync(calendars);
    fs.rmSync(path.join(dir, `${frozen}.yaml`));
    fs.writeFileSync(
      path.join(dir, `${busy}.yaml`),
      scheduled(busy, `every: 1s, params: { marker: ${busy}.txt, seconds: 3 }`),
    );
    await withEngineWorker(
      fleet.env,
      tq,
      async () => {
        const sync = await cli(dir, tq, 'schedules', 'sync');
        expect(sync.stdout).toContain(`created runbook:${busy}`);
        expect(sync.stdout).toContain(`deleted runbook:${frozen}`);
        const report = async () =>
          (JSON.parse((await cli(dir, tq, 'schedules', 'list', '--json')).stdout) as ScheduleReport[]).find(
            (r) => r.id === `runbook:${busy}`,
          )!;
        await waitUntil(
          async () => (await report()).skippedOverlap >= 2,
          'the schedule to skip overlapping runs',
          30_000,
        );
        await cli(dir, tq, 'schedules', 'pause', busy);
        const text = (await cli(dir, tq, 'schedules', 'list')).stdout;
        expect(text).toMatch(/\d+ skipped \(overlap\)/);
        expect(text).toContain('skipped because the previous one was still running (overlap skip)');
        expect(await lines(`${busy}.txt`)).toBeLessThan((await report()).skippedOverlap + 2);
        await drain(`runbook:${busy}`);
      },
      workerOptions(dir, auditFile),
    );
  } finally {
    await cleanup(ids);
  }
});

test('the times we preview are the times the server fires, across DST changes (a skipped 02:30, a repeated 02:30)', async () => {
  const tq = uniqueTaskQueue('dst');
  const name = `dst-${tq.replace(/[^a-z0-9]/g, '').slice(-8)}`;
  // Sundays of March and October at 02:30 in Berlin: the last Sunday of March has no 02:30 (spring forward), the
  // last Sunday of October has two (fall back), and the server runs once then, at the second (02:30 CET).
  const s = { cron: '30 2 * 3,10 SUN', timezone: 'Europe/Berlin' };
  const d = desiredSchedule(name, `/x/${name}.yaml`, s, tq);
  try {
    await fleet.env.client.schedule.create({ ...d.options, state: { paused: true } });
    const described = await fleet.env.client.schedule.getHandle(d.id).describe();
    const server = described.info.nextActionTimes.map((t) => t.toISOString());
    expect(server.length).toBeGreaterThanOrEqual(5);
    const ours = nextTimes(s, new Date(), server.length, 800).map((t) => t.toISOString());
    expect(ours).toEqual(server);
    // The DST days are among the server's times: none on the spring-forward Sunday, one (01:30Z) on the fall-back one.
    const hazards = dstHazards(s, new Date(), 800);
    const skipped = hazards.find((h) => h.kind === 'skipped')!;
    const repeated = hazards.find((h) => h.kind === 'repeated')!;
    const last = server[server.length - 1]!;
    expect(skipped.date < last.slice(0, 10) && repeated.date < last.slice(0, 10)).toBe(true);
    expect(server.filter((f) => f.startsWith(skipped.date))).toEqual([]);
    expect(server.filter((f) => f.startsWith(repeated.date))).toEqual([`${repeated.date}T01:30:00.000Z`]);
  } finally {
    await cleanup([d.id]);
  }
});
