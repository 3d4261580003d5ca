// on.schedule: the Temporal spec it becomes (the whole-day skip gotcha), the times it fires across DST changes
// (as the server matches them: a time in the gap is skipped, one in the repeated hour fires twice), the problems
// lint reports, and the sync plan (create, update with a diff, delete only what sync owns, conflicts).
import {
  dstHazards,
  dstWarnings,
  nextTimes,
  scheduleProblems,
  temporalSpec,
  type ScheduleDoc,
} from '../../dsl/schedule-spec';
import { desiredSchedule, planSync, type ExistingSchedule } from '../../triggers/schedules';
import { loadRunbookText } from '../../dsl/load';
import { lintRunbook } from '../../dsl/lint';

const iso = (ds: Date[]) => ds.map((d) => d.toISOString());

describe('the Temporal spec of on.schedule', () => {
  test('a skip of a day skips the whole day: hour, minute and second are every value, not Temporal’s default 0', () => {
    const spec = temporalSpec({ cron: '15 2 * * *', skip: [{ month: 12, dayOfMonth: 25 }] });
    expect(spec.skip).toEqual([
      {
        second: [{ start: 0, end: 59 }],
        minute: [{ start: 0, end: 59 }],
        hour: [{ start: 0, end: 23 }],
        dayOfMonth: [{ start: 25, end: 25 }],
        month: [{ start: 'DECEMBER', end: 'DECEMBER' }],
        dayOfWeek: [{ start: 'SUNDAY', end: 'SATURDAY' }],
        year: '*',
      },
    ]);
    // And the preview agrees: 02:15 on the 24th and the 26th, not the 25th.
    expect(
      iso(
        nextTimes({ cron: '15 2 * * *', skip: [{ month: 12, dayOfMonth: 25 }] }, new Date('2026-12-24T00:00:00Z'), 2),
      ),
    ).toEqual(['2026-12-24T02:15:00.000Z', '2026-12-26T02:15:00.000Z']);
  });

  test('a skip that names an hour skips only that hour', () => {
    const s: ScheduleDoc = { cron: '0 * * * *', skip: [{ hour: 3 }] };
    expect(temporalSpec(s).skip![0]!.hour).toEqual([{ start: 3, end: 3 }]);
    expect(iso(nextTimes(s, new Date('2026-06-01T01:30:00Z'), 3))).toEqual([
      '2026-06-01T02:00:00.000Z',
      '2026-06-01T04:00:00.000Z',
      '2026-06-01T05:00:00.000Z',
    ]);
  });

  test('a calendar form leaves second and minute at 0 (a Sunday 23:00 run is one run, not 3,600)', () => {
    const spec = temporalSpec({ calendar: { dayOfWeek: 'SUN', hour: 23 }, timezone: 'Europe/Berlin' });
    expect(spec.calendars![0]).toMatchObject({
      second: [{ start: 0, end: 0 }],
      minute: [{ start: 0, end: 0 }],
      hour: [{ start: 23, end: 23 }],
      dayOfWeek: [{ start: 'SUNDAY', end: 'SUNDAY' }],
    });
    expect(spec.timezone).toBe('Europe/Berlin');
  });

  test('cron fields become explicit ranges; steps become the values they allow', () => {
    const spec = temporalSpec({ cron: '*/20 8-10 * * MON-FRI', jitter: '30s' });
    expect(spec.calendars![0]).toMatchObject({
      minute: [
        { start: 0, end: 0 },
        { start: 20, end: 20 },
        { start: 40, end: 40 },
      ],
      hour: [{ start: 8, end: 10 }],
      dayOfWeek: [{ start: 'MONDAY', end: 'FRIDAY' }],
    });
    expect(spec.jitter).toBe(30_000);
  });

  test('every becomes an interval with its offset', () => {
    expect(temporalSpec({ every: '1d', offset: '2h' }).intervals).toEqual([{ every: 86_400_000, offset: 7_200_000 }]);
    expect(iso(nextTimes({ every: '1d', offset: '2h' }, new Date('2026-06-01T03:00:00Z'), 2))).toEqual([
      '2026-06-02T02:00:00.000Z',
      '2026-06-03T02:00:00.000Z',
    ]);
  });
});

