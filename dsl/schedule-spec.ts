// Pure. What a runbook's `on.schedule` means, in one place: its checks (for lint and sync), the Temporal Schedule
// spec it becomes, a preview of its next times, and the DST hazards of its zone.
//
// Cron and calendar forms are parsed here (dsl/cron.ts) and sent to Temporal as explicit calendar fields, so the
// times previewed and the times the server fires come from the same field values and the same rule: every field
// must match the local wall-clock time literally. In a zone with DST that has two consequences, found by
// `dstHazards`: a time inside the spring-forward gap does not exist that day, and the server skips the run (lint
// warns); a time inside the fall-back hour exists twice, and the server runs once, at the second (standard-time)
// one. (The SDK's documentation says it runs twice; test/integration/schedules.test.ts compares this preview with
// the server's own next times, and the server runs once.)
//
// `skip` fixes Temporal's other gotcha: in its calendar specs an unset second, minute or hour means 0, so a skip
// of `{ month: 12, dayOfMonth: 25 }` would only skip midnight. Here they mean "every", so it skips the whole day.
import type { CalendarSpec, IntervalSpec, ScheduleSpec } from '@temporalio/client';
import ms from 'ms';
import { CronError, instantsOf, isValidZone, parseCron, wallClock, wallTimesOn, type CronFields } from './cron';
import type { Static } from '@sinclair/typebox';
import type { ScheduleTrigger } from './schema';

export type ScheduleDoc = Static<typeof ScheduleTrigger>;
type CalendarDoc = NonNullable<ScheduleDoc['calendar']>;

/** Temporal's month and day names, in order (month 1 is JANUARY, day 0 SUNDAY). */
export const MONTHS = [
  'JANUARY',
  'FEBRUARY',
  'MARCH',
  'APRIL',
  'MAY',
  'JUNE',
  'JULY',
  'AUGUST',
  'SEPTEMBER',
  'OCTOBER',
  'NOVEMBER',
  'DECEMBER',
] as const;
export const DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'] as const;

/** The defaults of the catch-up window and overlap policy (Temporal's own default catch-up is a year). */
export const SCHEDULE_DEFAULTS = { catchupWindow: '15m', overlap: 'skip', timezone: 'UTC' } as const;

/** A calendar object as a 6-field cron expression; unset second/minute/hour are `dflt` (`0`, or `*` for skips). */
export function calendarCron(cal: CalendarDoc, dflt: '0' | '*'): string {
  const f = (v: string | number | undefined, d: string) => (v === undefined ? d : String(v).replace(/\s+/g, ''));
  return [
    f(cal.second, dflt),
    f(cal.minute, dflt),
    f(cal.hour, dflt),
    f(cal.dayOfMonth, '*'),
    f(cal.month, '*'),
    f(cal.dayOfWeek, '*'),
  ].join(' ');
}

/** The parsed fields of a cron- or calendar-form schedule; undefined for `every`. Throws CronError. */
export function scheduleFields(s: ScheduleDoc): CronFields | undefined {
  if (s.cron !== undefined) return parseCron(s.cron);
  if (s.calendar !== undefined) return parseCron(calendarCron(s.calendar, '0'));
  return undefined;
}

/** Sorted values as ranges of consecutive values. */
function ranges(values: number[]): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const v of [...values].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && v === last.end + 1) last.end = v;
    else if (!last || v > last.end) out.push({ start: v, end: v });
  }
  return out;
}

/** Parsed fields as a Temporal calendar spec with every field explicit (nothing left to the server's defaults). */
export function temporalCalendar(f: CronFields, comment?: string): CalendarSpec {
  return {
    second: ranges(f.second),
    minute: ranges(f.minute),
    hour: ranges(f.hour),
    dayOfMonth: ranges(f.dayOfMonth),
    month: ranges(f.month).map((r) => ({ start: MONTHS[r.start - 1]!, end: MONTHS[r.end - 1]! })),
    dayOfWeek: ranges(f.dayOfWeek).map((r) => ({ start: DAYS[r.start]!, end: DAYS[r.end]! })),
    year: '*',
    ...(comment ? { comment } : {}),
  };
}

