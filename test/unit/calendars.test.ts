// Unit: change calendars (dsl/calendars.ts) and `runbook calendar status` (cli/calendar.ts). Hostile first: windows
// across DST (shifted out of the skipped hour, never doubled in the repeated one, `end: HH:MM` on the wall clock),
// boundaries (start inclusive, end exclusive), overlapping events, combined calendars, located errors for every
// refused shape, files too deep or too large; then the example file and the command's output and exit code.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCalendarStatus } from '../../cli/calendar';
import { UserError } from '../../common/errors';
import {
  calendarStatus,
  findCalendarsFile,
  globalCalendars,
  loadCalendars,
  loadCalendarsFile,
  loadCalendarsText,
  type CalendarSet,
} from '../../dsl/calendars';
import { formatProblem } from '../../dsl/problems';

const EXAMPLE = path.join(__dirname, '..', '..', 'runbooks', 'calendars.example.yaml');

const header = 'apiVersion: runbooks/v1\nkind: Calendars\ncalendars:\n';

/** A calendar file that must load without problems. */
function load(body: string): CalendarSet {
  const { set, problems } = loadCalendarsText('cal.yaml', header + body);
  expect(problems.map(formatProblem)).toEqual([]);
  return set!;
}

/** The formatted problems of a calendar file. */
const problemsOf = (body: string) => loadCalendarsText('cal.yaml', header + body).problems.map(formatProblem);

const at = (iso: string) => new Date(iso);
const iso = (d: Date | undefined) => d?.toISOString();

/** The windows (inverted periods) of one calendar between two times, found by following its next changes. */
function windows(set: CalendarSet, name: string, from: string, to: string): [string, string][] {
  const out: [string, string][] = [];
  let t = at(from);
  let s = calendarStatus(set, [name], t).calendars[0]!;
  const inverted = () => s.open !== (s.default === 'open');
  let openedAt = inverted() ? t : undefined;
  while (s.nextChange && s.nextChange <= at(to)) {
    t = s.nextChange;
    s = calendarStatus(set, [name], t).calendars[0]!;
    if (inverted()) openedAt = t;
    else if (openedAt) {
      out.push([openedAt.toISOString(), t.toISOString()]);
      openedAt = undefined;
    }
  }
  return out;
}