describe('DST: times as the server matches them, and the hazards lint reports', () => {
  test('Europe/Berlin spring forward: 02:30 does not exist on 2027-03-28, the run that day is skipped', () => {
    const s: ScheduleDoc = { cron: '30 2 * * *', timezone: 'Europe/Berlin' };
    expect(iso(nextTimes(s, new Date('2027-03-27T00:00:00Z'), 3))).toEqual([
      '2027-03-27T01:30:00.000Z', // CET
      '2027-03-29T00:30:00.000Z', // CEST; nothing on the 28th
      '2027-03-30T00:30:00.000Z',
    ]);
    expect(dstHazards(s, new Date('2027-03-01T00:00:00Z'), 60)).toEqual([
      { date: '2027-03-28', time: '02:30:00', kind: 'skipped' },
    ]);
  });

  test('Europe/Berlin fall back: 02:30 happens twice on 2026-10-25, the server runs once, at the second', () => {
    const s: ScheduleDoc = { cron: '30 2 * * *', timezone: 'Europe/Berlin' };
    expect(iso(nextTimes(s, new Date('2026-10-24T12:00:00Z'), 3))).toEqual([
      '2026-10-25T01:30:00.000Z', // 02:30 CET, not 02:30 CEST (00:30Z)
      '2026-10-26T01:30:00.000Z',
      '2026-10-27T01:30:00.000Z',
    ]);
    expect(dstHazards(s, new Date('2026-10-01T00:00:00Z'), 60)).toEqual([
      { date: '2026-10-25', time: '02:30:00', kind: 'repeated' },
    ]);
    // Not a lost run: lint says nothing.
    expect(dstWarnings(s, new Date('2026-10-01T00:00:00Z')).join(' ')).not.toMatch(/2026-10-25/);
  });

  test('America/New_York: 02:30 skipped on 2027-03-14, 01:30 repeated on 2026-11-01; 04:00 never a hazard', () => {
    // (On the fall-back day, 2027-11-07, it is 01:00-02:00 that repeats: 02:30 happens once.)
    expect(dstHazards({ cron: '30 2 * * *', timezone: 'America/New_York' }, new Date('2026-11-28T00:00:00Z'))).toEqual([
      { date: '2027-03-14', time: '02:30:00', kind: 'skipped' },
    ]);
    expect(
      dstHazards({ cron: '30 1 * * *', timezone: 'America/New_York' }, new Date('2026-10-01T00:00:00Z'), 60),
    ).toEqual([{ date: '2026-11-01', time: '01:30:00', kind: 'repeated' }]);
    expect(dstHazards({ cron: '0 4 * * *', timezone: 'America/New_York' }, new Date('2026-01-01T00:00:00Z'))).toEqual(
      [],
    );
    expect(dstHazards({ cron: '30 2 * * *', timezone: 'UTC' }, new Date('2026-01-01T00:00:00Z'))).toEqual([]);
  });

  test('an hourly schedule in a DST zone loses the 02:00 run of the spring-forward day; skipped days are not hazards', () => {
    const hourly: ScheduleDoc = { cron: '0 * * * *', timezone: 'Europe/Berlin' };
    const warnings = dstWarnings(hourly, new Date('2026-11-28T00:00:00Z'));
    expect(warnings.join(' ')).toMatch(/02:00:00 on 2027-03-28 in Europe\/Berlin does not exist/);
    expect(dstHazards(hourly, new Date('2027-10-30T00:00:00Z'), 3)).toEqual([
      { date: '2027-10-31', time: '02:00:00', kind: 'repeated' },
    ]);
    const skipping: ScheduleDoc = {
      ...hourly,
      skip: [
        { month: 3, dayOfMonth: 28 },
        { month: 10, dayOfMonth: 31 },
      ],
    };
    expect(dstHazards(skipping, new Date('2026-11-28T00:00:00Z'), 365)).toEqual([]);
  });

  test('lint warns about a schedule at a time DST skips or repeats, naming the field', () => {
    const text = [
      'apiVersion: runbooks/v1',
      'kind: Runbook',
      'metadata: { name: nightly, description: Nightly job }',
      'steps:',
      '  - { id: a, description: A, ssh: { run: "true" }, timeout: 1m }',
      'on:',
      '  schedule:',
      "    cron: '30 2 * * *'",
      '    timezone: Europe/Berlin',
      '',
    ].join('\n');
    const loaded = loadRunbookText('nightly.yaml', text);
    expect(loaded.runbook).toBeDefined();
    const found = lintRunbook(
      loaded.runbook!,
      (p, message, code, opts) => loaded.source.problem(p, message, code, opts),
      new Date('2026-11-28T00:00:00Z'),
    );
    const dst = found.filter((p) => p.code === 'RB2006');
    expect(dst).toHaveLength(1);
    expect(dst[0]!.line).toBe(7);
    expect(dst[0]!.message).toMatch(
      /02:30:00 on 2027-03-28 in Europe\/Berlin does not exist .*Temporal skips that run/,
    );
  });
});