/** The Temporal Schedule spec of `on.schedule` (assumed checked: see scheduleProblems). */
export function temporalSpec(s: ScheduleDoc): ScheduleSpec {
  const fields = scheduleFields(s);
  const spec: ScheduleSpec = { timezone: s.timezone ?? SCHEDULE_DEFAULTS.timezone };
  if (fields) spec.calendars = [temporalCalendar(fields, s.cron ?? s.calendar?.comment)];
  if (s.every !== undefined) {
    const interval: IntervalSpec = { every: ms(s.every as ms.StringValue) };
    if (s.offset !== undefined) interval.offset = ms(s.offset as ms.StringValue);
    spec.intervals = [interval];
  }
  if (s.skip?.length) spec.skip = s.skip.map((k) => temporalCalendar(parseCron(calendarCron(k, '*')), k.comment));
  if (s.jitter !== undefined && ms(s.jitter as ms.StringValue) > 0) spec.jitter = ms(s.jitter as ms.StringValue);
  return spec;
}

/** One line for people: `cron '15 2 * * *' in UTC, skip 1 day spec, jitter 5m, overlap skip`. */
export function describeSchedule(s: ScheduleDoc): string {
  const when =
    s.cron !== undefined
      ? `cron '${s.cron}'`
      : s.calendar !== undefined
        ? `calendar ${calendarCron(s.calendar, '0')} (s m h dom mon dow)`
        : `every ${s.every}${s.offset ? ` offset ${s.offset}` : ''}`;
  const parts = [`${when} ${s.every !== undefined ? '' : `in ${s.timezone ?? 'UTC'}`}`.trim()];
  if (s.skip?.length)
    parts.push(
      `skipping ${s.skip
        .map(
          (k) =>
            k.comment ??
            Object.entries(k)
              .map(([f, v]) => `${f} ${String(v)}`)
              .join(' '),
        )
        .join('; ')}`,
    );
  if (s.jitter) parts.push(`jitter ${s.jitter}`);
  parts.push(`overlap ${s.overlap ?? SCHEDULE_DEFAULTS.overlap}`);
  return parts.join(', ');
}

export interface ScheduleProblem {
  /** Field under `on.schedule`. */
  path: (string | number)[];
  message: string;
}