describe('recurring windows across DST', () => {
  it('Europe/Berlin spring-forward: a 02:30 window starts at 03:00 local, keeps its hour, and is not lost', () => {
    const set = load(`  w:
    timezone: Europe/Berlin
    default: closed
    events:
      - { name: nightly, cron: '30 2 * * *', duration: 1h }
`);
    expect(windows(set, 'w', '2026-03-27T12:00Z', '2026-03-30T12:00Z')).toEqual([
      ['2026-03-28T01:30:00.000Z', '2026-03-28T02:30:00.000Z'], // 02:30 CET
      ['2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z'], // 02:30 does not exist: 03:00 CEST
      ['2026-03-30T00:30:00.000Z', '2026-03-30T01:30:00.000Z'], // 02:30 CEST
    ]);
  });

  it('America/New_York fall-back: a 01:30 window happens once (at the first 01:30), not twice', () => {
    const set = load(`  w:
    timezone: America/New_York
    default: closed
    events:
      - { name: nightly, cron: '30 1 * * *', duration: 30m }
`);
    expect(windows(set, 'w', '2026-10-31T00:00Z', '2026-11-03T00:00Z')).toEqual([
      ['2026-10-31T05:30:00.000Z', '2026-10-31T06:00:00.000Z'],
      ['2026-11-01T05:30:00.000Z', '2026-11-01T06:00:00.000Z'], // 01:30 EDT; 01:30 EST (06:30Z) is not a start
      ['2026-11-02T06:30:00.000Z', '2026-11-02T07:00:00.000Z'],
    ]);
    expect(calendarStatus(set, ['w'], at('2026-11-01T06:45Z')).open).toBe(false);
  });

  it("end: '04:00' ends at 04:00 on the wall clock across both DST nights (5h and 7h of elapsed time)", () => {
    const set = load(`  w:
    timezone: Europe/Berlin
    default: closed
    events:
      - { name: saturday night, cron: '0 22 * * SAT', end: '04:00' }
`);
    expect(windows(set, 'w', '2026-03-28T12:00Z', '2026-03-29T12:00Z')).toEqual([
      ['2026-03-28T21:00:00.000Z', '2026-03-29T02:00:00.000Z'], // 22:00 CET -> 04:00 CEST
    ]);
    expect(windows(set, 'w', '2026-10-24T12:00Z', '2026-10-25T12:00Z')).toEqual([
      ['2026-10-24T20:00:00.000Z', '2026-10-25T03:00:00.000Z'], // 22:00 CEST -> 04:00 CET
    ]);
  });

  it('an end in the skipped hour moves to the end of the gap; a window wholly inside it keeps its length', () => {
    const set = load(`  ends-in-gap:
    timezone: Europe/Berlin
    default: closed
    events:
      - { name: a, cron: '0 1 29 3 *', end: '02:30' }
  inside-gap:
    timezone: Europe/Berlin
    default: closed
    events:
      - { name: b, cron: '15 2 29 3 *', end: '02:45' }
`);
    expect(windows(set, 'ends-in-gap', '2026-03-28T12:00Z', '2026-03-29T12:00Z')).toEqual([
      ['2026-03-29T00:00:00.000Z', '2026-03-29T01:00:00.000Z'], // 01:00 CET -> 03:00 CEST
    ]);
    expect(windows(set, 'inside-gap', '2026-03-28T12:00Z', '2026-03-29T12:00Z')).toEqual([
      ['2026-03-29T01:00:00.000Z', '2026-03-29T01:30:00.000Z'], // shifted to 03:00 CEST, 30 minutes
    ]);
  });

  it('a window spanning midnight and the week boundary (Sunday 22:00 to Monday 04:00), seen from inside', () => {
    const set = load(`  w:
    default: closed
    events:
      - { name: Sunday night, cron: '0 22 * * SUN', end: '04:00' }
      - { name: weekend, cron: '0 20 * * SAT', duration: 2d }
`);
    const s = calendarStatus(set, ['w'], at('2026-05-04T00:30Z')).calendars[0]!; // Monday 00:30
    expect([s.open, s.event, iso(s.nextChange)]).toEqual([true, 'Sunday night', '2026-05-04T20:00:00.000Z']);
    expect(windows(set, 'w', '2026-05-01T00:00Z', '2026-05-12T00:00Z')).toEqual([
      ['2026-05-02T20:00:00.000Z', '2026-05-04T20:00:00.000Z'], // Sat 20:00 + 2d, with Sun 22:00-Mon 04:00 inside
      ['2026-05-09T20:00:00.000Z', '2026-05-11T20:00:00.000Z'],
    ]);
  });

  it('unquoted times stay strings (YAML 1.2: 04:00 is not the sexagesimal 240, a date-time not a Date)', () => {
    const set = load(`  w:
    default: closed
    events:
      - name: night
        cron: 0 22 * * SUN
        end: 04:00
      - name: once
        start: 2026-12-01T22:00
        end: 2026-12-02
`);
    expect(windows(set, 'w', '2026-11-29T00:00Z', '2026-12-03T00:00Z')).toEqual([
      ['2026-11-29T22:00:00.000Z', '2026-11-30T04:00:00.000Z'],
      ['2026-12-01T22:00:00.000Z', '2026-12-02T00:00:00.000Z'],
    ]);
  });

  it('a long recurring event is found from 20 days into it (the look-back covers the longest duration)', () => {
    const set = load(`  freeze:
    default: open
    events:
      - { name: Year-end freeze, cron: '0 0 15 12 *', duration: 21d }
`);
    const s = calendarStatus(set, ['freeze'], at('2027-01-04T12:00Z')).calendars[0]!;
    expect([s.open, s.event, iso(s.nextChange)]).toEqual([false, 'Year-end freeze', '2027-01-05T00:00:00.000Z']);
  });
});