describe('schedule problems', () => {
  const msgs = (s: ScheduleDoc) => scheduleProblems(s).map((p) => `${p.path.join('.')}: ${p.message}`);
  test('hostile and contradictory schedules are each refused with a reason', () => {
    expect(msgs({})).toEqual([': a schedule needs exactly one of `cron`, `calendar` or `every`']);
    expect(msgs({ cron: '0 2 * * *', every: '1h' })[0]).toMatch(
      /^every: give one of `cron`, `calendar` or `every`, not `cron` and `every`/,
    );
    expect(msgs({ cron: '30 4 1,15 * 5' })[0]).toMatch(/^cron: .*(either|both)/);
    expect(msgs({ cron: '0 0 L * *' })[0]).toMatch(/^cron: /);
    expect(msgs({ cron: '0 2 * * *', timezone: 'Mars/Olympus' })).toEqual([
      'timezone: "Mars/Olympus" is not an IANA time zone (such as UTC, Europe/Berlin, America/New_York)',
    ]);
    expect(msgs({ every: '500ms' })).toEqual(['every: the shortest interval is 1s']);
    expect(msgs({ every: '1h', offset: '2h' })).toEqual(['offset: the offset must be shorter than the interval (1h)']);
    expect(msgs({ cron: '0 2 * * *', offset: '1h' })).toEqual([
      'offset: `offset` shifts an `every` interval; this schedule has none',
    ]);
    expect(msgs({ cron: '0 2 * * *', catchupWindow: '5s' })).toEqual([
      'catchupWindow: the shortest catch-up window Temporal takes is 10s',
    ]);
    expect(msgs({ calendar: { hour: 'noon' } })[0]).toMatch(/^calendar: /);
    expect(msgs({ cron: '0 2 * * *', skip: [{ dayOfMonth: 40 }] })[0]).toMatch(/^skip\.0: /);
    const dup = msgs({ cron: `${'1,'.repeat(60)}1 * * * *` });
    expect(dup).toHaveLength(1);
    expect(dup[0]).toMatch(/^cron: .*duplicate/);
  });

  test('a runbook whose schedule lacks a required param, or names an unknown one, does not load', () => {
    const text = (params: string) =>
      [
        'apiVersion: runbooks/v1',
        'kind: Runbook',
        'metadata: { name: nightly }',
        'params: { db: { type: string } }',
        'steps:',
        '  - { id: a, ssh: { run: "echo ${{ params.db }}" } }',
        'on:',
        '  schedule:',
        "    cron: '0 3 * * *'",
        ...(params ? [`    params: ${params}`] : []),
        '',
      ].join('\n');
    const missing = loadRunbookText('nightly.yaml', text(''));
    expect(missing.runbook).toBeUndefined();
    expect(missing.problems.map((p) => `${p.line}: ${p.message}`)).toEqual([
      expect.stringMatching(/^8: param "db": required, but not given; a scheduled run has no one to ask/),
    ]);
    const unknown = loadRunbookText('nightly.yaml', text('{ db: app, dbb: x }'));
    expect(unknown.problems.map((p) => `${p.line}: ${p.message}`)).toEqual([
      expect.stringMatching(/^10: unknown param.*this runbook takes: db/),
    ]);
    expect(loadRunbookText('nightly.yaml', text('{ db: app }')).runbook).toBeDefined();
  });
});

describe('the sync plan', () => {
  const want = (name: string, cron = '0 2 * * *') => desiredSchedule(name, `/rb/${name}.yaml`, { cron }, 'runbooks');
  const have = (d: ReturnType<typeof want>, over: Partial<ExistingSchedule> = {}): ExistingSchedule => ({
    id: d.id,
    owned: true,
    config: d.config,
    actual: d.normal,
    paused: false,
    ...over,
  });

  test('the same runbooks twice: nothing to do the second time', () => {
    const a = want('backup');
    const first = planSync([a], []);
    expect(first.create.map((d) => d.id)).toEqual(['runbook:backup']);
    const second = planSync([want('backup')], [have(a)]);
    expect(second).toMatchObject({ create: [], update: [], remove: [], conflicts: [] });
    expect(second.unchanged.map((d) => d.id)).toEqual(['runbook:backup']);
  });

  test('a changed cron is an update that says what changed', () => {
    const plan = planSync([want('backup', '0 3 * * *')], [have(want('backup'))]);
    expect(plan.update).toHaveLength(1);
    expect(plan.update[0]!.changes).toEqual([
      { field: 'when', from: "cron '0 2 * * *' in UTC", to: "cron '0 3 * * *' in UTC" },
    ]);
  });

  test('a schedule changed by hand is restored; a runbook without a schedule loses only its own', () => {
    const a = want('backup');
    const plan = planSync(
      [a],
      [
        have(a, { actual: want('backup', '* * * * *').normal }),
        { id: 'runbook:old', owned: true, paused: false },
        { id: 'nightly-etl', owned: false, paused: false },
      ],
    );
    expect(plan.update.map((u) => u.desired.id)).toEqual(['runbook:backup']);
    expect(plan.remove.map((e) => e.id)).toEqual(['runbook:old']);
  });

  test('an id held by a schedule sync did not make is a conflict, not an update', () => {
    const plan = planSync([want('backup')], [{ id: 'runbook:backup', owned: false, paused: false }]);
    expect(plan.conflicts).toEqual(['runbook:backup']);
    expect(plan.update).toEqual([]);
  });

  test('scheduled runs say who started them and carry the schedule params', () => {
    const d = desiredSchedule('backup', '/rb/backup.yaml', { cron: '0 2 * * *', params: { db: 'app' } }, 'q');
    expect(d.options.action).toMatchObject({
      workflowType: 'runbook',
      taskQueue: 'q',
      workflowId: 'scheduled:backup',
      args: [{ runbook: 'backup', params: { db: 'app' }, trigger: 'schedule', initiator: 'schedule:runbook:backup' }],
    });
    expect(d.options.policies).toEqual({ overlap: 'SKIP', catchupWindow: 900_000, pauseOnFailure: false });
  });
});