/** What is wrong with an `on.schedule` (beyond its schema): forms, cron syntax, zone, durations. */
export function scheduleProblems(s: ScheduleDoc): ScheduleProblem[] {
  const out: ScheduleProblem[] = [];
  const forms = (['cron', 'calendar', 'every'] as const).filter((k) => s[k] !== undefined);
  if (forms.length !== 1) {
    out.push({
      path: forms.length ? [forms[1]!] : [],
      message:
        forms.length === 0
          ? 'a schedule needs exactly one of `cron`, `calendar` or `every`'
          : `give one of \`cron\`, \`calendar\` or \`every\`, not ${forms.map((f) => `\`${f}\``).join(' and ')}`,
    });
  }
  if (s.offset !== undefined && s.every === undefined)
    out.push({ path: ['offset'], message: '`offset` shifts an `every` interval; this schedule has none' });
  const tryCron = (path: (string | number)[], expr: () => string) => {
    try {
      parseCron(expr());
    } catch (err) {
      if (!(err instanceof CronError)) throw err;
      out.push({ path, message: err.message });
    }
  };
  if (s.cron !== undefined) tryCron(['cron'], () => s.cron!);
  if (s.calendar !== undefined) tryCron(['calendar'], () => calendarCron(s.calendar!, '0'));
  s.skip?.forEach((k, i) => tryCron(['skip', i], () => calendarCron(k, '*')));
  const zone = s.timezone ?? SCHEDULE_DEFAULTS.timezone;
  if (!isValidZone(zone))
    out.push({
      path: ['timezone'],
      message: `"${zone.slice(0, 64)}" is not an IANA time zone (such as UTC, Europe/Berlin, America/New_York)`,
    });
  const dur = (k: 'every' | 'offset' | 'jitter' | 'catchupWindow') =>
    s[k] === undefined ? undefined : ms(s[k] as ms.StringValue);
  const every = dur('every');
  if (every !== undefined && every < 1000) out.push({ path: ['every'], message: 'the shortest interval is 1s' });
  if (every !== undefined && dur('offset')! >= every)
    out.push({ path: ['offset'], message: `the offset must be shorter than the interval (${s.every})` });
  const catchup = dur('catchupWindow');
  if (catchup !== undefined && catchup < 10_000)
    out.push({ path: ['catchupWindow'], message: 'the shortest catch-up window Temporal takes is 10s' });
  return out;
}

export interface DstHazard {
  /** Local date, YYYY-MM-DD. */
  date: string;
  /** Local time, HH:MM:SS. */
  time: string;
  /** skipped: the time does not exist that day; repeated: it exists twice (the server runs at the second). */
  kind: 'skipped' | 'repeated';
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** The local date `n` days after a local date (calendar arithmetic, no zone involved). */
function addDays(d: { year: number; month: number; day: number }, n: number) {
  const t = new Date(Date.UTC(d.year, d.month - 1, d.day + n));
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

/** The local date of an instant in a zone. */
function localDate(at: number, zone: string) {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
  }).formatToParts(new Date(at));
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  return { year: get('year'), month: get('month'), day: get('day') };
}

/** Whether a local wall time matches one of the skip specs. */
function skippedBy(
  skips: CronFields[],
  d: { year: number; month: number; day: number },
  w: { hour: number; minute: number; second: number },
) {
  return skips.some((k) =>
    wallTimesOn(k, d.year, d.month, d.day).some(
      (t) => t.hour === w.hour && t.minute === w.minute && t.second === w.second,
    ),
  );
}

/**
 * The times the schedule fires after `from` (exclusive), at most `n`, within `days` days: local wall times that
 * match, as the server matches them (none in a DST gap, the second of a repeated time), less the skipped ones. No
 * jitter.
 */
export function nextTimes(s: ScheduleDoc, from: Date, n: number, days = 400): Date[] {
  if (s.every !== undefined) {
    const every = ms(s.every as ms.StringValue);
    const offset = s.offset ? ms(s.offset as ms.StringValue) : 0;
    const first = Math.floor((from.getTime() - offset) / every) * every + offset + every;
    return Array.from({ length: n }, (_, i) => new Date(first + i * every));
  }
  const fields = scheduleFields(s)!;
  const skips = (s.skip ?? []).map((k) => parseCron(calendarCron(k, '*')));
  const zone = s.timezone ?? SCHEDULE_DEFAULTS.timezone;
  const out: number[] = [];
  let d = addDays(localDate(from.getTime(), zone), -1);
  for (let i = 0; i <= days + 1 && out.length < n; i++, d = addDays(d, 1)) {
    for (const w of wallTimesOn(fields, d.year, d.month, d.day)) {
      if (skips.length && skippedBy(skips, d, w)) continue;
      // A repeated time (fall back) fires once, at its second instant; a time in the gap not at all.
      const t = instantsOf({ ...d, ...w }, zone).at(-1);
      if (t !== undefined && t > from.getTime()) out.push(t);
    }
  }
  return out
    .sort((a, b) => a - b)
    .slice(0, n)
    .map((t) => new Date(t));
}

/**
 * Local times of the schedule that do not exist (spring forward: the server skips them) or exist twice (fall back:
 * the server runs once, at the second) within `days` days after `from`. Times `skip` excludes are not hazards.
 */
export function dstHazards(s: ScheduleDoc, from: Date, days = 400): DstHazard[] {
  const fields = scheduleFields(s);
  const zone = s.timezone ?? SCHEDULE_DEFAULTS.timezone;
  if (!fields || !isValidZone(zone)) return [];
  const skips = (s.skip ?? []).map((k) => parseCron(calendarCron(k, '*')));
  const out: DstHazard[] = [];
  const clock = wallClock(zone);
  let d = localDate(from.getTime(), zone);
  for (let i = 0; i < days; i++, d = addDays(d, 1)) {
    // Only days near a change of the zone's offset can have a gap or a repeated hour.
    if (clock.steadyOffset(d.year, d.month, d.day) !== undefined) continue;
    for (const w of wallTimesOn(fields, d.year, d.month, d.day)) {
      if (skips.length && skippedBy(skips, d, w)) continue;
      const count = instantsOf({ ...d, ...w }, zone).length;
      if (count === 1) continue;
      out.push({
        date: `${d.year}-${pad(d.month)}-${pad(d.day)}`,
        time: `${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`,
        kind: count === 0 ? 'skipped' : 'repeated',
      });
    }
  }
  return out;
}

/** The runs DST takes away, as a sentence for lint (with the fix), or [] when there are none. */
export function dstWarnings(s: ScheduleDoc, from: Date): string[] {
  const hazards = dstHazards(s, from).filter((h) => h.kind === 'skipped');
  const zone = s.timezone ?? SCHEDULE_DEFAULTS.timezone;
  const say = (kind: DstHazard['kind'], what: string) => {
    const hs = hazards.filter((h) => h.kind === kind);
    if (!hs.length) return [];
    const first = hs[0]!;
    const more =
      hs.length > 1 ? ` (and ${hs.length - 1} more time${hs.length > 2 ? 's' : ''} in the next 400 days)` : '';
    return [`${first.time} on ${first.date} in ${zone} ${what}${more}`];
  };
  const out = say('skipped', 'does not exist (clocks spring forward): Temporal skips that run');
  if (out.length) out.push('Schedule outside the DST change hours, or use timezone: UTC.');
  return out;
}