describe('state at a time', () => {
  const set = () =>
    load(`  maint:
    default: closed
    events:
      - { name: morning, start: '2026-06-01T10:00', end: '2026-06-01T12:00' }
      - { name: late morning, start: '2026-06-01T11:00', end: '2026-06-01T13:00' }
      - { name: touching, start: '2026-06-01T13:00', end: '2026-06-01T14:00' }
  freeze:
    timezone: Europe/Berlin
    default: open
    events:
      - { name: Year-end freeze, start: '2026-12-15T00:00', end: '2027-01-05T00:00' }
      - { name: exact, start: '2026-12-01T22:00Z', end: '2026-12-02T02:00+01:00' }
`);

  it.each([
    // time, open, event, next change
    ['2026-06-01T09:59:59.999Z', false, undefined, '2026-06-01T10:00:00.000Z'],
    ['2026-06-01T10:00:00.000Z', true, 'morning', '2026-06-01T14:00:00.000Z'], // start inclusive; overlaps union
    ['2026-06-01T11:30:00.000Z', true, 'morning', '2026-06-01T14:00:00.000Z'], // first event in file order
    ['2026-06-01T12:30:00.000Z', true, 'late morning', '2026-06-01T14:00:00.000Z'],
    ['2026-06-01T13:59:59.999Z', true, 'touching', '2026-06-01T14:00:00.000Z'],
    ['2026-06-01T14:00:00.000Z', false, undefined, undefined], // end exclusive; nothing after
  ])('maint (default closed) at %s: open %s, %s, next %s', (time, open, event, next) => {
    const s = calendarStatus(set(), ['maint'], at(time)).calendars[0]!;
    expect([s.open, s.event, iso(s.nextChange)]).toEqual([open, event, next]);
  });

  it.each([
    ['2026-12-14T22:59:59.999Z', true, undefined, '2026-12-14T23:00:00.000Z'], // local midnight (CET) = 23:00Z
    ['2026-12-14T23:00:00.000Z', false, 'Year-end freeze', '2027-01-04T23:00:00.000Z'],
    ['2027-01-04T23:00:00.000Z', true, undefined, undefined],
    ['2026-12-01T21:59:59.000Z', true, undefined, '2026-12-01T22:00:00.000Z'], // explicit Z
    ['2026-12-01T22:00:00.000Z', false, 'exact', '2026-12-02T01:00:00.000Z'], // explicit +01:00
  ])('freeze (default open) at %s: open %s, %s, next %s', (time, open, event, next) => {
    const s = calendarStatus(set(), ['freeze'], at(time)).calendars[0]!;
    expect([s.open, s.event, iso(s.nextChange)]).toEqual([open, event, next]);
    expect([s.default, s.timezone]).toEqual(['open', 'Europe/Berlin']);
  });

  it('a calendar without events never changes; no calendars at all is open', () => {
    const s = calendarStatus(load('  shut:\n    default: closed\n'), ['shut'], at('2026-01-01T00:00Z'));
    expect([s.open, s.nextChange, s.calendars[0]!.nextChange]).toEqual([false, undefined, undefined]);
    const none = calendarStatus(load('  shut:\n    default: closed\n'), [], at('2026-01-01T00:00Z'));
    expect([none.open, none.nextChange, none.calendars]).toEqual([true, undefined, []]);
  });

  it('a change beyond the horizon is not reported', () => {
    const set = load(`  w:
    default: closed
    events:
      - { name: yearly, cron: '0 0 1 1 *', duration: 1h }
`);
    expect(iso(calendarStatus(set, ['w'], at('2026-06-01T00:00Z')).nextChange)).toBe('2027-01-01T00:00:00.000Z');
    expect(calendarStatus(set, ['w'], at('2026-06-01T00:00Z'), { horizonDays: 200 }).nextChange).toBeUndefined();
    expect(iso(calendarStatus(set, ['w'], at('2026-06-01T00:00Z'), { horizonDays: 214 }).nextChange)).toBe(
      '2027-01-01T00:00:00.000Z', // exactly at the horizon
    );
  });

  it('an unknown calendar name is a UserError naming the known ones', () => {
    expect(() => calendarStatus(set(), ['maintt'], at('2026-06-01T00:00Z'))).toThrow(
      new UserError('No calendar named "maintt" in cal.yaml (did you mean "maint"?); it defines: maint, freeze.'),
    );
  });
});

describe('combined calendars (open only when every one is open)', () => {
  const example = () => loadCalendars(EXAMPLE);

  it('the example file loads without problems; year-end-freeze is global', () => {
    expect(loadCalendarsFile(EXAMPLE).problems).toEqual([]);
    expect(globalCalendars(example())).toEqual(['year-end-freeze']);
  });

  it('Sunday night before the freeze: all open until Monday 04:00 Berlin', () => {
    const s = calendarStatus(example(), ['sunday-night', 'year-end-freeze'], at('2026-12-13T21:30Z'));
    expect([s.open, iso(s.nextChange)]).toEqual([true, '2026-12-14T03:00:00.000Z']);
    expect(s.calendars.map((c) => [c.name, c.open, c.event, iso(c.nextChange)])).toEqual([
      ['sunday-night', true, 'Sunday night', '2026-12-14T03:00:00.000Z'],
      ['year-end-freeze', true, undefined, '2026-12-14T23:00:00.000Z'],
    ]);
  });

  it('Sunday night inside the freeze: closed until the first window after the freeze ends', () => {
    const s = calendarStatus(example(), ['sunday-night', 'year-end-freeze'], at('2026-12-20T21:30Z'));
    // The freeze ends Tue 5 Jan 00:00 Berlin (closed window then); the next window opens Sun 10 Jan 22:00.
    expect([s.open, iso(s.nextChange)]).toEqual([false, '2027-01-10T21:00:00.000Z']);
    expect(s.calendars.map((c) => [c.name, c.open, c.event, iso(c.nextChange)])).toEqual([
      ['sunday-night', true, 'Sunday night', '2026-12-21T03:00:00.000Z'],
      ['year-end-freeze', false, 'Year-end freeze 2026', '2027-01-04T23:00:00.000Z'],
    ]);
  });

  it('combined never opens within the horizon when the calendars are never open together', () => {
    const set = load(`  days:
    default: closed
    events: [{ name: day, cron: '0 8 * * *', end: '18:00' }]
  nights:
    default: closed
    events: [{ name: night, cron: '0 18 * * *', end: '08:00' }]
`);
    const s = calendarStatus(set, ['days', 'nights'], at('2026-06-01T12:00Z'));
    expect([s.open, s.nextChange]).toEqual([false, undefined]);
    expect(s.calendars.map((c) => [c.open, iso(c.nextChange)])).toEqual([
      [true, '2026-06-01T18:00:00.000Z'],
      [false, '2026-06-01T18:00:00.000Z'],
    ]);
  });

  it('is fast: a 2-calendar status in well under 50 ms, and a pathological one in under a second', () => {
    const set = example();
    const started = performance.now();
    for (let i = 0; i < 40; i++)
      calendarStatus(set, ['sunday-night', 'year-end-freeze'], new Date(Date.UTC(2026, 0, 1) + i * 9 * 86_400_000));
    expect((performance.now() - started) / 40).toBeLessThan(50);
    const busy = load(`  always:
    default: closed
    events: [{ name: every minute, cron: '* * * * *', duration: 31d }]
`);
    const t0 = performance.now();
    const s = calendarStatus(busy, ['always'], at('2026-06-01T00:00Z'));
    expect([s.open, s.nextChange]).toEqual([true, undefined]);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('bounded work: pathological files are refused, or fast and exact', () => {
  /** `n` one-line events, the i-th given by `fields(i)`. */
  const events = (n: number, fields: (i: number) => string) =>
    Array.from({ length: n }, (_, i) => `      - { name: e${i}, ${fields(i)} }\n`).join('');
  /** calendarStatus, asserting it took less than `ms` (generous: the calls take a few ms to a few tens). */
  function timed(set: CalendarSet, names: string[], time: string, ms = 500) {
    const started = performance.now();
    const s = calendarStatus(set, names, at(time));
    expect(performance.now() - started).toBeLessThan(ms);
    return s;
  }
  const summary = (s: ReturnType<typeof calendarStatus>) => [
    s.open,
    iso(s.nextChange),
    s.calendars.map((c) => [c.name, c.open, c.event, iso(c.nextChange)]),
  ];

  it('an event every minute for 30s, with a calendar that never opens: no 400-day rescans', () => {
    const set = load(`  busy:
    default: closed
    events:
${events(1, () => "cron: '* * * * *', duration: 30s")}  shut:
    default: closed
  open:
    default: open
`);
    expect(summary(timed(set, ['busy', 'shut'], '2026-06-01T00:00:10Z'))).toEqual([
      false,
      undefined, // never open together within the horizon
      [
        ['busy', true, 'e0', '2026-06-01T00:00:30.000Z'],
        ['shut', false, undefined, undefined],
      ],
    ]);
    expect(summary(timed(set, ['busy', 'open'], '2026-06-01T00:00:40Z'))).toEqual([
      false,
      '2026-06-01T00:01:00.000Z',
      [
        ['busy', false, undefined, '2026-06-01T00:01:00.000Z'],
        ['open', true, undefined, undefined],
      ],
    ]);
    // Repeated calls on the loaded set reuse what the first compiled.
    for (let i = 0; i < 20; i++) timed(set, ['busy', 'shut'], `2026-07-01T00:${String(i).padStart(2, '0')}:45Z`, 100);
  });

  it('20 events that together start every minute (merged as one), with a calendar that never opens', () => {
    const set = load(`  busy:
    timezone: Europe/Berlin
    default: closed
    events:
${events(20, (i) => `cron: '${i}-59/20 * * * *', duration: 30s`)}  shut:
    default: closed
`);
    // Across the spring-forward night too (02:xx does not exist: those minutes start at 03:00, merged).
    expect(summary(timed(set, ['busy', 'shut'], '2026-03-29T00:59:50Z'))).toEqual([
      false,
      undefined,
      [
        ['busy', false, undefined, '2026-03-29T01:00:00.000Z'],
        ['shut', false, undefined, undefined],
      ],
    ]);
    const s = timed(set, ['busy'], '2026-03-29T01:00:10Z').calendars[0]!;
    expect([s.open, s.event, iso(s.nextChange)]).toEqual([true, 'e0', '2026-03-29T01:00:30.000Z']);
  });

  it('10 overlapping events every 10 minutes lasting 31 days: merged, the window found exactly', () => {
    const set = load(`  july:
    default: closed
    events:
${events(10, (i) => `cron: '${i}-59/10 * * 7 *', duration: 31d`)}  shut:
    default: closed
`);
    // Starts every minute of July, each lasting 31 days: open from July 1 to 31 days after July 31 23:59.
    expect(summary(timed(set, ['july', 'shut'], '2026-06-01T00:00Z'))).toEqual([
      false,
      undefined,
      [
        ['july', false, undefined, '2026-07-01T00:00:00.000Z'],
        ['shut', false, undefined, undefined],
      ],
    ]);
    const s = timed(set, ['july'], '2026-07-15T12:00Z');
    expect(summary(s)).toEqual([true, '2026-08-31T23:59:00.000Z', [['july', true, 'e0', '2026-08-31T23:59:00.000Z']]]);
  });

  it('100 daily events and 900 one-off ones (the most a file may have of the one, a calendar of both)', () => {
    const set = load(`  daily:
    default: closed
    events:
${events(100, (i) => `cron: '${i % 60} ${Math.floor(i / 60)} * * *', duration: 1m`)}${events(
      900,
      (i) =>
        `start: '${new Date(Date.UTC(2026, 0, 1) + i * 86_400_000).toISOString().slice(0, 10)}T12:00', end: '${new Date(Date.UTC(2026, 0, 1) + i * 86_400_000).toISOString().slice(0, 10)}T13:00'`,
    ).replace(/name: e(\d+)/g, 'name: once$1')}  shut:
    default: closed
`);
    // Minutes 00:00 to 01:40 merge into one window a day; 12:00 to 13:00 is another.
    expect(summary(timed(set, ['daily', 'shut'], '2026-06-01T00:30Z'))).toEqual([
      false,
      undefined,
      [
        ['daily', true, 'e30', '2026-06-01T01:40:00.000Z'],
        ['shut', false, undefined, undefined],
      ],
    ]);
    const s = timed(set, ['daily'], '2026-06-01T02:00Z').calendars[0]!;
    expect([s.open, iso(s.nextChange)]).toEqual([false, '2026-06-01T12:00:00.000Z']);
    const late = timed(set, ['daily'], '2028-06-20T12:30Z').calendars[0]!; // after the last one-off
    expect([late.open, iso(late.nextChange)]).toEqual([false, '2028-06-21T00:00:00.000Z']);
  });

  it('calendars never open together, flipping every minute for 273 days, then once both open', () => {
    const set = load(`  even:
    default: closed
    events:
${events(1, () => "cron: '*/2 * * * *', duration: 1m")}      - { name: odd too, start: '2027-03-01T00:01Z', end: '2027-03-01T00:01:30Z' }
  odd:
    default: open
    events:
${events(1, () => "cron: '*/2 * * * *', duration: 1m")}`);
    const s = timed(set, ['even', 'odd'], '2026-06-01T00:00:10Z');
    expect(summary(s)).toEqual([
      false,
      '2027-03-01T00:01:00.000Z',
      [
        ['even', true, 'e0', '2026-06-01T00:01:00.000Z'],
        ['odd', false, 'e0', '2026-06-01T00:01:00.000Z'],
      ],
    ]);
  });

  it('refuses files past the limits, each with a located error', () => {
    const minutes = (n: number) => events(n, () => "cron: '* * * * *', duration: 30s");
    // The reviewer's 20 events starting every minute (and 10 lasting 31 days: 14,400 starts a day likewise).
    expect(problemsOf(`  busy:\n    default: closed\n    events:\n${minutes(20)}`)).toEqual([
      "cal.yaml:8:27: calendars.busy.events[1].cron: the file's recurring events start 28800 times a day in all; at most 1440 (once a minute), and with this event they reach 2880: start events less often and give them longer durations [RB1107]",
    ]);
    // Counted over the whole file: the calendars of one call are any of its calendars.
    expect(
      problemsOf(
        `  a:\n    default: closed\n    events:\n${minutes(1)}  b:\n    default: open\n    events:\n${events(1, () => "cron: '0 * * * *', duration: 1h")}`,
      ),
    ).toEqual([
      "cal.yaml:11:27: calendars.b.events[0].cron: the file's recurring events start 1464 times a day in all; at most 1440 (once a minute), and with this event they reach 1464: start events less often and give them longer durations [RB1107]",
    ]);
    expect(
      problemsOf(
        `  daily:\n    default: closed\n    events:\n${events(101, (i) => `cron: '${i % 60} ${Math.floor(i / 60)} * * *', duration: 1m`)}`,
      ),
    ).toEqual([
      'cal.yaml:107:29: calendars.daily.events[100].cron: the file has 101 recurring events; a calendar file has at most 100 in all (this is number 101): give an event a cron that matches more times or days instead of repeating it [RB1107]',
    ]);
    // The reviewer's 10,000 daily events: every limit they pass is reported.
    expect(
      problemsOf(
        `  daily:\n    default: closed\n    events:\n${events(10_000, (i) => `cron: '${i % 60} ${Math.floor(i / 60) % 24} * * *', duration: 1h`)}`,
      ).map((p) => p.replace(/: [^:]*$/, '')),
    ).toEqual([
      'cal.yaml:6:5: calendars.daily.events: calendar "daily" has 10000 events; a calendar has at most 1000',
      'cal.yaml:107:29: calendars.daily.events[100].cron: the file has 10000 recurring events; a calendar file has at most 100 in all (this is number 101)',
      "cal.yaml:1447:30: calendars.daily.events[1440].cron: the file's recurring events start 10000 times a day in all; at most 1440 (once a minute), and with this event they reach 1441",
    ]);
    const once = (n: number) =>
      events(n, (i) => `start: '2026-01-01T00:00', end: '2026-01-${String((i % 28) + 2).padStart(2, '0')}'`);
    expect(problemsOf(`  freeze:\n    default: open\n    events:\n${once(1001)}`)).toEqual([
      'cal.yaml:6:5: calendars.freeze.events: calendar "freeze" has 1001 events; a calendar has at most 1000: split it into several calendars, or merge events (a recurring event covers many dates) [RB1107]',
    ]);
  });
});

describe('located errors', () => {
  it.each([
    [
      'bad zone',
      '  a:\n    timezone: Europe/Berln\n    default: closed\n',
      'cal.yaml:5:15: calendars.a.timezone: unknown time zone "Europe/Berln" (did you mean "Europe/Berlin"?): expected an IANA zone name like Europe/Berlin, America/New_York or UTC [RB1104]',
    ],
    [
      'bad cron',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 25 * * *'\n        end: '04:00'\n",
      'cal.yaml:8:15: calendars.a.events[0].cron: cron "0 25 * * *", hour field "25": Constraint error, got value 25 expected range 0-23 [RB1105]',
    ],
    [
      'both dom and dow',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 0 1 * MON'\n        duration: 1h\n",
      'cal.yaml:8:15: calendars.a.events[0].cron: cron "0 0 1 * MON" restricts both the day of month ("1") and the day of week ("MON"): classic cron runs on days matching either, Temporal Schedules on days matching both, so it is ambiguous; split it into two expressions, or restrict only one of the two (leave the other *) [RB1105]',
    ],
    [
      'end and duration',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 22 * * SUN'\n        end: '04:00'\n        duration: 6h\n",
      'cal.yaml:10:9: calendars.a.events[0].duration: give either end (a local time HH:MM) or duration (elapsed time), not both [RB1104]',
    ],
    [
      'neither end nor duration',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 22 * * SUN'\n",
      'cal.yaml:7:9: calendars.a.events[0]: a recurring event needs end (the local time HH:MM it ends at, e.g. 04:00) or duration (e.g. 6h) [RB1103]',
    ],
    [
      'end before start',
      "  a:\n    default: closed\n    events:\n      - name: x\n        start: '2026-12-02T02:00'\n        end: '2026-12-01T22:00'\n",
      'cal.yaml:9:14: calendars.a.events[0].end: the event ends (2026-12-01T22:00) before it starts (2026-12-02T02:00); end must be after start [RB1107]',
    ],
    [
      'end equal to start, across zones',
      "  a:\n    timezone: Europe/Berlin\n    default: closed\n    events:\n      - name: x\n        start: '2026-12-01T23:00'\n        end: '2026-12-01T22:00Z'\n",
      'cal.yaml:10:14: calendars.a.events[0].end: the event ends (2026-12-01T22:00Z) when it starts (2026-12-01T23:00); end must be after start [RB1107]',
    ],
    [
      'unknown field',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 22 * * SUN'\n        end: '04:00'\n        durration: 6h\n",
      'cal.yaml:10:9: calendars.a.events[0].durration: unknown key "durration" (did you mean "duration"?); expected one of: name, description, cron, start, end, duration [RB1101]',
    ],
    [
      'recurring end not a time of day',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 22 * * SUN'\n        end: '2026-12-01T04:00'\n",
      'cal.yaml:9:14: calendars.a.events[0].end: expected a local time of day HH:MM (24h) like 04:00, found "2026-12-01T04:00": a recurring event ends at the next such time after it starts (a date-time end is for one-off events, which have start instead of cron) [RB1105]',
    ],
    [
      'duration too long',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 0 15 12 *'\n        duration: 32d\n",
      'cal.yaml:9:19: calendars.a.events[0].duration: a recurring event lasts more than 0 and at most 31d; found 32d [RB1107]',
    ],
    [
      'duration zero',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 0 15 12 *'\n        duration: 0m\n",
      'cal.yaml:9:19: calendars.a.events[0].duration: a recurring event lasts more than 0 and at most 31d; found 0m [RB1107]',
    ],
    [
      'cron and start',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '0 22 * * SUN'\n        start: '2026-12-01T04:00'\n        end: '04:00'\n",
      'cal.yaml:9:9: calendars.a.events[0].start: an event is either recurring (cron, with end HH:MM or duration) or one-off (start and end), not both [RB1104]',
    ],
    [
      'neither cron nor start',
      '  a:\n    default: closed\n    events:\n      - name: x\n',
      'cal.yaml:7:9: calendars.a.events[0]: an event needs cron (recurring, with end HH:MM or duration) or start and end (one-off) [RB1103]',
    ],
    [
      'not a date',
      "  a:\n    default: closed\n    events:\n      - name: x\n        start: '2026-02-30T00:00'\n        end: '2026-03-01'\n",
      'cal.yaml:8:16: calendars.a.events[0].start: expected a local date-time like 2026-12-01T22:00 (in the calendar\'s zone), a date like 2026-12-01, or an instant with an offset like 2026-12-01T22:00+01:00 or Z; found "2026-02-30T00:00" [RB1105]',
    ],
    [
      'too frequent',
      "  a:\n    default: closed\n    events:\n      - name: x\n        cron: '* * * * * *'\n        duration: 1h\n",
      'cal.yaml:8:15: calendars.a.events[0].cron: the cron starts the event 86400 times a day; an event may start at most once a minute (1440 times a day): give a longer duration instead [RB1107]',
    ],
    [
      'bad default',
      '  a:\n    default: shut\n',
      'cal.yaml:5:14: calendars.a.default: expected one of open, closed; found string "shut" [RB1104]',
    ],
    [
      'missing default',
      '  a:\n    timezone: UTC\n',
      'cal.yaml:4:3: calendars.a.default: missing required key "default" [RB1103]',
    ],
    [
      'bad name',
      '  Maint_Window:\n    default: open\n',
      'cal.yaml:4:3: calendars.Maint_Window: invalid name "Maint_Window": expected a name of lowercase letters, digits and -, starting with a letter [RB1106]',
    ],
  ])('%s', (_what, body, message) => {
    const { set, problems } = loadCalendarsText('cal.yaml', header + body);
    expect(problems.map(formatProblem)).toEqual([message]);
    expect(set).toBeUndefined();
  });

  it('every problem is reported at once', () => {
    expect(
      problemsOf(`  a:
    timezone: Nowhere/City
    default: closed
    events:
      - { name: x, cron: 'L * * * *', duration: 1h }
      - { name: y, start: 'tomorrow', end: '2026-01-01' }
`).map((p) => p.replace(/: .*\[/, ' [')),
    ).toEqual(['cal.yaml:5:15 [RB1104]', 'cal.yaml:8:26 [RB1105]', 'cal.yaml:9:27 [RB1105]']);
  });

  it('a 10,000-deep document is refused with a clear error, not a crash', () => {
    const deep = `${header}  a:\n    default: closed\n    events: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`;
    const { set, problems } = loadCalendarsText('cal.yaml', deep);
    expect(set).toBeUndefined();
    expect(problems.map(formatProblem)).toEqual([
      expect.stringMatching(
        /^cal\.yaml:6:\d+: nesting deeper than 100 levels of lists and mappings; refusing to parse further \[RB1004\]$/,
      ),
    ]);
    const blockDeep = `${header}  a:\n    default: closed\n    events:\n      ${'- '.repeat(10_000)}x\n`;
    expect(loadCalendarsText('cal.yaml', blockDeep).problems.map(formatProblem)).toEqual([
      expect.stringMatching(/^cal\.yaml:7:\d+: nesting deeper than 100 levels .* \[RB1004\]$/),
    ]);
  });

  it('an empty file says what a calendar file is', () => {
    expect(loadCalendarsText('cal.yaml', '').problems.map(formatProblem)).toEqual([
      'cal.yaml:1:1: the file is empty: a calendar file is a mapping with apiVersion, kind and calendars [RB1102]',
    ]);
  });
});

describe('files', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'calendars-'));
  });
  afterEach(() => {
    jest.restoreAllMocks();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a 50 MB file is refused by its size, without being read', () => {
    const file = path.join(dir, 'calendars.yaml');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, 50 * 1024 * 1024); // sparse: no 50 MB written
    const read = jest.spyOn(fs, 'readFileSync');
    const { set, problems } = loadCalendarsFile(file);
    expect(read).not.toHaveBeenCalled();
    expect(set).toBeUndefined();
    expect(problems.map(formatProblem)).toEqual([
      `${file}: the file is 50 MiB (52428800 bytes), more than the 1 MiB a calendar file may have; refusing to parse it [RB1005]`,
    ]);
  });

  it('a missing file is a UserError naming it; an invalid one lists every problem', () => {
    const missing = path.join(dir, 'nope.yaml');
    expect(() => loadCalendarsFile(missing)).toThrow(
      new UserError(`Cannot read calendar file ${missing}: no such file.`),
    );
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, `${header}  a:\n    default: shut\n`);
    expect(() => loadCalendars(bad)).toThrow(
      new UserError(
        `Calendar file ${bad} is invalid:\n${bad}:5:14: calendars.a.default: expected one of open, closed; found string "shut" [RB1104]`,
      ),
    );
  });

  it('findCalendarsFile: RUNBOOK_CALENDARS (must exist), else RUNBOOK_DIR/calendars.yaml, else none', () => {
    expect(findCalendarsFile(dir)).toBeUndefined();
    const inDir = path.join(dir, 'calendars.yaml');
    fs.writeFileSync(inDir, header);
    expect(findCalendarsFile(dir)).toBe(inDir);
    const other = path.join(dir, 'other.yaml');
    fs.writeFileSync(other, header);
    expect(findCalendarsFile(dir, other)).toBe(other);
    expect(() => findCalendarsFile(dir, path.join(dir, 'gone.yaml'))).toThrow(
      /RUNBOOK_CALENDARS names .*gone\.yaml, which does not exist/,
    );
  });
});

describe('runbook calendar status', () => {
  /** Runs the command into a string. */
  async function run(names: string[], opts: Parameters<typeof runCalendarStatus>[1]) {
    let text = '';
    const code = await runCalendarStatus(names, { file: EXAMPLE, ...opts }, { write: (s: string) => (text += s) });
    return { code, text };
  }

  it('prints a table and the combined state; --check exits 1 when closed', async () => {
    const { code, text } = await run([], { at: '2026-12-20T21:30:00Z', check: true });
    expect(code).toBe(1);
    expect(text).toBe(
      [
        `at 2026-12-20T21:30:00Z, ${EXAMPLE}`,
        'NAME             STATE   WHY                           NEXT CHANGE',
        'sunday-night     OPEN    event "Sunday night"          2026-12-21T03:00:00Z (Mon 2026-12-21 04:00 Europe/Berlin), in 5h 30m',
        'year-end-freeze  CLOSED  event "Year-end freeze 2026"  2027-01-04T23:00:00Z (Tue 2027-01-05 00:00 Europe/Berlin), in 15d 1h',
        'ALL: CLOSED until 2027-01-10T21:00:00Z, in 20d 23h',
        '',
      ].join('\n'),
    );
  });

  it('--check exits 0 when open; a time without an offset is read as UTC and says so', async () => {
    const { code, text } = await run(['sunday-night'], { at: '2026-12-13T21:30', check: true });
    expect(code).toBe(0);
    expect(text.split('\n').slice(0, 1)).toEqual([
      `at 2026-12-13T21:30:00Z (no offset given: read as UTC), ${EXAMPLE}`,
    ]);
    expect(text).toContain('ALL: OPEN until 2026-12-14T03:00:00Z, in 5h 30m');
    expect(text).not.toContain('year-end-freeze');
  });

  it('an offset is honoured; --json prints the WindowStatus', async () => {
    const { code, text } = await run(['year-end-freeze'], { at: '2027-01-05T00:00+01:00', json: true, check: true });
    expect(code).toBe(0);
    expect(JSON.parse(text)).toEqual({
      at: '2027-01-04T23:00:00.000Z',
      open: true,
      calendars: [{ name: 'year-end-freeze', open: true, default: 'open', timezone: 'Europe/Berlin' }],
    });
  });

  it('bad input is a UserError: an invalid --at, an unknown name, no calendar file', async () => {
    await expect(run([], { at: '2026-13-01T00:00Z' })).rejects.toThrow(
      new UserError(
        '--at "2026-13-01T00:00Z" is not a time: expected ISO 8601 like 2026-12-20T22:00Z or 2026-12-20T23:00+01:00 (without an offset it is read as UTC), or now.',
      ),
    );
    await expect(run(['sunday'], {})).rejects.toThrow(
      /No calendar named "sunday" in .* it defines: sunday-night, year-end-freeze\./,
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'calendars-'));
    const saved = { dir: process.env.RUNBOOK_DIR, cal: process.env.RUNBOOK_CALENDARS };
    try {
      process.env.RUNBOOK_DIR = dir;
      delete process.env.RUNBOOK_CALENDARS;
      await expect(runCalendarStatus([], {}, { write: () => true })).rejects.toThrow(
        new UserError(
          `No calendar file: looked for RUNBOOK_CALENDARS (unset) and ${dir}/calendars.yaml (none). Set RUNBOOK_CALENDARS to a calendar file, ` +
            'create calendars.yaml in the runbook directory (runbooks/calendars.example.yaml shows the format), or pass --file.',
        ),
      );
    } finally {
      if (saved.dir === undefined) delete process.env.RUNBOOK_DIR;
      else process.env.RUNBOOK_DIR = saved.dir;
      if (saved.cal !== undefined) process.env.RUNBOOK_CALENDARS = saved.cal;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
